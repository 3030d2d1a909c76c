//! What a network's parameters become before a forward pass: each
//! convolution's filters packed for the kernel that runs it, and every
//! layer's tensors located. Made once per set of parameters (when they are
//! first used after being set), never per pass.

use std::sync::OnceLock;

use crate::cpu::Isa;
use crate::kernels::{ConvKernel, PackedConv};
use crate::layer::LayerKind;
use crate::plan::{Buf, Op, Plan};
use crate::{Error, LayerInfo, Parameters};

/// What a step derives from the parameters.
#[derive(Debug, Clone)]
enum Derived {
    /// Nothing.
    None,
    /// A convolution's filters, a batch norm after it folded in, packed.
    Conv(Box<PackedConv>),
    /// A batch norm's scale and shift per channel.
    Affine(Vec<f32>, Vec<f32>),
}

/// The prepared parameters of one network.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    /// For each step of the plan, what it derives from the parameters.
    steps: Vec<Derived>,
    /// For each layer, the positions of its weight and bias among the
    /// parameters' tensors.
    slots: Vec<Option<(usize, usize)>>,
}

/// A batch norm's inference map as a per-channel `scale` and `shift`:
/// `scale = γ/√(σ² + ε)`, `shift = β − μ·scale`, in f64.
fn affine(
    layers: &[LayerInfo],
    params: &Parameters,
    layer: usize,
) -> Result<(Vec<f32>, Vec<f32>), Error> {
    let info = layers.get(layer).ok_or_else(|| Error::Plan {
        message: format!("layer {layer} does not exist"),
    })?;
    let LayerKind::BatchNorm { eps } = info.kind else {
        return Err(Error::Plan {
            message: format!("layer {layer} is not a batch norm"),
        });
    };
    let tensor = |what: &str| {
        let name = info.tensor_name(what);
        params
            .get(&name)
            .map(|t| t.data())
            .ok_or(Error::MissingTensor {
                name,
                expected: vec![info.input[0]],
            })
    };
    let (gamma, beta) = (tensor("weight")?, tensor("bias")?);
    let (mean, var) = (tensor("running_mean")?, tensor("running_var")?);
    let c = info.input[0];
    if [gamma, beta, mean, var].iter().any(|t| t.len() != c) {
        return Err(Error::Plan {
            message: format!("layer {layer}'s batch norm tensors are not of length {c}"),
        });
    }
    let mut scale = Vec::with_capacity(c);
    let mut shift = Vec::with_capacity(c);
    for ch in 0..c {
        let s = f64::from(gamma[ch]) / (f64::from(var[ch]) + f64::from(eps)).sqrt();
        scale.push(s as f32);
        shift.push((f64::from(beta[ch]) - f64::from(mean[ch]) * s) as f32);
    }
    Ok((scale, shift))
}

impl Prepared {
    /// Prepares `params` (checked against `layers`) for `plan`, packing for
    /// the kernels of [`Isa::active`].
    fn new(layers: &[LayerInfo], plan: &Plan, params: &Parameters) -> Result<Prepared, Error> {
        let position = |name: String| params.iter().position(|t| t.name() == name);
        let slots = layers
            .iter()
            .map(|layer| {
                position(layer.tensor_name("weight")).zip(position(layer.tensor_name("bias")))
            })
            .collect();
        validate(plan)?;
        let mut prepared = Prepared {
            steps: Vec::new(),
            slots,
        };
        let isa = Isa::active();
        for (i, step) in plan.steps.iter().enumerate() {
            let derived = match step.op {
                Op::Conv {
                    layer, bn, shape, ..
                } => {
                    let info = layers.get(layer).ok_or_else(|| Error::Plan {
                        message: format!("step {i}: layer {layer} does not exist"),
                    })?;
                    let tensor = |what: &str| params.get(&info.tensor_name(what)).map(|t| t.data());
                    let weight = tensor("weight").ok_or_else(|| Error::Plan {
                        message: format!("layer {layer} has no weight"),
                    })?;
                    let bias = tensor("bias");
                    let kernel = ConvKernel::choose(&shape, isa);
                    let packed = match bn {
                        None => PackedConv::new(shape, kernel, weight, bias),
                        Some(bn) => {
                            let (scale, shift) = affine(layers, params, bn)?;
                            let (weight, bias) = fold(weight, bias, &scale, &shift);
                            PackedConv::new(shape, kernel, &weight, Some(&bias))
                        }
                    };
                    Derived::Conv(Box::new(
                        packed.map_err(|source| Error::Kernel { step: i, source })?,
                    ))
                }
                Op::BatchNorm { layer, .. } => {
                    let (scale, shift) = affine(layers, params, layer)?;
                    Derived::Affine(scale, shift)
                }
                _ => Derived::None,
            };
            prepared.steps.push(derived);
        }
        Ok(prepared)
    }

    /// The packed convolution of step `step`.
    pub fn conv(&self, step: usize) -> Option<&PackedConv> {
        match self.steps.get(step) {
            Some(Derived::Conv(packed)) => Some(packed),
            _ => None,
        }
    }

    /// The scale and shift of the batch norm of step `step`.
    pub fn affine(&self, step: usize) -> Option<(&[f32], &[f32])> {
        match self.steps.get(step) {
            Some(Derived::Affine(scale, shift)) => Some((scale, shift)),
            _ => None,
        }
    }

    /// The weight and bias of layer `layer`.
    pub fn tensors<'p>(
        &self,
        params: &'p Parameters,
        layer: usize,
    ) -> Result<(&'p [f32], &'p [f32]), Error> {
        match self.slots.get(layer).copied().flatten() {
            Some((weight, bias)) => Ok((params.slot(weight), params.slot(bias))),
            None => Err(Error::Plan {
                message: format!("layer {layer} has no weight and bias"),
            }),
        }
    }
}

/// A convolution's weight (`K` filters, one after another) and bias (none
/// is zero) with a batch norm's `scale` and `shift` folded in:
/// `w'ₖ = wₖ·scaleₖ`, `b'ₖ = bₖ·scaleₖ + shiftₖ`.
fn fold(
    weight: &[f32],
    bias: Option<&[f32]>,
    scale: &[f32],
    shift: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    let k = scale.len().max(1);
    let per_filter = weight.len() / k;
    let mut folded = weight.to_vec();
    for (filter, &s) in folded.chunks_exact_mut(per_filter.max(1)).zip(scale) {
        for w in filter {
            *w *= s;
        }
    }
    let bias = (0..scale.len())
        .map(|ch| bias.map_or(0.0, |b| b.get(ch).copied().unwrap_or(0.0)) * scale[ch] + shift[ch])
        .collect();
    (folded, bias)
}

/// Checks what a pass takes on trust: every step's lengths fit `usize`,
/// its buffers lie within the arena (per image), and its pooling windows
/// fit their input.
fn validate(plan: &Plan) -> Result<(), Error> {
    let tail = plan.tail.as_ref();
    let rows = tail.map_or(0, |t| t.rows.saturating_mul(2));
    let tail_steps = tail.map_or(&[][..], |t| t.steps);
    let steps = plan.steps.iter().map(|s| (s, plan.arena));
    for (i, (step, arena)) in steps
        .chain(tail_steps.iter().map(|s| (s, rows)))
        .enumerate()
    {
        let error = |what: &str| Error::Plan {
            message: format!("step {i}: {what}"),
        };
        let (in_len, out_len) = step.op.lens().ok_or_else(|| error("too large"))?;
        for (buf, len) in [(step.src, in_len), (step.dst, out_len)] {
            if let Buf::Arena(at) = buf {
                if at.checked_add(len).is_none_or(|end| end > arena) {
                    return Err(error("a buffer lies outside the workspace"));
                }
            }
        }
        if let Op::MaxPool(win) | Op::AvgPool(win) = step.op {
            // A window wholly in the padding has no value to pool.
            let padding = win.p[0] * 2 > win.f[0] || win.p[1] * 2 > win.f[1];
            if !win.fits() || padding {
                return Err(error("its windows do not fit its input"));
            }
        }
    }
    Ok(())
}

/// The prepared parameters, made on first use and dropped whenever the
/// parameters may change (any `&mut` access to them).
#[derive(Debug, Clone, Default)]
pub(crate) struct Cache(OnceLock<Prepared>);

impl Cache {
    /// The prepared parameters, made now if they are not yet.
    pub fn get(
        &self,
        layers: &[LayerInfo],
        plan: &Plan,
        params: &Parameters,
    ) -> Result<&Prepared, Error> {
        if let Some(prepared) = self.0.get() {
            return Ok(prepared);
        }
        let prepared = Prepared::new(layers, plan, params)?;
        // Another thread may have set it meanwhile, from the same parameters.
        Ok(self.0.get_or_init(|| prepared))
    }

    /// Forgets the prepared parameters.
    pub fn clear(&mut self) {
        self.0.take();
    }
}
