//! Convolution kernels on the layers of the benchmark networks (B1–B6), one
//! thread, every path: the blocked implicit GEMM with the AVX-512, AVX2 and
//! portable micro-kernels, the AVX-512 kernel with filters in its vectors,
//! im2col + sgemm, and direct loops; then the
//! const-generic entry points the macro calls. Throughput is in flops
//! (2·MACs), so criterion's "elem/s" reads as FLOP/s.
//!
//! `cargo bench --bench conv`, timed in the thread's CPU time (the machine
//! may be shared); `CONV_BENCH_SPLIT=1` adds the two-thread split of the
//! blocked path and times everything in wall-clock time.

use std::hint::black_box;
use std::time::{Duration, Instant};

use cnn_runtime::kernels::{
    conv_blocked_with, conv_direct_with, conv_filter_lanes_scratch, conv_gemm, conv_gemm_scratch,
    conv_im2col_scratch, conv_im2col_with, conv_pointwise, conv_pointwise_with, Act, ConvPath,
    ConvShape,
};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const fn conv(c: usize, h: usize, w: usize, k: usize, f: usize, s: usize, p: usize) -> ConvShape {
    ConvShape {
        c,
        h,
        w,
        k,
        f: [f, f],
        s: [s, s],
        p: [p, p],
    }
}

const LAYERS: &[(&str, ConvShape)] = &[
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
];

struct Data {
    x: Vec<f32>,
    weight: Vec<f32>,
    bias: Vec<f32>,
    y: Vec<f32>,
    scratch: Vec<f32>,
}

impl Data {
    fn new(s: ConvShape) -> Data {
        let [oh, ow] = s.out().unwrap_or([0, 0]);
        let fill = |n: usize| {
            (0..n)
                .map(|i| ((i * 7919) % 101) as f32 / 101.0 - 0.5)
                .collect()
        };
        let scratch = conv_gemm_scratch(s)
            .max(conv_im2col_scratch(s))
            .max(conv_filter_lanes_scratch(s));
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
    Blocked(ConvPath, bool),
    Im2col,
    Pointwise,
    Direct,
}

impl Path {
    fn name(self) -> &'static str {
        match self {
            Path::Blocked(ConvPath::Avx512, false) => "blocked-avx512",
            Path::Blocked(ConvPath::Avx512, true) => "blocked-avx512-split",
            Path::Blocked(ConvPath::Avx2, false) => "blocked-avx2",
            Path::Blocked(ConvPath::Avx2, true) => "blocked-avx2-split",
            Path::Blocked(ConvPath::FilterLanes, false) => "filter-lanes",
            Path::Blocked(ConvPath::FilterLanes, true) => "filter-lanes-split",
            Path::Blocked(_, _) => "blocked-portable",
            Path::Im2col => "im2col-sgemm",
            Path::Pointwise => "pointwise",
            Path::Direct => "direct",
        }
    }

    /// Runs the layer; false if the path is unavailable.
    fn run(self, s: ConvShape, d: &mut Data) -> bool {
        let Data {
            x,
            weight,
            bias,
            y,
            scratch,
        } = d;
        match self {
            Path::Blocked(path, split) => {
                conv_blocked_with(s, path, split, x, weight, bias, y, Act::Relu, scratch)
            }
            Path::Im2col => conv_im2col_with(s, x, weight, bias, y, Act::Relu, scratch),
            Path::Pointwise if s.f == [1, 1] && s.s == [1, 1] && s.p == [0, 0] => {
                conv_pointwise_with(s.c, s.h * s.w, s.k, x, weight, bias, y, Act::Relu)
            }
            Path::Pointwise => false,
            Path::Direct => {
                conv_direct_with(s, x, weight, bias, y, Act::Relu);
                true
            }
        }
    }
}

fn paths(c: &mut Criterion) {
    let split = std::env::var_os("CONV_BENCH_SPLIT").is_some();
    let mut paths = vec![
        Path::Blocked(ConvPath::Avx512, false),
        Path::Blocked(ConvPath::Avx2, false),
        Path::Blocked(ConvPath::FilterLanes, false),
    ];
    if split {
        paths.push(Path::Blocked(ConvPath::Avx512, true));
        paths.push(Path::Blocked(ConvPath::Avx2, true));
        paths.push(Path::Blocked(ConvPath::FilterLanes, true));
    }
    paths.extend([
        Path::Blocked(ConvPath::Portable, false),
        Path::Im2col,
        Path::Pointwise,
        Path::Direct,
    ]);
    for &(name, s) in LAYERS {
        let mut g = c.benchmark_group(format!("conv/{name}"));
        g.throughput(Throughput::Elements(2 * s.macs() as u64));
        let mut d = Data::new(s);
        for &path in &paths {
            if path.run(s, &mut d) {
                g.bench_function(BenchmarkId::from_parameter(path.name()), |b| {
                    b.iter_custom(|n| {
                        timed(n, || {
                            black_box(path.run(s, black_box(&mut d)));
                        })
                    })
                });
            }
        }
        g.finish();
    }
}

/// The entry points with constant shapes, as the macro calls them.
fn constant(c: &mut Criterion) {
    let mut g = c.benchmark_group("conv/const");
    let b1 = LAYERS[0].1;
    let mut d = Data::new(b1);
    g.throughput(Throughput::Elements(2 * b1.macs() as u64));
    g.bench_function("B1 conv_gemm", |b| {
        b.iter_custom(|n| {
            timed(n, || {
                conv_gemm::<3, 32, 32, 10, 5, 5, 1, 1, 2, 2, 32, 32>(
                    black_box(&d.x),
                    &d.weight,
                    &d.bias,
                    &mut d.y,
                    Act::Relu,
                    &mut d.scratch,
                )
            })
        })
    });
    let b4 = LAYERS[8].1;
    let mut d = Data::new(b4);
    g.throughput(Throughput::Elements(2 * b4.macs() as u64));
    g.bench_function("B4 conv_gemm", |b| {
        b.iter_custom(|n| {
            timed(n, || {
                conv_gemm::<3, 227, 227, 96, 11, 11, 4, 4, 0, 0, 55, 55>(
                    black_box(&d.x),
                    &d.weight,
                    &d.bias,
                    &mut d.y,
                    Act::Relu,
                    &mut d.scratch,
                )
            })
        })
    });
    let b5 = LAYERS[9].1;
    let mut d = Data::new(b5);
    g.throughput(Throughput::Elements(2 * b5.macs() as u64));
    g.bench_function("B5 conv_gemm", |b| {
        b.iter_custom(|n| {
            timed(n, || {
                conv_gemm::<64, 56, 56, 64, 3, 3, 1, 1, 1, 1, 56, 56>(
                    black_box(&d.x),
                    &d.weight,
                    &d.bias,
                    &mut d.y,
                    Act::Relu,
                    &mut d.scratch,
                )
            })
        })
    });
    let b6 = LAYERS[10].1;
    let mut d = Data::new(b6);
    g.throughput(Throughput::Elements(2 * b6.macs() as u64));
    g.bench_function("B6 conv_pointwise", |b| {
        b.iter_custom(|n| {
            timed(n, || {
                conv_pointwise::<256, 196, 64>(
                    black_box(&d.x),
                    &d.weight,
                    &d.bias,
                    &mut d.y,
                    Act::Relu,
                )
            })
        })
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(1500))
        .sample_size(20)
}

criterion_group! { name = benches; config = config(); targets = paths, constant }
criterion_main!(benches);
