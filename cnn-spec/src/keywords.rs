//! The table of layer names and their arguments, in one place, with
//! suggestions for misspellings.

/// How a layer is written: its name, positional and named arguments.
#[derive(Debug)]
pub struct LayerSyntax {
    /// The layer's name.
    pub name: &'static str,
    /// Names of the required positional arguments, for messages.
    pub required: &'static [&'static str],
    /// Names of the optional positional arguments that may follow.
    pub optional: &'static [&'static str],
    /// Names of the accepted named arguments.
    pub named: &'static [&'static str],
    /// The ways the layer is written, for messages.
    pub usage: &'static [&'static str],
}

impl LayerSyntax {
    /// The ways the layer is written, each in backticks: `` `pool(F)` or `pool(F, S)` ``.
    pub fn usage_text(&self) -> String {
        let forms: Vec<String> = self.usage.iter().map(|u| format!("`{u}`")).collect();
        forms.join(" or ")
    }
}

/// Every layer of the DSL.
pub const LAYERS: &[LayerSyntax] = &[
    LayerSyntax {
        name: "input",
        required: &["C", "H", "W"],
        optional: &[],
        named: &[],
        usage: &["input(C, H, W)"],
    },
    LayerSyntax {
        name: "conv",
        required: &["K", "F"],
        optional: &["floor"],
        named: &["s", "p", "d", "g", "bias"],
        usage: &[
            "conv(K, F)",
            "conv(K, F, s = S, p = P)",
            "conv(K, F, s = S, p = P, d = D, g = G, bias = false, floor)",
        ],
    },
    LayerSyntax {
        name: "pool",
        required: &["F"],
        optional: &["S", "floor"],
        named: &["p"],
        usage: &["pool(F)", "pool(F, S)", "pool(F, S, p = P, floor)"],
    },
    LayerSyntax {
        name: "avgpool",
        required: &["F"],
        optional: &["S", "floor"],
        named: &["p"],
        usage: &["avgpool(F)", "avgpool(F, S)", "avgpool(F, S, p = P, floor)"],
    },
    LayerSyntax {
        name: "global_avgpool",
        required: &[],
        optional: &[],
        named: &[],
        usage: &["global_avgpool"],
    },
    LayerSyntax {
        name: "bn",
        required: &[],
        optional: &[],
        named: &["eps"],
        usage: &["bn", "bn(eps = E)"],
    },
    LayerSyntax {
        name: "relu",
        required: &[],
        optional: &[],
        named: &[],
        usage: &["relu"],
    },
    LayerSyntax {
        name: "relu6",
        required: &[],
        optional: &[],
        named: &[],
        usage: &["relu6"],
    },
    LayerSyntax {
        name: "leaky_relu",
        required: &[],
        optional: &["A"],
        named: &[],
        usage: &["leaky_relu", "leaky_relu(A)"],
    },
    LayerSyntax {
        name: "sigmoid",
        required: &[],
        optional: &[],
        named: &[],
        usage: &["sigmoid"],
    },
    LayerSyntax {
        name: "tanh",
        required: &[],
        optional: &[],
        named: &[],
        usage: &["tanh"],
    },
    LayerSyntax {
        name: "silu",
        required: &[],
        optional: &[],
        named: &[],
        usage: &["silu"],
    },
    LayerSyntax {
        name: "gelu",
        required: &[],
        optional: &[],
        named: &[],
        usage: &["gelu"],
    },
    LayerSyntax {
        name: "hardswish",
        required: &[],
        optional: &[],
        named: &[],
        usage: &["hardswish"],
    },
    LayerSyntax {
        name: "dropout",
        required: &["P"],
        optional: &[],
        named: &[],
        usage: &["dropout(P)"],
    },
    LayerSyntax {
        name: "flatten",
        required: &[],
        optional: &[],
        named: &[],
        usage: &["flatten"],
    },
    LayerSyntax {
        name: "fc",
        required: &["N"],
        optional: &[],
        named: &[],
        usage: &["fc(N)"],
    },
    LayerSyntax {
        name: "softmax",
        required: &[],
        optional: &[],
        named: &[],
        usage: &["softmax"],
    },
];

/// Words that open a block of layers rather than name a layer: a group is
/// `{ … }`, a residual block `residual { … }` with an optional
/// `shortcut { … }` after it.
pub const BLOCKS: &[&str] = &["residual", "shortcut"];

/// The flag that rounds a window's output down, as PyTorch does.
pub const FLOOR: &str = "floor";

/// Names other libraries use for the same layers, suggested first.
pub const ALIASES: &[(&str, &str)] = &[
    ("conv2d", "conv"),
    ("convolution", "conv"),
    ("maxpool", "pool"),
    ("max_pool", "pool"),
    ("maxpool2d", "pool"),
    ("avg_pool", "avgpool"),
    ("avgpool2d", "avgpool"),
    ("linear", "fc"),
    ("dense", "fc"),
    ("fully_connected", "fc"),
    ("batchnorm", "bn"),
    ("batchnorm2d", "bn"),
    ("batch_norm", "bn"),
    ("adaptiveavgpool2d", "global_avgpool"),
    ("global_avg_pool", "global_avgpool"),
    ("globalavgpool", "global_avgpool"),
    ("leakyrelu", "leaky_relu"),
    ("hardswish", "hardswish"),
    ("hard_swish", "hardswish"),
    ("swish", "silu"),
];

/// The layer a user most likely meant by an unknown name.
pub fn suggest_layer(word: &str) -> Option<&'static str> {
    let lower = word.to_lowercase();
    ALIASES
        .iter()
        .find(|(alias, _)| *alias == lower)
        .map(|&(_, name)| name)
        .or_else(|| nearest(word, LAYERS.iter().map(|layer| layer.name)))
}

/// The syntax of a known layer.
pub fn lookup(name: &str) -> Option<&'static LayerSyntax> {
    LAYERS.iter().find(|layer| layer.name == name)
}

/// The candidate closest to `word` by edit distance, when it is close enough
/// to be a plausible misspelling.
pub fn nearest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lower = word.to_lowercase();
    candidates
        .into_iter()
        .map(|candidate| (edit_distance(&lower, candidate), candidate))
        .filter(|&(distance, candidate)| distance <= (candidate.len().max(2) / 2).max(1) + 1)
        .min_by_key(|&(distance, _)| distance)
        .map(|(_, candidate)| candidate)
}

/// Optimal string alignment distance: insertions, deletions, substitutions
/// and transpositions of adjacent characters each cost one.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    for i in 0..=a.len() {
        d[i * width] = i;
    }
    for (j, cell) in d.iter_mut().enumerate().take(width) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[(i - 1) * width + j] + 1)
                .min(d[i * width + j - 1] + 1)
                .min(d[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[(i - 2) * width + j - 2] + 1);
            }
            d[i * width + j] = best;
        }
    }
    d[a.len() * width + b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names() {
        assert_eq!(suggest_layer("covn"), Some("conv"));
        assert_eq!(suggest_layer("Relu"), Some("relu"));
        assert_eq!(suggest_layer("MaxPool2d"), Some("pool"));
        assert_eq!(suggest_layer("Linear"), Some("fc"));
        assert_eq!(suggest_layer("sigmod"), Some("sigmoid"));
        assert_eq!(suggest_layer("BatchNorm2d"), Some("bn"));
        assert_eq!(suggest_layer("LeakyReLU"), Some("leaky_relu"));
        assert_eq!(suggest_layer("transformer"), None);
    }

    #[test]
    fn distance() {
        assert_eq!(edit_distance("conv", "conv"), 0);
        assert_eq!(edit_distance("covn", "conv"), 1);
        assert_eq!(edit_distance("", "fc"), 2);
    }
}
