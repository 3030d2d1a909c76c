//! The execution plan, decided at expansion time: which batch norms and
//! activations fuse into the step before them, where every intermediate
//! volume lives, and which steps a batch runs once for all its images.
//! These are the graph-level decisions; the kernel-level ones (which kernel
//! computes a layer, the scratch it needs) are the runtime's, which the
//! expansion evaluates in const context.
//!
//! The network's structure (groups, residual blocks) becomes a list of
//! steps on values; each value gets a place in one arena, first fit, for
//! the span of steps from the one that writes it to the last that reads it.

use crate::model::{Activation, Entry, LayerKind, Network};

/// Where a step reads or writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Buffer {
    /// The caller's input.
    Input,
    /// The caller's output.
    Out,
    /// The workspace's buffers, from this offset (in f32s).
    Arena(usize),
}

/// What a step computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// A convolution, and the batch norm after it (its layer) folded into
    /// its filters.
    Conv {
        /// The batch norm folded into it.
        bn: Option<usize>,
    },
    /// Max pooling.
    MaxPool,
    /// Average pooling.
    AvgPool,
    /// The mean of each channel.
    GlobalAvgPool,
    /// Batch norm on its own, in place.
    BatchNorm,
    /// Fully connected.
    Fc,
    /// An activation on its own, in place.
    Activate(Activation),
    /// Softmax, in place.
    Softmax,
    /// A residual add: the source added into the destination, in place.
    Add,
    /// Copies a volume to where in-place steps can work on it.
    Copy,
}

impl Op {
    /// Whether the step works in place (its destination is its source, or
    /// for [`Op::Add`], its destination is also read).
    pub fn in_place(self) -> bool {
        matches!(
            self,
            Op::BatchNorm | Op::Activate(_) | Op::Softmax | Op::Add
        )
    }

    /// Whether an activation after it can be fused into it.
    fn fuses_activation(self) -> bool {
        matches!(self, Op::Conv { .. } | Op::Fc | Op::BatchNorm | Op::Add)
    }
}

/// One step of the forward pass, reading and writing buffers `B`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step<B = Buffer> {
    /// The layer it computes; for an add or a copy, the layer whose input
    /// it prepares or whose block it ends.
    pub layer: usize,
    /// What it computes.
    pub op: Op,
    /// An activation fused into it.
    pub fused: Option<Activation>,
    /// Where it reads (for an add, the shortcut's volume).
    pub src: B,
    /// Where it writes.
    pub dst: B,
    /// Values read.
    pub in_len: usize,
    /// Values written.
    pub out_len: usize,
}

/// The whole forward pass of a network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The steps of one image, in order.
    pub steps: Vec<Step>,
    /// Length of the buffers the steps use, in f32s.
    pub arena_len: usize,
    /// The steps a batch can run for all its images at once, if any.
    pub tail: Option<Tail>,
}

/// The last steps of a pass when they are fully connected layers and
/// in-place steps: a batch runs them once for all its images, so that each
/// fc layer is one GEMM that reads its weights once, not a GEMV per image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tail {
    /// Index of the first step of [`Plan::steps`] it replaces, an fc.
    pub start: usize,
    /// Where the steps before leave an image's volume.
    pub from: Buffer,
    /// Its steps, their buffers per image: `Arena(0)` where the images'
    /// volumes are gathered and `Arena(rows)`, the other of two buffers of
    /// `rows` values per image.
    pub steps: Vec<Step>,
    /// Per image, the length of each of its two buffers, in f32s.
    pub rows: usize,
}

/// Arena offsets are multiples of this many f32s (64 bytes, a cache line).
const ALIGN: usize = 16;

/// The value id of the input.
const INPUT: usize = 0;

/// Plans the forward pass of a checked network.
pub fn plan(network: &Network) -> Plan {
    let mut builder = Builder {
        network,
        lens: vec![network.input.len()],
        steps: Vec::new(),
        pinned: Vec::new(),
    };
    let mut last = builder.sequence(&network.body, INPUT);
    if last == INPUT {
        // Only flattens and dropouts: the output is the input, copied.
        let layer = network.layers.len().saturating_sub(1);
        last = builder.copy(INPUT, layer);
    }
    let steps = fuse(network, builder.steps);
    let (places, arena_len) = place(&steps, &builder.lens, last);
    let tail = tail(&steps, &places, last);
    let at = |v: usize| places[v];
    Plan {
        steps: steps
            .iter()
            .map(|s| s.placed(at(s.src), at(s.dst)))
            .collect(),
        arena_len,
        tail,
    }
}

impl Step<usize> {
    /// The step reading `src` and writing `dst`.
    fn placed(&self, src: Buffer, dst: Buffer) -> Step {
        Step {
            layer: self.layer,
            op: self.op,
            fused: self.fused,
            src,
            dst,
            in_len: self.in_len,
            out_len: self.out_len,
        }
    }
}

/// Turns a network's structure into steps on values (ids into `lens`).
struct Builder<'n> {
    network: &'n Network,
    /// Each value's length in f32s; value 0 is the input.
    lens: Vec<usize>,
    steps: Vec<Step<usize>>,
    /// Values read again after the current sequence: not to be changed in
    /// place.
    pinned: Vec<usize>,
}

impl Builder<'_> {
    fn sequence(&mut self, entries: &[Entry], mut x: usize) -> usize {
        for entry in entries {
            x = match entry {
                Entry::Layer(i) => self.layer(*i, x),
                Entry::Group(block) => self.sequence(&block.entries, x),
                Entry::Residual(residual) => {
                    self.pinned.push(x);
                    let main = self.sequence(&residual.main, x);
                    self.pinned.pop();
                    let shortcut = match &residual.shortcut {
                        Some(entries) => {
                            self.pinned.push(main);
                            let out = self.sequence(entries, x);
                            self.pinned.pop();
                            out
                        }
                        None => x,
                    };
                    let layer = self.steps.last().map_or(0, |s| s.layer);
                    let sum = self.writable(main, Some(shortcut), layer);
                    let len = self.lens[sum];
                    self.push(layer, Op::Add, shortcut, sum, len, len);
                    match residual.act {
                        Some(act) => self.layer(act, sum),
                        None => sum,
                    }
                }
            };
        }
        x
    }

    /// The steps of layer `i` on value `x`; returns the value it leaves.
    fn layer(&mut self, i: usize, x: usize) -> usize {
        let layer = &self.network.layers[i];
        let (in_len, out_len) = (layer.input.len(), layer.output.len());
        let op = match layer.kind {
            LayerKind::Conv { .. } => Op::Conv { bn: None },
            LayerKind::MaxPool { .. } => Op::MaxPool,
            LayerKind::AvgPool { .. } => Op::AvgPool,
            LayerKind::GlobalAvgPool => Op::GlobalAvgPool,
            LayerKind::Fc { .. } => Op::Fc,
            LayerKind::BatchNorm { .. } => Op::BatchNorm,
            LayerKind::Activation(a) => Op::Activate(a),
            LayerKind::Softmax => Op::Softmax,
            LayerKind::Dropout { .. } | LayerKind::Flatten => return x,
        };
        if op.in_place() {
            let y = self.writable(x, None, i);
            self.push(i, op, y, y, in_len, out_len);
            y
        } else {
            let y = self.value(out_len);
            self.push(i, op, x, y, in_len, out_len);
            y
        }
    }

    /// `x`, or a copy of it where an in-place step may not change it: the
    /// input, a value read again later, or the `other` value the step also
    /// reads (an add's shortcut).
    fn writable(&mut self, x: usize, other: Option<usize>, layer: usize) -> usize {
        if x == INPUT || self.pinned.contains(&x) || other == Some(x) {
            self.copy(x, layer)
        } else {
            x
        }
    }

    fn copy(&mut self, x: usize, layer: usize) -> usize {
        let len = self.lens[x];
        let y = self.value(len);
        self.push(layer, Op::Copy, x, y, len, len);
        y
    }

    fn value(&mut self, len: usize) -> usize {
        self.lens.push(len);
        self.lens.len() - 1
    }

    fn push(
        &mut self,
        layer: usize,
        op: Op,
        src: usize,
        dst: usize,
        in_len: usize,
        out_len: usize,
    ) {
        self.steps.push(Step {
            layer,
            op,
            fused: None,
            src,
            dst,
            in_len,
            out_len,
        });
    }
}

/// Folds each batch norm into the convolution right before it (not across
/// a flatten, which turns the conv's channels into features), and each
/// activation into the step right before it that can take one.
fn fuse(network: &Network, steps: Vec<Step<usize>>) -> Vec<Step<usize>> {
    let layers = &network.layers;
    let mut out: Vec<Step<usize>> = Vec::with_capacity(steps.len());
    for step in steps {
        if let Some(prev) = out.last_mut() {
            let on_prev = step.src == prev.dst && step.dst == prev.dst && prev.fused.is_none();
            match (prev.op, step.op) {
                (Op::Conv { bn: None }, Op::BatchNorm)
                    if on_prev && layers[step.layer].input == layers[prev.layer].output =>
                {
                    prev.op = Op::Conv {
                        bn: Some(step.layer),
                    };
                    continue;
                }
                (op, Op::Activate(a)) if on_prev && op.fuses_activation() => {
                    prev.fused = Some(a);
                    continue;
                }
                _ => {}
            }
        }
        out.push(step);
    }
    out
}

/// Places every value: the input and the output where the caller keeps
/// them, the rest first fit in one arena while they are live. Returns each
/// value's buffer and the arena's length.
fn place(steps: &[Step<usize>], lens: &[usize], last: usize) -> (Vec<Buffer>, usize) {
    let mut first_use = vec![usize::MAX; lens.len()];
    let mut last_use = vec![0; lens.len()];
    for (i, step) in steps.iter().enumerate() {
        for v in [step.src, step.dst] {
            first_use[v] = first_use[v].min(i);
            last_use[v] = i;
        }
    }
    let mut places = vec![Buffer::Input; lens.len()];
    places[last] = Buffer::Out;
    // Live arena blocks: (offset, length, value).
    let mut live: Vec<(usize, usize, usize)> = Vec::new();
    let mut arena = 0usize;
    for (i, step) in steps.iter().enumerate() {
        let v = step.dst;
        if v == INPUT || v == last || first_use[v] != i {
            continue;
        }
        live.retain(|&(_, _, u)| last_use[u] >= i);
        live.sort_unstable();
        let len = lens[v].saturating_add(ALIGN - 1) / ALIGN * ALIGN;
        let mut at = 0usize;
        for &(offset, size, _) in &live {
            if offset >= at.saturating_add(len) {
                break;
            }
            at = at.max(offset.saturating_add(size));
        }
        live.push((at, len, v));
        arena = arena.max(at.saturating_add(len));
        places[v] = Buffer::Arena(at);
    }
    (places, arena)
}

/// The batched tail: from the first fc after which only fc layers and
/// in-place steps on their output follow, their buffers the two rows of
/// the batch.
fn tail(steps: &[Step<usize>], places: &[Buffer], last: usize) -> Option<Tail> {
    let batchable = |s: &Step<usize>| matches!(s.op, Op::Fc | Op::Activate(_) | Op::Softmax);
    let body = steps.len() - steps.iter().rev().take_while(|s| batchable(s)).count();
    let start = body + steps[body..].iter().position(|s| s.op == Op::Fc)?;
    let rows = steps[start..]
        .iter()
        .map(|s| s.in_len.max(s.out_len))
        .max()
        .unwrap_or(0);
    // The gathered volumes are the first rows; from there each fc writes
    // the other rows, the last the output.
    let from = steps[start].src;
    let mut slot = vec![None; places.len()];
    slot[from] = Some(if places[from] == Buffer::Input {
        Buffer::Input
    } else {
        Buffer::Arena(0)
    });
    let mut tail_steps = Vec::new();
    for step in &steps[start..] {
        let src = slot[step.src]?;
        let dst = if step.dst == last {
            Buffer::Out
        } else if step.op == Op::Fc {
            if src == Buffer::Arena(rows) {
                Buffer::Arena(0)
            } else {
                Buffer::Arena(rows)
            }
        } else {
            src
        };
        slot[step.dst] = Some(dst);
        tail_steps.push(step.placed(src, dst));
    }
    Some(Tail {
        start,
        from: places[from],
        steps: tail_steps,
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_of(src: &str) -> Plan {
        let networks = crate::parse_networks(src).expect("valid network");
        plan(&networks[0])
    }

    const A: Buffer = Buffer::Arena(0);
    const CONV: Op = Op::Conv { bn: None };

    fn ops(p: &Plan) -> Vec<(Op, Option<Activation>, Buffer, Buffer)> {
        p.steps
            .iter()
            .map(|s| (s.op, s.fused, s.src, s.dst))
            .collect()
    }

    #[test]
    fn seed_net_fuses_relu_and_ends_in_the_output() {
        let p = plan_of(
            "struct S { input(3, 32, 32) conv(10, 5, s = 1, p = 2) relu pool(2, 2) fc(10) }",
        );
        let ops: Vec<(Op, Option<Activation>, Buffer, Buffer)> = p
            .steps
            .iter()
            .map(|s| (s.op, s.fused, s.src, s.dst))
            .collect();
        let b = Buffer::Arena(10 * 32 * 32);
        assert_eq!(
            ops,
            vec![
                (CONV, Some(Activation::Relu), Buffer::Input, A),
                (Op::MaxPool, None, A, b),
                (Op::Fc, None, b, Buffer::Out),
            ]
        );
        // The conv's output and the pool's, both live while it runs.
        assert_eq!(p.arena_len, 10 * 32 * 32 + 10 * 16 * 16);
    }

    #[test]
    fn in_place_layers_after_the_last_compute_run_on_the_output() {
        let p = plan_of("struct S { input(4, 2, 2) fc(3) softmax }");
        assert_eq!(p.steps.len(), 2);
        assert_eq!(
            (p.steps[0].src, p.steps[0].dst),
            (Buffer::Input, Buffer::Out)
        );
        assert_eq!(
            (p.steps[1].op, p.steps[1].src, p.steps[1].dst),
            (Op::Softmax, Buffer::Out, Buffer::Out)
        );
    }

    #[test]
    fn activation_first_copies_the_input() {
        let p = plan_of("struct S { input(2, 3, 3) relu flatten }");
        assert_eq!(p.steps[0].op, Op::Copy);
        assert_eq!(p.steps[0].dst, Buffer::Out);
        assert_eq!(p.steps[1].op, Op::Activate(Activation::Relu));
        assert_eq!(p.arena_len, 0);
    }

    #[test]
    fn flatten_only_copies() {
        let p = plan_of("struct S { input(2, 3, 3) flatten }");
        assert_eq!(p.steps.len(), 1);
        assert_eq!(
            (p.steps[0].op, p.steps[0].src, p.steps[0].dst),
            (Op::Copy, Buffer::Input, Buffer::Out)
        );
    }

    #[test]
    fn batched_tail_starts_at_the_fc_layers_that_end_the_pass() {
        let tail = |src| plan_of(src).tail.map(|t| (t.start, t.rows));
        // conv, pool, conv, pool, then three fc: the last three steps.
        let lenet =
            "struct S { input(1, 28, 28) conv(6, 5, p = 2) relu pool(2, 2) conv(16, 5) relu \
                     pool(2, 2) fc(120) relu fc(84) relu fc(10) softmax }";
        assert_eq!(tail(lenet), Some((4, 16 * 5 * 5)));
        // From the input: the tail is the whole pass.
        assert_eq!(
            tail("struct S { input(4, 2, 2) fc(30) sigmoid fc(3) }"),
            Some((0, 30))
        );
        // An activation before the first fc stays with the image.
        let p = plan_of("struct S { input(2, 4, 4) pool(2) relu fc(3) }");
        assert_eq!(p.tail.map(|t| t.start), Some(2));
        // A convolution after the fc: nothing to batch.
        assert_eq!(tail("struct S { input(4, 2, 2) fc(3) conv(2, 1) }"), None);
        assert_eq!(tail("struct S { input(2, 4, 4) conv(2, 3) }"), None);
    }

    #[test]
    fn the_tail_reads_the_gathered_rows_and_ping_pongs_in_its_own() {
        let p = plan_of("struct S { input(1, 8, 8) conv(4, 3) pool(2) fc(20) relu fc(7) fc(5) }");
        let tail = p.tail.expect("a tail");
        // The pool leaves each image in the second buffer (after the conv's).
        assert_eq!(tail.from, Buffer::Arena(4 * 6 * 6));
        assert_eq!(p.steps[tail.start].src, tail.from);
        let rows = Buffer::Arena(4 * 3 * 3);
        let buffers: Vec<(Op, Buffer, Buffer)> =
            tail.steps.iter().map(|s| (s.op, s.src, s.dst)).collect();
        assert_eq!(
            buffers,
            vec![
                (Op::Fc, A, rows),
                (Op::Fc, rows, A),
                (Op::Fc, A, Buffer::Out),
            ]
        );
        assert_eq!(tail.steps[0].fused, Some(Activation::Relu));
        // With no step before, the tail reads the input.
        let p = plan_of("struct S { input(4, 2, 2) fc(30) sigmoid fc(3) }");
        let tail = p.tail.expect("a tail");
        assert_eq!(tail.from, Buffer::Input);
        assert_eq!(
            (tail.steps[0].src, tail.steps[0].dst),
            (Buffer::Input, Buffer::Arena(30))
        );
    }

    #[test]
    fn ping_pong_buffers_hold_the_largest_volume() {
        let p = plan_of("struct S { input(64, 56, 56) conv(64, 3, p = 1) relu conv(64, 3, p = 1) tanh pool(2) }");
        let dsts: Vec<Buffer> = p.steps.iter().map(|s| s.dst).collect();
        let len = 64 * 56 * 56;
        assert_eq!(dsts, vec![A, Buffer::Arena(len), Buffer::Out]);
        assert_eq!(p.arena_len, 2 * len);
    }

    #[test]
    fn batch_norm_folds_into_the_conv_before_it_and_the_add_takes_the_activation() {
        let p = plan_of(
            "struct S { input(4, 8, 8) conv(4, 3, p = 1) \
             residual(relu) { conv(4, 3, p = 1, bias = false) bn relu conv(4, 3, p = 1, bias = false) bn } \
             fc(2) }",
        );
        let len = 4 * 8 * 8;
        let (b, c) = (Buffer::Arena(len), Buffer::Arena(2 * len));
        let relu = Some(Activation::Relu);
        assert_eq!(
            ops(&p),
            vec![
                (CONV, None, Buffer::Input, A),
                (Op::Conv { bn: Some(2) }, relu, A, b),
                (Op::Conv { bn: Some(5) }, None, b, c),
                // The block's input, kept for the add, is its shortcut.
                (Op::Add, relu, A, c),
                (Op::Fc, None, c, Buffer::Out),
            ]
        );
        assert_eq!(p.arena_len, 3 * len);
    }

    #[test]
    fn a_shortcut_reads_the_blocks_input_and_main_stays_live() {
        let p = plan_of(
            "struct S { input(2, 8, 8) \
             residual { conv(4, 3, s = 2, p = 1, floor) } shortcut { conv(4, 1, s = 2, floor) bn } \
             relu }",
        );
        // MAIN's output is the block's, and so the network's.
        assert_eq!(
            ops(&p),
            vec![
                (CONV, None, Buffer::Input, Buffer::Out),
                (Op::Conv { bn: Some(2) }, None, Buffer::Input, A),
                (Op::Add, Some(Activation::Relu), A, Buffer::Out),
            ]
        );
    }

    #[test]
    fn in_place_steps_never_change_a_volume_read_again() {
        // The input is never written: an activation on it copies first.
        let p = plan_of("struct S { input(2, 4, 4) residual { relu } }");
        assert_eq!(
            ops(&p),
            vec![
                (Op::Copy, None, Buffer::Input, Buffer::Out),
                (
                    Op::Activate(Activation::Relu),
                    None,
                    Buffer::Out,
                    Buffer::Out
                ),
                (Op::Add, None, Buffer::Input, Buffer::Out),
            ]
        );
        // An empty MAIN adds the input to itself.
        let p = plan_of("struct S { input(2, 4, 4) residual { } }");
        assert_eq!(
            ops(&p),
            vec![
                (Op::Copy, None, Buffer::Input, Buffer::Out),
                (Op::Add, None, Buffer::Input, Buffer::Out),
            ]
        );
        // A block's input that MAIN's first layer would change is copied.
        let p = plan_of("struct S { input(2, 4, 4) conv(2, 1) residual { bn } }");
        let [conv, copy, bn, add] = ops(&p)[..] else {
            panic!("four steps: {:?}", p.steps)
        };
        assert_eq!(
            (conv.0, copy.0, bn.0, add.0),
            (CONV, Op::Copy, Op::BatchNorm, Op::Add)
        );
        assert_eq!((copy.2, copy.3, add.2), (conv.3, Buffer::Out, conv.3));
    }

    #[test]
    fn batch_norm_after_a_flatten_stays_a_step_of_its_own() {
        // Its 20 features are not the conv's 5 channels.
        let p = plan_of("struct S { input(3, 4, 4) conv(5, 3) flatten bn silu }");
        let kinds: Vec<Op> = p.steps.iter().map(|s| s.op).collect();
        assert_eq!(kinds, vec![CONV, Op::BatchNorm]);
        assert_eq!(p.steps[1].fused, Some(Activation::Silu));
    }

    #[test]
    fn dropout_and_flatten_cost_nothing() {
        let p = plan_of("struct S { input(2, 4, 4) conv(3, 3) dropout(0.5) flatten fc(2) }");
        let kinds: Vec<Op> = p.steps.iter().map(|s| s.op).collect();
        assert_eq!(kinds, vec![CONV, Op::Fc]);
    }
}
