//! The `cnn-shapes` binary on fixture files: a valid file, an invalid
//! network, files that are not Rust, and each output option.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn cnn_shapes(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cnn-shapes"))
        .args(args)
        .output()
        .expect("cnn-shapes runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("UTF-8 output")
}

/// A fresh directory under cargo's scratch space for integration tests.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cnn-shapes-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn valid_file_prints_every_table() {
    let path = fixture("nets.rs");
    let out = cnn_shapes(&[path.as_os_str()]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // One table per network, at any depth, each after its location.
    for (location, title) in [
        ("nets.rs:5:1", "SeedNet: 3×32×32 → 10×1×1"),
        ("nets.rs:15:5", "LeNet5: 1×28×28 → 10×1×1"),
        ("nets.rs:27:5", "AlexNetStem: 3×227×227 → 256×13×13"),
    ] {
        let at = stdout
            .find(location)
            .unwrap_or_else(|| panic!("no {location} in\n{stdout}"));
        assert!(stdout[at..].lines().nth(1) == Some(title), "{title}");
    }
    // LeNet-5's classic parameter count: 156 + 2,416 + 48,120 + 10,164 + 850.
    assert!(stdout.contains("Total parameters:        61,706"));
    assert!(text(&out.stderr).is_empty());
}

#[test]
fn invalid_network_gives_the_macro_diagnostic_with_its_line() {
    let path = fixture("invalid.rs");
    let out = cnn_shapes(&[path.as_os_str()]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    // `s = 2` is on line 14 of the fixture; its value `2` at column 33.
    let expected = format!(
        "error: `conv(10, 5, s = 2)` does not fit 3×32×32: (32 − 5 + 2·0)/2 + 1 = 14.5 is not a whole number; no padding fixes it (32 − 5 + 2P is odd), s = 1 or s = 3 would fit; or `floor` rounds down to 14×14, as PyTorch does\n  --> {}:14:33\n   |\n14 |                 conv(10, 5, s = 2) relu\n   |                                 ^\n",
        path.display()
    );
    assert!(stderr.contains(&expected), "{stderr}");
    // The second error of the same network is reported too.
    assert!(stderr.contains("error: unknown layer `covn`; did you mean `conv`?"));
    assert!(stderr.contains(&format!("{}:15:17", path.display())));
    assert!(stderr.contains("error: 1 network with errors"));
    // The valid network of the file is still printed.
    assert!(text(&out.stdout).contains("Fine: 1×8×8 → 2×1×1"));
}

#[test]
fn non_rust_files_are_clear_errors() {
    let notes = fixture("notes.rs");
    let out = cnn_shapes(&[notes.as_os_str()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(&format!("error: {}:3:", notes.display())),
        "{stderr}"
    );
    assert!(stderr.contains("not a Rust source file"), "{stderr}");

    let dir = scratch("binary");
    let binary = dir.join("image.rs");
    std::fs::write(&binary, [0x89, b'P', b'N', b'G', 0xff, 0xfe, 0]).unwrap();
    let out = cnn_shapes(&[binary.as_os_str()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("not a Rust source file: it is not UTF-8 text"));

    let missing = dir.join("missing.rs");
    let out = cnn_shapes(&[missing.as_os_str()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("cannot read"));
}

#[test]
fn json_svg_and_markdown_outputs() {
    let dir = scratch("outputs");
    let svg_dir = dir.join("svg");
    let markdown = dir.join("shapes.md");
    let path = fixture("nets.rs");
    let out = cnn_shapes(&[
        "--json".as_ref(),
        "--svg".as_ref(),
        svg_dir.as_os_str(),
        "--markdown".as_ref(),
        markdown.as_os_str(),
        path.as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    let nets = json.as_array().unwrap();
    let names: Vec<&str> = nets.iter().map(|n| n["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["SeedNet", "LeNet5", "AlexNetStem"]);
    // AlexNet's first conv: 96 filters of 11·11·3 plus biases, on 55×55.
    let conv = &nets[2]["layers"][0];
    assert_eq!(conv["params"].as_u64(), Some(11 * 11 * 3 * 96 + 96));
    assert_eq!(conv["macs"].as_u64(), Some(96 * 55 * 55 * 11 * 11 * 3));

    for name in names {
        let svg = std::fs::read_to_string(svg_dir.join(format!("{name}.svg"))).unwrap();
        let doc = roxmltree::Document::parse(&svg).expect("well-formed SVG");
        assert_eq!(doc.root_element().tag_name().name(), "svg");
    }

    let md = std::fs::read_to_string(&markdown).unwrap();
    assert!(md.starts_with("# Network shapes\n"));
    for heading in ["## SeedNet", "## LeNet5", "## AlexNetStem"] {
        assert!(md.contains(heading), "{heading}");
    }
    assert!(md.contains("| 0 | `conv(96, 11, s = 4)` | 96×55×55 | 34,944 | 105,415,200 |"));
}

#[test]
fn markdown_to_standard_output_and_bad_arguments() {
    let path = fixture("nets.rs");
    let out = cnn_shapes(&["--markdown=-".as_ref(), path.as_os_str()]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("# Network shapes\n"));
    assert!(!stdout.contains('═'), "tables are not printed as well");

    for args in [&["--frobnicate"][..], &[], &["--svg"]] {
        let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_ref()).collect();
        let out = cnn_shapes(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(text(&out.stderr).contains("Usage: cnn-shapes"));
    }
    let out = cnn_shapes(&["--help".as_ref()]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).starts_with("Usage: cnn-shapes"));
}
