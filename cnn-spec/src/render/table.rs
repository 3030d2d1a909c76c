//! The rows of the shape table, shared by the plain-text and Markdown
//! renderers: the input, then the network's structure walked in order, a
//! group or residual block as a row of its own with its entries nested
//! beneath it.

use super::activation_bytes;
use crate::model::{Entry, Network, Residual, Volume};

/// One row of the shape table.
pub(crate) struct Row {
    /// Nesting depth: 0 for the network's own entries.
    pub depth: usize,
    /// The tree drawn before the row's label in a terminal: `│  ├─ ` and
    /// kin, empty at depth 0.
    pub tree: String,
    /// What the row shows.
    pub label: Label,
    /// The output volume (a block's: its last entry's, or the add's).
    pub output: Volume,
    /// Learnable parameters (a block's: its layers' total); `None` where
    /// the row computes nothing of its own (the input, an add).
    pub params: Option<usize>,
    /// Multiply-accumulates per image, as `params`.
    pub macs: Option<u64>,
    /// Bytes of the row's output as f32, for the input and layers only (a
    /// block's output is its last layer's, counted there).
    pub activations: Option<u128>,
}

/// What a row shows in its `layer` column.
pub(crate) enum Label {
    /// The network's input.
    Input,
    /// A layer: its position in execution order, its name (`None` in a
    /// plain chain, where the name is the position, and for a residual's
    /// activation, named after its keyword) and its text.
    Layer {
        index: usize,
        name: Option<Name>,
        text: String,
    },
    /// A group: its name.
    Group { name: String },
    /// A residual block: its name and its head, `residual(relu)`.
    Residual { name: Name, text: String },
    /// A residual's shortcut branch.
    Shortcut,
    /// A residual's add: `main + x`, or `main + shortcut`.
    Add { shortcut: bool },
}

/// An entry's name with the width of the name slot of its sequence, so
/// that the text after the names lines up in a terminal.
pub(crate) struct Name {
    pub text: String,
    pub slot: usize,
}

impl Label {
    /// The label as a terminal shows it, after the tree.
    pub fn plain(&self) -> String {
        match self {
            Label::Input => "input".to_string(),
            Label::Layer {
                name: Some(name),
                text,
                ..
            }
            | Label::Residual { name, text } => {
                let fill = name.slot.saturating_sub(name.text.chars().count());
                format!("{}{}  {text}", name.text, " ".repeat(fill))
            }
            Label::Layer {
                name: None, text, ..
            } => text.clone(),
            Label::Group { name } => name.clone(),
            Label::Shortcut => "shortcut".to_string(),
            Label::Add { shortcut } => add_text(*shortcut).to_string(),
        }
    }
}

/// What a residual's add row says.
pub(crate) fn add_text(shortcut: bool) -> &'static str {
    if shortcut {
        "add (main + shortcut)"
    } else {
        "add (main + x)"
    }
}

/// The rows of `network`'s table: the input, then one row per layer, with
/// a row for each group, residual block, shortcut and add when the network
/// has them.
///
/// A plain chain of unnamed layers (every layer named by its position, as
/// in a PyTorch `nn.Sequential`) has no names: the `#` column says them.
pub(crate) fn rows(network: &Network) -> Vec<Row> {
    let mut rows = vec![Row {
        depth: 0,
        tree: String::new(),
        label: Label::Input,
        output: network.input,
        params: None,
        macs: None,
        activations: Some(activation_bytes(network.input)),
    }];
    let plain = network.body.iter().all(|entry| match entry {
        Entry::Layer(i) => network.layers[*i].path == i.to_string(),
        _ => false,
    });
    if plain {
        rows.extend(network.layers.iter().map(|layer| Row {
            depth: 0,
            tree: String::new(),
            label: Label::Layer {
                index: layer.index,
                name: None,
                text: layer.name.clone(),
            },
            output: layer.output,
            params: Some(layer.params),
            macs: Some(layer.macs),
            activations: Some(activation_bytes(layer.output)),
        }));
        return rows;
    }
    let nodes: Vec<Node> = network.body.iter().map(Node::Entry).collect();
    Walk {
        network,
        rows: &mut rows,
    }
    .sequence(&nodes, 0, "");
    rows
}

/// An item of a sequence in the table: an entry as written, or one of the
/// rows a residual block adds after its MAIN.
enum Node<'a> {
    Entry(&'a Entry),
    Shortcut(&'a Residual),
    Add(&'a Residual),
    Act(usize),
}

struct Walk<'n, 'r> {
    network: &'n Network,
    rows: &'r mut Vec<Row>,
}

impl<'n> Walk<'n, '_> {
    /// Pushes the rows of a sequence at `depth`; `guides` is the tree drawn
    /// for the levels above it.
    fn sequence(&mut self, nodes: &[Node<'n>], depth: usize, guides: &str) {
        // The name slot: as wide as the widest name of a row that has text
        // after its name.
        let slot = nodes
            .iter()
            .filter_map(|node| match node {
                Node::Entry(Entry::Layer(i)) => Some(local(&self.network.layers[*i].path)),
                Node::Entry(Entry::Residual(residual)) => Some(local(&residual.path)),
                _ => None,
            })
            .map(|name| name.chars().count())
            .max()
            .unwrap_or(0);
        let name = |path: &str| Name {
            text: local(path).to_string(),
            slot,
        };
        for (i, node) in nodes.iter().enumerate() {
            let last = i + 1 == nodes.len();
            let (tree, below) = if depth == 0 {
                (String::new(), String::new())
            } else if last {
                (format!("{guides}└─ "), format!("{guides}   "))
            } else {
                (format!("{guides}├─ "), format!("{guides}│  "))
            };
            match node {
                Node::Entry(Entry::Layer(i)) => {
                    let layer = &self.network.layers[*i];
                    self.layer(depth, tree, *i, Some(name(&layer.path)));
                }
                Node::Act(i) => self.layer(depth, tree, *i, None),
                Node::Entry(Entry::Group(block)) => {
                    self.rows.push(Row {
                        depth,
                        tree,
                        label: Label::Group {
                            name: local(&block.path).to_string(),
                        },
                        output: block.output,
                        params: Some(block.params),
                        macs: Some(block.macs),
                        activations: None,
                    });
                    let nodes: Vec<Node> = block.entries.iter().map(Node::Entry).collect();
                    self.sequence(&nodes, depth + 1, &below);
                }
                Node::Entry(Entry::Residual(residual)) => {
                    let head = match residual.act {
                        Some(act) => format!("residual({})", self.network.layers[act].name),
                        None => "residual".to_string(),
                    };
                    self.rows.push(Row {
                        depth,
                        tree,
                        label: Label::Residual {
                            name: name(&residual.path),
                            text: head,
                        },
                        output: residual.output,
                        params: Some(residual.params),
                        macs: Some(residual.macs),
                        activations: None,
                    });
                    let mut nodes: Vec<Node> = residual.main.iter().map(Node::Entry).collect();
                    if residual.shortcut.is_some() {
                        nodes.push(Node::Shortcut(residual));
                    }
                    nodes.push(Node::Add(residual));
                    nodes.extend(residual.act.map(Node::Act));
                    self.sequence(&nodes, depth + 1, &below);
                }
                Node::Shortcut(residual) => {
                    let entries = residual.shortcut.as_deref().unwrap_or_default();
                    let (params, macs) = self.totals(entries);
                    self.rows.push(Row {
                        depth,
                        tree,
                        label: Label::Shortcut,
                        output: residual.output,
                        params: Some(params),
                        macs: Some(macs),
                        activations: None,
                    });
                    let nodes: Vec<Node> = entries.iter().map(Node::Entry).collect();
                    self.sequence(&nodes, depth + 1, &below);
                }
                Node::Add(residual) => self.rows.push(Row {
                    depth,
                    tree,
                    label: Label::Add {
                        shortcut: residual.shortcut.is_some(),
                    },
                    output: residual.output,
                    params: None,
                    macs: None,
                    activations: None,
                }),
            }
        }
    }

    fn layer(&mut self, depth: usize, tree: String, index: usize, name: Option<Name>) {
        let layer = &self.network.layers[index];
        self.rows.push(Row {
            depth,
            tree,
            label: Label::Layer {
                index,
                name,
                text: layer.name.clone(),
            },
            output: layer.output,
            params: Some(layer.params),
            macs: Some(layer.macs),
            activations: Some(activation_bytes(layer.output)),
        });
    }

    /// Parameters and MACs of the layers of `entries`, at any depth.
    fn totals(&self, entries: &[Entry]) -> (usize, u64) {
        entries.iter().fold((0, 0), |(params, macs), entry| {
            let (p, m) = match entry {
                Entry::Layer(i) => {
                    let layer = &self.network.layers[*i];
                    (layer.params, layer.macs)
                }
                Entry::Group(block) => (block.params, block.macs),
                Entry::Residual(residual) => (residual.params, residual.macs),
            };
            (params.saturating_add(p), macs.saturating_add(m))
        })
    }
}

/// The last name of a dotted path: `layer2.0.downsample` → `downsample`.
pub(crate) fn local(path: &str) -> &str {
    path.rsplit('.').next().unwrap_or(path)
}
