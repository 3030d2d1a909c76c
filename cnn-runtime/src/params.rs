//! A network's learnable parameters: named tensors in PyTorch's layout.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::plan::Plan;
use crate::prepared::{Cache, Prepared};
use crate::{Error, LayerInfo};

/// One named parameter tensor, f32, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    name: String,
    shape: Vec<usize>,
    data: Vec<f32>,
}

impl Tensor {
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

/// The learnable parameters of a network: for each layer `i` with
/// parameters, `"{i}.weight"` then `"{i}.bias"`, in layer order.
///
/// They also keep what a forward pass derives from them (the filters packed
/// for the kernels), made on first use and dropped by any mutable access.
#[derive(Debug, Clone)]
pub struct Parameters {
    tensors: Vec<Tensor>,
    prepared: Cache,
}

impl PartialEq for Parameters {
    fn eq(&self, other: &Parameters) -> bool {
        self.tensors == other.tensors
    }
}

impl Parameters {
    /// The names and shapes a network with these layers needs, in order.
    pub fn layout(layers: &[LayerInfo]) -> Vec<(String, Vec<usize>)> {
        let mut layout = Vec::new();
        for layer in layers.iter().filter(|l| l.has_params()) {
            layout.push((layer.tensor_name("weight"), layer.weight_shape.to_vec()));
            layout.push((layer.tensor_name("bias"), vec![layer.bias_len()]));
        }
        layout
    }

    /// All parameters zero.
    pub fn zeros(layers: &[LayerInfo]) -> Parameters {
        let tensors = Self::layout(layers)
            .into_iter()
            .map(|(name, shape)| {
                let len = shape.iter().product();
                Tensor {
                    name,
                    shape,
                    data: vec![0.0; len],
                }
            })
            .collect();
        Parameters::new(tensors)
    }

    /// PyTorch's default initialisation of `Conv2d` and `Linear`: weights
    /// and biases drawn from U(−1/√fan_in, 1/√fan_in), deterministic given
    /// the seed (ChaCha8, layer by layer, weight before bias).
    pub fn init(layers: &[LayerInfo], seed: u64) -> Parameters {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut params = Self::zeros(layers);
        let mut tensors = params.tensors.iter_mut();
        for layer in layers.iter().filter(|l| l.has_params()) {
            let bound = 1.0 / (layer.fan_in() as f32).sqrt();
            for tensor in tensors.by_ref().take(2) {
                for value in &mut tensor.data {
                    *value = rng.random_range(-bound..=bound);
                }
            }
        }
        params
    }

    /// Builds parameters from named tensors, checking them against the
    /// layers: every tensor present, none extra, every shape right.
    pub fn from_tensors(
        layers: &[LayerInfo],
        tensors: impl IntoIterator<Item = (String, Vec<usize>, Vec<f32>)>,
    ) -> Result<Parameters, Error> {
        let mut given: Vec<(String, Vec<usize>, Vec<f32>)> = tensors.into_iter().collect();
        let mut ordered = Vec::new();
        for (name, expected) in Self::layout(layers) {
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
            ordered.push(Tensor { name, shape, data });
        }
        if let Some((name, shape, _)) = given.into_iter().next() {
            return Err(Error::UnexpectedTensor { name, shape });
        }
        Ok(Parameters::new(ordered))
    }

    fn new(tensors: Vec<Tensor>) -> Parameters {
        Parameters {
            tensors,
            prepared: Cache::default(),
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

    /// Every tensor, in layer order.
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

    /// Whether there is no tensor (a network without conv or fc).
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// Total number of values.
    pub fn count(&self) -> usize {
        self.tensors.iter().map(|t| t.data.len()).sum()
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
