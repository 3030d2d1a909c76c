//! Convolution kernels on the layers of the benchmark networks (B1–B6),
//! VGG's and ResNet's on short rows, a dilated and a grouped layer, and
//! MobileNetV2's depthwise layers, one thread, every path: the blocked
//! implicit GEMM with the AVX-512, AVX2 and portable micro-kernels, the
//! AVX-512 and AVX2 kernels with filters in their vectors, the GEMV per
//! pixel of narrow 1×1 layers, the depthwise kernel on each instruction
//! set, im2col + sgemm, and direct loops; "chosen" is the
//! kernel a network runs on this CPU. Filters are packed once, as a
//! network packs them. Throughput is in flops (2·MACs), so criterion's
//! "elem/s" reads as FLOP/s, except for depthwise layers, which are bound
//! by memory: there it is in bytes moved (input, output, filters and
//! biases, each once), and beside the kernels "copy" times a STREAM-like
//! copy of as many bytes (half of them read, half written, buffers of the
//! layer's footprint), the bandwidth to hold them against.
//!
//! `cargo bench --bench conv`, timed in the thread's CPU time (the machine
//! may be shared); `CONV_BENCH_SPLIT=1` adds the two-thread split of the
//! blocked path and times everything in wall-clock time.

use std::hint::black_box;
use std::time::{Duration, Instant};

use cnn_runtime::cpu::Isa;
use cnn_runtime::kernels::{
    conv_direct_with, conv_im2col_scratch, conv_im2col_with, conv_scratch, Act, ConvKernel,
    ConvShape, PackedConv,
};
use cnn_spec::arith::window_out_floor;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn conv(c: usize, h: usize, w: usize, k: usize, f: usize, s: usize, p: usize) -> ConvShape {
    spread(c, [h, w], k, (f, s, p), 1, 1)
}

/// A layer of square filters, strides, paddings and dilations `d`, in `g`
/// groups.
fn spread(
    c: usize,
    [h, w]: [usize; 2],
    k: usize,
    (f, s, p): (usize, usize, usize),
    d: usize,
    g: usize,
) -> ConvShape {
    // Rounded down, as PyTorch (and a `floor` layer) computes MobileNetV2's
    // stride-2 layers on even sizes.
    let out = |n| window_out_floor(n, d * (f - 1) + 1, s, p).expect("the benchmark layers fit");
    ConvShape {
        d: [d, d],
        g,
        ..ConvShape::plain(c, [h, w], k, [f, f], [s, s], [p, p], [out(h), out(w)])
    }
}

/// MobileNetV2's 3 × 3 depthwise layer on `c` channels of `hw` × `hw`.
fn depthwise(c: usize, hw: usize, s: usize) -> ConvShape {
    spread(c, [hw, hw], c, (3, s, 1), 1, c)
}

fn layers() -> [(&'static str, ConvShape); 27] {
    [
        ("B1", conv(3, 32, 32, 10, 5, 1, 2)),
        ("B2.1", conv(1, 28, 28, 6, 5, 1, 2)),
        ("B2.2", conv(6, 14, 14, 16, 5, 1, 0)),
        ("B3.1", conv(3, 32, 32, 32, 3, 1, 1)),
        ("B3.2", conv(32, 32, 32, 32, 3, 1, 1)),
        ("B3.3", conv(32, 16, 16, 64, 3, 1, 1)),
        ("B3.4", conv(64, 16, 16, 64, 3, 1, 1)),
        ("B3.5", conv(64, 8, 8, 128, 3, 1, 1)),
        ("B4", conv(3, 227, 227, 96, 11, 4, 0)),
        ("B5", conv(64, 56, 56, 64, 3, 1, 1)),
        ("B6", conv(256, 14, 14, 64, 1, 1, 0)),
        // VGG's 3 × 3 blocks on rows of 28, 14 and 7 pixels, and ResNet's
        // stride-2 3 × 3 from 56 × 56.
        ("VGG-128-28", conv(128, 28, 28, 128, 3, 1, 1)),
        ("VGG-256-14", conv(256, 14, 14, 256, 3, 1, 1)),
        ("VGG-512-7", conv(512, 7, 7, 512, 3, 1, 1)),
        ("RN-64-128-s2", conv(64, 56, 56, 128, 3, 2, 1)),
        // B5 dilated by 2, as DeepLab's atrous blocks are.
        ("B5-d2", spread(64, [56, 56], 64, (3, 1, 2), 2, 1)),
        // ResNeXt-50's first grouped 3 × 3: 32 groups of 4 channels.
        ("RX-g32", spread(128, [56, 56], 128, (3, 1, 1), 1, 32)),
        // MobileNetV2's depthwise layers, in the network's order.
        ("MB2-dw32-112-s1", depthwise(32, 112, 1)),
        ("MB2-dw96-112-s2", depthwise(96, 112, 2)),
        ("MB2-dw144-56-s1", depthwise(144, 56, 1)),
        ("MB2-dw144-56-s2", depthwise(144, 56, 2)),
        ("MB2-dw192-28-s1", depthwise(192, 28, 1)),
        ("MB2-dw192-28-s2", depthwise(192, 28, 2)),
        ("MB2-dw384-14-s1", depthwise(384, 14, 1)),
        ("MB2-dw576-14-s1", depthwise(576, 14, 1)),
        ("MB2-dw576-14-s2", depthwise(576, 14, 2)),
        ("MB2-dw960-7-s1", depthwise(960, 7, 1)),
    ]
}

/// Bytes a depthwise layer moves at the least: its input, output, filters
/// and biases, each once.
fn bytes(s: &ConvShape) -> u64 {
    let [oh, ow] = s.o;
    let values = s.c * s.h * s.w + s.k * oh * ow + s.k * (s.f[0] * s.f[1] + 1);
    4 * values as u64
}

struct Data {
    x: Vec<f32>,
    weight: Vec<f32>,
    bias: Vec<f32>,
    y: Vec<f32>,
    scratch: Vec<f32>,
    /// For "copy": a source and a destination of half the layer's bytes
    /// each.
    copy: (Vec<f32>, Vec<f32>),
}

impl Data {
    fn new(s: ConvShape) -> Data {
        let [oh, ow] = s.o;
        let fill = |n: usize| {
            (0..n)
                .map(|i| ((i * 7919) % 101) as f32 / 101.0 - 0.5)
                .collect()
        };
        let scratch = conv_scratch(&s).max(conv_im2col_scratch(&s));
        let half = bytes(&s) as usize / 8;
        Data {
            x: fill(s.c * s.h * s.w),
            weight: fill(s.k * s.c / s.g * s.f[0] * s.f[1]),
            bias: fill(s.k),
            y: vec![0.0; s.k * oh * ow],
            scratch: vec![0.0; scratch],
            copy: (fill(half), vec![0.0; half]),
        }
    }
}

/// CPU time of this thread, in ns, from the scheduler's own accounting:
/// the machine is shared, and wall-clock time would count the waits.
fn cpu_ns() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    stat.split_whitespace().next()?.parse().ok()
}

/// Times `iters` runs of `f` in CPU time where the system reports it, else
/// (or with `CONV_BENCH_SPLIT` set, where two threads work) in wall-clock
/// time.
fn timed(iters: u64, mut f: impl FnMut()) -> Duration {
    let wall_only = std::env::var_os("CONV_BENCH_SPLIT").is_some();
    let (start, wall) = (cpu_ns().filter(|_| !wall_only), Instant::now());
    for _ in 0..iters {
        f();
    }
    match (start, cpu_ns()) {
        (Some(a), Some(b)) => Duration::from_nanos(b.saturating_sub(a)),
        _ => wall.elapsed(),
    }
}

/// One way to compute a layer.
#[derive(Clone, Copy)]
enum Path {
    Kernel(ConvKernel, bool),
    Chosen,
    Im2col,
    Direct,
    /// A copy of as many bytes as a depthwise layer moves.
    Copy,
}

impl Path {
    fn name(self) -> String {
        match self {
            Path::Kernel(kernel, false) => format!("{kernel:?}"),
            Path::Kernel(kernel, true) => format!("{kernel:?}-split"),
            Path::Chosen => "chosen".to_string(),
            Path::Im2col => "im2col-sgemm".to_string(),
            Path::Direct => "direct".to_string(),
            Path::Copy => "copy".to_string(),
        }
    }

    /// The layer's filters packed for the path, if it packs; `None` if it
    /// cannot run here.
    fn pack(self, s: ConvShape, weight: &[f32]) -> Option<Option<PackedConv>> {
        let kernel = match self {
            Path::Kernel(kernel, _) => kernel,
            Path::Chosen => ConvKernel::choose(&s, Isa::active()),
            Path::Im2col | Path::Direct | Path::Copy => return Some(None),
        };
        PackedConv::new(s, kernel, weight, None).ok().map(Some)
    }

    /// Runs the layer.
    fn run(self, s: ConvShape, packed: Option<&PackedConv>, d: &mut Data) {
        let Data {
            x,
            weight,
            bias,
            y,
            scratch,
            copy,
        } = d;
        let split = matches!(self, Path::Kernel(_, true));
        let done = match (self, packed) {
            (Path::Copy, _) => {
                copy.1.copy_from_slice(&copy.0);
                Ok(())
            }
            (_, Some(packed)) => packed.run(x, y, Act::Relu, scratch, split),
            (Path::Im2col, _) => conv_im2col_with(s, x, weight, Some(bias), y, Act::Relu, scratch),
            _ => conv_direct_with(s, x, weight, Some(bias), y, Act::Relu),
        };
        done.expect("the layer runs");
    }
}

fn paths(c: &mut Criterion) {
    let split = std::env::var_os("CONV_BENCH_SPLIT").is_some();
    let kernels = [
        ConvKernel::Blocked(Isa::Avx512),
        ConvKernel::Blocked(Isa::Avx2),
        ConvKernel::FilterLanes,
        ConvKernel::FilterLanesAvx2,
        ConvKernel::Blocked(Isa::Portable),
        ConvKernel::Narrow,
    ];
    let mut paths = vec![Path::Chosen];
    for kernel in kernels {
        paths.push(Path::Kernel(kernel, false));
        if split && kernel != ConvKernel::Narrow {
            paths.push(Path::Kernel(kernel, true));
        }
    }
    paths.extend([Path::Im2col, Path::Direct]);
    // Depthwise layers: the depthwise kernel on each set, the blocked tile
    // a channel at a time and direct loops to compare, and the copy.
    let mut depthwise = vec![Path::Chosen];
    for isa in [Isa::Avx512, Isa::Avx2, Isa::Portable] {
        depthwise.push(Path::Kernel(ConvKernel::Depthwise(isa), false));
        if split {
            depthwise.push(Path::Kernel(ConvKernel::Depthwise(isa), true));
        }
    }
    let blocked = Path::Kernel(ConvKernel::Blocked(Isa::Avx512), false);
    depthwise.extend([blocked, Path::Direct, Path::Copy]);
    for (name, s) in layers() {
        let mut g = c.benchmark_group(format!("conv/{name}"));
        let is_depthwise = s.g > 1 && s.g == s.c;
        let paths = if is_depthwise {
            g.throughput(Throughput::Bytes(bytes(&s)));
            &depthwise
        } else {
            g.throughput(Throughput::Elements(2 * s.macs() as u64));
            &paths
        };
        let mut d = Data::new(s);
        for &path in paths {
            let Some(packed) = path.pack(s, &d.weight) else {
                continue;
            };
            g.bench_function(BenchmarkId::from_parameter(path.name()), |b| {
                b.iter_custom(|n| {
                    timed(n, || {
                        path.run(s, packed.as_ref(), black_box(&mut d));
                    })
                })
            });
        }
        g.finish();
    }
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(1500))
        .sample_size(20)
}

criterion_group! { name = benches; config = config(); targets = paths }
criterion_main!(benches);
