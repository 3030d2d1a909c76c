//! A picture of the network's volumes as SVG, the way lecture notes draw a
//! convolutional network: each volume a box, the layers between them named.

use std::fmt::Write;

use super::thousands;
use crate::model::{Entry, Layer, LayerKind, Network, Volume};

/// Widest picture, in pixels; longer networks wrap onto further rows.
const MAX_WIDTH: f64 = 860.0;
/// Space around the picture.
const MARGIN: f64 = 12.0;
/// Label font size and the advance of one monospace character.
const FONT: f64 = 12.0;
const CHAR: f64 = FONT * 0.62;
/// Height of one label line.
const LINE: f64 = 14.0;
/// Height range of a box's front face (from H) and of its receding side
/// (from W, before foreshortening).
const SPATIAL: (f64, f64) = (8.0, 110.0);
/// Range of a box's thickness (from C).
const CHANNELS: (f64, f64) = (4.0, 40.0);
/// Height range of a flat vector's bar (from its length C).
const VECTOR: (f64, f64) = (24.0, 110.0);
/// Thickness and receding side of a flat vector's bar.
const VECTOR_THICK: f64 = 8.0;
const VECTOR_RECEDE: f64 = 4.0;
/// Foreshortening of the receding side (drawn at 45° up and right).
const RECEDE: f64 = 0.35;
/// Longest line of a layer label, in characters, before it is broken.
const LABEL_CHARS: usize = 16;
/// Largest ratio of sizes drawn to a linear scale; beyond it, log scale.
const LINEAR_SPAN: f64 = 8.0;

/// The network as an SVG picture: every distinct volume a box (height from
/// H, receding side from W, thickness from C; log-scaled when the sizes
/// span more than a factor of 8) labelled C×H×W, and between two boxes the
/// layers that lead from one to the other. A flat vector (N×1×1) is drawn
/// as lecture notes draw it, an upright bar whose height follows N. Element-wise layers (`relu`,
/// `softmax`, …) keep the volume and are named with the layer before them
/// (`conv(6, 5) + relu`). Long networks wrap onto several rows.
///
/// The picture is a standalone SVG document with a caption (the network's
/// name and totals); text is drawn in `currentColor`, so it follows the
/// surrounding text's colour when inlined in HTML.
///
/// ```
/// let nets = cnn_spec::parse_networks("struct N { input(1, 28, 28) conv(6, 5) relu fc(10) }").unwrap();
/// let svg = cnn_spec::render::svg(&nets[0]);
/// assert!(svg.starts_with("<svg "));
/// assert!(svg.contains(">6×24×24</text>"));
/// ```
pub fn svg(network: &Network) -> String {
    draw(network, true)
}

/// The picture without its caption, for the generated rustdoc (where the
/// page already names the network).
pub(crate) fn svg_inline(network: &Network) -> String {
    draw(network, false)
}

/// The colour family of a volume, after the layer that made it.
#[derive(Clone, Copy)]
enum Shade {
    Input,
    Conv,
    Pool,
    Fc,
    Flatten,
    Elementwise,
}

impl Shade {
    /// Front, top and side face colours.
    fn faces(self) -> [&'static str; 3] {
        match self {
            Shade::Input => ["#b8c2cc", "#d5dce3", "#8d99a6"],
            Shade::Conv => ["#6b9bd1", "#a3c4e8", "#4a78ad"],
            Shade::Pool => ["#f0a35e", "#f7c89d", "#c97c3a"],
            Shade::Fc => ["#7dbb6e", "#b0d9a5", "#5a9850"],
            Shade::Flatten => ["#c39bc4", "#dcc4dd", "#9d739e"],
            Shade::Elementwise => ["#e6cf5c", "#f2e39b", "#bfa73a"],
        }
    }
}

/// One volume with the layers that lead into it.
struct Stage {
    volume: Volume,
    shade: Shade,
    /// The names of the layers from the previous volume to this one.
    layers: Vec<String>,
}

/// A box's drawn sizes.
#[derive(Clone, Copy)]
struct BoxSize {
    /// Front face width (from C).
    thick: f64,
    /// Front face height (from H).
    tall: f64,
    /// Offset of the receding side, right and up (from W).
    recede: f64,
}

impl BoxSize {
    fn width(self) -> f64 {
        self.thick + self.recede
    }
    fn height(self) -> f64 {
        self.tall + self.recede
    }
}

/// A stage placed in the picture.
struct Placed {
    row: usize,
    /// Left edge of the label gap before the box (`None` for the first box).
    gap_x: Option<f64>,
    /// Left edge of the box's column.
    x: f64,
    /// Width of the column (box or its C×H×W label, whichever is wider).
    column: f64,
    size: BoxSize,
    lines: Vec<String>,
}

/// A residual block, drawn as a bracket under the volumes from the one it
/// adds to (its input) to the one its add makes (its output).
struct Skip {
    /// The stages of the block's input and output volumes.
    from: usize,
    to: usize,
    /// How deep the residual blocks inside it nest (0 for none): its
    /// bracket is drawn below theirs.
    level: usize,
    /// What the bracket says: `layer2.0: residual(relu)`, then the layers
    /// of its shortcut.
    label: Vec<String>,
}

/// The volumes to draw and the residual blocks between them.
struct Picture {
    stages: Vec<Stage>,
    skips: Vec<Skip>,
    /// Whether the next layer starts a stage of its own even when it is
    /// element-wise: at a residual block's edges, so that no label mixes
    /// layers from inside and outside a block.
    sealed: bool,
}

impl Picture {
    fn new(network: &Network) -> Picture {
        let mut picture = Picture {
            stages: vec![Stage {
                volume: network.input,
                shade: Shade::Input,
                layers: Vec::new(),
            }],
            skips: Vec::new(),
            sealed: false,
        };
        picture.entries(&network.body, network);
        picture
    }

    fn layer(&mut self, layer: &Layer) {
        let shade = match layer.kind {
            LayerKind::Conv { .. } => Shade::Conv,
            LayerKind::MaxPool { .. } | LayerKind::AvgPool { .. } | LayerKind::GlobalAvgPool => {
                Shade::Pool
            }
            LayerKind::Fc { .. } => Shade::Fc,
            LayerKind::Flatten => Shade::Flatten,
            LayerKind::Activation(_)
            | LayerKind::Softmax
            | LayerKind::BatchNorm { .. }
            | LayerKind::Dropout { .. } => Shade::Elementwise,
        };
        let elementwise = matches!(shade, Shade::Elementwise);
        match self.stages.last_mut() {
            Some(last) if elementwise && !self.sealed && !last.layers.is_empty() => {
                last.layers.push(layer.name.clone());
            }
            _ => self.stages.push(Stage {
                volume: layer.output,
                shade,
                layers: vec![layer.name.clone()],
            }),
        }
        self.sealed = false;
    }

    /// Adds the stages of `entries` (a residual's shortcut is not a stage:
    /// its bracket names it) and returns how deep their residual blocks
    /// nest.
    fn entries(&mut self, entries: &[Entry], network: &Network) -> usize {
        let mut depth = 0;
        for entry in entries {
            match entry {
                Entry::Layer(i) => self.layer(&network.layers[*i]),
                Entry::Group(block) => depth = depth.max(self.entries(&block.entries, network)),
                Entry::Residual(residual) => {
                    let from = self.stages.len() - 1;
                    self.sealed = true;
                    let level = self.entries(&residual.main, network);
                    self.sealed = true;
                    let head = match residual.act {
                        Some(act) => format!("residual({})", network.layers[act].name),
                        None => "residual".to_string(),
                    };
                    let mut label = vec![format!("{}: {head}", residual.path)];
                    if let Some(shortcut) = &residual.shortcut {
                        let mut names = Vec::new();
                        leaf_names(shortcut, network, &mut names);
                        label.push(format!("shortcut: {}", names.join(" + ")));
                    }
                    self.skips.push(Skip {
                        from,
                        to: self.stages.len() - 1,
                        level,
                        label,
                    });
                    depth = depth.max(level + 1);
                }
            }
        }
        depth
    }
}

/// The names of the layers of `entries`, in execution order.
fn leaf_names(entries: &[Entry], network: &Network, names: &mut Vec<String>) {
    for entry in entries {
        match entry {
            Entry::Layer(i) => names.push(network.layers[*i].name.clone()),
            Entry::Group(block) => leaf_names(&block.entries, network, names),
            Entry::Residual(residual) => {
                leaf_names(&residual.main, network, names);
                if let Some(shortcut) = &residual.shortcut {
                    leaf_names(shortcut, network, names);
                }
                if let Some(act) = residual.act {
                    names.push(network.layers[act].name.clone());
                }
            }
        }
    }
}

/// Maps sizes in `[min, max]` to pixels in `range`: proportionally when the
/// sizes span at most [`LINEAR_SPAN`], beyond it by their logarithm (size 1
/// at the bottom of the range, `max` at the top).
struct Scale {
    min: f64,
    max: f64,
    range: (f64, f64),
}

impl Scale {
    fn new(values: impl Iterator<Item = usize>, range: (f64, f64)) -> Scale {
        let (min, max) = values.fold((f64::INFINITY, 0.0_f64), |(lo, hi), v| {
            let v = v.max(1) as f64;
            (lo.min(v), hi.max(v))
        });
        Scale {
            min: min.min(max).max(1.0),
            max: max.max(1.0),
            range,
        }
    }

    fn px(&self, value: usize) -> f64 {
        let (lo, hi) = self.range;
        let v = (value.max(1) as f64).clamp(self.min, self.max);
        if self.max <= self.min {
            (lo + hi) / 2.0
        } else if self.max / self.min <= LINEAR_SPAN {
            (hi * v / self.max).max(lo)
        } else {
            // Anchored at 1, not at the smallest size, so that the
            // smallest volume keeps a height in proportion to its log.
            lo + (hi - lo) * v.ln() / self.max.ln()
        }
    }
}

/// Breaks a layer name into lines of at most [`LABEL_CHARS`] characters
/// where it can, at the commas between its arguments.
fn label_lines(layers: &[String]) -> Vec<String> {
    let mut lines = Vec::new();
    for (i, name) in layers.iter().enumerate() {
        let prefix = if i == 0 { "" } else { "+ " };
        let mut line = String::from(prefix);
        for piece in split_top_level(name) {
            if line.chars().count() + piece.chars().count() > LABEL_CHARS
                && !line.trim().is_empty()
                && line != prefix
            {
                lines.push(line.trim_end().to_string());
                line = String::new();
            }
            line.push_str(&piece);
        }
        lines.push(line.trim_end().to_string());
    }
    lines
}

/// Splits `conv(10, (3, 4), s = 2)` after each comma outside the inner
/// parentheses: `conv(10, `, `(3, 4), `, `s = 2)`.
fn split_top_level(name: &str) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut piece = String::new();
    let mut depth = 0usize;
    let mut chars = name.chars().peekable();
    while let Some(ch) = chars.next() {
        piece.push(ch);
        match ch {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth <= 1 => {
                if chars.peek() == Some(&' ') {
                    chars.next();
                    piece.push(' ');
                }
                pieces.push(std::mem::take(&mut piece));
            }
            _ => {}
        }
    }
    if !piece.is_empty() {
        pieces.push(piece);
    }
    pieces
}

fn text_width(text: &str) -> f64 {
    text.chars().count() as f64 * CHAR
}

fn draw(network: &Network, caption: bool) -> String {
    let Picture { stages, skips, .. } = Picture::new(network);
    // Boxes and vectors have their own scales, so that the 1×1 of a vector
    // does not stretch the boxes' scale.
    let is_vector = |v: Volume| v.h == 1 && v.w == 1;
    let boxes = || stages.iter().filter(|s| !is_vector(s.volume));
    let spatial = Scale::new(boxes().flat_map(|s| [s.volume.h, s.volume.w]), SPATIAL);
    let channels = Scale::new(boxes().map(|s| s.volume.c), CHANNELS);
    let vectors = Scale::new(
        stages
            .iter()
            .filter(|s| is_vector(s.volume))
            .map(|s| s.volume.c),
        VECTOR,
    );

    // Place the boxes left to right, wrapping onto a new row (which starts
    // with the label gap) when the next gap and box would not fit.
    let mut placed: Vec<Placed> = Vec::with_capacity(stages.len());
    let (mut row, mut x, mut right) = (0, MARGIN, 0.0_f64);
    for stage in &stages {
        let size = if is_vector(stage.volume) {
            BoxSize {
                thick: VECTOR_THICK,
                tall: vectors.px(stage.volume.c),
                recede: VECTOR_RECEDE,
            }
        } else {
            BoxSize {
                thick: channels.px(stage.volume.c),
                tall: spatial.px(stage.volume.h),
                recede: spatial.px(stage.volume.w) * RECEDE,
            }
        };
        let column = size.width().max(text_width(&stage.volume.to_string()));
        let lines = label_lines(&stage.layers);
        let gap = if placed.is_empty() {
            0.0
        } else {
            let widest = lines.iter().map(|l| text_width(l)).fold(0.0, f64::max);
            widest.max(24.0) + 16.0
        };
        if !placed.is_empty() && x + gap + column > MAX_WIDTH - MARGIN {
            row += 1;
            x = MARGIN;
        }
        let gap_x = (!placed.is_empty()).then_some(x);
        placed.push(Placed {
            row,
            gap_x,
            x: x + gap,
            column,
            size,
            lines,
        });
        x += gap + column;
        right = right.max(x);
    }

    // Each row's extent above and below its centre line: boxes are centred
    // on it, layer labels sit above the arrow, C×H×W labels below the box,
    // and the brackets of residual blocks with their labels below those.
    let rows = row + 1;
    let mut above = vec![0.0_f64; rows];
    let mut below = vec![0.0_f64; rows];
    for p in &placed {
        let labels = p.lines.len() as f64 * LINE + 6.0;
        above[p.row] = above[p.row].max(p.size.height() / 2.0).max(labels);
        below[p.row] = below[p.row].max(p.size.height() / 2.0 + 6.0 + LINE);
    }
    let brackets = Brackets::new(&skips, &placed, rows, &mut right);
    let title_height = if caption { 2.0 * LINE + 4.0 } else { 0.0 };
    let mut centre = vec![0.0_f64; rows];
    let mut y = MARGIN + title_height;
    for r in 0..rows {
        centre[r] = y + above[r];
        y = centre[r] + below[r] + brackets.rows[r].height() + 2.0 * LINE;
    }
    let width = (right + MARGIN).ceil();
    let height = (y - 2.0 * LINE + MARGIN).ceil();

    let description = format!(
        "{}: {} → {}, {} parameters, {} multiply-accumulates per image",
        network.name,
        network.input,
        network.output(),
        thousands(network.params as u128),
        thousands(network.macs),
    );
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"{}\" style=\"max-width: 100%; height: auto;\">",
        escape(&description)
    );
    let _ = writeln!(out, "<title>{}</title>", escape(&description));
    let _ = writeln!(
        out,
        "<g font-family=\"ui-monospace, SFMono-Regular, Menlo, Consolas, 'DejaVu Sans Mono', monospace\" font-size=\"{FONT}\" fill=\"currentColor\">"
    );
    if caption {
        let _ = writeln!(
            out,
            "<text x=\"{MARGIN}\" y=\"{}\" font-size=\"{}\" font-weight=\"bold\">{}</text>",
            MARGIN + LINE,
            FONT + 2.0,
            escape(&network.name)
        );
        let _ = writeln!(
            out,
            "<text x=\"{MARGIN}\" y=\"{}\">{}</text>",
            MARGIN + 2.0 * LINE + 2.0,
            escape(&format!(
                "{} parameters, {} MACs per image",
                thousands(network.params as u128),
                thousands(network.macs)
            ))
        );
    }
    for (p, stage) in placed.iter().zip(&stages) {
        let cy = centre[p.row];
        if let Some(gap_x) = p.gap_x {
            arrow(&mut out, gap_x + 4.0, p.x - 4.0, cy);
            let mid = (gap_x + p.x) / 2.0;
            let first = cy - 6.0 - (p.lines.len() as f64 - 1.0) * LINE;
            for (i, line) in p.lines.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                    num(mid),
                    num(first + i as f64 * LINE),
                    escape(line)
                );
            }
        }
        let box_x = p.x + (p.column - p.size.width()) / 2.0;
        cuboid(&mut out, box_x, cy, p.size, stage.shade);
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            num(p.x + p.column / 2.0),
            num(cy + p.size.height() / 2.0 + 4.0 + LINE),
            escape(&stage.volume.to_string())
        );
    }
    brackets.draw(&mut out, &placed, &centre, &below);
    out.push_str("</g>\n</svg>");
    out
}

/// Extra depth below a row's C×H×W labels to its first bracket line, and
/// between the lines of nested blocks.
const BRACKET_DROP: f64 = 8.0;
const BRACKET_STEP: f64 = 6.0;
/// Shortest line of a bracket's label, in characters, before it is broken.
const BRACKET_CHARS: usize = 28;

/// One row's piece of a residual block's bracket: down from the block's
/// input volume (on its first row), along, and up into its output volume
/// (on its last row) with an arrowhead.
struct Segment {
    row: usize,
    level: usize,
    x0: f64,
    x1: f64,
    /// The stage the bracket leaves at `x0`, on the block's first row.
    from: Option<usize>,
    /// The stage the bracket enters at `x1`, on the block's last row.
    to: Option<usize>,
}

/// A bracket's label, under its longest segment, in one of its row's
/// lanes so that no two labels overlap.
struct BracketLabel {
    row: usize,
    lane: usize,
    x: f64,
    lines: Vec<String>,
}

/// What the brackets take of one row.
#[derive(Clone, Default)]
struct BracketRow {
    /// Whether a bracket passes through the row.
    used: bool,
    /// Deepest bracket level on the row.
    level: usize,
    /// Label lanes, each a list of the extents taken in it.
    lanes: Vec<Vec<(f64, f64)>>,
    /// Most lines of one label on the row.
    lines: usize,
}

impl BracketRow {
    /// Depth below the row's C×H×W labels.
    fn height(&self) -> f64 {
        if !self.used {
            return 0.0;
        }
        let labels = self.lanes.len() as f64 * self.lane_height();
        BRACKET_DROP + self.level as f64 * BRACKET_STEP + 4.0 + labels
    }

    fn lane_height(&self) -> f64 {
        self.lines as f64 * LINE + 4.0
    }
}

/// The residual blocks' brackets, laid out on the placed rows.
struct Brackets {
    segments: Vec<Segment>,
    labels: Vec<BracketLabel>,
    rows: Vec<BracketRow>,
}

impl Brackets {
    /// Lays out the brackets of `skips` under the stages `placed` on
    /// `rows` rows; `right` grows to the widest label.
    fn new(skips: &[Skip], placed: &[Placed], rows: usize, right: &mut f64) -> Brackets {
        let mut row_end = vec![MARGIN; rows];
        for p in placed {
            row_end[p.row] = row_end[p.row].max(p.x + p.column + 6.0);
        }
        let mut brackets = Brackets {
            segments: Vec::new(),
            labels: Vec::new(),
            rows: vec![BracketRow::default(); rows],
        };
        for skip in skips {
            let (Some(from), Some(to)) = (placed.get(skip.from), placed.get(skip.to)) else {
                continue;
            };
            if skip.to <= skip.from {
                continue;
            }
            // Off the box centres, so that the brackets of two blocks in a
            // row meet at their shared volume without touching.
            let x_from = from.x + from.column / 2.0 + 3.0;
            let x_to = to.x + to.column / 2.0 - 3.0;
            let first = brackets.segments.len();
            // `r` indexes two tables and names the segment's row.
            #[allow(clippy::needless_range_loop)]
            for r in from.row..=to.row {
                let row = &mut brackets.rows[r];
                row.used = true;
                row.level = row.level.max(skip.level);
                brackets.segments.push(Segment {
                    row: r,
                    level: skip.level,
                    x0: if r == from.row { x_from } else { MARGIN },
                    x1: if r == to.row { x_to } else { row_end[r] },
                    from: (r == from.row).then_some(skip.from),
                    to: (r == to.row).then_some(skip.to),
                });
            }
            // The label goes under the longest piece of the bracket.
            let Some(longest) = brackets.segments[first..]
                .iter()
                .max_by(|a, b| (a.x1 - a.x0).total_cmp(&(b.x1 - b.x0)))
            else {
                continue;
            };
            let chars = ((longest.x1 - longest.x0) / CHAR) as usize;
            let lines: Vec<String> = skip
                .label
                .iter()
                .flat_map(|line| wrap(line, chars.max(BRACKET_CHARS)))
                .collect();
            let width = lines.iter().map(|l| text_width(l)).fold(0.0, f64::max);
            let mid = (longest.x0 + longest.x1) / 2.0;
            let x = (mid - width / 2.0).clamp(MARGIN, (*right - width).max(MARGIN));
            *right = right.max(x + width);
            let row = &mut brackets.rows[longest.row];
            let extent = (x - CHAR, x + width + CHAR);
            let free =
                |lane: &Vec<(f64, f64)>| lane.iter().all(|&(a, b)| extent.1 <= a || b <= extent.0);
            let lane = match row.lanes.iter().position(free) {
                Some(lane) => lane,
                None => {
                    row.lanes.push(Vec::new());
                    row.lanes.len() - 1
                }
            };
            row.lanes[lane].push(extent);
            row.lines = row.lines.max(lines.len());
            brackets.labels.push(BracketLabel {
                row: longest.row,
                lane,
                x,
                lines,
            });
        }
        brackets
    }

    /// Draws the brackets and their labels; `below` is each row's depth
    /// under its centre line to the bottom of its C×H×W labels.
    fn draw(&self, out: &mut String, placed: &[Placed], centre: &[f64], below: &[f64]) {
        // Just under a stage's C×H×W label.
        let under = |i: usize| {
            let p = &placed[i];
            centre[p.row] + p.size.height() / 2.0 + 4.0 + LINE + 5.0
        };
        for segment in &self.segments {
            let y = centre[segment.row]
                + below[segment.row]
                + BRACKET_DROP
                + segment.level as f64 * BRACKET_STEP;
            let mut points = Vec::with_capacity(4);
            if let Some(from) = segment.from {
                points.push((segment.x0, under(from)));
            }
            points.push((segment.x0, y));
            points.push((segment.x1, y));
            if let Some(to) = segment.to {
                let tip = under(to);
                points.push((segment.x1, tip + 5.0));
                let _ = writeln!(
                    out,
                    "<polygon points=\"{},{} {},{} {},{}\"/>",
                    num(segment.x1),
                    num(tip),
                    num(segment.x1 - 3.5),
                    num(tip + 6.0),
                    num(segment.x1 + 3.5),
                    num(tip + 6.0),
                );
            }
            let points: Vec<String> = points
                .iter()
                .map(|&(x, y)| format!("{},{}", num(x), num(y)))
                .collect();
            let _ = writeln!(
                out,
                "<polyline points=\"{}\" fill=\"none\" stroke=\"currentColor\" stroke-width=\"1\"/>",
                points.join(" ")
            );
        }
        for label in &self.labels {
            let row = &self.rows[label.row];
            let top = centre[label.row]
                + below[label.row]
                + BRACKET_DROP
                + row.level as f64 * BRACKET_STEP
                + 4.0
                + label.lane as f64 * row.lane_height();
            for (i, line) in label.lines.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "<text x=\"{}\" y=\"{}\">{}</text>",
                    num(label.x),
                    num(top + (i + 1) as f64 * LINE - 2.0),
                    escape(line)
                );
            }
        }
    }
}

/// Breaks `text` into lines of at most `chars` characters where it can:
/// after the commas between a layer's arguments and before a ` + `.
fn wrap(text: &str, chars: usize) -> Vec<String> {
    let mut pieces = Vec::new();
    for piece in split_top_level(text) {
        let mut rest = piece.as_str();
        while let Some(at) = rest.find(" + ") {
            pieces.push(rest[..at + 1].to_string());
            rest = &rest[at + 1..];
        }
        pieces.push(rest.to_string());
    }
    let mut lines = Vec::new();
    let mut line = String::new();
    for piece in pieces {
        if !line.is_empty() && line.chars().count() + piece.trim_end().chars().count() > chars {
            lines.push(line.trim_end().to_string());
            line.clear();
        }
        line.push_str(&piece);
    }
    lines.push(line.trim_end().to_string());
    lines
}

/// A box in oblique projection whose bounding box is centred vertically on
/// `cy`, its left edge at `x`.
fn cuboid(out: &mut String, x: f64, cy: f64, size: BoxSize, shade: Shade) {
    let [front, top, side] = shade.faces();
    let BoxSize {
        thick,
        tall,
        recede,
    } = size;
    // Front face, lowered by half the receding offset so the whole box is
    // centred.
    let y0 = cy - size.height() / 2.0 + recede;
    let y1 = y0 + tall;
    let x1 = x + thick;
    let stroke = "stroke=\"#333\" stroke-width=\"0.8\" stroke-linejoin=\"round\"";
    let _ = writeln!(
        out,
        "<polygon points=\"{},{} {},{} {},{} {},{}\" fill=\"{top}\" {stroke}/>",
        num(x),
        num(y0),
        num(x1),
        num(y0),
        num(x1 + recede),
        num(y0 - recede),
        num(x + recede),
        num(y0 - recede),
    );
    let _ = writeln!(
        out,
        "<polygon points=\"{},{} {},{} {},{} {},{}\" fill=\"{side}\" {stroke}/>",
        num(x1),
        num(y0),
        num(x1 + recede),
        num(y0 - recede),
        num(x1 + recede),
        num(y1 - recede),
        num(x1),
        num(y1),
    );
    let _ = writeln!(
        out,
        "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{front}\" {stroke}/>",
        num(x),
        num(y0),
        num(thick),
        num(tall),
    );
}

/// A horizontal arrow from `x0` to `x1` at height `y`.
fn arrow(out: &mut String, x0: f64, x1: f64, y: f64) {
    let _ = writeln!(
        out,
        "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"currentColor\" stroke-width=\"1\"/>",
        num(x0),
        num(y),
        num(x1 - 5.0),
        num(y),
    );
    let _ = writeln!(
        out,
        "<polygon points=\"{},{} {},{} {},{}\"/>",
        num(x1),
        num(y),
        num(x1 - 6.0),
        num(y - 3.5),
        num(x1 - 6.0),
        num(y + 3.5),
    );
}

/// A coordinate with at most one decimal, without a trailing `.0`.
fn num(value: f64) -> String {
    let rounded = (value * 10.0).round() / 10.0;
    if rounded.fract() == 0.0 {
        format!("{rounded:.0}")
    } else {
        format!("{rounded:.1}")
    }
}

/// Text escaped for XML character data and attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_break_at_top_level_commas() {
        assert_eq!(
            label_lines(&["conv(10, 5, s = 1, p = 2)".into(), "relu".into()]),
            ["conv(10, 5,", "s = 1, p = 2)", "+ relu"]
        );
        assert_eq!(
            label_lines(&["conv(10, (3, 4), s = (1, 2))".into()]),
            ["conv(10,", "(3, 4),", "s = (1, 2))"]
        );
        assert_eq!(label_lines(&["pool(2, 2)".into()]), ["pool(2, 2)"]);
    }

    #[test]
    fn scales() {
        let linear = Scale::new([4, 8].into_iter(), (2.0, 100.0));
        assert_eq!(linear.px(8), 100.0);
        assert_eq!(linear.px(4), 50.0);
        let log = Scale::new([1, 10, 100].into_iter(), (0.0, 100.0));
        assert!((log.px(10) - 50.0).abs() < 1e-9);
        assert_eq!(log.px(1), 0.0);
        let flat = Scale::new([5, 5].into_iter(), (10.0, 20.0));
        assert_eq!(flat.px(5), 15.0);
    }

    #[test]
    fn xml_escape() {
        assert_eq!(escape("a<b>&\"'"), "a&lt;b&gt;&amp;&quot;&apos;");
    }
}
