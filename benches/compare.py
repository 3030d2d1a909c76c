#!/usr/bin/env python3
"""Times the benchmark networks (B1..B6, ResNet-18 as R1, MobileNetV2 as R2)
on our runtime and on onnxruntime, side by side, and prints a Markdown table.

Usage (from the workspace root):

    python3 benches/compare.py            # the full comparison: ~2 minutes of measuring, plus the build
    python3 benches/compare.py --quick    # a smoke check: one short round at batch 1
    python3 benches/compare.py --baseline /tmp/before   # also against an earlier build of ours

Options:
    --rounds N        measuring rounds (default 5; --quick: 1)
    --budget-ms MS    measuring time per network, batch, thread count and side
                      in each round (default 250; --quick: 30)
    --nets B1,R1      networks (default: all, B1..B6, R1, R2)
    --batches 1,32    batch sizes (default 1,32; --quick: 1)
    --threads 1,2     thread counts (default 1,2)
    --stat min        per round, keep each side's fastest sample instead of the
                      median sample (both are then minimised over rounds)
    --json FILE       also write every measurement as JSON
    --ort-native      with CNN_ISA=avx2, leave onnxruntime its AVX-512 kernels
    --baseline EXE    also time EXE, a copy of the bench_networks binary built
                      earlier (at the old commit, after a build: `cp
                      target/release/examples/bench_networks /tmp/before`),
                      exactly as ours, in the same rounds; the table gains its
                      time and ours/baseline

Needs python3 with onnx, onnxruntime and numpy, and cargo.

Both sides on AVX2 on an AVX-512 host: `CNN_ISA=avx2 python3
benches/compare.py` caps our kernels at AVX2 and, unless `--ort-native`,
hides AVX-512 from onnxruntime as well: the script compiles
`benches/hide_avx512.c` with `cc` and restarts itself with it preloaded,
which makes the CPUID instruction fault and answers it with the AVX-512
bits cleared (Linux on a CPU with CPUID faulting, `cpuid_fault` in
/proc/cpuinfo), so that onnxruntime's kernel choice sees an AVX2 CPU. The
report's header says which instruction sets each side ran, and a warning
says when hiding failed.

What it does, in one run:

1. Builds `cargo build --release --example bench_networks` once and copies the
   binary aside, so every round times the same code even while the tree
   changes; each run of it is what `cargo run --release --example
   bench_networks` runs.
2. Asks it for each network's layers (`--describe`) and builds the same graph
   with `onnx.helper` (opset 13: Conv, Relu, Sigmoid, Tanh, MaxPool,
   AveragePool, Flatten, Gemm, Softmax), random weights (timing does not
   depend on their values), a fixed batch size. The networks with layers
   that builder does not cover (ResNet-18 and MobileNetV2: residual adds,
   batch norm, depthwise convolutions) run from our own ONNX export
   (`bench_networks --onnx DIR`, whose parity with onnxruntime the tests
   check), which onnxruntime optimises like any model: it folds batch norm
   into the convolutions and fuses the adds.
3. Opens onnxruntime sessions on the CPU provider with
   `intra_op_num_threads` 1 and 2, `inter_op_num_threads=1`, sequential
   execution and `ORT_ENABLE_ALL`; input and output are bound once
   (IOBinding), so each timed call is one `run_with_iobinding`.
4. Runs several rounds. In each, for each thread count, both sides time every
   case (ours in a subprocess with `RAYON_NUM_THREADS` set; the side that goes
   first alternates between rounds). With `--baseline`, the baseline binary
   (copied aside before the build, which could overwrite it) is a third
   side, timed exactly as ours on the networks its `--describe` also lists
   (a warning names the others), and the three sides take turns going first.
   Each side reports the median (and the fastest) of its samples of
   back-to-back passes; across rounds the table keeps each side's smallest
   median (or, with `--stat min`, its fastest sample), so that load from
   other processes on the shared machine handicaps no side. A case slower
   than a second per pass is measured in the first round only.
5. Measures the clock (a chain of dependent additions, one cycle each) and
   one core's FMA throughput, and prints the table: our time, onnxruntime's,
   the ratio ours/onnxruntime (below 1: we are faster), our GFLOP/s
   (2 * MACs * batch / time, MACs from the network's `MACS` constant) and its
   percentage of one core's fp32 peak. The peak is what a loop of the widest
   FMAs measures, the real ceiling (on AMD Zen 4, which runs AVX-512 as two
   256-bit halves, half of 2 FMA ports * lanes * 2 flops * clock); that
   product (16 lanes with AVX-512, 8 with AVX2 + FMA) is the peak only when
   the loop is missing or measures under a quarter of it, so was disturbed.
   The header says which. With two threads the percentage can exceed 100.
   With `--baseline`, two more columns (the baseline's time, ours/baseline)
   and, per thread count and batch size, the geometric mean of ours/baseline
   over the networks.
"""

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SLOW_PASS_US = 1e6
FMA_PORTS = 2  # fused multiply-adds issued per cycle
# An FMA loop below this share of the peak the clock implies (one port at half
# width) is taken as disturbed; from there up, it is the peak.
FMA_FLOOR = 0.25


def main():
    args = parse_args()
    ort_isa = cap_onnxruntime(args)
    try:
        import numpy as np
        import onnx
        import onnxruntime as ort
    except ImportError as e:
        sys.exit(f"compare.py: {e}; install with `pip install onnxruntime onnx numpy`")

    started = time.monotonic()
    load = [loadavg()]
    with tempfile.TemporaryDirectory() as tmp:
        # Copied before the build, which could otherwise overwrite it.
        baseline = copy_baseline(args.baseline, Path(tmp)) if args.baseline else None
        exe = build(Path(tmp))
        built = time.monotonic()
        nets = [n for n in run_json([exe, "--describe"]) if selected(n, args.nets)]
        if not nets:
            sys.exit(f"compare.py: no network matches --nets {','.join(args.nets)}")
        base_ids = baseline_ids(baseline, args.baseline, nets) if baseline else set()
        before = measure_clock(exe)
        exported = Path(tmp) / "onnx"
        exported.mkdir()
        run_json([exe, "--onnx", str(exported)])
        ort_cases = make_sessions(nets, args, np, onnx, ort, exported)
        results = run_rounds(exe, nets, ort_cases, args, baseline, base_ids)
        clock = best_clock([before, measure_clock(exe)])
    elapsed = (built - started, time.monotonic() - built)
    load.append(loadavg())

    print_report(nets, results, clock, args, ort.__version__, elapsed, load, ort_isa)
    if args.json:
        rows = [
            {"id": n, "batch": b, "threads": t, "side": side, "rounds_us": v}
            for (n, b, t, side), v in sorted(results.items())
        ]
        out = {"clock": clock, "results": rows}
        if args.baseline:
            out["baseline"] = str(Path(args.baseline).resolve())
        Path(args.json).write_text(json.dumps(out, indent=1))


def parse_args():
    p = argparse.ArgumentParser(
        description="Time the benchmark networks on our runtime and onnxruntime, side by side.",
        epilog="See the module docstring (benches/compare.py) for details.",
    )
    p.add_argument("--quick", action="store_true", help="a smoke check: one short round at batch 1")
    p.add_argument("--rounds", type=int)
    p.add_argument("--budget-ms", type=int)
    p.add_argument("--nets", type=lambda s: s.split(","), default=[])
    p.add_argument("--batches", type=int_list)
    p.add_argument("--threads", type=int_list, default=[1, 2])
    p.add_argument("--stat", choices=["median", "min"], default="median")
    p.add_argument("--json")
    p.add_argument("--baseline", metavar="EXE",
                   help="an earlier build of the bench_networks binary, timed like ours")
    p.add_argument("--ort-native", action="store_true",
                   help="with CNN_ISA=avx2, leave onnxruntime every instruction set the CPU has")
    a = p.parse_args()
    if a.baseline and not (os.path.isfile(a.baseline) and os.access(a.baseline, os.X_OK)):
        p.error(f"--baseline {a.baseline}: not an executable file")
    a.rounds = a.rounds or (1 if a.quick else 5)
    a.budget_ms = a.budget_ms or (30 if a.quick else 250)
    a.batches = a.batches or ([1] if a.quick else [1, 32])
    if min(a.batches + a.threads) < 1 or a.rounds < 1 or a.budget_ms < 1:
        p.error("batches, threads, rounds and the budget must be positive")
    return a


def int_list(text):
    return [int(x) for x in text.split(",")]


def selected(net, wanted):
    return not wanted or net["id"] in wanted or net["name"] in wanted


def cap_onnxruntime(args):
    """With `CNN_ISA=avx2`, hides AVX-512 from onnxruntime too, so that both
    sides run AVX2 kernels: compiles `benches/hide_avx512.c` (with `cc`) and
    restarts this script with it preloaded. Returns what the report says of
    onnxruntime's instruction set."""
    if os.environ.get("CNN_ISA", "").lower() != "avx2" or args.ort_native:
        return "every instruction set the CPU has"
    status = os.environ.get("HIDE_AVX512")
    if status == "on":
        return "AVX2: AVX-512 hidden from CPUID (benches/hide_avx512.c)"
    if status is not None:
        print(f"compare.py: AVX-512 not hidden from onnxruntime ({status})", file=sys.stderr)
        return f"every instruction set the CPU has (hiding AVX-512 {status})"
    shim = ROOT / "target" / "compare" / "hide_avx512.so"
    shim.parent.mkdir(parents=True, exist_ok=True)
    cmd = ["cc", "-shared", "-fPIC", "-O2", "-o", str(shim), str(ROOT / "benches" / "hide_avx512.c")]
    try:
        built = subprocess.run(cmd, stderr=subprocess.PIPE, text=True).returncode == 0
    except OSError:
        built = False
    if not built:
        os.environ["HIDE_AVX512"] = "failed: could not compile benches/hide_avx512.c with cc"
        return cap_onnxruntime(args)
    print("restarting with onnxruntime's AVX-512 hidden (CNN_ISA=avx2)", file=sys.stderr)
    env = dict(os.environ, LD_PRELOAD=str(shim))
    # The interpreter itself, not a launcher script: a restart resets the
    # CPUID faulting the shim turns on.
    argv = [sys.executable, str(Path(__file__).resolve()), *sys.argv[1:]]
    sys.stdout.flush()
    os.execve(sys.executable, argv, env)


# --- our side ---------------------------------------------------------------


def build(tmp):
    """Builds the example once; returns a private copy of the binary."""
    print("building: cargo build --release --example bench_networks", file=sys.stderr)
    cmd = [
        "cargo", "build", "--release", "--example", "bench_networks",
        "--message-format=json-render-diagnostics",
    ]
    out = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    if out.returncode != 0:
        sys.exit("compare.py: the build failed")
    exe = None
    for line in out.stdout.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg["target"]["name"] == "bench_networks":
            exe = msg.get("executable") or exe
    if exe is None:
        sys.exit("compare.py: cargo did not report the bench_networks binary")
    copy = tmp / "bench_networks"
    shutil.copy2(exe, copy)
    return str(copy)


def copy_baseline(path, tmp):
    """A private copy of the baseline binary."""
    copy = tmp / "baseline-bench_networks"
    shutil.copy2(path, copy)
    return str(copy)


def baseline_ids(baseline, path, nets):
    """The ids of `nets` the baseline binary also describes; warns about the
    others, and about networks it describes differently."""
    theirs = {n["id"]: n for n in run_json([baseline, "--describe"])}
    shape = ("input", "output", "macs", "layers")
    for net in nets:
        other = theirs.get(net["id"])
        if other is None:
            print(f"compare.py: {net['id']} {net['name']} is not in the baseline ({path}); "
                  f"it is compared with onnxruntime only", file=sys.stderr)
        elif any(other.get(k) != net[k] for k in shape):
            print(f"compare.py: the baseline describes {net['id']} differently (input, "
                  f"output, MACs or layers); ours/baseline compares different networks",
                  file=sys.stderr)
    ids = {n["id"] for n in nets if n["id"] in theirs}
    if not ids:
        sys.exit(f"compare.py: the baseline ({path}) has none of the networks to compare")
    return ids


def run_json(cmd, env=None):
    out = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    if out.returncode != 0:
        sys.exit(f"compare.py: `{' '.join(cmd)}` failed")
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


def time_ours(exe, nets, batch, threads, budget_ms):
    """Median and fastest µs per pass for each network id, one subprocess per
    batch size."""
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    cmd = [
        exe, "--nets", ",".join(n["id"] for n in nets),
        "--batches", str(batch), "--budget-ms", str(budget_ms),
    ]
    rows = run_json(cmd, env)
    for r in rows:
        if r["threads"] != threads:
            sys.exit(f"compare.py: asked for {threads} threads, rayon used {r['threads']}")
    times = {r["id"]: {"median": r["median_us"], "min": r["min_us"]} for r in rows}
    missing = [n["id"] for n in nets if n["id"] not in times]
    if missing:
        sys.exit(f"compare.py: `{exe}` gave no timing for {','.join(missing)}")
    return times


def measure_clock(exe):
    """This core's clock and FMA throughput, measured by the example."""
    return run_json([exe, "--clock"])[0]


def best_clock(runs):
    """The highest of several measurements (load only slows them down), the
    cpuinfo clock beside, and the peak they imply."""
    best = {k: max((r[k] for r in runs if r[k] is not None), default=None) for k in runs[0]}
    mhz = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("cpu MHz"):
                mhz = float(line.split(":")[1])
                break
    except OSError:
        pass
    best["cpuinfo_ghz"] = mhz / 1000 if mhz else None
    ghz = best["clock_ghz"] or best["cpuinfo_ghz"]
    best["lanes"] = best.get("lanes") or 8
    implied = FMA_PORTS * best["lanes"] * 2 * ghz if ghz else None
    best["clock_peak_gflops"] = best["peak_gflops"] = implied
    fma = best.get("fma_gflops")
    if fma and (not implied or fma >= FMA_FLOOR * implied):
        # The loop is the real ceiling: below the clock's figure where a core
        # splits its widest FMAs (Zen 4), above it where the clock reading is off.
        best["peak_gflops"] = fma
        best["peak_from_fma"] = True
    return best


# --- onnxruntime's side -----------------------------------------------------


# The layer kinds `onnx_model` builds; other networks run from our export.
BUILT_KINDS = {"conv", "maxpool", "avgpool", "relu", "sigmoid", "tanh", "flatten", "fc", "softmax"}


def onnx_model(net, batch, np, onnx):
    """The network as an ONNX graph with a fixed batch size, random weights."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)
    nodes, inits = [], []
    counter = iter(range(10**6))

    def fresh(prefix):
        return f"{prefix}{next(counter)}"

    def const(prefix, array):
        name = fresh(prefix)
        inits.append(helper.make_tensor(name, TensorProto.FLOAT if array.dtype == np.float32
                                        else TensorProto.INT64, array.shape, array.flatten().tolist()))
        return name

    def node(op, inputs, **attrs):
        out = fresh(op.lower())
        nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    def to_4d(x, rank, shape):
        if rank == 4:
            return x
        return node("Reshape", [x, const("shape", np.array([batch, *shape], dtype=np.int64))])

    def to_2d(x, rank):
        return x if rank == 2 else node("Flatten", [x], axis=1)

    def weights(shape, fan_in):
        bound = 1 / np.sqrt(fan_in)
        return rng.uniform(-bound, bound, size=shape).astype(np.float32)

    x, rank = "input", 4
    for layer in net["layers"]:
        kind, shape_in = layer["kind"], layer["input"]
        c = shape_in[0]
        if kind == "conv":
            (fh, fw), k = layer["f"], layer["k"]
            fan_in = c * fh * fw
            w = const("w", weights((k, c, fh, fw), fan_in))
            b = const("b", weights((k,), fan_in))
            ph, pw = layer["p"]
            x = node("Conv", [to_4d(x, rank, shape_in), w, b], kernel_shape=[fh, fw],
                     strides=layer["s"], pads=[ph, pw, ph, pw])
            rank = 4
        elif kind in ("maxpool", "avgpool"):
            op = "MaxPool" if kind == "maxpool" else "AveragePool"
            x = node(op, [to_4d(x, rank, shape_in)], kernel_shape=layer["f"], strides=layer["s"])
            rank = 4
        elif kind in ("relu", "sigmoid", "tanh"):
            x = node(kind.capitalize(), [x])
        elif kind == "flatten":
            x, rank = to_2d(x, rank), 2
        elif kind == "fc":
            fan_in = int(np.prod(shape_in))
            w = const("w", weights((layer["n"], fan_in), fan_in))
            b = const("b", weights((layer["n"],), fan_in))
            x, rank = node("Gemm", [to_2d(x, rank), w, b], transB=1), 2
        elif kind == "softmax":
            x = node("Softmax", [to_2d(x, rank)], axis=1)
            x = to_4d(x, 2, shape_in) if rank == 4 else x
        else:
            sys.exit(f"compare.py: {net['id']}: layer kind `{kind}` has no ONNX counterpart here")
    nodes[-1].output[0] = "output"
    out_shape = [batch, *net["output"]] if rank == 4 else [batch, int(np.prod(net["output"]))]
    graph = helper.make_graph(
        nodes, net["struct"], [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                             [batch, *net["input"]])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, out_shape)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="cnn-benches")
    onnx.checker.check_model(model)
    return model.SerializeToString(), out_shape


def make_sessions(nets, args, np, onnx, ort, exported):
    """One bound onnxruntime session per (network, batch, threads): a timing
    closure. Networks `onnx_model` cannot build come from `exported`, the
    directory `bench_networks --onnx` wrote (symbolic batch)."""
    cases = {}
    for net in nets:
        for batch in args.batches:
            if all(layer["kind"] in BUILT_KINDS for layer in net["layers"]):
                model, out_shape = onnx_model(net, batch, np, onnx)
            else:
                model = (exported / f"{net['id']}.onnx").read_bytes()
                out_shape = [batch, *net["output"]]
            x = np.random.default_rng(1).standard_normal((batch, *net["input"]), dtype=np.float32)
            for threads in args.threads:
                so = ort.SessionOptions()
                so.intra_op_num_threads = threads
                so.inter_op_num_threads = 1
                so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
                so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
                sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
                io = sess.io_binding()
                io.bind_ortvalue_input("input", ort.OrtValue.ortvalue_from_numpy(x))
                y = ort.OrtValue.ortvalue_from_shape_and_type(out_shape, np.float32)
                io.bind_ortvalue_output("output", y)
                sess.run_with_iobinding(io)
                if list(y.shape()) != out_shape:
                    sys.exit(f"compare.py: {net['id']}: onnxruntime gave {y.shape()}, "
                             f"expected {out_shape}")
                cases[(net["id"], batch, threads)] = (sess, io)
    return cases


def time_ort(case, budget_ms):
    """Median and fastest µs per run, sampled like bench_networks' `measure`."""
    sess, io = case
    run = sess.run_with_iobinding
    budget = budget_ms / 1000
    start = time.perf_counter()
    run(io)
    first = time.perf_counter() - start
    if first > budget:
        return {"median": first * 1e6, "min": first * 1e6}
    warm = 1
    while time.perf_counter() - start < budget / 5:
        run(io)
        warm += 1
    estimate = (time.perf_counter() - start) / warm
    per_sample = max(1, int(budget / 20 / estimate))
    times = []
    measuring = time.perf_counter()
    while len(times) < 3 or time.perf_counter() - measuring < budget:
        t = time.perf_counter()
        for _ in range(per_sample):
            run(io)
        times.append((time.perf_counter() - t) * 1e6 / per_sample)
    times.sort()
    return {"median": times[len(times) // 2], "min": times[0]}


# --- rounds -----------------------------------------------------------------


def run_rounds(exe, nets, ort_cases, args, baseline=None, base_ids=()):
    """{(id, batch, threads, side): [{"median": µs, "min": µs} of each round]};
    side "ours", "ort" or, on the ids in `base_ids`, "baseline"."""
    results = {}
    slow = set()  # (id, batch, threads) measured once: a pass takes over a second
    all_sides = ["ours", "ort"] + (["baseline"] if baseline else [])
    for r in range(args.rounds):
        print(f"round {r + 1}/{args.rounds}", file=sys.stderr)
        turn = r % len(all_sides)  # the side that goes first takes turns
        sides = all_sides[turn:] + all_sides[:turn]
        for threads in args.threads:
            for side in sides:
                for batch in args.batches:
                    todo = [n for n in nets if (n["id"], batch, threads) not in slow
                            and (side != "baseline" or n["id"] in base_ids)]
                    if not todo:
                        continue
                    if side != "ort":
                        times = time_ours(exe if side == "ours" else baseline, todo, batch,
                                          threads, args.budget_ms)
                    else:
                        times = {n["id"]: time_ort(ort_cases[(n["id"], batch, threads)],
                                                   args.budget_ms) for n in todo}
                    for n in todo:
                        results.setdefault((n["id"], batch, threads, side), []).append(
                            times[n["id"]])
        for (n, b, t, _side), v in results.items():
            if r == 0 and v[0]["min"] > SLOW_PASS_US:
                slow.add((n, b, t))
    return results


# --- report -----------------------------------------------------------------


def fmt_time(us):
    if us < 1000:
        return f"{us:.1f} µs"
    if us < 1e6:
        return f"{us / 1000:.2f} ms"
    return f"{us / 1e6:.2f} s"


def loadavg():
    """The one-minute load average (other processes' demand on the cores)."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def print_report(nets, results, clock, args, ort_version, elapsed, load, ort_isa):
    peak = clock["peak_gflops"]
    loads = " and ".join(f"{x:.1f}" for x in load if x is not None) or "unknown"
    print(f"Machine: {os.cpu_count()} cores, load average {loads} at start and end; clock {fmt_ghz(clock['clock_ghz'])} measured "
          f"(dependent-add chain), {fmt_ghz(clock['cpuinfo_ghz'])} in /proc/cpuinfo.")
    print_peak(clock)
    ours_isa = os.environ.get("CNN_ISA") or "the widest the CPU has"
    print(f"Instruction sets: ours {ours_isa} (CNN_ISA), onnxruntime {ort_isa}.")
    print(f"onnxruntime {ort_version}, CPU provider, ORT_ENABLE_ALL, sequential, "
          f"inter_op 1. {args.rounds} round(s) of {args.budget_ms} ms per case and side; "
          f"times are each side's {args.stat} sample in its best round. "
          f"Build {elapsed[0]:.0f} s, measurements {elapsed[1]:.0f} s.")
    if args.baseline:
        print(f"Baseline: {args.baseline}, timed exactly as ours in the same rounds, the three "
              f"sides taking turns to go first; ours/baseline below 1: ours is faster.")
    print()
    print("| network | batch | threads | ours | onnxruntime | ours/ORT | our GFLOP/s "
          "| % of 1-core peak | ORT GFLOP/s |" + (" baseline | ours/baseline |"
                                                 if args.baseline else ""))
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|" + ("---:|---:|" if args.baseline else ""))
    by_id = {n["id"]: n for n in nets}
    ratios = {}
    base_ratios = {}  # (threads, batch): [ours/baseline of each network]
    for threads in args.threads:
        for batch in args.batches:
            for net in nets:
                key = (net["id"], batch, threads)
                ours = best(results[(*key, "ours")], args.stat)
                theirs = best(results[(*key, "ort")], args.stat)
                ratios[key] = ours / theirs
                flop = 2 * net["macs"] * batch
                gflops = flop / ours / 1e3
                pct = f"{100 * gflops / peak:.1f}%" if peak else "?"
                extra = ""
                if (*key, "baseline") in results:
                    base = best(results[(*key, "baseline")], args.stat)
                    base_ratios.setdefault((threads, batch), []).append(ours / base)
                    extra = f" {fmt_time(base)} | {ours / base:.2f} |"
                elif args.baseline:
                    extra = " — | — |"
                print(f"| {net['id']} {net['name']} | {batch} | {threads} | {fmt_time(ours)} "
                      f"| {fmt_time(theirs)} | {ours / theirs:.2f} | {gflops:.2f} | {pct} "
                      f"| {flop / theirs / 1e3:.2f} |" + extra)
    print()
    if base_ratios:
        print("Ours/baseline, geometric mean over the networks (below 1: ours is faster):")
        for (threads, batch), rs in base_ratios.items():
            geo = math.exp(sum(math.log(x) for x in rs) / len(rs))
            print(f"- batch {batch}, {threads} thread{'s' if threads > 1 else ''}: {geo:.3f} "
                  f"over {len(rs)} network{'s' if len(rs) > 1 else ''} "
                  f"(from {min(rs):.2f} to {max(rs):.2f})")
        print()
    print_targets(by_id, results, ratios, peak, args.stat)


def print_peak(clock):
    """The header line on one core's fp32 peak: which figure, and why."""
    peak, implied, fma = clock["peak_gflops"], clock["clock_peak_gflops"], clock["fma_gflops"]
    formula = (f"{FMA_PORTS} FMA ports x {clock['lanes']} lanes x 2 flops x "
               f"{fmt_ghz(clock['clock_ghz'] or clock['cpuinfo_ghz'])}")
    if peak and clock.get("peak_from_fma") and implied:
        print(f"One core's fp32 peak: {peak:.1f} GFLOP/s, as an FMA loop measures, the real "
              f"ceiling ({100 * fma / implied:.0f}% of what the clock implies, {formula} = "
              f"{implied:.1f}).")
    elif peak and clock.get("peak_from_fma"):
        print(f"One core's fp32 peak: {peak:.1f} GFLOP/s, as an FMA loop measures (no clock "
              f"reading).")
    elif peak:
        print(f"One core's fp32 peak assumed: {formula} = {peak:.1f} GFLOP/s"
              + (f" (an FMA loop measures only {fma:.1f}, under {FMA_FLOOR:.0%} of that: "
                 f"taken as disturbed)." if fma else " (no FMA loop on this core)."))


def best(rounds, stat):
    """The chosen statistic, at its smallest over rounds."""
    return min(r[stat] for r in rounds)


def fmt_ghz(ghz):
    return f"{ghz:.2f} GHz" if ghz else "unknown"


def print_targets(by_id, results, ratios, peak, stat):
    """The speed targets, met or missed, for the cases measured."""
    lines = []

    def check(label, key, ok, figure):
        if key in ratios:
            lines.append(f"- {label}: {figure} — {'met' if ok else 'MISSED'}")

    for id_, limit in [("B1", 0.5), ("B2", 0.5), ("B3", 1.0), ("B4", 1.0), ("B5", 1.0),
                       ("B6", 1.0)]:
        key = (id_, 1, 1)
        r = ratios.get(key)
        check(f"{id_} batch 1, 1 thread, ours/ORT <= {limit}", key, r is not None and r <= limit,
              f"{r:.2f}" if r is not None else "")
    for id_ in ("R1", "R2"):
        key = (id_, 1, 1)
        r = ratios.get(key)
        check(f"{id_} batch 1, 1 thread, ours/ORT <= 1", key, r is not None and r <= 1,
              f"{r:.2f}" if r is not None else "")
    for id_ in by_id:
        key = (id_, 32, 2)
        r = ratios.get(key)
        check(f"{id_} batch 32, 2 threads, ours/ORT <= 1", key, r is not None and r <= 1,
              f"{r:.2f}" if r is not None else "")
    if peak:
        for id_ in ("B4", "B5"):
            key = (id_, 1, 1)
            if key in ratios:
                us = best(results[(*key, "ours")], stat)
                pct = 100 * 2 * by_id[id_]["macs"] / us / 1e3 / peak
                check(f"{id_} batch 1, 1 thread, >= 80% of peak", key, pct >= 80, f"{pct:.1f}%")
    if lines:
        print("Targets:")
        print("\n".join(lines))


if __name__ == "__main__":
    main()
