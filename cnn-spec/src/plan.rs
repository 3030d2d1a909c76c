//! The execution plan, decided at expansion time: which activations fuse
//! into the conv or fc before them, where every intermediate volume lives,
//! and which steps a batch runs once for all its images. These are the
//! graph-level decisions; the kernel-level ones (which kernel computes a
//! layer, the scratch it needs) are the runtime's, which the expansion
//! evaluates in const context.

use crate::model::{Activation, LayerKind, Network};

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
    /// A convolution.
    Conv,
    /// Max pooling.
    MaxPool,
    /// Average pooling.
    AvgPool,
    /// Fully connected.
    Fc,
    /// An activation on its own, in place.
    Activate(Activation),
    /// Softmax, in place.
    Softmax,
    /// Copies the input to where in-place steps can work on it.
    Copy,
}

/// One step of the forward pass, reading and writing buffers `B`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step<B = Buffer> {
    /// The layer it computes (for `Copy`, the layer it prepares).
    pub layer: usize,
    /// What it computes.
    pub op: Op,
    /// An activation fused into a conv or fc.
    pub fused: Option<Activation>,
    /// Where it reads.
    pub src: B,
    /// Where it writes (the same as `src` for an in-place step).
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
    /// Length of the buffers the steps use, in f32s: two of the largest
    /// volume they hold, one after the other.
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

/// Plans the forward pass of a checked network.
pub fn plan(network: &Network) -> Plan {
    let layers = &network.layers;
    // Which layers compute into a new buffer (the rest work in place or are
    // free), and which activations fuse into them.
    let mut ops: Vec<(usize, Op, Option<Activation>)> = Vec::new();
    let mut i = 0;
    while i < layers.len() {
        let op = match layers[i].kind {
            LayerKind::Conv { .. } => Some(Op::Conv),
            LayerKind::MaxPool { .. } => Some(Op::MaxPool),
            LayerKind::AvgPool { .. } => Some(Op::AvgPool),
            LayerKind::Fc { .. } => Some(Op::Fc),
            LayerKind::Activation(a) => Some(Op::Activate(a)),
            LayerKind::Softmax => Some(Op::Softmax),
            LayerKind::Flatten => None,
        };
        let mut fused = None;
        if let Some(Op::Conv | Op::Fc) = op {
            if let Some(LayerKind::Activation(a)) = layers.get(i + 1).map(|l| l.kind) {
                fused = Some(a);
            }
        }
        if let Some(op) = op {
            ops.push((i, op, fused));
        }
        i += if fused.is_some() { 2 } else { 1 };
    }

    let in_place = |op: Op| matches!(op, Op::Activate(_) | Op::Softmax);
    let mut steps = Vec::new();
    let mut at = Ping::Input;
    let mut act_len = 0;
    for (n, &(layer, op, fused)) in ops.iter().enumerate() {
        let l = &layers[layer];
        let last_compute = ops[n + 1..].iter().all(|&(_, op, _)| in_place(op));
        if in_place(op) {
            if at == Ping::Input {
                let dst = if last_compute { Ping::Out } else { Ping::A };
                steps.push(Step {
                    layer,
                    op: Op::Copy,
                    fused: None,
                    src: at,
                    dst,
                    in_len: l.input.len(),
                    out_len: l.input.len(),
                });
                at = dst;
            }
            steps.push(Step {
                layer,
                op,
                fused,
                src: at,
                dst: at,
                in_len: l.input.len(),
                out_len: l.output.len(),
            });
        } else {
            let dst = if last_compute {
                Ping::Out
            } else if at == Ping::A {
                Ping::B
            } else {
                Ping::A
            };
            steps.push(Step {
                layer,
                op,
                fused,
                src: at,
                dst,
                in_len: l.input.len(),
                out_len: l.output.len(),
            });
            at = dst;
        }
        if matches!(at, Ping::A | Ping::B) {
            act_len = act_len.max(l.output.len()).max(l.input.len());
        }
    }
    if at != Ping::Out {
        // Only flattens: the output is the input, copied.
        let len = network.input.len();
        steps.push(Step {
            layer: layers.len().saturating_sub(1),
            op: Op::Copy,
            fused: None,
            src: at,
            dst: Ping::Out,
            in_len: len,
            out_len: len,
        });
    }
    let tail = tail(&steps, act_len);
    Plan {
        steps: steps.iter().map(|s| s.placed(act_len)).collect(),
        arena_len: act_len.saturating_mul(2),
        tail,
    }
}

/// The buffers of a chain of steps: the input, two buffers that the
/// steps ping-pong between, and the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ping {
    Input,
    A,
    B,
    Out,
}

impl Ping {
    /// The buffer, the second of the two at `len`.
    fn at(self, len: usize) -> Buffer {
        match self {
            Ping::Input => Buffer::Input,
            Ping::A => Buffer::Arena(0),
            Ping::B => Buffer::Arena(len),
            Ping::Out => Buffer::Out,
        }
    }
}

impl Step<Ping> {
    /// The step with its buffers placed, two buffers of `len`.
    fn placed(&self, len: usize) -> Step {
        Step {
            layer: self.layer,
            op: self.op,
            fused: self.fused,
            src: self.src.at(len),
            dst: self.dst.at(len),
            in_len: self.in_len,
            out_len: self.out_len,
        }
    }
}

/// The batched tail: from the first fc after which only fc layers and
/// in-place steps follow, their buffers the two rows of the batch; the
/// steps before ping-pong between buffers of `act_len`.
fn tail(steps: &[Step<Ping>], act_len: usize) -> Option<Tail> {
    let batchable = |s: &Step<Ping>| matches!(s.op, Op::Fc | Op::Activate(_) | Op::Softmax);
    let body = steps.len() - steps.iter().rev().take_while(|s| batchable(s)).count();
    let start = body + steps[body..].iter().position(|s| s.op == Op::Fc)?;
    let rows = steps[start..]
        .iter()
        .map(|s| s.in_len.max(s.out_len))
        .max()
        .unwrap_or(0);
    // The gathered volumes are the first rows; from there the steps
    // ping-pong as they did, B or A read as the other rows.
    let first = steps[start].src;
    let place = |buffer: Ping| match buffer {
        Ping::Input | Ping::Out => buffer.at(rows),
        b if b == first => Buffer::Arena(0),
        _ => Buffer::Arena(rows),
    };
    let tail_steps = steps[start..]
        .iter()
        .map(|s| Step {
            src: place(s.src),
            dst: place(s.dst),
            ..s.placed(0)
        })
        .collect();
    Some(Tail {
        start,
        from: first.at(act_len),
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
                (Op::Conv, Some(Activation::Relu), Buffer::Input, A),
                (Op::MaxPool, None, A, b),
                (Op::Fc, None, b, Buffer::Out),
            ]
        );
        assert_eq!(p.arena_len, 2 * 10 * 32 * 32);
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
}
