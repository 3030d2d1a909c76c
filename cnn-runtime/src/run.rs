//! Runs a [`Plan`]: each step is a call to a kernel compiled in this crate,
//! on buffers of the caller's input and output and the workspace.

use crate::kernels::{
    activate, add, avg_pool, channel_affine_in_place, fc, global_avg_pool, max_pool, softmax,
    split_pays,
};
use crate::model::Model;
use crate::plan::{Buf, Op, Step};
use crate::prepared::Prepared;
use crate::{Error, Parameters};

/// The buffers a run of steps reads and writes: for `images` images at
/// once, each of a step's buffers holds their volumes one after another,
/// and an arena offset `o` starts at `o·images`.
struct Buffers<'a> {
    input: &'a [f32],
    output: &'a mut [f32],
    arena: &'a mut [f32],
    images: usize,
}

fn plan_error(message: String) -> Error {
    Error::Plan { message }
}

/// `slice[at .. at + len]`, or an error naming the buffer.
fn part<'s>(slice: &'s [f32], at: usize, len: usize, what: &str) -> Result<&'s [f32], Error> {
    at.checked_add(len)
        .and_then(|end| slice.get(at..end))
        .ok_or_else(|| plan_error(format!("{len} values at {at} do not fit the {what}")))
}

/// `slice[at .. at + len]`, mutable, or an error naming the buffer.
fn part_mut<'s>(
    slice: &'s mut [f32],
    at: usize,
    len: usize,
    what: &str,
) -> Result<&'s mut [f32], Error> {
    at.checked_add(len)
        .and_then(|end| slice.get_mut(at..end))
        .ok_or_else(|| plan_error(format!("{len} values at {at} do not fit the {what}")))
}

impl Buffers<'_> {
    /// The arena offset of `at` for this many images.
    fn scaled(&self, at: usize) -> Result<usize, Error> {
        at.checked_mul(self.images)
            .ok_or_else(|| plan_error(format!("offset {at} overflows")))
    }

    /// `len` values (per image) at `buf`, for a step that works in place.
    fn place(&mut self, buf: Buf, len: usize) -> Result<&mut [f32], Error> {
        let len = len * self.images;
        match buf {
            Buf::Output => part_mut(self.output, 0, len, "output"),
            Buf::Arena(at) => {
                let at = self.scaled(at)?;
                part_mut(self.arena, at, len, "workspace")
            }
            Buf::Input => Err(plan_error("a step writes the input".into())),
        }
    }

    /// A step's source (`in_len` values per image) and its destination
    /// (`out_len`), which must not overlap.
    fn io(
        &mut self,
        step: &Step,
        in_len: usize,
        out_len: usize,
    ) -> Result<(&[f32], &mut [f32]), Error> {
        let (n_in, n_out) = (in_len * self.images, out_len * self.images);
        match (step.src, step.dst) {
            (Buf::Input, Buf::Output) => Ok((
                part(self.input, 0, n_in, "input")?,
                part_mut(self.output, 0, n_out, "output")?,
            )),
            (Buf::Input, Buf::Arena(b)) => {
                let b = self.scaled(b)?;
                Ok((
                    part(self.input, 0, n_in, "input")?,
                    part_mut(self.arena, b, n_out, "workspace")?,
                ))
            }
            (Buf::Arena(a), Buf::Output) => {
                let a = self.scaled(a)?;
                Ok((
                    part(self.arena, a, n_in, "workspace")?,
                    part_mut(self.output, 0, n_out, "output")?,
                ))
            }
            (Buf::Output, Buf::Arena(b)) => {
                let b = self.scaled(b)?;
                Ok((
                    part(self.output, 0, n_in, "output")?,
                    part_mut(self.arena, b, n_out, "workspace")?,
                ))
            }
            (Buf::Arena(a), Buf::Arena(b)) => {
                let (a, b) = (self.scaled(a)?, self.scaled(b)?);
                let overlap = || plan_error(format!("a step reads {a} and writes {b} at once"));
                if a.saturating_add(n_in) <= b {
                    let (low, high) = self.arena.split_at_mut(b.min(self.arena.len()));
                    Ok((
                        part(low, a, n_in, "workspace")?,
                        part_mut(high, 0, n_out, "workspace")?,
                    ))
                } else if b.saturating_add(n_out) <= a {
                    let (low, high) = self.arena.split_at_mut(a.min(self.arena.len()));
                    Ok((
                        part(high, 0, n_in, "workspace")?,
                        part_mut(low, b, n_out, "workspace")?,
                    ))
                } else {
                    Err(overlap())
                }
            }
            (_, Buf::Input) | (Buf::Output, Buf::Output) => Err(plan_error(
                "a step writes the input or reads its own output".into(),
            )),
        }
    }
}

/// Runs `steps` (the first numbered `first` in the plan) on `bufs`, with
/// `scratch` for the kernels.
fn run_steps(
    steps: &[Step],
    first: usize,
    prepared: &Prepared,
    params: &Parameters,
    bufs: &mut Buffers<'_>,
    scratch: &mut [f32],
) -> Result<(), Error> {
    for (i, step) in steps.iter().enumerate() {
        let (in_len, out_len) = step
            .op
            .lens()
            .ok_or_else(|| plan_error(format!("step {} is too large", first + i)))?;
        let images = bufs.images;
        match step.op {
            Op::Activate { act, .. } => activate(act, bufs.place(step.dst, out_len)?),
            Op::Softmax { len } => {
                for image in bufs.place(step.dst, out_len)?.chunks_exact_mut(len.max(1)) {
                    softmax(image);
                }
            }
            Op::Copy { .. } => {
                let (src, dst) = bufs.io(step, in_len, out_len)?;
                dst.copy_from_slice(src);
            }
            Op::Add { act, .. } => {
                let (src, dst) = bufs.io(step, in_len, out_len)?;
                add(src, dst, act);
            }
            Op::BatchNorm { c, hw, act, .. } => {
                let (scale, shift) = prepared
                    .affine(first + i)
                    .ok_or_else(|| plan_error(format!("step {} has no batch norm", first + i)))?;
                if scale.len() < c || shift.len() < c {
                    return Err(plan_error(format!(
                        "step {}'s batch norm is too short",
                        first + i
                    )));
                }
                for image in bufs
                    .place(step.dst, out_len)?
                    .chunks_exact_mut(out_len.max(1))
                {
                    channel_affine_in_place(c, hw, scale, shift, image, act);
                }
            }
            Op::GlobalAvgPool { c, hw } => {
                let (src, dst) = bufs.io(step, in_len, out_len)?;
                for (x, y) in src
                    .chunks_exact(in_len.max(1))
                    .zip(dst.chunks_exact_mut(c.max(1)))
                {
                    global_avg_pool(c, hw, x, y);
                }
            }
            Op::Conv { shape, act, .. } => {
                let packed = prepared
                    .conv(first + i)
                    .ok_or_else(|| plan_error(format!("step {} has no filters", first + i)))?;
                let split = images == 1 && split_pays(shape.macs());
                let (src, dst) = bufs.io(step, in_len, out_len)?;
                for (x, y) in src.chunks_exact(in_len).zip(dst.chunks_exact_mut(out_len)) {
                    packed
                        .run(x, y, act, scratch, split)
                        .map_err(|source| Error::Kernel {
                            step: first + i,
                            source,
                        })?;
                }
            }
            Op::MaxPool(win) | Op::AvgPool(win) => {
                // Their windows were checked when the parameters were
                // prepared.
                let pool = if matches!(step.op, Op::MaxPool(_)) {
                    max_pool
                } else {
                    avg_pool
                };
                let (src, dst) = bufs.io(step, in_len, out_len)?;
                for (x, y) in src.chunks_exact(in_len).zip(dst.chunks_exact_mut(out_len)) {
                    pool(win, x, y);
                }
            }
            Op::Fc {
                layer,
                inputs,
                units,
                act,
            } => {
                let (weight, bias) = prepared.tensors(params, layer)?;
                let lens = inputs.checked_mul(units);
                if lens.is_none_or(|len| weight.len() < len) || bias.len() < units {
                    return Err(plan_error(format!(
                        "layer {layer}'s parameters are too short"
                    )));
                }
                let (src, dst) = bufs.io(step, in_len, out_len)?;
                let macs = inputs.saturating_mul(units);
                if images == 1 && units >= 32 && crate::par::active() && split_pays(macs) {
                    // One image's fc reads its weights once: the two
                    // threads of a team each read half of the rows.
                    let half = units / 2;
                    let (w0, w1) = weight[..inputs * units].split_at(half * inputs);
                    let (b0, b1) = bias[..units].split_at(half);
                    let (y0, y1) = dst.split_at_mut(half);
                    crate::par::join(
                        || fc(1, inputs, half, src, w0, b0, y0, act),
                        || fc(1, inputs, units - half, src, w1, b1, y1, act),
                    );
                } else {
                    fc(images, inputs, units, src, weight, bias, dst, act);
                }
            }
        }
    }
    Ok(())
}

/// One image `x` (the model's input volume) into `out` (its output), with
/// `scratch` of at least the model's workspace.
pub(crate) fn forward_one(
    model: &Model,
    params: &Parameters,
    x: &[f32],
    out: &mut [f32],
    scratch: &mut [f32],
) -> Result<(), Error> {
    let prepared = params.prepared(model.layers, &model.plan)?;
    let plan = &model.plan;
    if scratch.len() < model.workspace {
        return Err(plan_error("the workspace is too small".into()));
    }
    let (arena, tmp) = scratch.split_at_mut(plan.arena);
    let mut bufs = Buffers {
        input: x,
        output: out,
        arena,
        images: 1,
    };
    run_steps(plan.steps, 0, prepared, params, &mut bufs, tmp)
}

/// `n` images, contiguous: the steps before the batched tail image by
/// image, each image's volume gathered into `rows` (at least
/// 2·n·[`Plan::batch_rows`](crate::plan::Plan::batch_rows) f32s), then the
/// tail once for all of them. Without a tail, image by image.
pub(crate) fn forward_many(
    model: &Model,
    params: &Parameters,
    n: usize,
    x: &[f32],
    out: &mut [f32],
    scratch: &mut [f32],
    rows: &mut [f32],
) -> Result<(), Error> {
    let (input, output) = (model.input_len(), model.output_len());
    let (Some(x), Some(out)) = (x.get(..n * input), out.get_mut(..n * output)) else {
        return Err(plan_error("the batch's buffers are too short".into()));
    };
    let Some(tail) = model.plan.tail.filter(|_| n > 1) else {
        for (x, out) in x
            .chunks_exact(input)
            .zip(out.chunks_exact_mut(output.max(1)))
        {
            forward_one(model, params, x, out, scratch)?;
        }
        return Ok(());
    };
    let prepared = params.prepared(model.layers, &model.plan)?;
    let plan = &model.plan;
    if scratch.len() < model.workspace {
        return Err(plan_error("the workspace is too small".into()));
    }
    let (arena, tmp) = scratch.split_at_mut(plan.arena);
    let head = plan
        .steps
        .get(..tail.start)
        .ok_or_else(|| plan_error("the tail starts past the steps".into()))?;
    let len = match tail.steps.first().map(|s| s.op.lens()) {
        Some(Some((len, _))) => len,
        _ => return Err(plan_error("the tail has no first step".into())),
    };
    if tail.from != Buf::Input {
        let gathered = part_mut(rows, 0, n * len, "batch rows")?;
        for (image, dst) in x
            .chunks_exact(input)
            .zip(gathered.chunks_exact_mut(len.max(1)))
        {
            let mut bufs = Buffers {
                input: image,
                output: &mut [],
                arena: &mut *arena,
                images: 1,
            };
            run_steps(head, 0, prepared, params, &mut bufs, tmp)?;
            let Buf::Arena(at) = tail.from else {
                return Err(plan_error("the tail reads the output".into()));
            };
            dst.copy_from_slice(part(arena, at, len, "workspace")?);
        }
    }
    let mut bufs = Buffers {
        input: x,
        output: out,
        arena: rows,
        images: n,
    };
    run_steps(tail.steps, tail.start, prepared, params, &mut bufs, tmp)
}
