#!/usr/bin/env python3
"""Writes tests/gradcheck/cases.rs: random small `network!` declarations for
the gradient check (tests/gradcheck.rs), deterministic given SEED.

    python3 tests/gen_gradcheck_cases.py

Each network is small enough for a full finite-difference check of every
parameter in f64. Together they cover every layer kind with a backward pass:
conv with strides 1 to 3, padding 0 to 2, pairs, `p = same` and 1×1; max and
average pooling with default, overlapping and gapped strides, and pairs;
relu, sigmoid, tanh; flatten; fc; softmax in the middle and at the end; and
networks whose output is a conv volume or an activation. The script checks
that coverage and fails if something is missing. The file lives in a
subdirectory so that cargo does not build it as a test target of its own.
"""

import pathlib
import random
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import netgen  # noqa: E402

OUT = netgen.ROOT / "tests" / "gradcheck" / "cases.rs"
SEED = 20261128
CASES = 40
# Finite differences cost two forward passes per parameter: keep it small.
MAX_PARAMS = 400


class Net(netgen.Net):
    """A network under construction; covers strides, paddings and pool overlaps."""

    def conv_features(self, f, s, p, same, macs):
        return [
            ("conv", True),
            ("conv:1x1", f == (1, 1) and s == (1, 1) and p == (0, 0)),
            ("conv:s2", 2 in s),
            ("conv:s3", 3 in s),
            ("conv:p1", 1 in p and not same),
            ("conv:p2", 2 in p and not same),
        ]

    def pool_features(self, kind, f, st):
        return [
            (f"{kind}:overlap", st[0] < f[0] or st[1] < f[1]),
            (f"{kind}:gap", st[0] > f[0] or st[1] > f[1]),
        ]


class Sampler(netgen.Sampler):
    """Random layers of the gradient check: few channels, small windows."""

    PAIR_PROB = 0.35
    POOL_TRIES = 30
    POOL_F = [2, 2, 3]
    POOL_DEFAULT_S = 0.4
    FC = (2, 6)
    SOFTMAX_FEATURE = "softmax:middle"

    def conv(self, net):
        rng = self.rng
        for _ in range(60):
            k = rng.randint(1, 4)
            f = self.pair([1, 2, 3, 3])
            s = self.pair([1, 1, 2, 3])
            same = s == (1, 1) and f[0] % 2 == 1 and f[1] % 2 == 1 and rng.random() < 0.25
            p = (rng.randint(0, 2), rng.randint(0, 2))
            if rng.random() < 0.5:
                p = (p[0], p[0])
            if net.conv(k, f, s, p, same):
                return True
        return False


def random_net(rng):
    net = Net(rng.randint(1, 3), rng.randint(4, 9), rng.randint(4, 9))
    sampler = Sampler(rng)
    # Mostly a conv first, so that every later layer's backward pass runs.
    first = rng.choices(["conv", "fc", "act", "pool"], weights=[8, 1, 1, 1])[0]
    if first == "conv":
        sampler.conv(net)
    elif first == "fc":
        sampler.fc(net)
    elif first == "act":
        sampler.activation(net)
        sampler.conv(net)
    else:
        sampler.pool(net, rng.choice(["pool", "avgpool"]))
        sampler.conv(net)
    for _ in range(rng.randint(1, 4)):
        spatial = net.shape[1] > 1 or net.shape[2] > 1
        sampler.layer(
            net, [4 if spatial else 0, 3 if spatial else 0, 3 if spatial else 0, 4, 1, 1, 1]
        )
    ending = rng.choices(["fc", "fc+softmax", "fc+act", "as is"], weights=[4, 3, 1, 1])[0]
    c, h, w = net.shape
    if ending == "as is" and c * h * w >= 2:
        net.features.add("end:" + net.layers[-1].split("(")[0])
    else:
        net.fc(rng.randint(2, 5))
        if ending == "fc+softmax":
            net.plain("softmax", "softmax:end")
        elif ending == "fc+act":
            sampler.activation(net)
            net.features.add("end:activation")
    return net


REQUIRED = {
    "conv", "conv:1x1", "conv:pair-f", "conv:pair-s", "conv:pair-p", "conv:same",
    "conv:s2", "conv:s3", "conv:p1", "conv:p2",
    "pool", "pool:pair", "pool:overlap", "pool:gap",
    "avgpool", "avgpool:pair", "avgpool:overlap", "avgpool:gap",
    "relu", "sigmoid", "tanh", "flatten", "fc", "softmax:middle", "softmax:end",
    "end:activation", "end:conv",
}


def main():
    rng = random.Random(SEED)
    nets = []
    while len(nets) < CASES:
        net = random_net(rng)
        if 0 < net.params <= MAX_PARAMS:
            nets.append(net)
    covered = set().union(*(n.features for n in nets))
    missing = REQUIRED - covered
    if missing:
        sys.exit(f"cases do not cover: {sorted(missing)}")
    cases = [(f"Case {i}: {net.params} parameters.", net, i) for i, net in enumerate(nets)]
    netgen.write_cases(OUT, "tests/gen_gradcheck_cases.py", SEED, cases)
    print(f"wrote {len(nets)} cases to {OUT.relative_to(netgen.ROOT)}; covered: {', '.join(sorted(covered))}")


if __name__ == "__main__":
    main()
