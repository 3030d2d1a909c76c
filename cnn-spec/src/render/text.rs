//! The shape table as plain text for a terminal, like torchinfo's summary.

use super::number::{bytes_human, count_human};
use super::{activation_bytes, thousands, total_activation_bytes};
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
/// The text has no trailing newline, so `println!("{}", summary)` prints it
/// as is.
///
/// ```
/// let nets = cnn_spec::parse_networks("struct Tiny { input(1, 4, 4) conv(2, 3) relu }").unwrap();
/// let text = cnn_spec::render::summary(&nets[0]);
/// assert!(text.starts_with("Tiny: 1×4×4 → 2×2×2"));
/// assert!(text.contains("Total parameters:"));
/// ```
pub fn summary(network: &Network) -> String {
    let mut rows: Vec<[String; 6]> = Vec::with_capacity(network.layers.len() + 1);
    rows.push([
        String::new(),
        "input".to_string(),
        network.input.to_string(),
        "–".to_string(),
        "–".to_string(),
        thousands(activation_bytes(network.input)) + " B",
    ]);
    for layer in &network.layers {
        rows.push([
            layer.index.to_string(),
            layer.name.clone(),
            layer.output.to_string(),
            thousands(layer.params as u128),
            thousands(layer.macs),
            thousands(activation_bytes(layer.output)) + " B",
        ]);
    }

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
