//! Convolution kernels on the layers of the benchmark networks (B1–B6), one
//! thread, every path: the blocked implicit GEMM with the AVX-512, AVX2 and
//! portable micro-kernels, the AVX-512 kernel with filters in its vectors,
//! the GEMV per pixel of narrow 1×1 layers, im2col + sgemm, and direct
//! loops; "chosen" is the kernel a network runs on this CPU. Filters are
//! packed once, as a network packs them. Throughput is in flops (2·MACs),
//! so criterion's "elem/s" reads as FLOP/s.
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
use cnn_spec::arith::window_out;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn conv(c: usize, h: usize, w: usize, k: usize, f: usize, s: usize, p: usize) -> ConvShape {
    let o = window_out(h, f, s, p).expect("the benchmark layers fit");
    ConvShape::plain(c, [h, w], k, [f, f], [s, s], [p, p], [o, o])
}

fn layers() -> [(&'static str, ConvShape); 11] {
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
    ]
}

struct Data {
    x: Vec<f32>,
    weight: Vec<f32>,
    bias: Vec<f32>,
    y: Vec<f32>,
    scratch: Vec<f32>,
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
        Data {
            x: fill(s.c * s.h * s.w),
            weight: fill(s.k * s.c * s.f[0] * s.f[1]),
            bias: fill(s.k),
            y: vec![0.0; s.k * oh * ow],
            scratch: vec![0.0; scratch],
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
}

impl Path {
    fn name(self) -> String {
        match self {
            Path::Kernel(kernel, false) => format!("{kernel:?}"),
            Path::Kernel(kernel, true) => format!("{kernel:?}-split"),
            Path::Chosen => "chosen".to_string(),
            Path::Im2col => "im2col-sgemm".to_string(),
            Path::Direct => "direct".to_string(),
        }
    }

    /// The layer's filters packed for the path, if it packs; `None` if it
    /// cannot run here.
    fn pack(self, s: ConvShape, weight: &[f32]) -> Option<Option<PackedConv>> {
        let kernel = match self {
            Path::Kernel(kernel, _) => kernel,
            Path::Chosen => ConvKernel::choose(&s, Isa::active()),
            Path::Im2col | Path::Direct => return Some(None),
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
        } = d;
        let split = matches!(self, Path::Kernel(_, true));
        let done = match (self, packed) {
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
    for (name, s) in layers() {
        let mut g = c.benchmark_group(format!("conv/{name}"));
        g.throughput(Throughput::Elements(2 * s.macs() as u64));
        let mut d = Data::new(s);
        for &path in &paths {
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
