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

SEED = 20261128
CASES = 40
ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "gradcheck" / "cases.rs"
# Finite differences cost two forward passes per parameter: keep it small.
MAX_PARAMS = 400


def fmt_pair(p):
    return str(p[0]) if p[0] == p[1] else f"({p[0]}, {p[1]})"


def window_out(n, f, s, p):
    span = n + 2 * p - f
    if span < 0 or span % s:
        return None
    return span // s + 1


class Net:
    def __init__(self, c, h, w):
        self.input = (c, h, w)
        self.shape = (c, h, w)
        self.layers = []
        self.features = set()
        self.params = 0

    def conv(self, k, f, s, p, same):
        c, h, w = self.shape
        if same:
            p = ((f[0] - 1) // 2, (f[1] - 1) // 2)
        oh, ow = window_out(h, f[0], s[0], p[0]), window_out(w, f[1], s[1], p[1])
        if oh is None or ow is None:
            return False
        args = [str(k), fmt_pair(f)]
        if s != (1, 1):
            args.append(f"s = {fmt_pair(s)}")
        if same:
            args.append("p = same")
        elif p != (0, 0):
            args.append(f"p = {fmt_pair(p)}")
        self.layers.append(f"conv({', '.join(args)})")
        self.shape = (k, oh, ow)
        self.params += k * c * f[0] * f[1] + k
        for name, on in [
            ("conv", True),
            ("conv:1x1", f == (1, 1) and s == (1, 1) and p == (0, 0)),
            ("conv:pair-f", f[0] != f[1]),
            ("conv:pair-s", s[0] != s[1]),
            ("conv:pair-p", p[0] != p[1] and not same),
            ("conv:same", same),
            ("conv:s2", 2 in s),
            ("conv:s3", 3 in s),
            ("conv:p1", 1 in p and not same),
            ("conv:p2", 2 in p and not same),
        ]:
            if on:
                self.features.add(name)
        return True

    def pool(self, kind, f, s):
        c, h, w = self.shape
        st = s or f
        oh, ow = window_out(h, f[0], st[0], 0), window_out(w, f[1], st[1], 0)
        if oh is None or ow is None:
            return False
        args = [fmt_pair(f)] + ([fmt_pair(s)] if s else [])
        self.layers.append(f"{kind}({', '.join(args)})")
        self.shape = (c, oh, ow)
        self.features.add(kind)
        if f[0] != f[1] or st[0] != st[1]:
            self.features.add(f"{kind}:pair")
        if st[0] < f[0] or st[1] < f[1]:
            self.features.add(f"{kind}:overlap")
        if st[0] > f[0] or st[1] > f[1]:
            self.features.add(f"{kind}:gap")
        return True

    def fc(self, n):
        c, h, w = self.shape
        self.layers.append(f"fc({n})")
        self.params += n * c * h * w + n
        self.shape = (n, 1, 1)
        self.features.add("fc")

    def plain(self, name, feature=None):
        self.layers.append(name)
        if name == "flatten":
            c, h, w = self.shape
            self.shape = (c * h * w, 1, 1)
        self.features.add(feature or name)

    def dsl(self):
        return f"input({', '.join(map(str, self.input))}) " + " ".join(self.layers)


def maybe_pair(rng, values):
    a = rng.choice(values)
    return (a, rng.choice(values)) if rng.random() < 0.35 else (a, a)


def random_conv(rng, net):
    for _ in range(60):
        k = rng.randint(1, 4)
        f = maybe_pair(rng, [1, 2, 3, 3])
        s = maybe_pair(rng, [1, 1, 2, 3])
        same = s == (1, 1) and f[0] % 2 == 1 and f[1] % 2 == 1 and rng.random() < 0.25
        p = (rng.randint(0, 2), rng.randint(0, 2))
        if rng.random() < 0.5:
            p = (p[0], p[0])
        if net.conv(k, f, s, p, same):
            return True
    return False


def random_pool(rng, net, kind):
    for _ in range(30):
        f = maybe_pair(rng, [2, 2, 3])
        s = None if rng.random() < 0.4 else maybe_pair(rng, [1, 2, 3])
        if net.pool(kind, f, s):
            return True
    return False


def random_net(rng):
    net = Net(rng.randint(1, 3), rng.randint(4, 9), rng.randint(4, 9))
    # Mostly a conv first, so that every later layer's backward pass runs.
    first = rng.choices(["conv", "fc", "act", "pool"], weights=[8, 1, 1, 1])[0]
    if first == "conv":
        random_conv(rng, net)
    elif first == "fc":
        net.fc(rng.randint(2, 6))
    elif first == "act":
        net.plain(rng.choice(["relu", "sigmoid", "tanh"]))
        random_conv(rng, net)
    else:
        random_pool(rng, net, rng.choice(["pool", "avgpool"]))
        random_conv(rng, net)
    for _ in range(rng.randint(1, 4)):
        spatial = net.shape[1] > 1 or net.shape[2] > 1
        choice = rng.choices(
            ["conv", "pool", "avgpool", "act", "flatten", "fc", "softmax"],
            weights=[4 if spatial else 0, 3 if spatial else 0, 3 if spatial else 0, 4, 1, 1, 1],
        )[0]
        if choice == "conv":
            random_conv(rng, net)
        elif choice in ("pool", "avgpool"):
            random_pool(rng, net, choice)
        elif choice == "act":
            net.plain(rng.choice(["relu", "sigmoid", "tanh"]))
        elif choice == "flatten":
            net.plain("flatten")
        elif choice == "fc":
            net.fc(rng.randint(2, 6))
        else:
            net.plain("softmax", "softmax:middle")
    ending = rng.choices(["fc", "fc+softmax", "fc+act", "as is"], weights=[4, 3, 1, 1])[0]
    c, h, w = net.shape
    if ending == "as is" and c * h * w >= 2:
        net.features.add("end:" + net.layers[-1].split("(")[0])
    else:
        net.fc(rng.randint(2, 5))
        if ending == "fc+softmax":
            net.plain("softmax", "softmax:end")
        elif ending == "fc+act":
            net.plain(rng.choice(["relu", "sigmoid", "tanh"]))
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
    lines = [
        f"// @generated by tests/gen_gradcheck_cases.py (SEED = {SEED}); do not edit.",
        "// Regenerate with `python3 tests/gen_gradcheck_cases.py`.",
        "",
        "use super::check;",
        "",
        "cnn::network! {",
    ]
    for i, net in enumerate(nets):
        lines.append(f"    /// Case {i}: {net.params} parameters.")
        lines.append(f"    pub struct Case{i:02} {{ {net.dsl()} }}")
    lines.append("}")
    for i in range(len(nets)):
        lines += ["", "#[test]", f"fn case_{i:02}() {{", f"    check::<Case{i:02}>({i});", "}"]
    OUT.write_text("\n".join(lines) + "\n")
    print(f"wrote {len(nets)} cases to {OUT.relative_to(ROOT)}; covered: {', '.join(sorted(covered))}")


if __name__ == "__main__":
    main()
