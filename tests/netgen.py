"""Shared code of the test-case generators tests/gen_forward_cases.py and
tests/gen_gradcheck_cases.py.

`Net` builds a `network!` declaration layer by layer, tracking its shape, its
parameter count and the features it covers; `Sampler` draws random layers
onto one; `write_cases` writes the generated Rust file. Each script subclasses
`Net` for the features it checks and `Sampler` for its ranges and its convs.
"""

import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
"""The repository's root."""


def fmt_pair(p):
    """DSL text of an (h, w) pair: `3` if both are equal, else `(3, 5)`."""
    return str(p[0]) if p[0] == p[1] else f"({p[0]}, {p[1]})"


def window_out(n, f, s, p):
    """Output length of a window f with stride s and padding p over length n,
    or None unless the windows tile the padded input exactly."""
    span = n + 2 * p - f
    if span < 0 or span % s:
        return None
    return span // s + 1


class Net:
    """A network under construction: its layers as DSL text, its shape
    (c, h, w), its parameter count and the set of features it covers.

    Subclasses add features of their own by overriding `conv_features` and
    `pool_features`, which return (name, covered) pairs.
    """

    def __init__(self, c, h, w):
        self.input = (c, h, w)
        self.shape = (c, h, w)
        self.layers = []
        self.features = set()
        self.params = 0

    def conv_features(self, f, s, p, same, macs):
        """Extra (feature, covered) pairs of a conv; `p` is the padding used."""
        return []

    def pool_features(self, kind, f, st):
        """Extra (feature, covered) pairs of a pool; `st` is the stride used."""
        return []

    def conv(self, k, f, s=(1, 1), p=(0, 0), same=False):
        """Appends `conv(k, f, s = s, p = p)` (or `p = same`); returns False,
        adding nothing, if the windows do not tile the input."""
        c, h, w = self.shape
        if same:
            assert f[0] % 2 == 1 and f[1] % 2 == 1 and s == (1, 1)
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
        macs = k * oh * ow * c * f[0] * f[1]
        self.features.update(
            name
            for name, on in [
                ("conv:pair-f", f[0] != f[1]),
                ("conv:pair-s", s[0] != s[1]),
                ("conv:pair-p", p[0] != p[1] and not same),
                ("conv:same", same),
            ]
            + self.conv_features(f, s, p, same, macs)
            if on
        )
        return True

    def pool(self, kind, f, s=None):
        """Appends `kind(f)` or `kind(f, s)` (kind: pool or avgpool); returns
        False, adding nothing, if the windows do not tile the input."""
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
        self.features.update(name for name, on in self.pool_features(kind, f, st) if on)
        return True

    def fc(self, n):
        """Appends `fc(n)`."""
        c, h, w = self.shape
        self.layers.append(f"fc({n})")
        self.params += n * c * h * w + n
        self.shape = (n, 1, 1)
        self.features.add("fc")

    def plain(self, name, feature=None):
        """Appends a layer without arguments (an activation, softmax or
        flatten), covering `feature`, by default its name."""
        self.layers.append(name)
        if name == "flatten":
            c, h, w = self.shape
            self.shape = (c * h * w, 1, 1)
        self.features.add(feature or name)

    def dsl(self):
        """The declaration's body: `input(c, h, w)` and the layers."""
        return f"input({', '.join(map(str, self.input))}) " + " ".join(self.layers)


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


def write_cases(out, script, seed, cases):
    """Writes the Rust cases file `out`: a `network!` block declaring Case00,
    Case01, … and a test per case calling `check`. `cases` holds (doc, net,
    arg) triples: the doc comment's text, the Net and check's argument."""
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
    out = pathlib.Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
