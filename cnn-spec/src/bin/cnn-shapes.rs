//! `cnn-shapes`: finds every `network!` invocation in Rust source files,
//! checks it as the macro does and prints its shape table; `--json`,
//! `--svg DIR` and `--markdown FILE` write the other renderings.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use cnn_spec::scan::{self, Scanned};
use cnn_spec::{render, Network};

/// The synopsis, shown with every argument error.
const USAGE: &str = "Usage: cnn-shapes [OPTIONS] FILE.rs...";

const HELP: &str = "\
Usage: cnn-shapes [OPTIONS] FILE.rs...

Finds every `network!` invocation in the Rust source files, checks it as the
macro does, and prints the shape table of each network: its layers, and each
group and residual block with the layers nested beneath it.

Options:
  --json            print the networks as one JSON array instead of tables
                    (schema: cnn_spec::render::json)
  --svg DIR         also write a picture of each network to DIR/NAME.svg
  --markdown FILE   also write the Markdown tables of every network to FILE
                    (`-` prints them instead of the tables)
  -h, --help        print this help
  -V, --version     print the version

An option's value may follow it (`--svg docs`) or be joined with `=`
(`--svg=docs`); after `--`, every argument is a file.

Exit status: 0 when every network is valid, 1 when a network has an error
(shown as the compiler shows it, with file:line:column), 2 when the
arguments are wrong or a file cannot be read, is not Rust or cannot be
written.";

/// The long options, for suggestions.
const LONG_OPTIONS: [&str; 5] = ["--json", "--svg", "--markdown", "--help", "--version"];

/// What the command line asks for.
#[derive(Default)]
struct Options {
    files: Vec<PathBuf>,
    json: bool,
    svg: Option<PathBuf>,
    markdown: Option<PathBuf>,
}

/// What to do after reading the arguments.
enum Command {
    Run(Options),
    Help,
    Version,
}

fn parse_args(args: impl IntoIterator<Item = OsString>) -> Result<Command, String> {
    use lexopt::prelude::*;

    let mut options = Options::default();
    let mut parser = lexopt::Parser::from_args(args);
    while let Some(arg) = parser.next().map_err(message)? {
        match arg {
            Short('h') | Long("help") => return Ok(Command::Help),
            Short('V') | Long("version") => return Ok(Command::Version),
            Long("json") => options.json = true,
            Long("svg") => options.svg = Some(path(&mut parser, "--svg", "a directory")?),
            Long("markdown") => {
                options.markdown = Some(path(&mut parser, "--markdown", "a file, or `-`")?)
            }
            Value(file) => options.files.push(PathBuf::from(file)),
            _ => return Err(message(arg.unexpected())),
        }
    }
    if options.files.is_empty() {
        return Err("no input file: give one or more Rust source files".to_string());
    }
    if options.json && options.markdown.as_deref() == Some(Path::new("-")) {
        return Err("`--json` and `--markdown -` both print to standard output; choose one".into());
    }
    Ok(Command::Run(options))
}

/// The value of `option`, a path that must not be empty.
fn path(parser: &mut lexopt::Parser, option: &str, what: &str) -> Result<PathBuf, String> {
    match parser.value() {
        Ok(value) if !value.is_empty() => Ok(PathBuf::from(value)),
        Ok(_) | Err(lexopt::Error::MissingValue { .. }) => {
            Err(format!("`{option}` needs a value: {what}"))
        }
        Err(error) => Err(message(error)),
    }
}

/// An argument error in the words of this tool's other messages.
fn message(error: lexopt::Error) -> String {
    match error {
        lexopt::Error::UnexpectedOption(option) => {
            let long = format!("--{}", option.trim_start_matches('-'));
            match cnn_spec::keywords::nearest(&long, LONG_OPTIONS) {
                Some(near) => format!("unknown option `{option}`; did you mean `{near}`?"),
                None => format!("unknown option `{option}`"),
            }
        }
        lexopt::Error::UnexpectedValue { option, .. } => {
            format!("`{option}` takes no value")
        }
        other => other.to_string(),
    }
}

fn main() -> ExitCode {
    let options = match parse_args(std::env::args_os().skip(1)) {
        Ok(Command::Run(options)) => options,
        Ok(Command::Help) => return print(&format!("{HELP}\n")),
        Ok(Command::Version) => {
            return print(&format!("cnn-shapes {}\n", env!("CARGO_PKG_VERSION")))
        }
        Err(message) => {
            eprintln!(
                "error: {message}\n\n{USAGE}\n\nFor more information, try `cnn-shapes --help`."
            );
            return ExitCode::from(2);
        }
    };
    run(&options)
}

/// Prints `text` to standard output; a closed pipe is not an error.
fn print(text: &str) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cnn-shapes: cannot write to standard output: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(options: &Options) -> ExitCode {
    let mut scanned: Vec<Scanned> = Vec::new();
    let mut unreadable = false;
    for path in &options.files {
        match scan::scan_file(path) {
            Ok(file) => {
                if file.found.is_empty() {
                    eprintln!("{}: no `network!` invocation found", path.display());
                }
                scanned.push(file);
            }
            Err(error) => {
                eprintln!("error: {error}");
                unreadable = true;
            }
        }
    }

    let mut invalid = 0usize;
    for file in &scanned {
        let rendered = file.render_diagnostics();
        if !rendered.is_empty() {
            eprintln!("{rendered}");
            invalid += file.found.iter().filter(|f| f.network.is_err()).count();
        }
    }

    let networks: Vec<(&Scanned, &scan::Found, &Network)> = scanned
        .iter()
        .flat_map(|file| {
            file.found
                .iter()
                .filter_map(move |found| Some((file, found, found.network.as_ref().ok()?)))
        })
        .collect();

    let mut failed_write = false;
    if let Some(dir) = &options.svg {
        failed_write |= write_svgs(dir, networks.iter().map(|(_, _, n)| *n)).is_err();
    }
    let markdown_to_stdout = options.markdown.as_deref() == Some(Path::new("-"));
    if let Some(path) = &options.markdown {
        let text = markdown_document(&networks);
        if markdown_to_stdout {
            failed_write |= print(&text) != ExitCode::SUCCESS;
        } else if let Err(e) = std::fs::write(path, text) {
            eprintln!("error: cannot write {}: {e}", path.display());
            failed_write = true;
        }
    }
    let stdout = if options.json {
        render::json_list(networks.iter().map(|(_, _, n)| *n))
    } else if markdown_to_stdout {
        String::new()
    } else {
        networks
            .iter()
            .map(|(file, found, network)| {
                format!(
                    "{}:{}\n{}\n",
                    file.path.display(),
                    found.invocation,
                    render::summary(network)
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    failed_write |= print(&stdout) != ExitCode::SUCCESS;

    if invalid > 0 {
        let s = if invalid == 1 { "" } else { "s" };
        eprintln!("error: {invalid} network{s} with errors");
    }
    if unreadable || failed_write {
        ExitCode::from(2)
    } else if invalid > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Writes `DIR/NAME.svg` for each network (`NAME-2.svg`, … when two share
/// a name), creating DIR.
fn write_svgs<'a>(dir: &Path, networks: impl Iterator<Item = &'a Network>) -> Result<(), ()> {
    if let Err(e) = std::fs::create_dir_all(dir) {
        eprintln!("error: cannot create {}: {e}", dir.display());
        return Err(());
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut result = Ok(());
    for network in networks {
        let base = network.name.trim_start_matches("r#").to_string();
        let count = seen.entry(base.clone()).or_insert(0);
        *count += 1;
        let file = if *count == 1 {
            format!("{base}.svg")
        } else {
            format!("{base}-{count}.svg")
        };
        let path = dir.join(file);
        if let Err(e) = std::fs::write(&path, render::svg(network) + "\n") {
            eprintln!("error: cannot write {}: {e}", path.display());
            result = Err(());
        }
    }
    result
}

/// Every network's Markdown table under a heading naming it and where it
/// is defined.
fn markdown_document(networks: &[(&Scanned, &scan::Found, &Network)]) -> String {
    let mut out = String::from("# Network shapes\n");
    for (file, found, network) in networks {
        out.push_str(&format!(
            "\n## {}\n\nDefined in `{}:{}`. Input {}, output {}: {} parameters, {} multiply-accumulates per image.\n\n{}",
            network.name,
            file.path.display(),
            found.invocation,
            network.input,
            network.output(),
            render::thousands(network.params as u128),
            render::thousands(network.macs),
            render::markdown(network),
        ));
    }
    out
}
