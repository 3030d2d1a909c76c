//! Parameter gradients, by the same names as the parameters.

use crate::{LayerInfo, Parameters, Slot, TensorRole};

/// The gradient of the mean loss with respect to every learnable tensor
/// ([`TensorRole::Param`]: weights and biases, not batch norm's running
/// statistics), named like the parameters (`"0.weight"`, `"0.bias"`, …)
/// and in the same layouts, as returned by
/// [`Trainable::gradients`](super::Trainable::gradients).
#[derive(Debug, Clone, PartialEq)]
pub struct Gradients {
    /// Name, shape and offset into `data` of each tensor, in layer order.
    tensors: Vec<(String, Vec<usize>, usize)>,
    /// Every gradient, concatenated in layer order.
    data: Vec<f32>,
}

impl Gradients {
    /// Names the concatenated gradients `data` by the learnable tensors of
    /// `layers`, in layer order.
    pub(crate) fn new(layers: &[LayerInfo], data: Vec<f32>) -> Gradients {
        let learnable = Parameters::layout(layers)
            .into_iter()
            .filter(|slot| slot.role == TensorRole::Param);
        Gradients::from_slots(learnable, data)
    }

    /// Names the concatenated gradients `data` by `slots`, in order.
    pub(crate) fn from_slots(slots: impl IntoIterator<Item = Slot>, data: Vec<f32>) -> Gradients {
        let mut offset = 0;
        let tensors = slots
            .into_iter()
            .map(|slot| {
                let start = offset;
                offset += slot.shape.iter().product::<usize>();
                (slot.name, slot.shape, start)
            })
            .collect();
        debug_assert_eq!(offset, data.len());
        Gradients { tensors, data }
    }

    /// The gradient of the tensor with this name, row-major.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&[f32]> {
        let index = self.tensors.iter().position(|(n, _, _)| n == name)?;
        Some(self.tensor(index).2)
    }

    /// The shape of the tensor with this name.
    #[must_use]
    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.tensors
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, shape, _)| shape.as_slice())
    }

    /// Every tensor's name, shape and gradient, in layer order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[usize], &[f32])> {
        (0..self.tensors.len()).map(|i| self.tensor(i))
    }

    /// Number of tensors.
    #[must_use]
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// Whether there is no tensor (a network without conv, fc or bn).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// Every gradient, concatenated in layer order.
    #[must_use]
    pub fn as_slice(&self) -> &[f32] {
        &self.data
    }

    fn tensor(&self, index: usize) -> (&str, &[usize], &[f32]) {
        let (name, shape, start) = &self.tensors[index];
        let end = self
            .tensors
            .get(index + 1)
            .map_or(self.data.len(), |next| next.2);
        (name, shape, &self.data[*start..end])
    }
}
