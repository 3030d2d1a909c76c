"""Shared code of the test-case generators tests/gen_forward_cases.py and
tests/gen_gradcheck_cases.py.

`Net` builds a `network!` declaration entry by entry (layers, groups,
residual blocks, names), tracking its shape, its parameter count and the
features it covers; `Sampler` draws random layers onto one; `write_cases`
writes the generated Rust file. Each script subclasses `Net` for the
features it checks and `Sampler` for its ranges and its convs.
"""

import copy
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
"""The repository's root."""


def fmt_pair(p):
    """DSL text of an (h, w) pair: `3` if both are equal, else `(3, 5)`."""
    return str(p[0]) if p[0] == p[1] else f"({p[0]}, {p[1]})"


def window_out(n, f, s, p, d=1, floor=False):
    """Output length of a window f with dilation d, stride s and padding p
    over length n; None if the window does not fit the padded input, or
    unless `floor`, if the windows do not tile it exactly."""
    span = n + 2 * p - (d * (f - 1) + 1)
    if span < 0 or (span % s and not floor):
        return None
    return span // s + 1


# Where the value a new layer reads comes from, as far as fusion goes (see
# `plan::fuse` in cnn-spec): the step before it, if it can take a batch
# norm or an activation, or something that cannot.
FUSES_BN = {"conv"}
FUSES_ACT = {"conv", "conv+bn", "fc", "bn", "add"}


class _Block:
    """An open sequence: the network's body, a group or a residual block.
    A residual's MAIN and shortcut are two lists of entries that share one
    sequence of names."""

    def __init__(self, kind, shape, name=None, act=None):
        self.kind = kind
        self.input = shape
        self.name = name
        self.act = act
        self.parts = [[]]
        self.taken = []
        self.main_out = None


class Net:
    """A network under construction: its entries as DSL text, its shape
    (c, h, w), its parameter count and the set of features it covers.

    `layers` lists the leaf layers' text in order. Groups and residual
    blocks are opened and closed around the entries they hold; `name`
    names the next entry. `last` says what the step before the next layer
    is, for the fusion features: one of FUSES_ACT, or "input", "fork" (the
    start of a residual branch), "pool", "gap", "act", "softmax", "fused"
    (a step that already took an activation).

    Subclasses add features of their own by overriding `conv_features` and
    `pool_features`, which return (name, covered) pairs.
    """

    def __init__(self, c, h, w):
        self.input = (c, h, w)
        self.shape = (c, h, w)
        self.layers = []
        self.features = set()
        self.params = 0
        self.last = "input"
        self._blocks = [_Block("body", self.shape)]
        self._name = None

    # Structure.

    def snapshot(self):
        """The state, for `restore` when a random block does not fit."""
        return copy.deepcopy(self.__dict__)

    def restore(self, state):
        self.__dict__ = state

    def depth(self):
        """How many groups and residual blocks are open."""
        return len(self._blocks) - 1

    def name(self, name):
        """Names the next entry (a layer, group or residual block)."""
        block = self._blocks[-1]
        assert name not in block.taken and self._name is None
        self._name = str(name)

    def position(self):
        """The position the next entry takes in its sequence."""
        return len(self._blocks[-1].taken)

    def taken(self):
        """The names the current sequence has given (positions included)."""
        return list(self._blocks[-1].taken)

    def _entry(self, text):
        block = self._blocks[-1]
        name, self._name = self._name, None
        if name is None and str(len(block.taken)) in block.taken:
            # An earlier entry took this position as its name.
            name = f"n{len(block.taken)}"
            while name in block.taken:
                name += "_"
        if name is not None:
            self.features.add("name:int" if name.isdigit() else "name:ident")
            if name == str(len(block.taken)):
                self.features.add("name:own-position")
            text = f"{name}: {text}"
        block.taken.append(name if name is not None else str(len(block.taken)))
        block.parts[-1].append(text)

    def _open(self, kind, act=None):
        block = _Block(kind, self.shape, self._name, act)
        self._name = None
        if self.depth() > 0:
            self.features.add(f"{kind}:nested-in-{self._blocks[-1].kind}")
        if block.name is not None:
            self.features.add(f"{kind}:named")
        self._blocks.append(block)

    def open_group(self):
        """Opens a group `{ … }`."""
        self._open("group")

    def close_group(self):
        """Closes the innermost group, which must hold an entry."""
        block = self._blocks.pop()
        assert block.kind == "group" and block.parts[0]
        self._name = block.name
        self.features.add("group")
        self._entry("{ " + " ".join(block.parts[0]) + " }")

    def open_residual(self, act=None):
        """Opens `residual { … }`, or `residual(act) { … }`."""
        self._open("residual", act)
        self.last = "fork"

    def shortcut(self):
        """Ends MAIN of the innermost residual block and starts its shortcut."""
        block = self._blocks[-1]
        assert block.kind == "residual" and len(block.parts) == 1 and block.parts[0]
        block.main_out = self.shape
        block.parts.append([])
        self.shape = block.input
        self.last = "fork"

    def close_residual(self):
        """Closes the innermost residual block; returns False, leaving the
        network in a state to `restore`, if its volumes do not fit."""
        block = self._blocks[-1]
        assert block.kind == "residual" and all(block.parts)
        main_out = block.main_out or self.shape
        if main_out != self.shape or (block.main_out is None and main_out != block.input):
            return False
        self._blocks.pop()
        text = "residual"
        if block.act:
            text += f"({block.act})"
        text += " { " + " ".join(block.parts[0]) + " }"
        if block.main_out is not None:
            text += " shortcut { " + " ".join(block.parts[1]) + " }"
            self.features.add("residual:shortcut")
        else:
            self.features.add("residual:identity")
        self._name = block.name
        self._entry(text)
        self.shape = main_out
        self.last = "add"
        if block.act:
            self.layers.append(block.act)
            self._act_features(block.act)
            self.features.add("residual:act")
        return True

    # Layers.

    def conv_features(self, f, s, p, same, macs):
        """Extra (feature, covered) pairs of a conv; `p` is the padding used."""
        return []

    def pool_features(self, kind, f, st):
        """Extra (feature, covered) pairs of a pool; `st` is the stride used."""
        return []

    def conv(self, k, f, s=(1, 1), p=(0, 0), same=False, d=(1, 1), g=1, bias=True, floor=False):
        """Appends `conv(k, f, s = s, p = p, d = d, g = g, bias = false,
        floor)` (or `p = same`), leaving out defaults; returns False,
        adding nothing, if the windows do not fit the input."""
        c, h, w = self.shape
        if c % g or k % g:
            return False
        if same:
            assert s == (1, 1) and all(di * (fi - 1) % 2 == 0 for fi, di in zip(f, d))
            p = (d[0] * (f[0] - 1) // 2, d[1] * (f[1] - 1) // 2)
        oh = window_out(h, f[0], s[0], p[0], d[0], floor)
        ow = window_out(w, f[1], s[1], p[1], d[1], floor)
        if oh is None or ow is None:
            return False
        args = [str(k), fmt_pair(f)]
        if s != (1, 1):
            args.append(f"s = {fmt_pair(s)}")
        if same:
            args.append("p = same")
        elif p != (0, 0):
            args.append(f"p = {fmt_pair(p)}")
        if d != (1, 1):
            args.append(f"d = {fmt_pair(d)}")
        if g != 1:
            args.append(f"g = {g}")
        if not bias:
            args.append("bias = false")
        if floor:
            args.append("floor")
        text = f"conv({', '.join(args)})"
        self.layers.append(text)
        self._entry(text)
        self.shape = (k, oh, ow)
        self.params += k * (c // g) * f[0] * f[1] + (k if bias else 0)
        macs = k * oh * ow * (c // g) * f[0] * f[1]
        exact = [window_out(n, fi, si, pi, di) for n, fi, si, pi, di in zip((h, w), f, s, p, d)]
        self.features.update(
            name
            for name, on in [
                ("conv:pair-f", f[0] != f[1]),
                ("conv:pair-s", s[0] != s[1]),
                ("conv:pair-p", p[0] != p[1] and not same),
                ("conv:same", same),
                ("conv:same-dilated", same and d != (1, 1)),
                ("conv:dilated", d != (1, 1)),
                ("conv:pair-d", d[0] != d[1]),
                ("conv:grouped", 1 < g < c),
                ("conv:depthwise", g == c > 1 and k == c),
                ("conv:depthwise-multiplier", g == c > 1 and k > c),
                ("conv:no-bias", not bias),
                ("conv:floor", floor),
                ("conv:floor-drops", floor and None in exact),
            ]
            + self.conv_features(f, s, p, same, macs)
            if on
        )
        self.last = "conv"
        return True

    def pool(self, kind, f, s=None, p=(0, 0), floor=False):
        """Appends `kind(f)`, `kind(f, s)`, with `p = p` and `floor` if
        given (kind: pool or avgpool); returns False, adding nothing, if
        the windows do not fit the input or the padding is over f/2."""
        c, h, w = self.shape
        st = s or f
        if p[0] > f[0] // 2 or p[1] > f[1] // 2:
            return False
        oh = window_out(h, f[0], st[0], p[0], 1, floor)
        ow = window_out(w, f[1], st[1], p[1], 1, floor)
        if oh is None or ow is None:
            return False
        args = [fmt_pair(f)] + ([fmt_pair(s)] if s else [])
        if p != (0, 0):
            args.append(f"p = {fmt_pair(p)}")
        if floor:
            args.append("floor")
        text = f"{kind}({', '.join(args)})"
        self.layers.append(text)
        self._entry(text)
        self.shape = (c, oh, ow)
        self.features.add(kind)
        if f[0] != f[1] or st[0] != st[1]:
            self.features.add(f"{kind}:pair")
        exact = [window_out(n, fi, si, pi) for n, fi, si, pi in zip((h, w), f, st, p)]
        self.features.update(
            name
            for name, on in [
                (f"{kind}:pad", p != (0, 0)),
                (f"{kind}:pair-p", p[0] != p[1]),
                (f"{kind}:floor", floor),
                (f"{kind}:floor-drops", floor and None in exact),
            ]
            + self.pool_features(kind, f, st)
            if on
        )
        self.last = "pool"
        return True

    def global_avgpool(self):
        """Appends `global_avgpool`."""
        c, h, w = self.shape
        self.layers.append("global_avgpool")
        self._entry("global_avgpool")
        self.shape = (c, 1, 1)
        self.features.add("global_avgpool")
        self.last = "gap"

    def bn(self, eps=None):
        """Appends `bn`, or `bn(eps = eps)` with eps as written."""
        text = "bn" if eps is None else f"bn(eps = {eps})"
        self.layers.append(text)
        self._entry(text)
        self.params += 2 * self.shape[0]
        self.features.add("bn" if eps is None else "bn:eps")
        self.features.add(f"bn:after-{self.last}")
        if self.last == "conv" and "conv:then-flatten" in self.features:
            self.features.add("conv:then-flatten-bn")
        self.last = "conv+bn" if self.last in FUSES_BN else "bn"

    def fc(self, n):
        """Appends `fc(n)`."""
        c, h, w = self.shape
        self.layers.append(f"fc({n})")
        self._entry(f"fc({n})")
        self.params += n * c * h * w + n
        self.shape = (n, 1, 1)
        self.features.add("fc")
        self.last = "fc"

    def _act_features(self, text):
        name = text.split("(")[0]
        self.features.add(f"act:{name}:after-{self.last}")
        self.features.add(f"act:after-{self.last}")
        self.last = "fused" if self.last in FUSES_ACT else "act"

    def plain(self, name, feature=None):
        """Appends a layer without arguments (an activation, softmax or
        flatten) or with arguments that keep the shape (`leaky_relu(0.2)`,
        `dropout(0.5)`), covering `feature`, by default its name."""
        self.layers.append(name)
        self._entry(name)
        kind = name.split("(")[0]
        if kind == "flatten":
            c, h, w = self.shape
            self.shape = (c * h * w, 1, 1)
            if self.last == "conv" and (h, w) != (1, 1):
                # Still "conv" for fusion: the flatten is no step.
                self.features.add("conv:then-flatten")
        elif kind == "softmax":
            self.last = "softmax"
        elif kind != "dropout":
            self._act_features(name)
        self.features.add(feature or name)

    def dsl(self):
        """The declaration's body: `input(c, h, w)` and the entries."""
        assert self.depth() == 0, "a group or residual block is still open"
        return f"input({', '.join(map(str, self.input))}) " + " ".join(self._blocks[0].parts[0])


class Sampler:
    """Draws random layers onto a Net from `rng`. Subclasses set the ranges
    below and define `conv`."""

    PAIR_PROB = 0.3  # chance that `pair` draws two values rather than one
    POOL_TRIES = 20
    POOL_F = [2, 3]  # pool window sizes
    POOL_S = [1, 2, 3]  # explicit pool strides
    POOL_DEFAULT_S = 0.5  # chance that a pool keeps its default stride
    FC = (1, 40)  # range of fc widths
    ACTIVATIONS = ["relu", "sigmoid", "tanh"]
    LAYERS = ["conv", "pool", "avgpool", "act", "flatten", "fc", "softmax"]
    SOFTMAX_FEATURE = None  # feature of a softmax drawn by `layer`

    def __init__(self, rng):
        self.rng = rng

    def pair(self, values):
        """An (h, w) pair from `values`, square unless PAIR_PROB says not."""
        a = self.rng.choice(values)
        return (a, self.rng.choice(values)) if self.rng.random() < self.PAIR_PROB else (a, a)

    def conv(self, net):
        """Appends a random conv; returns whether it found one that fits."""
        raise NotImplementedError

    def pool(self, net, kind):
        """Appends a random `kind` pool; returns whether it found one that fits."""
        for _ in range(self.POOL_TRIES):
            f = self.pair(self.POOL_F)
            s = None if self.rng.random() < self.POOL_DEFAULT_S else self.pair(self.POOL_S)
            if net.pool(kind, f, s):
                return True
        return False

    def activation(self, net):
        """Appends a random activation."""
        net.plain(self.rng.choice(self.ACTIVATIONS))

    def fc(self, net):
        """Appends an fc of random width in FC."""
        net.fc(self.rng.randint(*self.FC))

    def layer(self, net, weights):
        """Appends a layer of a kind drawn from LAYERS with `weights`."""
        choice = self.rng.choices(self.LAYERS, weights=weights)[0]
        if choice == "conv":
            self.conv(net)
        elif choice in ("pool", "avgpool"):
            self.pool(net, choice)
        elif choice == "act":
            self.activation(net)
        elif choice == "flatten":
            net.plain("flatten")
        elif choice == "fc":
            self.fc(net)
        else:
            net.plain("softmax", self.SOFTMAX_FEATURE)


def write_cases(out, script, seed, cases, extra=()):
    """Writes the Rust cases file `out`: a `network!` block declaring Case00,
    Case01, … and a test per case calling `check`. `cases` holds (doc, net,
    arg) triples: the doc comment's text, the Net and check's argument;
    `extra` lines of Rust follow the tests."""
    lines = [
        f"// @generated by {script} (SEED = {seed}); do not edit.",
        f"// Regenerate with `python3 {script}`.",
        "",
        "use super::check;",
        "",
        "cnn::network! {",
    ]
    for i, (doc, net, _) in enumerate(cases):
        lines.append(f"    /// {doc}")
        lines.append(f"    pub struct Case{i:02} {{ {net.dsl()} }}")
    lines.append("}")
    for i, (_, _, arg) in enumerate(cases):
        lines += ["", "#[test]", f"fn case_{i:02}() {{", f"    check::<Case{i:02}>({arg});", "}"]
    lines += list(extra)
    out = pathlib.Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
