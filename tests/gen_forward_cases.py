#!/usr/bin/env python3
"""Writes tests/forward/cases.rs: random valid `network!` declarations for the
forward-pass test (tests/forward.rs), deterministic given SEED.

    python3 tests/gen_forward_cases.py

The networks cover every layer kind, pairs, `p = same`, pooling windows and
strides, and convolutions on every kernel path of `conv_kernel` in
cnn-spec/src/plan.rs (pointwise for 1×1 stride 1 unpadded, direct below
DIRECT_CONV_MAX_MACS, read from that file, GEMM at or above it). The script
checks that coverage and fails if a path is missing. The file lives in a
subdirectory so that cargo does not build it as a test target of its own.
"""

import pathlib
import random
import re
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import netgen  # noqa: E402

SEED = 20261128
RANDOM_CASES = 32
OUT = netgen.ROOT / "tests" / "forward" / "cases.rs"

# Random networks keep each conv under this many MACs, so that the debug
# reference stays fast; the GEMM path is covered by the fixed cases below.
RANDOM_CONV_MAX_MACS = 400_000


def direct_conv_max_macs():
    plan = (netgen.ROOT / "cnn-spec" / "src" / "plan.rs").read_text()
    m = re.search(r"pub const DIRECT_CONV_MAX_MACS: u64 = ([0-9_]+);", plan)
    if not m:
        sys.exit("DIRECT_CONV_MAX_MACS not found in cnn-spec/src/plan.rs")
    return int(m.group(1).replace("_", ""))


DIRECT_MAX = direct_conv_max_macs()


class Net(netgen.Net):
    """A network under construction; covers the conv kernel paths too."""

    def conv_features(self, f, s, p, same, macs):
        if f == (1, 1) and s == (1, 1) and p == (0, 0):
            path = "conv:pointwise"
        elif macs < DIRECT_MAX:
            path = "conv:direct"
        else:
            path = "conv:gemm"
        return [(path, True), ("conv:stride", s != (1, 1)), ("conv:pad", p != (0, 0))]

    def pool_features(self, kind, f, st):
        return [(f"{kind}:stride", st != f)]


class Sampler(netgen.Sampler):
    """Random layers of the forward test: larger, convs capped in MACs."""

    POOL_F = [1, 2, 2, 3, 4]

    def conv(self, net):
        rng = self.rng
        c, h, w = net.shape
        for _ in range(40):
            k = rng.randint(1, 12)
            f = self.pair([1, 1, 2, 3, 3, 4, 5])
            s = self.pair([1, 1, 1, 2, 3])
            same = s == (1, 1) and f[0] % 2 == 1 and f[1] % 2 == 1 and rng.random() < 0.3
            p = (0, 0) if same else (rng.randint(0, f[0] - 1), rng.randint(0, f[1] - 1))
            if rng.random() < 0.4 and not same:
                p = (p[0], p[0])
            oh = netgen.window_out(h, f[0], s[0], p[0])
            ow = netgen.window_out(w, f[1], s[1], p[1])
            if same:
                oh, ow = h, w
            if oh is None or ow is None or k * oh * ow * c * f[0] * f[1] > RANDOM_CONV_MAX_MACS:
                continue
            return net.conv(k, f, s, p, same)
        return False


def random_net(rng):
    net = Net(rng.randint(1, 6), rng.randint(3, 24), rng.randint(3, 24))
    sampler = Sampler(rng)
    for _ in range(rng.randint(1, 6)):
        spatial = net.shape[1] > 1 or net.shape[2] > 1
        sampler.layer(
            net, [5 if spatial else 1, 2 if spatial else 0, 2 if spatial else 0, 3, 1, 2, 1]
        )
    return net


def fixed_nets():
    """Hand-picked shapes: the GEMM and pointwise paths, the benchmark
    networks' small members, and the corners of the plan."""
    nets = []

    n = Net(16, 24, 24)  # 32·24·24·16·9 = 2.65M MACs: GEMM, `same`
    n.conv(32, (3, 3), same=True)
    n.plain("tanh")
    n.pool("pool", (2, 2))
    n.fc(10)
    nets.append(n)

    n = Net(3, 67, 67)  # 32·34·34·3·35 = 3.9M MACs: GEMM with pairs
    n.conv(32, (7, 5), (2, 2), (3, 2))
    n.plain("relu")
    n.pool("pool", (3, 3), (2, 2))
    n.plain("flatten")
    n.fc(7)
    n.plain("softmax")
    nets.append(n)

    n = Net(5, 40, 36)  # 24·40·18·5·15 = 1.3M: direct, stride pair
    n.conv(24, (3, 5), (1, 2), (1, 2))
    n.plain("sigmoid")
    n.conv(20, (3, 3), (2, 1), (0, 1))  # 20·19·18·24·9 = 1.48M: direct
    n.pool("avgpool", (3, 2), (2, 2))
    nets.append(n)

    n = Net(12, 22, 22)  # GEMM at stride 1 then pointwise on the result
    n.conv(48, (3, 3), (1, 1), (1, 1))
    n.plain("relu")
    n.conv(16, (1, 1))
    n.plain("sigmoid")
    nets.append(n)

    n = Net(64, 14, 14)  # pointwise, large
    n.conv(32, (1, 1))
    n.plain("relu")
    n.pool("avgpool", (2, 2))
    nets.append(n)

    n = Net(8, 9, 9)  # 1×1 with stride, and 1×1 with padding: not pointwise
    n.conv(4, (1, 1), (2, 2))
    n.conv(3, (1, 1), (1, 1), (1, 1))
    n.plain("tanh")
    nets.append(n)

    n = Net(3, 32, 32)  # B1, the seed network
    n.conv(10, (5, 5), (1, 1), (2, 2))
    n.plain("relu")
    n.pool("pool", (2, 2))
    n.fc(10)
    nets.append(n)

    n = Net(1, 28, 28)  # B2, LeNet-5
    n.conv(6, (5, 5), (1, 1), (2, 2))
    n.plain("relu")
    n.pool("pool", (2, 2))
    n.conv(16, (5, 5))
    n.plain("relu")
    n.pool("pool", (2, 2))
    for k in (120, 84):
        n.fc(k)
        n.plain("relu")
    n.fc(10)
    nets.append(n)

    n = Net(2, 5, 5)  # activation first, softmax over a volume, flatten last
    n.plain("relu")
    n.plain("softmax")
    n.plain("flatten")
    nets.append(n)

    n = Net(3, 4, 6)  # only a flatten
    n.plain("flatten")
    nets.append(n)

    n = Net(4, 6, 6)  # two activations in a row, fc(1), pool pairs
    n.pool("pool", (2, 3), (1, 3))
    n.plain("relu")
    n.plain("tanh")
    n.fc(1)
    n.plain("sigmoid")
    nets.append(n)
    return nets


def main():
    rng = random.Random(SEED)
    nets = [random_net(rng) for _ in range(RANDOM_CASES)] + fixed_nets()
    required = {
        "conv:pointwise", "conv:direct", "conv:gemm", "conv:pair-f", "conv:pair-s",
        "conv:pair-p", "conv:same", "conv:stride", "conv:pad", "pool", "pool:pair",
        "pool:stride", "avgpool", "avgpool:pair", "avgpool:stride", "relu", "sigmoid",
        "tanh", "flatten", "fc", "softmax",
    }
    if DIRECT_MAX == 0:
        # The plan never picks the direct kernel; nothing can cover it.
        required.remove("conv:direct")
    covered = set().union(*(n.features for n in nets))
    missing = required - covered
    if missing:
        sys.exit(f"cases miss {sorted(missing)}; change SEED or the fixed cases")

    seeds = [rng.getrandbits(63) for _ in nets]
    cases = [(f"Case {i}.", n, seed) for i, (n, seed) in enumerate(zip(nets, seeds))]
    netgen.write_cases(OUT, "tests/gen_forward_cases.py", SEED, cases)
    print(f"wrote {OUT.relative_to(netgen.ROOT)}: {len(nets)} networks, covering {len(covered)} features")


if __name__ == "__main__":
    main()
