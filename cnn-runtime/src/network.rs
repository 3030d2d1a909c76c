//! The trait every generated network implements.

use std::path::Path;

use ndarray::parallel::prelude::*;
use ndarray::{Array3, Array4, ArrayView3, ArrayView4, ArrayViewMut3, ArrayViewMut4, Axis};

use crate::model::Model;
use crate::run;
use crate::workspace::{self, Workspace};
use crate::{io, Error, LayerInfo, Parameters};

/// A network declared with `network!`: its shapes as constants, its
/// parameters, and its passes.
///
/// Generated structs implement this trait and also expose every method as an
/// inherent one, so the trait is only needed for generic code:
///
/// ```ignore
/// fn describe<N: cnn::Network>() -> String {
///     format!("{} parameters, {} MACs", N::PARAMS, N::MACS)
/// }
/// ```
pub trait Network: Sized + Send + Sync {
    /// Everything `network!` computed of the network: its volumes, layers
    /// and forward pass. The constants below are read from it.
    #[doc(hidden)]
    const MODEL: &'static Model;
    /// The struct's name.
    const NAME: &'static str = Self::MODEL.name;
    /// The input volume, `[C, H, W]`.
    const INPUT: [usize; 3] = Self::MODEL.input;
    /// The output volume, `[C, H, W]` (`[N, 1, 1]` for a vector).
    const OUTPUT: [usize; 3] = Self::MODEL.output;
    /// Total learnable parameters.
    const PARAMS: usize = Self::MODEL.params;
    /// Multiply-accumulates per image, biases excluded.
    const MACS: u64 = Self::MODEL.macs;
    /// Every layer after `input`, in order.
    const LAYERS: &'static [LayerInfo] = Self::MODEL.layers;
    /// The shape table as plain text, like torchinfo's summary.
    const SUMMARY: &'static str = Self::MODEL.summary;
    /// f32s of scratch one forward pass needs, decided at compile time.
    const WORKSPACE: usize = Self::MODEL.workspace;

    /// Wraps parameters already checked against [`Network::LAYERS`].
    #[doc(hidden)]
    fn from_checked(params: Parameters) -> Self;

    /// The network's parameters, by name.
    fn parameters(&self) -> &Parameters;

    /// The network's parameters, mutable (shapes stay fixed).
    fn parameters_mut(&mut self) -> &mut Parameters;

    /// The forward pass on contiguous slices whose lengths the caller has
    /// checked: `x` INPUT, `out` OUTPUT, `scratch` WORKSPACE.
    #[doc(hidden)]
    fn forward_raw(&self, x: &[f32], out: &mut [f32], scratch: &mut [f32]) -> Result<(), Error> {
        run::forward_one(Self::MODEL, self.parameters(), x, out, scratch)
    }

    /// f32s per image of each of the two buffers that
    /// [`Network::forward_raw_batch`] needs; 0 when it has nothing to run for
    /// all images at once.
    #[doc(hidden)]
    const BATCH_ROWS: usize = Self::MODEL.plan.batch_rows();

    /// The forward pass of `n` images, contiguous, with `rows` of at least
    /// 2·n·[`Network::BATCH_ROWS`] f32s: the fc layers that end the pass run
    /// once over the `n` images.
    #[doc(hidden)]
    fn forward_raw_batch(
        &self,
        n: usize,
        x: &[f32],
        out: &mut [f32],
        scratch: &mut [f32],
        rows: &mut [f32],
    ) -> Result<(), Error> {
        run::forward_many(Self::MODEL, self.parameters(), n, x, out, scratch, rows)
    }

    /// A network with PyTorch's default initialisation, deterministic given
    /// the seed.
    fn init(seed: u64) -> Self {
        Self::from_checked(Parameters::init(Self::LAYERS, seed))
    }

    /// A network whose convolution and fc parameters are all zero (batch
    /// norm the identity).
    fn zeros() -> Self {
        Self::from_checked(Parameters::zeros(Self::LAYERS))
    }

    /// A network with the given parameters, checked by name and shape.
    fn from_parameters(params: Parameters) -> Result<Self, Error> {
        let tensors = params
            .iter()
            .map(|t| (t.name().to_string(), t.shape().to_vec(), t.data().to_vec()));
        let counters = params
            .counters()
            .iter()
            .map(|c| (c.name().to_string(), c.value()))
            .collect();
        Ok(Self::from_checked(Parameters::from_parts(
            Self::LAYERS,
            tensors,
            counters,
        )?))
    }

    /// One image, C×H×W, to the output volume, computed on the calling
    /// thread; it allocates nothing but the output. For one image on every
    /// thread of rayon's pool, call [`Network::forward_batch`] with a batch
    /// of one, or call this from inside the pool.
    fn forward(&self, x: ArrayView3<f32>) -> Result<Array3<f32>, Error> {
        check_shape("input", x.shape(), &Self::INPUT)?;
        let [c, h, w] = Self::OUTPUT;
        let mut out = Array3::zeros((c, h, w));
        workspace::with_local(Self::MODEL, |ws| self.forward_into(x, out.view_mut(), ws))?;
        Ok(out)
    }

    /// One image into a given output, with a reusable workspace: allocates
    /// nothing when the workspace was made by [`Workspace::new`] for this
    /// network. Runs on the calling thread; called from a thread of a rayon
    /// pool, its large convolutions are split across the pool (still
    /// without allocating).
    fn forward_into(
        &self,
        x: ArrayView3<f32>,
        out: ArrayViewMut3<f32>,
        ws: &mut Workspace,
    ) -> Result<(), Error> {
        check_shape("input", x.shape(), &Self::INPUT)?;
        check_shape("output", out.shape(), &Self::OUTPUT)?;
        let (x, out) = (x.insert_axis(Axis(0)), out.insert_axis(Axis(0)));
        // A team only inside the pool: from outside, `forward_into` runs on
        // the calling thread alone, as its documentation says.
        let team = rayon::current_thread_index().is_some();
        forward_chunk(Self::MODEL, self.parameters(), x, out, ws, team)
    }

    /// A batch N×C×H×W to N×OUTPUT, images spread over rayon's global pool,
    /// and the output channels of large convolutions too (so that a batch
    /// of one also uses every thread). When the pass ends in fc layers, the
    /// images go in chunks and those layers run once per chunk, reading
    /// their weights once for it; the result then agrees with
    /// [`Network::forward`] to rounding, not bit for bit.
    fn forward_batch(&self, x: ArrayView4<f32>) -> Result<Array4<f32>, Error> {
        let [c, h, w] = Self::OUTPUT;
        let mut out = Array4::zeros((x.len_of(Axis(0)), c, h, w));
        self.forward_batch_into(x, out.view_mut())?;
        Ok(out)
    }

    /// [`Network::forward_batch`] into a given N×OUTPUT output, so that a
    /// loop over batches can reuse one (a large output freshly allocated
    /// costs a page fault per 4 KiB written).
    fn forward_batch_into(&self, x: ArrayView4<f32>, out: ArrayViewMut4<f32>) -> Result<(), Error> {
        forward_batch(Self::MODEL, self.parameters(), x, out)
    }

    /// Loads weights from a safetensors file (PyTorch names and layouts).
    fn load_safetensors(path: impl AsRef<Path>) -> Result<Self, Error> {
        let bytes = io::read_file(path.as_ref())?;
        Self::from_safetensors_bytes(&bytes)
    }

    /// Reads weights from safetensors bytes.
    fn from_safetensors_bytes(bytes: &[u8]) -> Result<Self, Error> {
        Ok(Self::from_checked(io::safetensors::load(
            Self::LAYERS,
            bytes,
        )?))
    }

    /// Writes the weights as a safetensors file.
    fn save_safetensors(&self, path: impl AsRef<Path>) -> Result<(), Error> {
        io::write_file(path.as_ref(), &io::safetensors::save(self.parameters())?)
    }

    /// The network and its weights as an ONNX model (opset 13).
    fn to_onnx_bytes(&self) -> Vec<u8> {
        io::onnx::export(
            Self::NAME,
            Self::INPUT,
            Self::LAYERS,
            Self::MODEL.graph,
            self.parameters(),
        )
    }

    /// Writes the network and its weights as an ONNX model file.
    fn save_onnx(&self, path: impl AsRef<Path>) -> Result<(), Error> {
        io::write_file(path.as_ref(), &self.to_onnx_bytes())
    }
}

/// Most images a batch runs at once through [`Network::forward_raw_batch`]:
/// enough that an fc layer's weights are read once for many images, few
/// enough that its activations stay in cache.
const BATCH_CHUNK_MAX: usize = 16;

/// [`Network::forward_batch_into`]: the shapes checked, the images spread
/// over rayon's pool in chunks.
fn forward_batch(
    model: &Model,
    params: &Parameters,
    x: ArrayView4<f32>,
    mut out: ArrayViewMut4<f32>,
) -> Result<(), Error> {
    check_shape("input batch", &x.shape()[1..], &model.input)
        .map_err(|_| batch_shape_error(x.shape(), &model.input))?;
    let n = x.len_of(Axis(0));
    let [c, h, w] = model.output;
    if out.shape() != [n, c, h, w] {
        return Err(Error::Shape {
            what: "output batch",
            expected: vec![n, c, h, w],
            got: out.shape().to_vec(),
        });
    }
    // Images in chunks when the pass ends in fc layers: each of those is
    // then one GEMM per chunk, reading its weights once for the chunk.
    // One chunk per thread where BATCH_CHUNK_MAX allows: with two threads
    // at batch 32, two chunks each (balanced if a thread starts late) read
    // B3's 2 MB fc weights twice as often, and ran B2 10 % and B3 1 %
    // slower.
    let chunk = if model.plan.batch_rows() == 0 {
        1
    } else {
        n.div_ceil(rayon::current_num_threads())
            .clamp(1, BATCH_CHUNK_MAX)
    };
    let pass = |out: &mut ArrayViewMut4<f32>| {
        out.axis_chunks_iter_mut(Axis(0), chunk)
            .into_par_iter()
            .zip(x.axis_chunks_iter(Axis(0), chunk).into_par_iter())
            .try_for_each(|(o, images)| {
                workspace::with_local(model, |ws| {
                    forward_chunk(model, params, images, o, ws, true)
                })
            })
    };
    // One image, or a pool of one thread, on the calling thread: handing
    // the pass to a worker and waiting for it would cost a wake-up each way
    // (a large image leads a team from here, see `forward_chunk`). More
    // images on a worker thread, so that they are spread over the pool (a
    // parallel iterator run from outside it would stay on this thread).
    let here = n <= 1 || rayon::current_num_threads() < 2;
    if here || rayon::current_thread_index().is_some() {
        pass(&mut out)
    } else {
        rayon::scope(|_| pass(&mut out))
    }
}

/// Multiply-accumulates from which one image's pass on a pool forms a
/// team of two threads ([`crate::par::team`]). Waking the partner costs
/// about 20 µs on a 2-core AMD EPYC, which B1 (0.8 M MACs, 18 µs alone)
/// does not win back.
pub const TEAM_MIN_PASS_MACS: u64 = 2_000_000;

/// Images whose shapes are checked, `x` N×INPUT into `out` N×OUTPUT,
/// copying views that are not contiguous; one image large enough leads a
/// team if `team`. Allocates nothing once the
/// workspace has grown to the chunk (for one image, to [`Workspace::new`]'s
/// size) and the parameters are prepared.
fn forward_chunk(
    model: &Model,
    params: &Parameters,
    x: ArrayView4<f32>,
    mut out: ArrayViewMut4<f32>,
    ws: &mut Workspace,
    team: bool,
) -> Result<(), Error> {
    let n = x.len_of(Axis(0));
    ws.reserve_batch(model, n);
    let Workspace {
        input,
        output,
        scratch,
        rows,
    } = ws;
    let x = match x.as_slice() {
        Some(x) => x,
        None => {
            for (dst, src) in input.iter_mut().zip(x.iter()) {
                *dst = *src;
            }
            &input[..]
        }
    };
    let x = &x[..n * model.input_len()];
    // One image needs no gathering for the tail.
    // One image large enough to pay for waking a second thread of the
    // pool: it spins beside the pass, so that splitting a layer costs no
    // further wake-up.
    let mut pass = |out: &mut [f32]| match n {
        1 if team && model.macs >= TEAM_MIN_PASS_MACS => {
            crate::par::team(|| run::forward_one(model, params, x, out, scratch))
        }
        1 => run::forward_one(model, params, x, out, scratch),
        _ => run::forward_many(model, params, n, x, out, scratch, rows),
    };
    match out.as_slice_mut() {
        Some(out) => pass(out),
        None => {
            let len = n * model.output_len();
            pass(&mut output[..len])?;
            for (dst, src) in out.iter_mut().zip(output.iter()) {
                *dst = *src;
            }
            Ok(())
        }
    }
}

fn check_shape(what: &'static str, got: &[usize], expected: &[usize; 3]) -> Result<(), Error> {
    if got == expected {
        Ok(())
    } else {
        Err(Error::Shape {
            what,
            expected: expected.to_vec(),
            got: got.to_vec(),
        })
    }
}

fn batch_shape_error(got: &[usize], input: &[usize; 3]) -> Error {
    let batch = got.first().copied().unwrap_or(0);
    Error::Shape {
        what: "input batch",
        expected: [batch].iter().chain(input).copied().collect(),
        got: got.to_vec(),
    }
}
