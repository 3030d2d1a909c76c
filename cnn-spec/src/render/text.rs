//! The shape table as plain text for a terminal, like torchinfo's summary.

use super::number::{bytes_human, count_human};
use super::table::{self, Label};
use super::{thousands, total_activation_bytes};
use crate::model::Network;

/// How a column is aligned.
#[derive(Clone, Copy)]
enum Align {
    Left,
    Right,
}

/// The columns: heading and alignment.
const COLUMNS: [(&str, Align); 6] = [
    ("#", Align::Right),
    ("layer", Align::Left),
    ("output C×H×W", Align::Left),
    ("parameters", Align::Right),
    ("MACs per image", Align::Right),
    ("activations", Align::Right),
];

/// Spaces between two columns.
const GAP: usize = 3;

/// The shape table as plain text for a terminal, like torchinfo's summary:
/// a title line, one row per layer in fixed-width columns between box
/// lines, then the totals (parameters and their size as f32,
/// multiply-accumulates per image, activation memory of one image).
///
/// A plain chain of unnamed layers reads as a list of layers. When the
/// network names its layers, each row shows the name before the layer
/// (`conv1    conv(64, 7, s = 2, p = 3, bias = false, floor)`); a group or
/// a residual block is a row of its own, with its output and totals, and
/// its entries are drawn beneath it as a tree, the depth of torchinfo's
/// summary. A residual block lists its MAIN, then its `shortcut` branch,
/// then its add and the activation after it.
///
/// The text has no trailing newline, so `println!("{}", summary)` prints it
/// as is.
///
/// ```
/// let nets = cnn_spec::parse_networks("struct Tiny { input(1, 4, 4) conv(2, 3) relu }").unwrap();
/// let text = cnn_spec::render::summary(&nets[0]);
/// assert!(text.starts_with("Tiny: 1×4×4 → 2×2×2"));
/// assert!(text.contains("Total parameters:"));
///
/// let nets = cnn_spec::parse_networks(
///     "struct Block { input(8, 4, 4) stem: conv(8, 1) res: residual(relu) { conv(8, 3, p = 1) bn } }",
/// )
/// .unwrap();
/// let text = cnn_spec::render::summary(&nets[0]);
/// assert!(text.contains("res   residual(relu)"));
/// assert!(text.contains("├─ 0  conv(8, 3, p = 1)"));
/// assert!(text.contains("├─ add (main + x)"));
/// assert!(text.contains("└─ relu"));
/// ```
pub fn summary(network: &Network) -> String {
    let rows: Vec<[String; 6]> = table::rows(network)
        .iter()
        .map(|row| {
            let index = match row.label {
                Label::Layer { index, .. } => index.to_string(),
                _ => String::new(),
            };
            let dash = || "–".to_string();
            [
                index,
                format!("{}{}", row.tree, row.label.plain()),
                row.output.to_string(),
                row.params.map_or_else(dash, |p| thousands(p as u128)),
                row.macs.map_or_else(dash, thousands),
                row.activations
                    .map_or_else(String::new, |bytes| thousands(bytes) + " B"),
            ]
        })
        .collect();

    let mut widths = COLUMNS.map(|(heading, _)| width(heading));
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(width(cell));
        }
    }
    let table_width = widths.iter().sum::<usize>() + GAP * (COLUMNS.len() - 1);

    let params_bytes = network.params as u128 * 4;
    let activations = total_activation_bytes(network);
    let totals = [
        (
            "Total parameters:",
            thousands(network.params as u128),
            format!("({} as f32)", bytes_human(params_bytes)),
        ),
        (
            "MACs per image:",
            thousands(network.macs),
            if network.macs >= 1000 {
                format!("({})", count_human(network.macs.into()))
            } else {
                String::new()
            },
        ),
        (
            "Activations per image:",
            thousands(activations) + " B",
            if activations >= 1024 {
                format!("({}, every volume as f32)", bytes_human(activations))
            } else {
                "(every volume as f32)".to_string()
            },
        ),
    ];
    let label_width = totals.iter().map(|t| width(t.0)).max().unwrap_or(0);
    let value_width = totals.iter().map(|t| width(&t.1)).max().unwrap_or(0);
    let total_lines: Vec<String> = totals
        .iter()
        .map(|(label, value, note)| {
            format!(
                "{}{}  {note}",
                pad(label, label_width + 1, Align::Left),
                pad(value, value_width, Align::Right)
            )
            .trim_end()
            .to_string()
        })
        .collect();

    let title = format!("{}: {} → {}", network.name, network.input, network.output());
    let rule_width = table_width
        .max(width(&title))
        .max(total_lines.iter().map(|l| width(l)).max().unwrap_or(0));
    let heavy = "═".repeat(rule_width);
    let light = "─".repeat(rule_width);

    let mut lines = vec![title, heavy.clone()];
    let headings = COLUMNS.map(|(heading, _)| heading.to_string());
    lines.push(row_line(&headings, &widths));
    lines.push(light);
    lines.extend(rows.iter().map(|row| row_line(row, &widths)));
    lines.push(heavy.clone());
    lines.extend(total_lines);
    lines.push(heavy);
    lines.join("\n")
}

/// One table row, cells padded to the column widths, without trailing
/// spaces.
fn row_line(cells: &[String; 6], widths: &[usize; 6]) -> String {
    let line = cells
        .iter()
        .zip(widths)
        .zip(COLUMNS)
        .map(|((cell, &w), (_, align))| pad(cell, w, align))
        .collect::<Vec<_>>()
        .join(&" ".repeat(GAP));
    line.trim_end().to_string()
}

/// `text` padded with spaces to `width` characters.
fn pad(text: &str, width: usize, align: Align) -> String {
    let fill = " ".repeat(width.saturating_sub(self::width(text)));
    match align {
        Align::Left => format!("{text}{fill}"),
        Align::Right => format!("{fill}{text}"),
    }
}

/// Display width of `text` in a terminal: one column per character (every
/// character the renderer emits is a single-width one).
fn width(text: &str) -> usize {
    text.chars().count()
}
