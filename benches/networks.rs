//! Criterion benchmarks of the six benchmark networks (`benches/common/nets.rs`)
//! at batch 1 (`forward`, and `forward_into` with a reused workspace) and
//! batch 32 (`forward_batch`).
//!
//! Threads come from the environment, as everywhere in `cnn`: all parallel
//! work runs on rayon's global pool, so
//!
//! ```text
//! RAYON_NUM_THREADS=1 cargo bench --bench networks
//! RAYON_NUM_THREADS=2 cargo bench --bench networks -- B3
//! ```
//!
//! time one and two threads; the benchmark ids carry the thread count
//! (`B3-cifar-vgg/batch32/threads2`), so the two runs keep separate baselines.
//! For the side-by-side comparison with onnxruntime, see `benches/compare.py`.

use std::hint::black_box;
use std::time::Duration;

use cnn::{Network, Workspace};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ndarray::{Array3, Array4, Axis};

#[path = "common/nets.rs"]
mod nets;

/// The batch sizes timed with `forward_batch`.
const BATCH: usize = 32;

struct Bench<'a> {
    c: &'a mut Criterion,
}

impl nets::Visit for Bench<'_> {
    fn visit<N: Network>(&mut self, id: &'static str, name: &'static str) {
        let threads = format!("threads{}", rayon::current_num_threads());
        let net = N::init(1);
        let mut group = self.c.benchmark_group(format!("{id}-{name}"));
        group
            .sample_size(20)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3));

        let image = input::<N>(1);
        let image = image.index_axis(Axis(0), 0);
        group.throughput(Throughput::Elements(1));
        group.bench_function(BenchmarkId::new("forward", &threads), |b| {
            b.iter(|| net.forward(black_box(image)).map(black_box))
        });
        let [c, h, w] = N::OUTPUT;
        let mut out = Array3::zeros((c, h, w));
        let mut ws = Workspace::new::<N>();
        group.bench_function(BenchmarkId::new("forward_into", &threads), |b| {
            b.iter(|| net.forward_into(black_box(image), out.view_mut(), &mut ws))
        });

        let batch = input::<N>(BATCH);
        group.throughput(Throughput::Elements(BATCH as u64));
        group.bench_function(BenchmarkId::new(format!("batch{BATCH}"), &threads), |b| {
            b.iter(|| net.forward_batch(black_box(batch.view())).map(black_box))
        });
        group.finish();
    }
}

/// A deterministic batch of values in [−1, 1]; timing does not depend on them.
fn input<N: Network>(batch: usize) -> Array4<f32> {
    let [c, h, w] = N::INPUT;
    Array4::from_shape_fn((batch, c, h, w), |(n, c, y, x)| {
        ((n * 7 + c * 5 + y * 3 + x) as f32 * 0.37).sin()
    })
}

fn networks(c: &mut Criterion) {
    nets::for_each(&mut Bench { c });
}

criterion_group!(benches, networks);
criterion_main!(benches);
