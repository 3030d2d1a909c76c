//! A network's learnable parameters: named tensors in PyTorch's layout.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::layer::{LayerKind, TensorRole};
use crate::plan::Plan;
use crate::prepared::{Cache, Prepared};
use crate::{Error, LayerInfo};

/// One named tensor of f32s, row-major: a learnable parameter or a buffer.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    name: String,
    shape: Vec<usize>,
    data: Vec<f32>,
    role: TensorRole,
}

impl Tensor {
    /// Whether it is learnable ([`TensorRole::Param`]) or a buffer.
    pub fn role(&self) -> TensorRole {
        self.role
    }

    /// The tensor's name, e.g. `"0.weight"`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Its values, row-major.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// Its values, for changing them in place (the shape stays fixed).
    pub fn data_mut(&mut self) -> &mut [f32] {
        &mut self.data
    }
}

/// A named integer counter (batch norm's `num_batches_tracked`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counter {
    name: String,
    value: i64,
}

impl Counter {
    /// Its name, e.g. `"1.num_batches_tracked"`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its value.
    pub fn value(&self) -> i64 {
        self.value
    }
}

/// One entry of a network's tensor layout: its full name, its shape and
/// its role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    /// `"{path}.{name}"`, e.g. `"layer1.0.bn1.running_var"`.
    pub name: String,
    /// Its shape in PyTorch's layout (`[]` for a counter).
    pub shape: Vec<usize>,
    /// What it is.
    pub role: TensorRole,
}

/// The tensors of a network: for each layer with tensors, PyTorch's
/// state-dict entries named after the layer's path (`"0.weight"`,
/// `"0.bias"`, `"layer1.0.bn1.running_mean"`, …), in layer order, and the
/// integer counters of its batch norms.
///
/// They also keep what a forward pass derives from them (the filters packed
/// for the kernels, batch norm folded in), made on first use and dropped by
/// any mutable access.
#[derive(Debug, Clone)]
pub struct Parameters {
    tensors: Vec<Tensor>,
    counters: Vec<Counter>,
    /// Training steps taken, the seed of dropout's masks (not a tensor).
    steps: u64,
    prepared: Cache,
}

/// Equal tensors and counters (the [`steps`](Parameters::steps) count is
/// training state, not a value of the network).
impl PartialEq for Parameters {
    fn eq(&self, other: &Parameters) -> bool {
        self.tensors == other.tensors && self.counters == other.counters
    }
}

/// A tensor's value before initialisation: batch norm starts as the
/// identity (weight 1, bias 0, mean 0, variance 1), as in PyTorch.
fn initial(layer: &LayerInfo, name: &str) -> f32 {
    match (layer.kind, name) {
        (LayerKind::BatchNorm { .. }, "weight" | "running_var") => 1.0,
        _ => 0.0,
    }
}

impl Parameters {
    /// The names, shapes and roles of the tensors a network with these
    /// layers has, in order (counters included).
    pub fn layout(layers: &[LayerInfo]) -> Vec<Slot> {
        layers
            .iter()
            .flat_map(|layer| {
                layer.tensors.iter().map(|t| Slot {
                    name: layer.tensor_name(t.name),
                    shape: t.shape.to_vec(),
                    role: t.role,
                })
            })
            .collect()
    }

    /// Convolution and fc weights and biases zero; batch norm the identity.
    pub fn zeros(layers: &[LayerInfo]) -> Parameters {
        let mut tensors = Vec::new();
        let mut counters = Vec::new();
        for layer in layers {
            for t in layer.tensors {
                let name = layer.tensor_name(t.name);
                if t.role == TensorRole::Counter {
                    counters.push(Counter { name, value: 0 });
                    continue;
                }
                let len = t.shape.iter().product();
                tensors.push(Tensor {
                    name,
                    shape: t.shape.to_vec(),
                    data: vec![initial(layer, t.name); len],
                    role: t.role,
                });
            }
        }
        Parameters::new(tensors, counters)
    }

    /// PyTorch's default initialisation: `Conv2d` and `Linear` weights and
    /// biases drawn from U(−1/√fan_in, 1/√fan_in), deterministic given the
    /// seed (ChaCha8, layer by layer, weight before bias); batch norm the
    /// identity (weight 1, bias 0, running mean 0, running variance 1).
    pub fn init(layers: &[LayerInfo], seed: u64) -> Parameters {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut params = Self::zeros(layers);
        let mut tensors = params.tensors.iter_mut();
        for layer in layers {
            let count = layer
                .tensors
                .iter()
                .filter(|t| t.role != TensorRole::Counter)
                .count();
            let drawn = matches!(layer.kind, LayerKind::Conv { .. } | LayerKind::Fc { .. });
            let bound = 1.0 / (layer.fan_in().max(1) as f32).sqrt();
            for tensor in tensors.by_ref().take(count) {
                if drawn {
                    for value in &mut tensor.data {
                        *value = rng.random_range(-bound..=bound);
                    }
                }
            }
        }
        params
    }

    /// Builds parameters from named f32 tensors and counters, checking them
    /// against the layers: every tensor present (a counter may be absent:
    /// 0), none extra, every shape right.
    pub fn from_tensors(
        layers: &[LayerInfo],
        tensors: impl IntoIterator<Item = (String, Vec<usize>, Vec<f32>)>,
    ) -> Result<Parameters, Error> {
        Self::from_parts(layers, tensors, Vec::new())
    }

    /// [`Parameters::from_tensors`] with the counters given by name.
    pub fn from_parts(
        layers: &[LayerInfo],
        tensors: impl IntoIterator<Item = (String, Vec<usize>, Vec<f32>)>,
        counters: Vec<(String, i64)>,
    ) -> Result<Parameters, Error> {
        let mut given: Vec<(String, Vec<usize>, Vec<f32>)> = tensors.into_iter().collect();
        let mut given_counters = counters;
        let mut ordered = Vec::new();
        let mut counted = Vec::new();
        for Slot {
            name,
            shape: expected,
            role,
        } in Self::layout(layers)
        {
            if role == TensorRole::Counter {
                if given.iter().any(|(n, _, _)| *n == name) {
                    return Err(Error::Dtype {
                        name,
                        expected: "I64",
                        found: "F32".to_string(),
                    });
                }
                let value = match given_counters.iter().position(|(n, _)| *n == name) {
                    Some(pos) => given_counters.swap_remove(pos).1,
                    None => 0,
                };
                counted.push(Counter { name, value });
                continue;
            }
            if let Some(pos) = given_counters.iter().position(|(n, _)| *n == name) {
                let _ = given_counters.swap_remove(pos);
                return Err(Error::Dtype {
                    name,
                    expected: "F32",
                    found: "I64".to_string(),
                });
            }
            let Some(pos) = given.iter().position(|(n, _, _)| *n == name) else {
                return Err(Error::MissingTensor { name, expected });
            };
            let (_, shape, data) = given.swap_remove(pos);
            if shape != expected {
                return Err(Error::TensorShape {
                    name,
                    expected,
                    got: shape,
                });
            }
            let len: usize = expected.iter().product();
            if data.len() != len {
                return Err(Error::Format {
                    message: format!(
                        "tensor `{name}` holds {} values, but its shape {expected:?} needs {len}",
                        data.len()
                    ),
                });
            }
            ordered.push(Tensor {
                name,
                shape,
                data,
                role,
            });
        }
        if let Some((name, shape, _)) = given.into_iter().next() {
            return Err(Error::UnexpectedTensor { name, shape });
        }
        if let Some((name, _)) = given_counters.into_iter().next() {
            return Err(Error::UnexpectedTensor {
                name,
                shape: Vec::new(),
            });
        }
        Ok(Parameters::new(ordered, counted))
    }

    fn new(tensors: Vec<Tensor>, counters: Vec<Counter>) -> Parameters {
        Parameters {
            tensors,
            counters,
            steps: 0,
            prepared: Cache::default(),
        }
    }

    /// Training steps taken: `train_step` counts them, and a training
    /// pass draws its dropout masks from this count, so that a run from
    /// the same parameters is reproducible (like PyTorch's
    /// `torch.manual_seed`). 0 for new or loaded parameters; it is not a
    /// tensor, neither saved nor compared.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Sets the [`steps`](Parameters::steps) count, e.g. to replay a step's
    /// dropout masks.
    pub fn set_steps(&mut self, steps: u64) {
        self.steps = steps;
    }

    /// The integer counters (batch norm's `num_batches_tracked`), in layer
    /// order.
    pub fn counters(&self) -> &[Counter] {
        &self.counters
    }

    /// The counter with this name.
    pub fn counter(&self, name: &str) -> Option<i64> {
        self.counters
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.value)
    }

    /// Sets the counter with this name; false if there is none.
    pub fn set_counter(&mut self, name: &str, value: i64) -> bool {
        match self.counters.iter_mut().find(|c| c.name == name) {
            Some(counter) => {
                counter.value = value;
                true
            }
            None => false,
        }
    }

    /// The tensor with this name.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// The tensor with this name, mutable.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut Tensor> {
        self.prepared.clear();
        self.tensors.iter_mut().find(|t| t.name == name)
    }

    /// Every f32 tensor (parameters and buffers), in layer order.
    pub fn iter(&self) -> impl Iterator<Item = &Tensor> {
        self.tensors.iter()
    }

    /// Every tensor, mutable, in layer order.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Tensor> {
        self.prepared.clear();
        self.tensors.iter_mut()
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// Whether there is no tensor (a network without conv, fc or bn).
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// Total number of learnable values (buffers and counters excluded),
    /// the network's `PARAMS`.
    pub fn count(&self) -> usize {
        self.tensors
            .iter()
            .filter(|t| t.role == TensorRole::Param)
            .map(|t| t.data.len())
            .sum()
    }

    /// The values of the tensor at a position of the layout (generated code
    /// knows the position at compile time).
    #[doc(hidden)]
    #[inline]
    pub fn slot(&self, index: usize) -> &[f32] {
        &self.tensors[index].data
    }

    /// What a forward pass by `plan` derives from the parameters (checked
    /// against `layers`), made now if it is not yet.
    pub(crate) fn prepared(&self, layers: &[LayerInfo], plan: &Plan) -> Result<&Prepared, Error> {
        self.prepared.get(layers, plan, self)
    }
}
