#!/usr/bin/env python3
"""Writes tests/forward/cases.rs: random valid `network!` declarations for the
forward-pass test (tests/forward.rs), deterministic given SEED.

    python3 tests/gen_forward_cases.py

The random networks draw every layer kind and option of the DSL: convs
with pairs, `p = same`, strides, padding, dilation, groups (depthwise with
and without a channel multiplier), without bias and with `floor`; max and
average pools with padding and `floor`; `global_avgpool`; `bn` and
`bn(eps = …)` after a conv (folded), after a pool, an add, the input or
another step (run on its own); every activation, fused into the conv, fc,
batch norm or residual add before it or on its own; dropout, flatten, fc,
softmax; residual blocks with and without a shortcut and an activation,
nested in groups and in each other, their branches starting with a layer
that works in place; groups; names (identifiers and integers). Fixed
networks add the kernel paths that random sizes rarely reach, small
torchvision-like blocks, and the corners of the plan (a residual on the
input, a MAIN without a step, a network that ends in an add).

The script checks that coverage of the DSL and fails if something is
missing; where an activation has not met every step it fuses into, it adds
networks that fill the gap. Which kernel each conv gets is the runtime's
decision (`ConvKernel::choose`): tests/forward.rs checks, on the plans
themselves, that the cases reach every kernel and every fused step, so
the rule is not copied here. The file lives in a subdirectory so that
cargo does not build it as a test target of its own.
"""

import pathlib
import random
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import netgen  # noqa: E402

SEED = 20261128
RANDOM_CASES = 40
OUT = netgen.ROOT / "tests" / "forward" / "cases.rs"

# Random networks keep each conv under this many MACs, so that the
# reference stays fast; the fixed cases below have larger ones.
RANDOM_CONV_MAX_MACS = 400_000

# Every activation as the sampler writes it; the features name the word.
ACTIVATIONS = [
    "relu", "sigmoid", "tanh", "relu6", "leaky_relu", "leaky_relu(0.2)", "silu", "gelu",
    "hardswish", "leaky_relu(-0.5)", "leaky_relu(1.5)",
]
ACT_NAMES = sorted({a.split("(")[0] for a in ACTIVATIONS})

# The steps an activation fuses into (`last` of a Net), and "alone".
ACT_CONTEXTS = ["conv", "conv+bn", "fc", "bn", "add", "alone"]

# Names an entry may take besides integers; some are layer keywords.
NAMES = [
    "stem", "conv1", "conv2", "bn1", "bn2", "block", "layer1", "layer2", "downsample", "head",
    "features", "classifier", "proj", "expand", "dw", "conv", "bn", "fc", "pool", "relu",
]


class Net(netgen.Net):
    """A network under construction; covers stride and padding of convs and
    pool strides too. A `strict` one (the fixed cases) fails on a layer
    that does not fit rather than leaving it out."""

    strict = False

    def conv(self, *args, **kwargs):
        added = super().conv(*args, **kwargs)
        assert added or not self.strict, f"conv{args} does not fit {self.shape}"
        return added

    def pool(self, *args, **kwargs):
        added = super().pool(*args, **kwargs)
        assert added or not self.strict, f"{args[0]}{args[1:]} does not fit {self.shape}"
        return added

    def conv_features(self, f, s, p, same, macs):
        return [("conv:pointwise", f == (1, 1) and s == (1, 1) and p == (0, 0)),
                ("conv:stride", s != (1, 1)), ("conv:pad", p != (0, 0))]

    def pool_features(self, kind, f, st):
        return [(f"{kind}:stride", st != f)]


def act_context(feature):
    """(activation, context) of an `act:NAME:after-LAST` feature, `alone`
    for every step that takes no activation, or None."""
    parts = feature.split(":")
    if parts[0] != "act" or len(parts) != 3:
        return None
    _, name, after = parts
    last = after[len("after-"):]
    return name, last if last in netgen.FUSES_ACT else "alone"


class Sampler(netgen.Sampler):
    """Random entries of the forward test: layers, groups and residual
    blocks, convs capped in MACs."""

    POOL_F = [1, 2, 2, 3, 4]
    MAX_DEPTH = 2  # groups and residual blocks nested at most this deep

    def divisors(self, n):
        return [g for g in range(2, n + 1) if n % g == 0]

    def conv(self, net, keep=False):
        """Appends a random conv, one that keeps the volume with `keep`;
        returns whether it found one that fits."""
        rng = self.rng
        c, h, w = net.shape
        for _ in range(40):
            r = rng.random()
            if c > 1 and r < 0.2:  # depthwise, maybe with a multiplier
                g = c
                k = c * (1 if keep else rng.choice([1, 1, 2]))
            elif c > 1 and r < 0.35:  # grouped
                g = rng.choice(self.divisors(c))
                k = g * rng.randint(1, max(1, 12 // g))
            else:
                g, k = 1, rng.randint(1, 12)
            if keep:
                k = c
            d = self.pair([2, 3]) if rng.random() < 0.2 else (1, 1)
            if keep:
                f = self.pair([1, 3, 3, 5])
                s = (1, 1)
            else:
                f = self.pair([1, 1, 2, 3, 3, 4, 5])
                s = self.pair([1, 1, 1, 2, 3])
            even = all(di * (fi - 1) % 2 == 0 for fi, di in zip(f, d))
            same = s == (1, 1) and even and (keep or rng.random() < 0.3)
            if keep and not same:
                continue
            extent = [di * (fi - 1) + 1 for fi, di in zip(f, d)]
            p = (0, 0) if same else (rng.randint(0, extent[0] - 1), rng.randint(0, extent[1] - 1))
            if rng.random() < 0.4 and not same:
                p = (p[0], p[0])
            floor = s != (1, 1) and rng.random() < 0.35
            oh = netgen.window_out(h, f[0], s[0], p[0], d[0], floor) if not same else h
            ow = netgen.window_out(w, f[1], s[1], p[1], d[1], floor) if not same else w
            if oh is None or ow is None:
                continue
            if k * oh * ow * (c // g) * f[0] * f[1] > RANDOM_CONV_MAX_MACS:
                continue
            bias = rng.random() > 0.3
            return net.conv(k, f, s, p, same, d, g, bias, floor)
        return False

    def pool(self, net, kind, keep=False):
        """Appends a random `kind` pool, one that keeps the volume with
        `keep`; returns whether it found one that fits."""
        rng = self.rng
        for _ in range(self.POOL_TRIES):
            if keep:
                f = self.pair([1, 3, 3, 5])
                if net.pool(kind, f, (1, 1), (f[0] // 2, f[1] // 2)):
                    return True
                continue
            f = self.pair(self.POOL_F)
            s = None if rng.random() < self.POOL_DEFAULT_S else self.pair(self.POOL_S)
            p = (0, 0)
            if rng.random() < 0.35:
                p = (rng.randint(0, f[0] // 2), rng.randint(0, f[1] // 2))
            floor = rng.random() < 0.3
            if net.pool(kind, f, s, p, floor):
                return True
        return False

    def activation(self, net):
        net.plain(self.rng.choice(ACTIVATIONS))

    def bn(self, net):
        net.bn(self.rng.choice([None, None, None, "1e-3", "0.1"]))

    def maybe_name(self, net):
        """Names the next entry, now and then."""
        rng = self.rng
        if rng.random() > 0.2:
            return
        taken = net.taken()
        r = rng.random()
        if r < 0.3:
            name = str(net.position())  # the name it would have anyway
        elif r < 0.45:
            name = str(rng.randint(50, 99))
        else:
            name = rng.choice(NAMES)
        if name not in taken:
            net.name(name)

    def conv_block(self, net, keep=False):
        """A conv, then maybe a batch norm and an activation (or the
        activation first)."""
        if not self.conv(net, keep):
            return False
        r = self.rng.random()
        if r < 0.4:
            self.bn(net)
            if self.rng.random() < 0.6:
                self.activation(net)
        elif r < 0.75:
            self.activation(net)
            if self.rng.random() < 0.2:
                self.bn(net)
        return True

    def entry(self, net, depth, keep=False):
        """Appends a random entry at nesting `depth`, one that keeps the
        volume with `keep`; returns whether it added one."""
        rng = self.rng
        c, h, w = net.shape
        spatial = h > 1 or w > 1
        nest = depth < self.MAX_DEPTH
        kinds = {
            "conv": 6 if spatial else 1,
            "pool": 2 if spatial else 0,
            "avgpool": 2 if spatial else 0,
            "act": 2,
            "bn": 1.5,
            "residual": 2.5 if nest else 0,
            "group": 1 if nest else 0,
            "dropout": 0.5,
            "global_avgpool": 0 if keep or not spatial else 0.6,
            "flatten": 0 if keep else 0.5,
            "fc": 0 if keep else 1.5,
            "softmax": 0.4,
        }
        names = list(kinds)
        choice = rng.choices(names, weights=[kinds[k] for k in names])[0]
        state = net.snapshot()
        self.maybe_name(net)
        ok = True
        if choice == "conv":
            ok = self.conv_block(net, keep)
        elif choice in ("pool", "avgpool"):
            ok = self.pool(net, choice, keep)
        elif choice == "act":
            self.activation(net)
        elif choice == "bn":
            self.bn(net)
        elif choice == "residual":
            ok = self.residual(net, depth + 1, keep)
        elif choice == "group":
            ok = self.group(net, depth + 1, keep)
        elif choice == "dropout":
            net.plain(rng.choice(["dropout(0.5)", "dropout(0.0)", "dropout(0.25)"]), "dropout")
        elif choice == "global_avgpool":
            net.global_avgpool()
        elif choice == "flatten":
            net.plain("flatten")
        elif choice == "fc":
            net.fc(rng.randint(1, 24))
        else:
            net.plain("softmax")
        if not ok:
            net.restore(state)
        return ok

    def group(self, net, depth, keep=False):
        net.open_group()
        added = sum(self.entry(net, depth, keep) for _ in range(self.rng.randint(1, 3)))
        if not added:
            return False
        net.close_group()
        return True

    def residual(self, net, depth, keep=False):
        """A residual block: MAIN keeps the volume, or a shortcut matches it
        (the block keeps the volume with `keep`)."""
        rng = self.rng
        net.open_residual(rng.choice(ACTIVATIONS) if rng.random() < 0.45 else None)
        with_shortcut = rng.random() < 0.45
        main_keeps = keep or not with_shortcut
        added = sum(self.entry(net, depth, main_keeps) for _ in range(rng.randint(1, 3)))
        if not added:
            return False
        if with_shortcut:
            target = net.shape
            net.shortcut()
            if not self.shortcut_to(net, target):
                return False
        return net.close_residual()

    def shortcut_to(self, net, target):
        """A shortcut from the current volume to `target`: in-place layers
        if they are equal, else a conv (maybe in a group, with a batch norm)
        or a pool that gives it; returns whether one exists."""
        rng = self.rng
        c, h, w = net.shape
        k, th, tw = target
        options = []
        if net.shape == target:
            options.append("same")
        conv = self.window_to((h, w), (th, tw), [1, 2, 3], pool=False)
        if conv:
            options.append("conv")
        pool = self.window_to((h, w), (th, tw), [1, 2, 3], pool=True) if c == k else None
        if pool:
            options.append("pool")
        if not options:
            return False
        choice = rng.choice(options)
        grouped = rng.random() < 0.3
        if grouped:
            if rng.random() < 0.5:
                net.name("downsample")
            net.open_group()
        if choice == "same":
            for _ in range(rng.randint(1, 2)):
                if rng.random() < 0.5:
                    self.bn(net)
                else:
                    self.activation(net)
        elif choice == "conv":
            f, s, p, floor = rng.choice(conv)
            gs = [g for g in self.divisors(c) if k % g == 0]
            g = rng.choice(gs) if gs and rng.random() < 0.3 else 1
            net.conv(k, f, s, p, g=g, bias=rng.random() < 0.5, floor=floor)
            if rng.random() < 0.6:
                self.bn(net)
        else:
            f, s, p, floor = rng.choice(pool)
            net.pool(rng.choice(["pool", "avgpool"]), f, s, p, floor)
        if grouped:
            net.close_group()
        return True

    def window_to(self, size, target, fs, pool):
        """Every (f, s, p, floor) of windows f ∈ `fs` that take `size` to
        `target`, as pairs; pool padding at most f/2."""
        found = []
        for floor in (False, True):
            axes = []
            for n, t in zip(size, target):
                axes.append([
                    (f, s, p)
                    for f in fs
                    for s in (1, 2, 3, 4)
                    for p in range(0, (f // 2 if pool else 2) + 1)
                    if netgen.window_out(n, f, s, p, 1, floor) == t
                ])
            for a in axes[0]:
                for b in axes[1]:
                    found.append(((a[0], b[0]), (a[1], b[1]), (a[2], b[2]), floor))
        return found


def random_net(rng):
    net = Net(rng.randint(1, 8), rng.randint(3, 20), rng.randint(3, 20))
    sampler = Sampler(rng)
    for _ in range(rng.randint(2, 6)):
        sampler.entry(net, 0)
    if rng.random() < 0.4:  # a head
        if net.shape[1] > 1 or net.shape[2] > 1:
            if rng.random() < 0.6:
                net.global_avgpool()
            else:
                net.plain("flatten")
        if rng.random() < 0.3:
            net.plain("dropout(0.2)", "dropout")
        net.fc(rng.randint(2, 12))
        r = rng.random()
        if r < 0.3:
            net.plain("softmax")
        elif r < 0.6:
            sampler.activation(net)
    return net


class Fixed(Net):
    strict = True


def fixed_nets():
    """Hand-picked networks, each with what it is for: the kernel paths of
    `ConvKernel::choose` that random sizes rarely reach, the benchmark
    networks' small members, small torchvision-like blocks, and the corners
    of the plan."""
    nets = []

    def add(doc, net):
        nets.append((doc, net))

    n = Fixed(16, 24, 24)
    n.conv(32, (3, 3), same=True)
    n.plain("tanh")
    n.pool("pool", (2, 2))
    n.fc(10)
    add("A large 3×3 layer, `p = same`.", n)

    n = Fixed(3, 67, 67)
    n.conv(32, (7, 5), (2, 2), (3, 2))
    n.plain("relu")
    n.pool("pool", (2, 2), (2, 2))
    n.plain("flatten")
    n.fc(7)
    n.plain("softmax")
    add("A large strided layer with pairs.", n)

    n = Fixed(5, 41, 37)
    n.conv(24, (3, 5), (1, 2), (1, 2))
    n.plain("sigmoid")
    n.conv(20, (3, 3), (2, 1), (0, 1))
    n.pool("avgpool", (2, 3), (2, 2))
    add("Stride pairs.", n)

    n = Fixed(12, 22, 22)
    n.conv(48, (3, 3), (1, 1), (1, 1))
    n.plain("relu")
    n.conv(16, (1, 1))
    n.plain("sigmoid")
    add("A 3×3 layer, then a 1×1 on its output.", n)

    n = Fixed(64, 14, 14)
    n.conv(32, (1, 1))
    n.plain("relu")
    n.pool("avgpool", (2, 2))
    add("A large 1×1 layer.", n)

    n = Fixed(8, 9, 9)
    n.conv(4, (1, 1), (2, 2))
    n.conv(3, (1, 1), (1, 1), (1, 1))
    n.plain("tanh")
    add("1×1 with a stride, and 1×1 with padding: not pointwise.", n)

    n = Fixed(3, 32, 32)
    n.conv(10, (5, 5), (1, 1), (2, 2))
    n.plain("relu")
    n.pool("pool", (2, 2))
    n.fc(10)
    add("B1, the seed network.", n)

    n = Fixed(1, 28, 28)
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
    add("B2, LeNet-5.", n)

    n = Fixed(2, 5, 5)
    n.plain("relu")
    n.plain("softmax")
    n.plain("flatten")
    add("An activation first, softmax over a volume, flatten last.", n)

    n = Fixed(3, 4, 6)
    n.plain("flatten")
    add("Only a flatten.", n)

    n = Fixed(4, 6, 6)
    n.pool("pool", (2, 3), (1, 3))
    n.plain("relu")
    n.plain("tanh")
    n.fc(1)
    n.plain("sigmoid")
    add("Two activations in a row, fc(1), pool pairs.", n)

    # Kernel paths.
    n = Fixed(27, 11, 11)
    n.conv(24, (3, 3), bias=False)
    n.bn()
    n.plain("relu6")
    n.conv(20, (3, 3), d=(1, 2), g=2)
    add("Filters in the lanes: rows of 9, 243 taps, 24 filters; then grouped and dilated.", n)

    n = Fixed(54, 3, 13)
    n.conv(34, (3, 3), g=2, p=(0, 1))
    n.plain("gelu")
    n.conv(40, (3, 3), d=(1, 2), p=(1, 2), bias=False)
    n.bn("1e-3")
    add("Filters in the lanes per group (27 channels, 17 filters, rows of 13), and dilated.", n)

    n = Fixed(16, 2, 3)
    n.conv(8, (1, 1))
    n.plain("silu")
    n.conv(12, (1, 1), g=4, bias=False)
    n.bn()
    n.plain("hardswish")
    add("1×1 layers on 6 pixels, one grouped: a GEMV per pixel.", n)

    n = Fixed(8, 23, 21)
    n.conv(8, (3, 3), p=(1, 1), g=8, bias=False)
    n.bn()
    n.plain("relu6")
    n.conv(16, (3, 3), (2, 2), (1, 1), g=8, floor=True)
    n.plain("leaky_relu(0.2)")
    n.conv(16, (5, 3), same=True, d=(1, 2), g=16)
    n.conv(16, (3, 3), (2, 1), (2, 2), d=(2, 2), g=16, bias=False, floor=True)
    add("Depthwise: plain, with a multiplier and a stride, dilated, strided and dilated.", n)

    n = Fixed(32, 40, 37)
    n.conv(32, (3, 3), same=True, g=32, bias=False)
    n.bn()
    n.plain("silu")
    n.conv(24, (1, 1), bias=False)
    n.bn()
    add("Depthwise on rows of 37 pixels, then a pointwise projection.", n)

    n = Fixed(12, 9, 10)
    n.conv(18, (3, 3), same=True, g=3)
    n.plain("tanh")
    n.conv(6, (3, 3), (2, 2), g=6, floor=True)
    n.conv(4, (3, 3), g=2)
    n.plain("relu")
    add("Grouped convolutions: 3 groups of 4 channels, depthwise, then 2 groups on 4 "
        "pixels.", n)

    # torchvision-like blocks.
    n = Fixed(3, 32, 32)
    n.name("conv1")
    n.conv(16, (7, 7), (2, 2), (3, 3), bias=False, floor=True)
    n.name("bn1")
    n.bn()
    n.name("relu")
    n.plain("relu")
    n.name("maxpool")
    n.pool("pool", (3, 3), (2, 2), (1, 1), floor=True)
    n.name("layer1")
    n.open_group()
    for _ in range(2):
        n.open_residual("relu")
        for i in (1, 2):
            n.name(f"conv{i}")
            n.conv(16, (3, 3), p=(1, 1), bias=False)
            n.name(f"bn{i}")
            n.bn()
            if i == 1:
                n.name("relu")
                n.plain("relu")
        n.close_residual()
    n.close_group()
    n.name("layer2")
    n.open_group()
    n.open_residual("relu")
    n.name("conv1")
    n.conv(32, (3, 3), (2, 2), (1, 1), bias=False, floor=True)
    n.name("bn1")
    n.bn()
    n.name("relu")
    n.plain("relu")
    n.name("conv2")
    n.conv(32, (3, 3), p=(1, 1), bias=False)
    n.name("bn2")
    n.bn()
    n.shortcut()
    n.name("downsample")
    n.open_group()
    n.conv(32, (1, 1), (2, 2), bias=False, floor=True)
    n.bn()
    n.close_group()
    n.close_residual()
    n.close_group()
    n.name("avgpool")
    n.global_avgpool()
    n.name("fc")
    n.fc(10)
    add("A small ResNet with torchvision's names.", n)

    n = Fixed(8, 12, 12)
    n.name("features")
    n.open_group()
    n.name("0")
    n.open_group()
    n.conv(16, (3, 3), (2, 2), (1, 1), bias=False, floor=True)
    n.bn()
    n.plain("relu6")
    n.close_group()
    for expand, stride in ((2, 1), (3, 2)):
        if stride == 1:
            n.open_residual()
        else:
            n.open_group()
        n.name("conv")
        n.open_group()
        n.name("0")
        n.open_group()
        n.conv(16 * expand, (1, 1), bias=False)
        n.bn()
        n.plain("relu6")
        n.close_group()
        n.name("1")
        n.open_group()
        n.conv(16 * expand, (3, 3), (stride, stride), (1, 1), g=16 * expand, bias=False,
               floor=stride > 1)
        n.bn()
        n.plain("relu6")
        n.close_group()
        n.conv(16, (1, 1), bias=False)
        n.bn()
        n.close_group()
        if stride == 1:
            n.close_residual()
        else:
            n.close_group()
    n.close_group()
    n.name("classifier")
    n.open_group()
    n.global_avgpool()
    n.plain("dropout(0.2)", "dropout")
    n.fc(5)
    n.close_group()
    add("Small MobileNetV2 blocks with torchvision's names.", n)

    # Corners of the plan.
    n = Fixed(3, 5, 5)
    n.open_residual()
    n.plain("relu")
    n.close_residual()
    n.open_residual()
    n.plain("dropout(0.5)", "dropout")
    n.close_residual()
    add("A residual on the input whose MAIN is one activation, then one with no step "
        "(twice its input), last.", n)

    n = Fixed(4, 6, 7)
    n.open_residual("hardswish")
    n.bn()
    n.shortcut()
    n.bn("1e-3")
    n.plain("tanh")
    n.close_residual()
    n.bn()
    n.plain("gelu")
    n.open_residual()
    n.open_residual("silu")
    n.conv(4, (3, 3), same=True)
    n.close_residual()
    n.plain("leaky_relu")
    n.close_residual()
    n.plain("relu6")
    n.pool("avgpool", (3, 3), (2, 2), (1, 1), floor=True)
    n.bn()
    add("Both branches start in place on the input; a batch norm after an add; nested "
        "residuals; an activation after an activated add.", n)

    n = Fixed(6, 8, 8)
    n.conv(6, (3, 3), same=True)
    n.open_residual()
    n.plain("sigmoid")
    n.conv(6, (1, 1))
    n.shortcut()
    n.pool("pool", (3, 3), (1, 1), (1, 1))
    n.close_residual()
    n.global_avgpool()
    n.bn()
    n.plain("relu")
    n.open_residual("relu")
    n.plain("flatten")
    n.fc(6)
    n.plain("gelu")
    n.fc(6)
    n.close_residual()
    n.fc(3)
    n.plain("softmax")
    add("A residual on a conv's output (kept for the add), a batch norm on a global "
        "average pool, a residual of fc layers, a batched tail.", n)

    n = Fixed(3, 4, 4)
    n.conv(5, (3, 3))
    n.plain("flatten")
    n.bn()
    n.plain("silu")
    add("A batch norm of 20 channels after a conv of 5 filters and a flatten.", n)

    n = Fixed(5, 9, 9)
    n.conv(7, (3, 3), bias=False)
    n.plain("dropout(0.3)", "dropout")
    n.bn()
    n.plain("relu")
    n.bn()
    n.fc(6)
    n.bn()
    n.plain("tanh")
    add("A batch norm folded through a dropout, one after it, one after an fc.", n)
    return nets


def fill_activations(nets):
    """Networks that give each activation the contexts the others missed:
    after a conv, a conv and its batch norm, an fc, a batch norm on its
    own, a residual add, and on its own."""
    covered = {act_context(f) for n in nets for f in n.features} - {None}
    missing = {(a, ctx) for a in ACT_NAMES for ctx in ACT_CONTEXTS} - covered
    written = {a.split("(")[0]: a for a in reversed(ACTIVATIONS)}
    out = []
    for ctx in ACT_CONTEXTS:
        acts = [written[a] for a in ACT_NAMES if (a, ctx) in missing]
        if not acts:
            continue
        n = Fixed(3, 6, 5)
        for act in acts:
            if ctx in ("conv", "conv+bn"):
                n.conv(3, (3, 3), same=True)
                if ctx == "conv+bn":
                    n.bn()
            elif ctx == "fc":
                n.fc(7)
            elif ctx == "bn":
                n.bn()
            elif ctx == "add":
                n.open_residual()
                n.conv(n.shape[0], (1, 1))
                n.close_residual()
            else:
                n.plain("dropout(0.1)", "dropout")
            n.plain(act)
        out.append((f"Every activation the random networks missed after {ctx}.", n))
    return out


REQUIRED = {
    "conv:pointwise", "conv:pair-f", "conv:pair-s", "conv:pair-p", "conv:same", "conv:stride",
    "conv:pad", "conv:same-dilated", "conv:dilated", "conv:pair-d", "conv:grouped",
    "conv:depthwise", "conv:depthwise-multiplier", "conv:no-bias", "conv:floor",
    "conv:floor-drops",
    "pool", "pool:pair", "pool:stride", "pool:pad", "pool:pair-p", "pool:floor",
    "pool:floor-drops", "avgpool", "avgpool:pair", "avgpool:stride", "avgpool:pad",
    "avgpool:pair-p", "avgpool:floor", "avgpool:floor-drops", "global_avgpool",
    "bn", "bn:eps", "bn:after-conv", "bn:after-input", "bn:after-pool", "bn:after-add",
    "bn:after-fork", "bn:after-fc", "bn:after-gap", "bn:after-fused", "bn:after-conv+bn",
    "flatten", "fc", "softmax", "dropout",
    "residual:identity", "residual:shortcut", "residual:act", "residual:nested-in-group",
    "residual:nested-in-residual", "residual:named", "group", "group:nested-in-group",
    "group:nested-in-residual", "group:named",
    "name:int", "name:ident", "name:own-position",
    "act:after-fork", "conv:then-flatten-bn",
}


def main():
    rng = random.Random(SEED)
    nets = [("random", random_net(rng)) for _ in range(RANDOM_CASES)]
    nets += fixed_nets()
    nets += fill_activations([n for _, n in nets])
    covered = set().union(*(n.features for _, n in nets))
    missing = REQUIRED - covered
    acts = {act_context(f) for f in covered} - {None}
    missing |= {f"{a} after {ctx}" for a in ACT_NAMES for ctx in ACT_CONTEXTS
                if (a, ctx) not in acts}
    if missing:
        sys.exit(f"cases miss {sorted(missing)}; change SEED or the fixed cases")

    seeds = [rng.getrandbits(63) for _ in nets]
    cases = [
        (f"Case {i}: {doc} {n.params} parameters.", n, seed)
        for i, ((doc, n), seed) in enumerate(zip(nets, seeds))
    ]
    extra = [
        "",
        "/// Every case's model, for the coverage test.",
        f"pub const MODELS: [&cnn_runtime::Model; {len(cases)}] = [",
    ]
    extra += [f"    <Case{i:02} as cnn::Network>::MODEL," for i in range(len(cases))]
    extra.append("];")
    netgen.write_cases(OUT, "tests/gen_forward_cases.py", SEED, cases, extra)
    print(f"wrote {OUT.relative_to(netgen.ROOT)}: {len(nets)} networks, covering {len(covered)} features")


if __name__ == "__main__":
    main()
