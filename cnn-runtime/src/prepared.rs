//! What a network's parameters become before a forward pass: each
//! convolution's filters packed for the kernel that runs it, and every
//! layer's tensors located. Made once per set of parameters (when they are
//! first used after being set), never per pass.

use std::sync::OnceLock;

use crate::cpu::Isa;
use crate::kernels::{ConvKernel, PackedConv};
use crate::plan::{Buf, Op, Plan};
use crate::{Error, LayerInfo, Parameters};

/// The prepared parameters of one network.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    /// For each step of the plan, its convolution's packed filters.
    convs: Vec<Option<PackedConv>>,
    /// For each layer, the positions of its weight and bias among the
    /// parameters' tensors.
    slots: Vec<Option<(usize, usize)>>,
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
            convs: Vec::new(),
            slots,
        };
        let isa = Isa::active();
        for (i, step) in plan.steps.iter().enumerate() {
            let packed = match step.op {
                Op::Conv { layer, shape, .. } => {
                    let (weight, bias) = prepared.tensors(params, layer)?;
                    let kernel = ConvKernel::choose(&shape, isa);
                    let packed = PackedConv::new(shape, kernel, weight, Some(bias))
                        .map_err(|source| Error::Kernel { step: i, source })?;
                    Some(packed)
                }
                _ => None,
            };
            prepared.convs.push(packed);
        }
        Ok(prepared)
    }

    /// The packed convolution of step `step`.
    pub fn conv(&self, step: usize) -> Option<&PackedConv> {
        self.convs.get(step).and_then(Option::as_ref)
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
            if !win.fits() || win.p != [0, 0] {
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
