//! Times `forward` (batch 1) and `forward_batch_into` (larger batches, and
//! batch 1 on several threads when a layer is large enough to split; its
//! output allocated once, as onnxruntime's output is bound once) on the six
//! benchmark networks and prints one JSON object per line, for
//! `benches/compare.py` to set beside onnxruntime.
//!
//! ```text
//! cargo run --release --example bench_networks -- [OPTIONS]
//!
//!   --describe         print each network's layers (JSON) instead of timing
//!   --onnx DIR         write each network as DIR/ID.onnx (`to_onnx_bytes`,
//!                      PyTorch's initialisation) instead of timing
//!   --clock            measure this core's clock and fp32 FMA throughput
//!   --nets B1,B4       networks to time (default: all six)
//!   --batches 1,32     batch sizes (default: 1,32)
//!   --budget-ms 300    measuring time per network and batch (default: 300)
//! ```
//!
//! Threads come from the environment: all parallel work runs on rayon's
//! global pool, so `RAYON_NUM_THREADS=1` times one thread. Each timing line
//! carries the median and the minimum over samples of several back-to-back
//! passes, in microseconds per pass.

use std::fmt::Write as _;
use std::hint::black_box;
use std::io::Write as _;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use cnn::Act;
use cnn::{LayerKind, Network};
use ndarray::{Array3, Array4};

#[path = "../benches/common/nets.rs"]
mod nets;

fn main() -> ExitCode {
    match Options::parse(std::env::args().skip(1)) {
        Ok(Options::Describe) => nets::for_each(&mut Describe),
        Ok(Options::Onnx(dir)) => {
            let mut export = Export { dir, failed: None };
            nets::for_each(&mut export);
            if let Some(message) = export.failed {
                eprintln!("bench_networks: {message}");
                return ExitCode::FAILURE;
            }
        }
        Ok(Options::Clock) => clock::report(),
        Ok(Options::Time(mut timer)) => nets::for_each(&mut timer),
        Err(message) => {
            eprintln!("bench_networks: {message}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

/// What the command line asked for.
enum Options {
    Describe,
    Onnx(std::path::PathBuf),
    Clock,
    Time(Timer),
}

impl Options {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
        let mut timer = Timer {
            nets: None,
            batches: vec![1, 32],
            budget: Duration::from_millis(300),
        };
        while let Some(arg) = args.next() {
            let mut value = || args.next().ok_or(format!("{arg} needs a value"));
            match arg.as_str() {
                "--describe" => return Ok(Options::Describe),
                "--onnx" => return Ok(Options::Onnx(value()?.into())),
                "--clock" => return Ok(Options::Clock),
                "--nets" => {
                    timer.nets = Some(value()?.split(',').map(str::to_owned).collect());
                }
                "--batches" => timer.batches = parse_list(&value()?)?,
                "--budget-ms" => {
                    let ms = parse_list(&value()?)?;
                    let [ms] = ms[..] else {
                        return Err("--budget-ms takes one number".into());
                    };
                    timer.budget = Duration::from_millis(ms as u64);
                }
                _ => return Err(format!("unknown argument `{arg}` (see the file's docs)")),
            }
        }
        if timer.batches.contains(&0) {
            return Err("a batch size must be positive".into());
        }
        Ok(Options::Time(timer))
    }
}

fn parse_list(text: &str) -> Result<Vec<usize>, String> {
    text.split(',')
        .map(|n| {
            n.trim()
                .parse()
                .map_err(|_| format!("`{n}` is not a whole number"))
        })
        .collect()
}

/// Writes each network as ONNX, for `compare.py` to run the networks its
/// own graph builder does not cover (residual blocks, batch norm, …).
struct Export {
    dir: std::path::PathBuf,
    failed: Option<String>,
}

impl nets::Visit for Export {
    fn visit<N: Network>(&mut self, id: &'static str, _name: &'static str) {
        let path = self.dir.join(format!("{id}.onnx"));
        if let Err(e) = N::init(0).save_onnx(&path) {
            self.failed.get_or_insert(e.to_string());
        }
    }
}

/// Prints each network's constants and layers, from which `compare.py`
/// builds the same graph for onnxruntime.
struct Describe;

impl nets::Visit for Describe {
    fn visit<N: Network>(&mut self, id: &'static str, name: &'static str) {
        let layers: Vec<String> = N::LAYERS
            .iter()
            .map(|l| {
                format!(
                    "{{\"name\":{},{},\"input\":{:?},\"output\":{:?}}}",
                    json_str(l.name),
                    kind_json(&l.kind),
                    l.input,
                    l.output
                )
            })
            .collect();
        emit(format_args!(
            "{{\"id\":{},\"name\":{},\"struct\":{},\"input\":{:?},\"output\":{:?},\
             \"params\":{},\"macs\":{},\"layers\":[{}]}}",
            json_str(id),
            json_str(name),
            json_str(N::NAME),
            N::INPUT,
            N::OUTPUT,
            N::PARAMS,
            N::MACS,
            layers.join(",")
        ));
    }
}

/// The layer's kind and arguments as JSON members.
fn kind_json(kind: &LayerKind) -> String {
    match *kind {
        LayerKind::Conv { k, f, s, p, .. } => {
            format!("\"kind\":\"conv\",\"k\":{k},\"f\":{f:?},\"s\":{s:?},\"p\":{p:?}")
        }
        LayerKind::MaxPool { f, s, .. } => {
            format!("\"kind\":\"maxpool\",\"f\":{f:?},\"s\":{s:?}")
        }
        LayerKind::AvgPool { f, s, .. } => {
            format!("\"kind\":\"avgpool\",\"f\":{f:?},\"s\":{s:?}")
        }
        LayerKind::Activation(Act::Relu) => "\"kind\":\"relu\"".into(),
        LayerKind::Activation(Act::Sigmoid) => "\"kind\":\"sigmoid\"".into(),
        LayerKind::Activation(Act::Tanh) => "\"kind\":\"tanh\"".into(),
        LayerKind::Flatten => "\"kind\":\"flatten\"".into(),
        LayerKind::Fc { n } => format!("\"kind\":\"fc\",\"n\":{n}"),
        LayerKind::Softmax => "\"kind\":\"softmax\"".into(),
        // Not in the benchmark networks.
        _ => "\"kind\":\"other\"".into(),
    }
}

fn json_str(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Times each selected network at each batch size.
struct Timer {
    nets: Option<Vec<String>>,
    batches: Vec<usize>,
    budget: Duration,
}

impl nets::Visit for Timer {
    fn visit<N: Network>(&mut self, id: &'static str, name: &'static str) {
        if let Some(wanted) = &self.nets {
            if !wanted.iter().any(|w| w == id || w == name) {
                return;
            }
        }
        let net = N::init(1);
        let [c, h, w] = N::INPUT;
        for &batch in &self.batches {
            let input = Array4::from_shape_fn((batch, c, h, w), |(n, c, y, x)| {
                // Deterministic values in [−1, 1]; timing does not depend on them.
                ((n * 7 + c * 5 + y * 3 + x) as f32 * 0.37).sin()
            });
            // One image through `forward`, on the calling thread, unless
            // there are several threads and the pass is large enough to
            // form a team of two or has a layer large enough to split: then
            // through `forward_batch_into` with a batch of one, which runs
            // on the pool (and pays to hand the pass over).
            let splits = N::MACS >= cnn_runtime::TEAM_MIN_PASS_MACS
                || N::LAYERS
                    .iter()
                    .any(|l| l.macs >= cnn_runtime::kernels::PARALLEL_MIN_MACS as u64);
            let single = batch == 1 && (rayon::current_num_threads() == 1 || !splits);
            let [oc, oh, ow] = N::OUTPUT;
            let mut output = Array4::zeros((batch, oc, oh, ow));
            let pass = || {
                if single {
                    let image: Array3<f32> = net
                        .forward(black_box(input.index_axis(ndarray::Axis(0), 0)))
                        .unwrap_or_else(|e| fail(id, &e));
                    black_box(image);
                } else {
                    net.forward_batch_into(black_box(input.view()), output.view_mut())
                        .unwrap_or_else(|e| fail(id, &e));
                    black_box(&mut output);
                }
            };
            // The first pass prepares the parameters (packs the filters,
            // folds batch norm); it is not a pass a server repeats.
            let mut pass = pass;
            pass();
            let t = measure(pass, self.budget);
            emit(format_args!(
                "{{\"id\":{},\"name\":{},\"batch\":{batch},\"threads\":{},\
                 \"median_us\":{:.3},\"min_us\":{:.3},\"samples\":{},\"passes\":{},\"macs\":{}}}",
                json_str(id),
                json_str(name),
                rayon::current_num_threads(),
                t.median_us,
                t.min_us,
                t.samples,
                t.passes,
                N::MACS
            ));
        }
    }
}

/// Prints one line to stdout, flushed so that a reader sees each result as it
/// comes; exits quietly when the reader has gone.
fn emit(line: std::fmt::Arguments) {
    let mut stdout = std::io::stdout().lock();
    if writeln!(stdout, "{line}")
        .and_then(|()| stdout.flush())
        .is_err()
    {
        std::process::exit(1);
    }
}

fn fail(id: &str, error: &cnn::Error) -> ! {
    eprintln!("bench_networks: {id}: {error}");
    std::process::exit(1)
}

/// Per-pass times over a run of samples.
struct Timing {
    median_us: f64,
    min_us: f64,
    samples: usize,
    passes: usize,
}

/// Warms up for a fifth of the budget, then runs samples of back-to-back
/// passes (each about a twentieth of the budget) until the budget is spent,
/// with at least three samples. A first pass longer than the whole budget is
/// the only sample.
fn measure(mut pass: impl FnMut(), budget: Duration) -> Timing {
    let start = Instant::now();
    pass();
    let first = start.elapsed();
    if first > budget {
        let us = first.as_secs_f64() * 1e6;
        return Timing {
            median_us: us,
            min_us: us,
            samples: 1,
            passes: 1,
        };
    }
    let mut warm = 1u32;
    while start.elapsed() < budget / 5 {
        pass();
        warm += 1;
    }
    let estimate = start.elapsed().as_secs_f64() / f64::from(warm);
    let per_sample = ((budget.as_secs_f64() / 20.0 / estimate) as usize).max(1);
    let mut times = Vec::new();
    let measuring = Instant::now();
    while times.len() < 3 || measuring.elapsed() < budget {
        let t = Instant::now();
        for _ in 0..per_sample {
            pass();
        }
        times.push(t.elapsed().as_secs_f64() * 1e6 / per_sample as f64);
    }
    times.sort_by(f64::total_cmp);
    Timing {
        median_us: times[times.len() / 2],
        min_us: times[0],
        samples: times.len(),
        passes: times.len() * per_sample,
    }
}

/// This core's clock and its fp32 multiply-add throughput.
mod clock {
    use std::time::Instant;

    /// Prints `{"clock_ghz": …, "lanes": …, "fma_gflops": …}`: the clock,
    /// the fp32 lanes of the widest FMA this core has and that FMA's
    /// throughput; a figure this machine cannot measure is `null`.
    pub fn report() {
        let show = |v: Option<f64>| v.map_or("null".to_string(), |v| format!("{v:.3}"));
        let fma = fma_gflops();
        super::emit(format_args!(
            "{{\"clock_ghz\":{},\"lanes\":{},\"fma_gflops\":{}}}",
            show(clock_ghz()),
            fma.map_or("null".to_string(), |(lanes, _)| lanes.to_string()),
            show(fma.map(|(_, gflops)| gflops))
        ));
    }

    /// Best of many short timings (short, so that some run undisturbed on a
    /// shared machine), as a rate in billions per second.
    fn best_rate(mut run: impl FnMut() -> f64) -> f64 {
        (0..60)
            .map(|_| {
                let t = Instant::now();
                let work = run();
                work / t.elapsed().as_secs_f64() / 1e9
            })
            .fold(0.0, f64::max)
    }

    /// Cycles per second from a chain of dependent integer additions of a
    /// register, one cycle each on every x86-64 core. (Not of a constant:
    /// Intel cores since Golden Cove fold chains of immediate additions
    /// while renaming, several per cycle.)
    #[cfg(target_arch = "x86_64")]
    fn clock_ghz() -> Option<f64> {
        const ROUNDS: u64 = 200_000;
        let one = std::hint::black_box(1u64);
        Some(best_rate(|| {
            let mut x = 0u64;
            let mut n = ROUNDS;
            // SAFETY: register-only arithmetic on the named operands.
            unsafe {
                std::arch::asm!(
                    "2:",
                    "add {x}, {y}", "add {x}, {y}", "add {x}, {y}", "add {x}, {y}",
                    "add {x}, {y}", "add {x}, {y}", "add {x}, {y}", "add {x}, {y}",
                    "add {x}, {y}", "add {x}, {y}", "add {x}, {y}", "add {x}, {y}",
                    "add {x}, {y}", "add {x}, {y}", "add {x}, {y}", "add {x}, {y}",
                    "add {x}, {y}", "add {x}, {y}", "add {x}, {y}", "add {x}, {y}",
                    "dec {n}",
                    "jnz 2b",
                    x = inout(reg) x,
                    n = inout(reg) n,
                    y = in(reg) one,
                    options(nomem, nostack),
                );
            }
            std::hint::black_box((x, n));
            (ROUNDS * 20) as f64
        }))
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn clock_ghz() -> Option<f64> {
        None
    }

    /// The lanes of the widest fused multiply-add the kernels use on this
    /// core (AVX-512 or AVX2, as `CNN_ISA` caps them) and its fp32 FLOP/s,
    /// independent FMAs on one core.
    #[cfg(target_arch = "x86_64")]
    fn fma_gflops() -> Option<(usize, f64)> {
        const ROUNDS: usize = 300_000;
        // The widest set the kernels use (`CNN_ISA` may cap it): the peak
        // they are held against.
        let isa = cnn_runtime::cpu::Isa::active();
        if isa == cnn_runtime::cpu::Isa::Avx512 && is_x86_feature_detected!("avx512f") {
            // SAFETY: the feature `fma_loop_512` enables was detected.
            return Some((16, best_rate(|| unsafe { fma_loop_512(ROUNDS) })));
        }
        if isa == cnn_runtime::cpu::Isa::Portable
            || !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
        {
            return None;
        }
        // SAFETY: the features `fma_loop` enables were detected above.
        Some((8, best_rate(|| unsafe { fma_loop(ROUNDS) })))
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn fma_gflops() -> Option<(usize, f64)> {
        None
    }

    /// Runs `rounds` × 12 independent 16-lane FMAs; returns the flops done.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    fn fma_loop_512(rounds: usize) -> f64 {
        use std::arch::x86_64::*;
        let a = _mm512_set1_ps(std::hint::black_box(0.999_999));
        let b = _mm512_set1_ps(std::hint::black_box(1e-7));
        let mut acc = [_mm512_set1_ps(1.0); 12];
        for _ in 0..rounds {
            for v in &mut acc {
                *v = _mm512_fmadd_ps(*v, a, b);
            }
        }
        std::hint::black_box(acc);
        (rounds * 12 * 16 * 2) as f64
    }

    /// Runs `rounds` × 12 independent 8-lane FMAs; returns the flops done.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn fma_loop(rounds: usize) -> f64 {
        use std::arch::x86_64::*;
        let a = _mm256_set1_ps(std::hint::black_box(0.999_999));
        let b = _mm256_set1_ps(std::hint::black_box(1e-7));
        let mut acc = [_mm256_set1_ps(1.0); 12];
        for _ in 0..rounds {
            for v in &mut acc {
                *v = _mm256_fmadd_ps(*v, a, b);
            }
        }
        std::hint::black_box(acc);
        (rounds * 12 * 8 * 2) as f64
    }
}
