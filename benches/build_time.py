#!/usr/bin/env python3
"""Measures what declaring a network costs a *user's* crate at build time, and
how fast that crate runs the network in a release and in a debug build, as a
new user of `cnn` would see it.

Usage (from anywhere; cnn is the repository holding this script unless --repo):

    python3 benches/build_time.py                          # seed, release and dev, 2 repeats
    python3 benches/build_time.py --net seed,vgg16 --json /tmp/bt.json
    python3 benches/build_time.py --profiles dev --profile-line
    nice -n 19 python3 benches/build_time.py ...           # on a shared machine

Options:
    --net LIST        networks, comma-separated, measured in turn on top of one
                      dependency build per profile: empty, seed, vgg16,
                      resnet18
                      (default seed). `empty` is `fn main() {}`, so its
                      "network" build is the floor of any incremental build.
    --profiles LIST   cargo profiles, comma-separated: release, dev (alias
                      debug); default release,dev
    --repeat N        timed builds of each network per profile (default 2); the
                      table shows the minimum and lists every value
    --profile-line    add to the user's Cargo.toml the lines the README
                      recommends,
                          [profile.dev.package.cnn-runtime]
                          opt-level = 3
                          debug-assertions = false
                          overflow-checks = false
                      (they only change dev builds)
    --dir DIR         build in DIR (created if missing) and keep it afterwards;
                      DIR/target is deleted first, so the dependency build
                      starts from scratch. Default: a temporary directory,
                      deleted at the end (kept if a step fails).
    --repo DIR        the cnn checkout the user's crate depends on (default: the
                      repository holding this script, its working tree as it
                      is); for figures at another commit, `mkdir DIR && git
                      archive REV | tar -x -C DIR`
    --json FILE       also write every figure, the machine and the commands

Standard library only; needs cargo on PATH.

What it does:

1. Writes a fresh binary crate `buildtime-user` in DIR/user: Cargo.toml with
   `cnn = { path = "<repo root>" }` (--repo), `ndarray = "0.17"`, edition 2021 and
   `[profile.release] debug = 0`, and a copy of the repository's Cargo.lock,
   so dependency versions match the workspace's (cargo prunes and adjusts it).
   Every cargo command runs in DIR/user with CARGO_TARGET_DIR=DIR/target, so
   the repository's own target directory is not touched. The workspace's
   profile settings (`[profile.dev.package."*"] opt-level = 2` and so on) do
   not apply to a dependent crate: the user's crate gets cargo's defaults,
   plus the two lines above with --profile-line. `cargo fetch` runs first,
   untimed, so downloads never count as build time. The crate builds the
   working tree of the repository, uncommitted changes included; the report
   says how many files differ from HEAD.
2. For each profile:
   - deps: with src/main.rs = `fn main() {}`, times `cargo build [--release]`
     from scratch: every dependency, cnn-runtime, cnn-macros and cnn itself.
   - net: for each network, writes its src/main.rs (the `network!`
     declaration and a main that times `forward`) and times the incremental
     `cargo build [--release]`: what declaring and calling the network adds.
     Each of the --repeat timed builds starts from the same state: before
     the second and later ones, src/main.rs is rewritten to the empty variant
     and built, untimed, and then the network's variant is rewritten (with a
     comment that changes, so the source really differs) and built, timed.
     Merely editing a comment in the network's file would let a dev build's
     incremental cache reuse the previous compilation of the network and
     time far less than declaring it costs.
   - forward: runs the built binary (directly from the target directory),
     which builds the network and a zero image, runs `forward` once to warm
     up and then 3 times, and prints the fastest as `forward_ms=`.
3. Prints the machine (nproc, CPU model, whether the CPU has avx512f), the
   toolchain, a Markdown table (network, profile, deps build s, network
   incremental build s: minimum and every value, forward ms), the ratio of
   the debug build's forward time to the release build's per network when
   both ran, and every command it ran, with its working directory,
   environment and wall-clock time.

All times are wall-clock on whatever else the machine is doing; on a shared
machine run it at low priority (`nice -n 19`) and compare figures taken
close together.
"""

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent  # the default for --repo
CRATE_NAME = "buildtime-user"
TAIL_LINES = 30
FORWARD_RUNS = 3  # timed forward passes after one warm-up; keep in step with MAIN_TEMPLATE

# The networks a user's crate declares. `body` is the network! body, one line
# per block; `make` builds it (`zeros()` skips the RNG, whose time is not
# measured anyway); `params` is the expected parameter count, checked against
# the binary's `params=` line.
NETS = {
    "empty": None,
    "seed": {
        "struct": "SeedNet",
        "body": [
            "input(3, 32, 32)",
            "conv(10, 5, s = 1, p = 2) relu pool(2, 2)",
            "fc(10)",
        ],
        "make": "init(1)",
        "input": (3, 32, 32),
        "params": 760 + 10 * 16 * 16 * 10 + 10,
    },
    "vgg16": {
        "struct": "Vgg16",
        "body": [
            "input(3, 224, 224)",
            "conv(64, 3, p = 1) relu conv(64, 3, p = 1) relu pool(2)",
            "conv(128, 3, p = 1) relu conv(128, 3, p = 1) relu pool(2)",
            "conv(256, 3, p = 1) relu conv(256, 3, p = 1) relu conv(256, 3, p = 1) relu pool(2)",
            "conv(512, 3, p = 1) relu conv(512, 3, p = 1) relu conv(512, 3, p = 1) relu pool(2)",
            "conv(512, 3, p = 1) relu conv(512, 3, p = 1) relu conv(512, 3, p = 1) relu pool(2)",
            "fc(4096) relu fc(4096) relu fc(1000)",
        ],
        "make": "zeros()",
        "input": (3, 224, 224),
        "params": 138_357_544,
    },
    "resnet18": {
        "struct": "ResNet18",
        # torchvision's, from the benchmarks' declaration (its body lines).
        "body": None,
        "make": "zeros()",
        "input": (3, 224, 224),
        "params": 11_689_512,
    },
}


def modern_body(struct):
    """The body lines of `struct` in benches/common/modern.rs."""
    text = (Path(__file__).resolve().parent / "common" / "modern.rs").read_text()
    start = text.index(f"pub struct {struct} {{") + len(f"pub struct {struct} {{")
    depth, end = 1, start
    while depth:
        depth += {"{": 1, "}": -1}.get(text[end], 0)
        end += 1
    return [line.strip() for line in text[start:end - 1].splitlines() if line.strip()]


NETS["resnet18"]["body"] = modern_body("ResNet18")

EMPTY_TEMPLATE = """\
// {stamp}
fn main() {{}}
"""

MAIN_TEMPLATE = """\
// {stamp}
use std::time::Instant;

cnn::network! {{
    pub struct {struct} {{
{body}
    }}
}}

fn main() {{
    let net = {struct}::{make};
    let image = ndarray::Array3::<f32>::zeros(({c}, {h}, {w}));
    // One warm-up pass, then the fastest of {runs}; only forward is timed.
    let warm = net.forward(image.view()).expect("forward");
    let mut runs = Vec::new();
    for _ in 0..{runs} {{
        let start = Instant::now();
        let out = net.forward(std::hint::black_box(image.view())).expect("forward");
        runs.push(start.elapsed().as_secs_f64() * 1e3);
        std::hint::black_box(&out);
    }}
    let max = warm.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let best = runs.iter().copied().fold(f64::INFINITY, f64::min);
    let runs: Vec<String> = runs.iter().map(|ms| format!("{{ms:.4}}")).collect();
    println!("params={{}}", {struct}::PARAMS);
    println!("max_output={{max}}");
    println!("forward_runs_ms={{}}", runs.join(","));
    println!("forward_ms={{best:.4}}");
}}
"""


class StepFailed(Exception):
    pass


def main_source(net, stamp):
    spec = NETS[net]
    if spec is None:
        return EMPTY_TEMPLATE.format(stamp=stamp)
    c, h, w = spec["input"]
    body = "\n".join("        " + line for line in spec["body"])
    return MAIN_TEMPLATE.format(
        stamp=stamp, struct=spec["struct"], body=body, make=spec["make"],
        c=c, h=h, w=w, runs=FORWARD_RUNS)


def cargo_toml(repo, profile_line, own_workspace):
    lines = [
        "[package]",
        f'name = "{CRATE_NAME}"',
        'version = "0.1.0"',
        'edition = "2021"',
        "publish = false",
        "",
        "[dependencies]",
        f"cnn = {{ path = {json.dumps(str(repo))} }}",
        'ndarray = "0.17"',
        "",
        "[profile.release]",
        "debug = 0",
    ]
    if profile_line:
        lines += [
            "",
            "[profile.dev.package.cnn-runtime]",
            "opt-level = 3",
            "debug-assertions = false",
            "overflow-checks = false",
        ]
    if own_workspace:
        # Only when DIR lies under another Cargo.toml: stops cargo from
        # looking for a workspace above it. Changes nothing in the build.
        lines += ["", "# build_time.py: DIR is under another package", "[workspace]"]
    return "\n".join(lines) + "\n"


def under_other_manifest(path):
    return any((p / "Cargo.toml").exists() for p in path.parents)


def machine_info():
    model, flags = None, set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and model is None:
                    model = value.strip()
                elif key == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    try:
        nproc = len(os.sched_getaffinity(0))
    except AttributeError:
        nproc = os.cpu_count()
    return {
        "nproc": nproc,
        "cpu_model": model or platform.processor() or "unknown",
        "avx512f": "avx512f" in flags if flags else None,
        "loadavg_start": os.getloadavg(),
    }


def capture(cmd, cwd=None, env=None):
    try:
        r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    except OSError:
        return None
    return r.stdout.strip() if r.returncode == 0 else None


def repo_state(repo):
    # Only when repo is the top of its own git checkout; a copy made with
    # `git archive` has neither HEAD nor changes to report.
    top = capture(["git", "-C", str(repo), "rev-parse", "--show-toplevel"])
    if top is None or Path(top).resolve() != repo:
        return {"path": str(repo), "head": None, "changed_files": None}
    head = capture(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"])
    status = capture(["git", "-C", str(repo), "status", "--porcelain"])
    changed = None if status is None else len([l for l in status.splitlines() if l.strip()])
    return {"path": str(repo), "head": head, "changed_files": changed}


class Runner:
    """Runs commands in the user's crate, times them and keeps a log."""

    def __init__(self, crate, target):
        self.crate = crate
        self.target = target
        self.env = dict(os.environ)
        self.env["CARGO_TARGET_DIR"] = str(target)
        self.log = []

    def run(self, cmd, purpose, timed):
        shown = " ".join(shlex.quote(c) for c in cmd)
        print(f"  {purpose}: {shown} ...", end="", file=sys.stderr, flush=True)
        start = time.perf_counter()
        try:
            r = subprocess.run(cmd, cwd=self.crate, env=self.env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, errors="replace")
        except OSError as e:
            print(file=sys.stderr)
            raise StepFailed(f"could not start `{shown}`: {e}")
        seconds = time.perf_counter() - start
        print(f" {seconds:.1f} s", file=sys.stderr, flush=True)
        self.log.append({"command": shown, "purpose": purpose,
                         "timed": timed, "seconds": round(seconds, 3)})
        if r.returncode != 0:
            tail = "\n".join(r.stdout.splitlines()[-TAIL_LINES:])
            raise StepFailed(
                f"`{shown}` failed (exit status {r.returncode}) in {self.crate}\n"
                f"with CARGO_TARGET_DIR={self.target}; the last {TAIL_LINES} "
                f"lines of its output:\n{tail}")
        return seconds, r.stdout


def write_main(crate, net, stamp):
    (crate / "src" / "main.rs").write_text(main_source(net, stamp))


def parse_binary_output(out, net):
    values = dict(re.findall(r"^(\w+)=(.*)$", out, re.M))
    if "forward_ms" not in values:
        raise StepFailed(f"the {net} binary printed no forward_ms= line; its output:\n{out}")
    result = {
        "forward_ms": float(values["forward_ms"]),
        "forward_runs_ms": [float(v) for v in values.get("forward_runs_ms", "").split(",") if v],
        "max_output": float(values["max_output"]) if "max_output" in values else None,
        "params": int(values["params"]) if "params" in values else None,
    }
    expected = NETS[net]["params"]
    if result["params"] is not None and result["params"] != expected:
        print(f"warning: {net} has {result['params']} parameters, expected {expected}",
              file=sys.stderr)
    return result


def measure(args, crate, target, runner):
    results = []
    build_no = 0

    def stamp(net, what):
        nonlocal build_no
        build_no += 1
        return f"build_time.py: {net} variant, {what}, write {build_no}"

    for profile in args.profiles:
        flag = ["--release"] if profile == "release" else []
        outdir = "release" if profile == "release" else "debug"
        print(f"profile {profile}:", file=sys.stderr)
        write_main(crate, "empty", stamp("empty", f"deps build, {profile}"))
        deps_s, _ = runner.run(["cargo", "build", *flag],
                               f"deps ({profile}, empty main, from scratch)", True)
        for i_net, net in enumerate(args.nets):
            times = []
            for i in range(args.repeat):
                if i_net > 0 or i > 0:
                    write_main(crate, "empty", stamp("empty", f"reset before {net} build {i + 1}"))
                    runner.run(["cargo", "build", *flag],
                               f"reset ({profile}, empty main, untimed)", False)
                write_main(crate, net, stamp(net, f"{profile} build {i + 1} of {args.repeat}"))
                s, _ = runner.run(["cargo", "build", *flag],
                                  f"{net} ({profile}, build {i + 1}/{args.repeat})", True)
                times.append(s)
            row = {
                "net": net, "profile": profile, "deps_build_s": round(deps_s, 3),
                "net_build_s": [round(t, 3) for t in times],
                "net_build_min_s": round(min(times), 3),
            }
            if NETS[net] is not None:
                exe = target / outdir / CRATE_NAME
                _, out = runner.run([str(exe)], f"{net} ({profile}, forward)", False)
                row.update(parse_binary_output(out, net))
            results.append(row)
    return results


def print_report(args, info, toolchain, repo, results, runner, crate, target):
    print()
    print(f"Machine: nproc {info['nproc']}, CPU {info['cpu_model']}, avx512f "
          f"{'yes' if info['avx512f'] else 'no' if info['avx512f'] is False else 'unknown'}; "
          f"load average {info['loadavg_start'][0]:.2f} at start, "
          f"{info['loadavg_end'][0]:.2f} at end.")
    print(f"Toolchain: {toolchain['rustc']}; {toolchain['cargo']}.")
    dirty = repo["changed_files"]
    print(f"cnn: {repo['path']}"
          + (f" at {repo['head']}" if repo["head"] else " (not a git checkout's top)")
          + (f", {dirty} file(s) changed in the working tree (built as they are)" if dirty else "")
          + ".")
    print(f"User's Cargo.toml {'with' if args.profile_line else 'without'} "
          "[profile.dev.package.cnn-runtime] opt-level = 3, no debug assertions "
          "or overflow checks; "
          f"forward: fastest of {FORWARD_RUNS} after a warm-up. Wall-clock times.")
    print()
    print("| network | profile | deps build s | network incremental build s (min) | every build s | forward ms |")
    print("|---|---|---:|---:|---|---:|")
    for r in results:
        fwd = f"{r['forward_ms']:.4g}" if "forward_ms" in r else "–"
        each = ", ".join(f"{t:.1f}" for t in r["net_build_s"])
        print(f"| {r['net']} | {r['profile']} | {r['deps_build_s']:.1f} | "
              f"{r['net_build_min_s']:.1f} | {each} | {fwd} |")
    ratios = {}
    for net in args.nets:
        by = {r["profile"]: r for r in results if r["net"] == net and "forward_ms" in r}
        if "release" in by and "dev" in by and by["release"]["forward_ms"] > 0:
            ratios[net] = by["dev"]["forward_ms"] / by["release"]["forward_ms"]
    if ratios:
        print()
        for net, ratio in ratios.items():
            print(f"Debug/release forward time, {net}: {ratio:.1f}x")
    print()
    print("Commands (each in the user's crate):")
    print()
    print(f"    cd {shlex.quote(str(crate))}")
    print(f"    export CARGO_TARGET_DIR={shlex.quote(str(target))}")
    for entry in runner.log:
        kind = "timed" if entry["timed"] else "untimed"
        print(f"    {entry['command']:<48} # {entry['purpose']}: {entry['seconds']:.1f} s, {kind}")
    return ratios


def parse_args():
    p = argparse.ArgumentParser(
        description=__doc__,
        epilog="benches/README.md, section 'Build time of a user's crate', shows the "
               "commands and what each column means.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--net", default="seed",
                   help="networks, comma-separated, from: " + ", ".join(NETS)
                        + " (default: seed); each is measured in turn on the same "
                          "dependency build")
    p.add_argument("--profiles", default="release,dev",
                   help="cargo profiles, comma-separated: release, dev (alias debug); "
                        "default: release,dev")
    p.add_argument("--repeat", type=int, default=2, metavar="N",
                   help="timed incremental builds of each network per profile, each "
                        "from the empty variant's state (default: 2); the table shows "
                        "the minimum and lists every value")
    p.add_argument("--profile-line", action="store_true",
                   help="add '[profile.dev.package.cnn-runtime]' with opt-level = 3 and "
                        "no debug assertions or overflow checks to the user's "
                        "Cargo.toml (affects dev builds only)")
    p.add_argument("--dir", type=Path, metavar="DIR",
                   help="work in DIR (created if missing) and keep it; DIR/target is "
                        "deleted first so the dependency build is from scratch "
                        "(default: a temporary directory, deleted afterwards unless a step fails)")
    p.add_argument("--repo", type=Path, default=REPO, metavar="DIR",
                   help="the cnn checkout (workspace root) the user's crate depends on and "
                        "whose Cargo.lock it copies; default: the repository holding this "
                        "script, working tree as it is. For another commit: git archive "
                        "REV | tar -x -C DIR")
    p.add_argument("--json", type=Path, metavar="FILE",
                   help="also write the figures, machine, toolchain and commands as JSON")
    args = p.parse_args()

    args.nets = [n.strip() for n in args.net.split(",") if n.strip()]
    unknown = [n for n in args.nets if n not in NETS]
    if not args.nets or unknown:
        p.error(f"--net: unknown network(s) {', '.join(unknown) or '(none given)'}; "
                f"choose from {', '.join(NETS)}")
    if len(set(args.nets)) != len(args.nets):
        p.error("--net: a network is listed twice")
    profiles = []
    for name in (x.strip() for x in args.profiles.split(",") if x.strip()):
        name = {"debug": "dev"}.get(name, name)
        if name not in ("release", "dev"):
            p.error(f"--profiles: unknown profile {name!r}; choose from release, dev")
        if name not in profiles:
            profiles.append(name)
    if not profiles:
        p.error("--profiles: no profile given")
    args.profiles = profiles
    if args.repeat < 1:
        p.error("--repeat must be at least 1")
    args.repo = args.repo.resolve()
    return args


def main():
    args = parse_args()
    if shutil.which("cargo") is None:
        sys.exit("error: cargo is not on PATH")
    repo = args.repo
    if not (repo / "Cargo.toml").exists() or not (repo / "Cargo.lock").exists():
        sys.exit(f"error: {repo} has no Cargo.toml or Cargo.lock; --repo must be a checkout of cnn "
                 "(the workspace root)")

    if args.dir:
        work = args.dir.resolve()
        work.mkdir(parents=True, exist_ok=True)
        keep = True
    else:
        work = Path(tempfile.mkdtemp(prefix="cnn-build-time-"))
        keep = False
    crate, target = work / "user", work / "target"
    if target.exists():
        print(f"removing {target} so the dependency build starts from scratch", file=sys.stderr)
        shutil.rmtree(target)
    (crate / "src").mkdir(parents=True, exist_ok=True)
    (crate / "Cargo.toml").write_text(cargo_toml(repo, args.profile_line, under_other_manifest(crate)))
    shutil.copyfile(repo / "Cargo.lock", crate / "Cargo.lock")
    write_main(crate, "empty", "build_time.py: empty variant, before fetch")

    info = machine_info()
    repo_info = repo_state(repo)
    runner = Runner(crate, target)
    toolchain = {
        "rustc": capture(["rustc", "-V"], cwd=crate, env=runner.env) or "rustc: unknown",
        "cargo": capture(["cargo", "-V"], cwd=crate, env=runner.env) or "cargo: unknown",
    }
    print(f"user's crate: {crate}; target directory: {target}", file=sys.stderr)

    try:
        runner.run(["cargo", "fetch"], "fetch", False)
        results = measure(args, crate, target, runner)
    except StepFailed as e:
        print(f"\nerror: {e}", file=sys.stderr)
        print(f"\nThe crate is kept in {crate} (target directory {target}).", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print(f"\ninterrupted; the crate is in {crate}", file=sys.stderr)
        sys.exit(130)

    info["loadavg_end"] = os.getloadavg()
    ratios = print_report(args, info, toolchain, repo_info, results, runner, crate, target)

    if args.json:
        doc = {
            "machine": info, "toolchain": toolchain, "cnn": repo_info,
            "options": {"nets": args.nets, "profiles": args.profiles, "repeat": args.repeat,
                        "profile_line": args.profile_line, "forward_runs": FORWARD_RUNS},
            "crate": str(crate), "target_dir": str(target),
            "results": results,
            "debug_over_release_forward": {k: round(v, 3) for k, v in ratios.items()},
            "commands": runner.log,
        }
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"\nwrote {args.json}")

    if not keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
