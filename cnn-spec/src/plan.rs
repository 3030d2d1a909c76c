//! The execution plan, decided at expansion time: which kernel runs each
//! layer, which activations fuse into the conv or fc before them, where every
//! intermediate volume lives, and how much scratch the pass needs.

use crate::model::{Activation, LayerKind, Network};

/// Where a step reads or writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Buffer {
    /// The caller's input.
    Input,
    /// The first ping-pong buffer of the workspace.
    A,
    /// The second ping-pong buffer of the workspace.
    B,
    /// The caller's output.
    Out,
}

/// How a convolution is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvKernel {
    /// Direct loops, unrolled over the filter: small shapes.
    Direct,
    /// im2col into scratch, then GEMM: large shapes.
    Gemm,
    /// 1×1, stride 1, no padding: the blocked GEMM on the input as it is,
    /// without scratch.
    Pointwise,
}

/// What a step computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// A convolution with the given kernel.
    Conv(ConvKernel),
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

/// One step of the forward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// The layer it computes (for `Copy`, the layer it prepares).
    pub layer: usize,
    /// What it computes.
    pub op: Op,
    /// An activation fused into a conv or fc.
    pub fused: Option<Activation>,
    /// Where it reads.
    pub src: Buffer,
    /// Where it writes (the same as `src` for an in-place step).
    pub dst: Buffer,
    /// Values read.
    pub in_len: usize,
    /// Values written.
    pub out_len: usize,
}

/// The whole forward pass of a network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The steps, in order.
    pub steps: Vec<Step>,
    /// Length of each ping-pong buffer (A and B), in f32s.
    pub act_len: usize,
    /// Length of the kernel scratch (im2col), in f32s.
    pub scratch_len: usize,
    /// The steps a batch can run for all its images at once, if any.
    pub tail: Option<Tail>,
}

/// The last steps of a pass when they are fully connected layers and
/// in-place steps: a batch runs them once for all its images, so that each
/// fc layer is one GEMM that reads its weights once, not a GEMV per image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tail {
    /// Index of its first step, an fc.
    pub start: usize,
    /// Per image, the length of each of its two ping-pong buffers, in f32s.
    pub act_len: usize,
}

impl Plan {
    /// Total workspace: A, B and the kernel scratch, in f32s.
    pub fn workspace_len(&self) -> usize {
        self.act_len
            .saturating_mul(2)
            .saturating_add(self.scratch_len)
    }
}

/// Multiply-accumulates below which direct convolution (no scratch) is
/// chosen over the blocked GEMM kernel. Zero: measured on every benchmark
/// layer, down to LeNet's 1×28×28 conv(6, 5), the blocked kernel is 10–40×
/// faster than direct loops, whose only merit is needing no scratch.
pub const DIRECT_CONV_MAX_MACS: u64 = 0;

/// Chooses the kernel of a convolution layer: the pointwise entry for 1×1,
/// stride 1, no padding (no transformed input, so no scratch); the blocked
/// implicit GEMM otherwise.
// With the threshold at 0 the direct arm never matches; it stays so that the
// choice is one constant away if a smaller layer ever favours direct loops.
#[allow(clippy::absurd_extreme_comparisons)]
pub fn conv_kernel(network: &Network, layer: usize) -> ConvKernel {
    let l = &network.layers[layer];
    match l.kind {
        LayerKind::Conv { f, s, p, .. }
            if f.h == 1 && f.w == 1 && s.h == 1 && s.w == 1 && p.h == 0 && p.w == 0 =>
        {
            ConvKernel::Pointwise
        }
        _ if l.macs < DIRECT_CONV_MAX_MACS => ConvKernel::Direct,
        _ => ConvKernel::Gemm,
    }
}

/// Widest output rows whose convolution input the runtime lays out with a
/// plane per filter column (its `layout::SHIFT_MAX_OW`).
pub const SHIFT_MAX_OW: usize = 8;

/// Fewest output pixels laid out so (the runtime's
/// `layout::SHIFT_MIN_PIXELS`).
pub const SHIFT_MIN_PIXELS: usize = 16;

/// Fewest taps per filter (C·FH·FW) of a layer the runtime computes with
/// vectors of filters on AVX-512 (its `filter_lanes::MIN_TAPS`).
pub const FILTER_LANES_MIN_TAPS: usize = 240;

/// Output rows of such a layer are wider than a tile of pixels (the
/// runtime's `filter_lanes::TILE_PIXELS`) and not a multiple of a vector.
pub const FILTER_LANES_TILE: usize = 8;

/// Filters per AVX-512 vector.
const FILTER_LANES: usize = 16;

/// Scratch of the convolution kernels, in f32s; the runtime's
/// `conv_gemm_scratch` computes the same. Unless the stride is 1 and there
/// is no padding, the input is copied zero-padded and split into phase
/// planes of ⌈(H + 2PH)/SH⌉ × ⌈(W + 2PW)/SW⌉, min(SH, FH)·min(SW, FW) of
/// them per channel (the phases some filter tap reads); when the planes'
/// width WQ differs from OW, the K × ((OH − 1)·WQ + OW) outputs are computed
/// there first. Output rows of at most [`SHIFT_MAX_OW`] pixels, at least
/// [`SHIFT_MIN_PIXELS`] in all, from filters wider than one column take
/// min(SH, FH)·FW planes of ⌈(H + 2PH)/SH⌉ × OW per channel instead, one for
/// each filter column, and no more.
///
/// Layers with more than one vector of 16 filters, at least
/// [`FILTER_LANES_MIN_TAPS`] taps per filter and output rows wider than
/// [`FILTER_LANES_TILE`] pixels but not a multiple of 16 run with vectors
/// of filters on AVX-512, and need the zero-padded input (if padded) and
/// the filters packed 16 to a vector, ⌈K/16⌉·16·C·FH·FW: the larger of the
/// two is reserved. Saturates at `usize::MAX`, which the checks reject as
/// a workspace too large.
fn conv_scratch(l: &crate::model::Layer) -> usize {
    let LayerKind::Conv { f, s, p, .. } = l.kind else {
        return 0;
    };
    let (c, h, w) = (l.input.c, l.input.h, l.input.w);
    let (k, oh, ow) = (l.output.c, l.output.h, l.output.w);
    let transform = s.h != 1 || s.w != 1 || p.h != 0 || p.w != 0;
    let padded = |n: usize, p: usize| p.saturating_mul(2).saturating_add(n);
    let shifted =
        transform && f.w > 1 && ow <= SHIFT_MAX_OW && oh.saturating_mul(ow) >= SHIFT_MIN_PIXELS;
    let (input, wq) = if transform {
        let hq = padded(h, p.h).div_ceil(s.h);
        let (wq, columns) = if shifted {
            (ow, f.w)
        } else {
            (padded(w, p.w).div_ceil(s.w), s.w.min(f.w))
        };
        let phases = s.h.min(f.h) * columns;
        let planes = c.saturating_mul(phases);
        (planes.saturating_mul(hq).saturating_mul(wq), wq)
    } else {
        (0, w)
    };
    let wide = if wq != ow {
        let row = oh.saturating_sub(1).saturating_mul(wq).saturating_add(ow);
        k.saturating_mul(row)
    } else {
        0
    };
    let blocked = input.saturating_add(wide);
    let taps = c.saturating_mul(f.h).saturating_mul(f.w);
    if k > FILTER_LANES
        && taps >= FILTER_LANES_MIN_TAPS
        && ow > FILTER_LANES_TILE
        && ow % FILTER_LANES != 0
    {
        let padded = if p.h == 0 && p.w == 0 {
            0
        } else {
            c.saturating_mul(padded(h, p.h))
                .saturating_mul(padded(w, p.w))
        };
        let filters = k.div_ceil(FILTER_LANES).saturating_mul(FILTER_LANES);
        blocked.max(padded.saturating_add(filters.saturating_mul(taps)))
    } else {
        blocked
    }
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
            LayerKind::Conv { .. } => Some(Op::Conv(conv_kernel(network, i))),
            LayerKind::MaxPool { .. } => Some(Op::MaxPool),
            LayerKind::AvgPool { .. } => Some(Op::AvgPool),
            LayerKind::Fc { .. } => Some(Op::Fc),
            LayerKind::Activation(a) => Some(Op::Activate(a)),
            LayerKind::Softmax => Some(Op::Softmax),
            LayerKind::Flatten => None,
        };
        let mut fused = None;
        if let Some(Op::Conv(_) | Op::Fc) = op {
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
    let mut at = Buffer::Input;
    let mut scratch_len = 0;
    let mut act_len = 0;
    for (n, &(layer, op, fused)) in ops.iter().enumerate() {
        let l = &layers[layer];
        let last_compute = ops[n + 1..].iter().all(|&(_, op, _)| in_place(op));
        if in_place(op) {
            if at == Buffer::Input {
                let dst = if last_compute { Buffer::Out } else { Buffer::A };
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
                Buffer::Out
            } else if at == Buffer::A {
                Buffer::B
            } else {
                Buffer::A
            };
            if op == Op::Conv(ConvKernel::Gemm) {
                scratch_len = scratch_len.max(conv_scratch(l));
            }
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
        if matches!(at, Buffer::A | Buffer::B) {
            act_len = act_len.max(l.output.len()).max(l.input.len());
        }
    }
    if at != Buffer::Out {
        // Only flattens: the output is the input, copied.
        let len = network.input.len();
        steps.push(Step {
            layer: layers.len().saturating_sub(1),
            op: Op::Copy,
            fused: None,
            src: at,
            dst: Buffer::Out,
            in_len: len,
            out_len: len,
        });
    }
    let tail = tail(&steps);
    Plan {
        steps,
        act_len,
        scratch_len,
        tail,
    }
}

/// The batched tail: from the first fc after which only fc layers and
/// in-place steps follow.
fn tail(steps: &[Step]) -> Option<Tail> {
    let batchable = |s: &Step| matches!(s.op, Op::Fc | Op::Activate(_) | Op::Softmax);
    let body = steps.len() - steps.iter().rev().take_while(|s| batchable(s)).count();
    let start = body + steps[body..].iter().position(|s| s.op == Op::Fc)?;
    let act_len = steps[start..]
        .iter()
        .map(|s| s.in_len.max(s.out_len))
        .max()
        .unwrap_or(0);
    Some(Tail { start, act_len })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_of(src: &str) -> Plan {
        let networks = crate::parse_networks(src).expect("valid network");
        plan(&networks[0])
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
        assert_eq!(
            ops,
            vec![
                (
                    Op::Conv(conv_kernel_of_seed()),
                    Some(Activation::Relu),
                    Buffer::Input,
                    Buffer::A
                ),
                (Op::MaxPool, None, Buffer::A, Buffer::B),
                (Op::Fc, None, Buffer::B, Buffer::Out),
            ]
        );
        assert_eq!(p.act_len, 10 * 32 * 32);
    }

    fn conv_kernel_of_seed() -> ConvKernel {
        // 5×5 with padding: the blocked kernel (direct is never chosen).
        ConvKernel::Gemm
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
        assert_eq!(p.act_len, 0);
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
        let tail = |src| plan_of(src).tail.map(|t| (t.start, t.act_len));
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
    fn ping_pong_and_scratch() {
        let p = plan_of("struct S { input(64, 56, 56) conv(64, 3, p = 1) relu conv(64, 3, p = 1) tanh pool(2) }");
        let dsts: Vec<Buffer> = p.steps.iter().map(|s| s.dst).collect();
        assert_eq!(dsts, vec![Buffer::A, Buffer::B, Buffer::Out]);
        // The padded input, 64 planes of 58×58, and the 64 wide outputs of
        // 55 rows of 58 and a last row of 56.
        let scratch = 64 * 58 * 58 + 64 * (55 * 58 + 56);
        assert_eq!(p.scratch_len, scratch);
        assert_eq!(p.workspace_len(), 2 * 64 * 56 * 56 + scratch);
    }

    #[test]
    fn short_rows_take_a_plane_per_filter_column() {
        // 64 channels of 8×8 padded to 10×10: a plane of 10×8 for each of
        // the 3 filter columns, and no wide output.
        let p = plan_of("struct S { input(64, 8, 8) conv(128, 3, p = 1) }");
        assert_eq!(p.scratch_len, 64 * 3 * 10 * 8);
        // Fewer than 16 output pixels keep the padded planes, 3×10, and
        // the output computed in rows of 10 (one row of 8 here).
        let p = plan_of("struct S { input(64, 1, 8) conv(128, 3, p = 1) }");
        assert_eq!(p.scratch_len, 64 * 3 * 10 + 128 * 8);
    }

    #[test]
    fn filters_in_the_lanes_reserve_their_packed_filters() {
        // The packed filters, 6 vectors × 3·11·11 taps, exceed the blocked
        // kernel's 96 × (13·24 + 14) wide output.
        let p = plan_of("struct N { input(3, 24, 24) conv(96, 11) }");
        assert_eq!(p.scratch_len, 96 * 3 * 11 * 11);
        // 40 filters round up to 48; the padded input comes first.
        let p = plan_of("struct N { input(3, 18, 18) conv(40, 11, p = 1) }");
        assert_eq!(p.scratch_len, 3 * 20 * 20 + 48 * 3 * 11 * 11);
        // One vector of filters stays on the blocked kernel.
        let p = plan_of("struct N { input(3, 24, 24) conv(16, 11) }");
        assert_eq!(p.scratch_len, 16 * (13 * 24 + 14));
        // So do rows of a whole vector, and too few taps.
        let p = plan_of("struct N { input(64, 18, 18) conv(32, 3) }");
        assert_eq!(p.scratch_len, 32 * (15 * 18 + 16));
        let p = plan_of("struct N { input(2, 24, 24) conv(96, 10) }");
        assert_eq!(p.scratch_len, 96 * (14 * 24 + 15));
    }

    #[test]
    fn strides_past_the_filter_keep_only_the_phases_it_reads() {
        // 1×2 filter, strides 3×4: one row phase and two column phases, of
        // ⌈16/3⌉ × ⌈18/4⌉; output rows are 5 wide, as the planes.
        let p = plan_of("struct S { input(4, 16, 16) conv(9, (1, 2), s = (3, 4), p = (0, 1)) }");
        assert_eq!(p.scratch_len, 4 * 2 * 6 * 5);
        // A stride far past the input: one plane of 1×1, not SH·SW of them.
        let p = plan_of("struct S { input(1, 1, 1) conv(1, 1, s = (3074457345618258603, 6)) }");
        assert_eq!(p.scratch_len, 1);
    }
}
