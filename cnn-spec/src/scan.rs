//! Finding the `network!` invocations of a Rust source file and checking
//! them, for build scripts and the `cnn-shapes` tool.
//!
//! The file is parsed with syn and walked at every depth (modules,
//! functions, impl blocks, and the bodies of other macros such as
//! `vec![…]`). Each `network!` (or `cnn::network!`) body goes through
//! [`analyze`](crate::analyze) with the tokens' own spans, so every error
//! points at its line and column in the file and reads exactly like the
//! macro's.
//!
//! ```
//! let source = r#"
//! use cnn::network;
//! mod nets {
//!     cnn::network! {
//!         pub struct Tiny { input(1, 8, 8) conv(4, 3) relu fc(2) }
//!     }
//! }
//! fn main() {
//!     network! { struct Bad { input(3, 32, 32) conv(10, 5, s = 2) } }
//! }
//! "#;
//! let found = cnn_spec::scan::scan_str(source).unwrap();
//! assert_eq!(found.len(), 2);
//! assert_eq!(found[0].network.as_ref().unwrap().output().dims(), [2, 1, 1]);
//! let errors = found[1].network.as_ref().unwrap_err();
//! // The stride value `2`, line 9 column 62, as the compiler would point.
//! assert_eq!((errors[0].start.line, errors[0].start.column), (9, 62));
//! assert!(errors[0].message.contains("14.5 is not a whole number"));
//! ```
//!
//! A build script writes the shape docs of the networks in its crate:
//!
//! ```no_run
//! let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
//! println!("cargo::rerun-if-changed=src/nets.rs");
//! let scanned = cnn_spec::scan::scan_file("src/nets.rs").unwrap();
//! for network in scanned.networks() {
//!     let path = out.join(format!("{}.md", network.name));
//!     std::fs::write(path, cnn_spec::render::markdown(network)).unwrap();
//! }
//! ```

use std::fmt;
use std::path::{Path, PathBuf};

use proc_macro2::{Delimiter, Span, TokenStream, TokenTree};
use syn::visit::Visit;

use crate::model::Network;

/// A position in a source file, both numbers from 1 (as compilers print
/// them); the column counts characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// Line, from 1.
    pub line: usize,
    /// Column in characters, from 1.
    pub column: usize,
}

impl Position {
    fn of_start(span: Span) -> Position {
        Position::from(span.start())
    }

    fn of_end(span: Span) -> Position {
        Position::from(span.end())
    }
}

impl From<proc_macro2::LineColumn> for Position {
    fn from(lc: proc_macro2::LineColumn) -> Position {
        Position {
            line: lc.line,
            column: lc.column + 1,
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// One error in a network, located in the scanned file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The message, the same text the macro gives the compiler.
    pub message: String,
    /// Where the offending tokens start.
    pub start: Position,
    /// Where they end (exclusive).
    pub end: Position,
}

impl Diagnostic {
    /// The diagnostic as a compiler prints it: the message, `--> path:line:column`,
    /// the source line and a caret line under the offending tokens.
    pub fn render(&self, path: &str, source: &str) -> String {
        let line_number = self.start.line.to_string();
        let gutter = " ".repeat(line_number.len());
        let mut out = format!(
            "error: {}\n{gutter}--> {path}:{}:{}\n",
            self.message, self.start.line, self.start.column
        );
        let Some(text) = source.lines().nth(self.start.line.saturating_sub(1)) else {
            return out;
        };
        // Tabs are shown as four spaces, as compilers do, so the carets
        // stay under the tokens.
        let expand = |s: &str| s.replace('\t', "    ");
        let chars: Vec<char> = text.chars().collect();
        let from = self.start.column.saturating_sub(1).min(chars.len());
        let to = if self.end.line == self.start.line {
            self.end
                .column
                .saturating_sub(1)
                .clamp(from + 1, chars.len().max(from + 1))
        } else {
            chars.len().max(from + 1)
        };
        let before: String = chars[..from].iter().collect();
        let under: String = chars[from..to.min(chars.len())].iter().collect();
        let carets = expand(&under).chars().count().max(1);
        out.push_str(&format!(
            "{gutter} |\n{line_number} | {}\n{gutter} | {}{}\n",
            expand(text),
            " ".repeat(expand(&before).chars().count()),
            "^".repeat(carets)
        ));
        out
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.start, self.message)
    }
}

/// One network (or an invocation that could not be read as far as a
/// network) found in a source file.
#[derive(Debug, Clone)]
pub struct Found {
    /// Where the invocation's macro name starts.
    pub invocation: Position,
    /// The network's struct name; `None` for errors of the invocation that
    /// belong to no single network (it did not parse, or stray tokens).
    pub name: Option<String>,
    /// The checked network, or every error in it.
    pub network: Result<Network, Vec<Diagnostic>>,
}

/// Finds and checks every `network!` invocation in Rust source text.
///
/// Returns the networks in source order. The `Err` is a syntax error of
/// the file itself (it is not Rust), located like a diagnostic.
pub fn scan_str(source: &str) -> Result<Vec<Found>, Diagnostic> {
    let file = syn::parse_file(source).map_err(|error| {
        let span = error.span();
        Diagnostic {
            message: match error.to_string().as_str() {
                "cannot parse string into token stream" => {
                    "not valid Rust: the text does not split into Rust tokens".to_string()
                }
                other => format!("not valid Rust: {other}"),
            },
            start: Position::of_start(span),
            end: Position::of_end(span),
        }
    })?;
    let mut finder = Finder::default();
    finder.visit_file(&file);
    Ok(finder.found)
}

/// A scanned file: its path, its text and what was found in it.
#[derive(Debug, Clone)]
pub struct Scanned {
    /// The path as given.
    pub path: PathBuf,
    /// The file's text.
    pub source: String,
    /// The networks, in source order.
    pub found: Vec<Found>,
}

impl Scanned {
    /// The networks that passed every check, in source order.
    pub fn networks(&self) -> impl Iterator<Item = &Network> {
        self.found.iter().filter_map(|f| f.network.as_ref().ok())
    }

    /// Every error of every network, in source order.
    pub fn diagnostics(&self) -> impl Iterator<Item = &Diagnostic> {
        self.found
            .iter()
            .filter_map(|f| f.network.as_ref().err())
            .flatten()
    }

    /// Every error rendered as a compiler prints it, with this file's path;
    /// empty when every network is valid.
    pub fn render_diagnostics(&self) -> String {
        let path = self.path.display().to_string();
        self.diagnostics()
            .map(|d| d.render(&path, &self.source))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Why a file could not be scanned.
#[derive(Debug)]
pub enum ScanError {
    /// The file could not be read (missing, a directory, not UTF-8 text…).
    Read {
        /// The path as given.
        path: PathBuf,
        /// The reason.
        error: std::io::Error,
    },
    /// The file is not Rust source.
    NotRust {
        /// The path as given.
        path: PathBuf,
        /// The syntax error, located in the file.
        error: Diagnostic,
    },
}

impl fmt::Display for ScanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScanError::Read { path, error } if error.kind() == std::io::ErrorKind::InvalidData => {
                write!(
                    f,
                    "{}: not a Rust source file: it is not UTF-8 text",
                    path.display()
                )
            }
            ScanError::Read { path, error } => {
                write!(f, "{}: cannot read: {error}", path.display())
            }
            ScanError::NotRust { path, error } => write!(
                f,
                "{}:{}: not a Rust source file: {}",
                path.display(),
                error.start,
                error.message.trim_start_matches("not valid Rust: ")
            ),
        }
    }
}

impl std::error::Error for ScanError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ScanError::Read { error, .. } => Some(error),
            ScanError::NotRust { .. } => None,
        }
    }
}

/// Reads a Rust source file and finds and checks every `network!`
/// invocation in it (see [`scan_str`]).
pub fn scan_file(path: impl AsRef<Path>) -> Result<Scanned, ScanError> {
    let path = path.as_ref();
    let source = std::fs::read_to_string(path).map_err(|error| ScanError::Read {
        path: path.to_owned(),
        error,
    })?;
    let found = scan_str(&source).map_err(|error| ScanError::NotRust {
        path: path.to_owned(),
        error,
    })?;
    Ok(Scanned {
        path: path.to_owned(),
        source,
        found,
    })
}

/// The syntax-tree walker collecting invocations.
#[derive(Default)]
struct Finder {
    found: Vec<Found>,
}

impl<'ast> Visit<'ast> for Finder {
    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        let segments: Vec<String> = mac
            .path
            .segments
            .iter()
            .map(|s| s.ident.to_string())
            .collect();
        let is_network = match segments.as_slice() {
            [name] => name == "network",
            [krate, name] => krate == "cnn" && name == "network",
            _ => false,
        };
        if is_network {
            let start = mac
                .path
                .segments
                .first()
                .map_or_else(|| mac.bang_token.span, |s| s.ident.span());
            let start = match &mac.path.leading_colon {
                Some(colons) => colons.spans[0],
                None => start,
            };
            let close = match &mac.delimiter {
                syn::MacroDelimiter::Paren(d) => d.span.close(),
                syn::MacroDelimiter::Brace(d) => d.span.close(),
                syn::MacroDelimiter::Bracket(d) => d.span.close(),
            };
            self.invocation(start, close, mac.tokens.clone());
        } else {
            // Other macros' bodies are token streams syn does not parse:
            // look through them for nested invocations.
            self.walk_tokens(mac.tokens.clone());
        }
    }
}

impl Finder {
    /// Analyses one invocation whose macro name starts at `start` and whose
    /// body (closed at `close`) is `body`.
    fn invocation(&mut self, start: Span, close: Span, body: TokenStream) {
        let invocation = Position::of_start(start);
        let end = Position::of_end(close);
        // Errors spanned outside the invocation (the call site, for an
        // empty body) are shown at the invocation, as the compiler does.
        let locate = |error: syn::Error| -> Vec<Diagnostic> {
            error
                .into_iter()
                .map(|e| {
                    let span = e.span();
                    let (mut from, mut to) = (Position::of_start(span), Position::of_end(span));
                    if from < invocation || from > end {
                        from = invocation;
                        to = Position::of_end(start);
                    }
                    Diagnostic {
                        message: e.to_string(),
                        start: from,
                        end: to,
                    }
                })
                .collect()
        };
        match crate::analyze(body) {
            Err(error) => self.found.push(Found {
                invocation,
                name: None,
                network: Err(locate(error)),
            }),
            Ok((analyzed, stray)) => {
                for item in analyzed {
                    self.found.push(Found {
                        invocation,
                        name: Some(item.def.ident.to_string()),
                        network: item.network.map_err(&locate),
                    });
                }
                if let Err(error) = stray.finish(()) {
                    self.found.push(Found {
                        invocation,
                        name: None,
                        network: Err(locate(error)),
                    });
                }
            }
        }
    }

    /// Looks for `network!(…)`, `cnn::network!{…}` or `::cnn::network![…]`
    /// in a token stream, at any depth. Bodies holding `$` are macro_rules
    /// templates, not networks, and are skipped.
    fn walk_tokens(&mut self, tokens: TokenStream) {
        let trees: Vec<TokenTree> = tokens.into_iter().collect();
        let mut i = 0;
        while i < trees.len() {
            if let Some((start, group)) = invocation_at(&trees, i) {
                if !has_dollar(group.stream()) {
                    self.invocation(start, group.span_close(), group.stream());
                }
                i += 3;
                continue;
            }
            if let TokenTree::Group(group) = &trees[i] {
                self.walk_tokens(group.stream());
            }
            i += 1;
        }
    }
}

/// When `trees[i..]` starts `network ! (…)` and the path before it is empty
/// or `cnn::`/`::cnn::`, the span where the path starts and the body group.
fn invocation_at(trees: &[TokenTree], i: usize) -> Option<(Span, &proc_macro2::Group)> {
    let TokenTree::Ident(name) = &trees[i] else {
        return None;
    };
    let (Some(TokenTree::Punct(bang)), Some(TokenTree::Group(group))) =
        (trees.get(i + 1), trees.get(i + 2))
    else {
        return None;
    };
    if name != "network" || bang.as_char() != '!' || group.delimiter() == Delimiter::None {
        return None;
    }
    let is_colons = |j: usize| {
        matches!((trees.get(j), trees.get(j + 1)),
            (Some(TokenTree::Punct(a)), Some(TokenTree::Punct(b))) if a.as_char() == ':' && b.as_char() == ':')
    };
    if i >= 2 && is_colons(i - 2) {
        // A path: accept only `cnn::network` and `::cnn::network`.
        let krate = i.checked_sub(3).and_then(|j| match &trees[j] {
            TokenTree::Ident(krate) if krate == "cnn" => Some((j, krate.span())),
            _ => None,
        })?;
        let (j, span) = krate;
        if j >= 2 && is_colons(j - 2) {
            return Some((trees[j - 2].span(), group));
        }
        return Some((span, group));
    }
    Some((name.span(), group))
}

fn has_dollar(tokens: TokenStream) -> bool {
    tokens.into_iter().any(|tree| match tree {
        TokenTree::Punct(p) => p.as_char() == '$',
        TokenTree::Group(g) => has_dollar(g.stream()),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_invocations_at_any_depth() {
        let source = r#"
mod a {
    mod b {
        network! { struct InModule { input(1, 4, 4) relu } }
    }
}
impl Foo {
    fn f() {
        ::cnn::network! { struct InImpl { input(1, 4, 4) fc(2) } }
    }
}
fn g() {
    let v = vec![{ network!(struct InVec { input(1, 2, 2) fc(1) }); 1 }];
    other::network! { struct NotOurs { input(1, 1, 1) relu } }
}
macro_rules! template {
    ($name:ident) => { network! { struct $name { input(1, 4, 4) relu } } };
}
"#;
        let found = scan_str(source).unwrap();
        let names: Vec<_> = found.iter().map(|f| f.name.clone().unwrap()).collect();
        assert_eq!(names, ["InModule", "InImpl", "InVec"]);
        let lines: Vec<_> = found.iter().map(|f| f.invocation).collect();
        assert_eq!(
            lines,
            [
                Position { line: 4, column: 9 },
                Position { line: 9, column: 9 },
                Position {
                    line: 13,
                    column: 20
                }
            ]
        );
        assert!(found.iter().all(|f| f.network.is_ok()));
    }

    #[test]
    fn empty_invocation_is_reported_at_the_macro() {
        let found = scan_str("fn main() {\n    network! {}\n}\n").unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].name, None);
        let errors = found[0].network.as_ref().unwrap_err();
        assert_eq!(errors[0].start, Position { line: 2, column: 5 });
    }

    #[test]
    fn rendered_like_the_compiler() {
        let source = "network! {\n\tstruct N { input(3, 32, 32) conv(10, 5, s = 2) }\n}\n";
        let found = scan_str(source).unwrap();
        let errors = found[0].network.as_ref().unwrap_err();
        let text = errors[0].render("nets.rs", source);
        let expected = "error: `conv(10, 5, s = 2)` does not fit 3×32×32: (32 − 5 + 2·0)/2 + 1 = 14.5 is not a whole number; no padding fixes it (32 − 5 + 2P is odd), s = 1 or s = 3 would fit; or `floor` rounds down to 14×14, as PyTorch does\n \
             --> nets.rs:2:46\n  |\n2 |     struct N { input(3, 32, 32) conv(10, 5, s = 2) }\n  |                                                 ^\n";
        assert_eq!(text, expected);
    }

    #[test]
    fn not_rust() {
        let error = scan_str("hello world\n").unwrap_err();
        assert_eq!(error.start, Position { line: 1, column: 7 });
        assert_eq!(error.message, "not valid Rust: expected `!`");
        let error = scan_str("def main():\n    print('hi')\n").unwrap_err();
        assert_eq!(error.start.line, 2);
    }
}
