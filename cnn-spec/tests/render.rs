//! Golden files for every renderer, and the JSON and SVG read back and
//! compared with shapes computed here by the textbook formulas; networks
//! with groups and residual blocks (`tests/fixtures/resnet.rs`) read back
//! with their structure.
//!
//! `UPDATE_GOLDEN=1 cargo test -p cnn-spec --test render` rewrites the
//! golden files under `tests/golden/`; review the diff before committing.

use std::path::PathBuf;

use cnn_spec::model::Entry;
use cnn_spec::{render, Network};

/// The three reference networks: name, DSL body.
const NETS: [(&str, &str); 3] = [
    (
        "SeedNet",
        "input(3, 32, 32) conv(10, 5, s = 1, p = 2) relu pool(2, 2) fc(10)",
    ),
    (
        "LeNet5",
        "input(1, 28, 28) conv(6, 5, p = 2) relu pool(2, 2) conv(16, 5) relu pool(2, 2) fc(120) relu fc(84) relu fc(10)",
    ),
    (
        "AlexNetStem",
        "input(3, 227, 227) conv(96, 11, s = 4) relu pool(3, 2) conv(256, 5, p = 2) relu pool(3, 2)",
    ),
];

fn network(name: &str, body: &str) -> Network {
    let mut nets = cnn_spec::parse_networks(&format!("struct {name} {{ {body} }}"))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    nets.remove(0)
}

/// Compares `actual` with `tests/golden/{file}`, or rewrites the file when
/// `UPDATE_GOLDEN` is set.
fn golden(file: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(file);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with UPDATE_GOLDEN=1 to create it",
            path.display()
        )
    });
    if expected != actual {
        let line = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
        panic!(
            "{file} differs from the golden file at line {}:\n  golden: {:?}\n  actual: {:?}\n(UPDATE_GOLDEN=1 rewrites it)",
            line + 1,
            expected.lines().nth(line),
            actual.lines().nth(line),
        );
    }
}

/// The networks of `tests/fixtures/resnet.rs`: `TinyResNet`, `ResNet18`,
/// `MobileBlocks`.
fn structured() -> Vec<Network> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/resnet.rs");
    let scanned = cnn_spec::scan::scan_file(&path).unwrap();
    assert_eq!(scanned.render_diagnostics(), "");
    scanned.networks().cloned().collect()
}

fn structured_network(name: &str) -> Network {
    structured()
        .into_iter()
        .find(|n| n.name == name)
        .unwrap_or_else(|| panic!("no {name} in the fixture"))
}

#[test]
fn golden_files() {
    let write = |net: &Network, files: &[&str]| {
        let name = &net.name;
        for file in files {
            let text = match *file {
                "md" => render::markdown(net),
                "json" => render::json(net),
                "svg" => render::svg(net) + "\n",
                "txt" => render::summary(net) + "\n",
                "rustdoc.md" => render::rustdoc(net),
                _ => unreachable!(),
            };
            golden(&format!("{name}.{file}"), &text);
        }
    };
    let all = ["md", "json", "svg", "txt", "rustdoc.md"];
    for (name, body) in NETS {
        write(&network(name, body), &all);
    }
    for net in structured() {
        match net.name.as_str() {
            "TinyResNet" => write(&net, &all),
            "ResNet18" => write(&net, &["txt", "md"]),
            _ => write(&net, &["txt", "md", "svg"]),
        }
    }
}

/// A layer of the reference computation.
#[derive(Clone, Copy)]
enum Ref {
    Conv {
        k: usize,
        f: usize,
        s: usize,
        p: usize,
    },
    Pool {
        f: usize,
        s: usize,
    },
    Relu,
    Fc {
        n: usize,
    },
}

/// Output volume, parameters and MACs of each layer, by the formulas of
/// the lecture notes.
fn reference(input: [usize; 3], layers: &[Ref]) -> Vec<([usize; 3], [usize; 3], usize, u64)> {
    let mut v = input;
    let mut out = Vec::new();
    for &layer in layers {
        let [c, h, w] = v;
        let (next, params, macs) = match layer {
            Ref::Conv { k, f, s, p } => {
                let (h2, w2) = ((h - f + 2 * p) / s + 1, (w - f + 2 * p) / s + 1);
                assert_eq!((h - f + 2 * p) % s, 0);
                (
                    [k, h2, w2],
                    f * f * c * k + k,
                    (k * h2 * w2 * c * f * f) as u64,
                )
            }
            Ref::Pool { f, s } => ([c, (h - f) / s + 1, (w - f) / s + 1], 0, 0),
            Ref::Relu => (v, 0, 0),
            Ref::Fc { n } => ([n, 1, 1], c * h * w * n + n, (c * h * w * n) as u64),
        };
        out.push((v, next, params, macs));
        v = next;
    }
    out
}

fn reference_layers(name: &str) -> ([usize; 3], Vec<Ref>) {
    use Ref::*;
    match name {
        "SeedNet" => (
            [3, 32, 32],
            vec![
                Conv {
                    k: 10,
                    f: 5,
                    s: 1,
                    p: 2,
                },
                Relu,
                Pool { f: 2, s: 2 },
                Fc { n: 10 },
            ],
        ),
        "LeNet5" => (
            [1, 28, 28],
            vec![
                Conv {
                    k: 6,
                    f: 5,
                    s: 1,
                    p: 2,
                },
                Relu,
                Pool { f: 2, s: 2 },
                Conv {
                    k: 16,
                    f: 5,
                    s: 1,
                    p: 0,
                },
                Relu,
                Pool { f: 2, s: 2 },
                Fc { n: 120 },
                Relu,
                Fc { n: 84 },
                Relu,
                Fc { n: 10 },
            ],
        ),
        "AlexNetStem" => (
            [3, 227, 227],
            vec![
                Conv {
                    k: 96,
                    f: 11,
                    s: 4,
                    p: 0,
                },
                Relu,
                Pool { f: 3, s: 2 },
                Conv {
                    k: 256,
                    f: 5,
                    s: 1,
                    p: 2,
                },
                Relu,
                Pool { f: 3, s: 2 },
            ],
        ),
        _ => unreachable!(),
    }
}

fn dims(value: &serde_json::Value) -> [usize; 3] {
    let a = value.as_array().expect("a volume is an array");
    assert_eq!(a.len(), 3);
    [0, 1, 2].map(|i| a[i].as_u64().expect("an integer") as usize)
}

#[test]
fn json_reads_back_with_the_reference_numbers() {
    for (name, body) in NETS {
        let net = network(name, body);
        let json: serde_json::Value = serde_json::from_str(&render::json(&net)).unwrap();
        let (input, layers) = reference_layers(name);
        let expected = reference(input, &layers);

        assert_eq!(json["schema"], "cnn-shapes");
        assert_eq!(json["version"], 1);
        assert_eq!(json["name"], name);
        assert_eq!(dims(&json["input"]), input);
        assert_eq!(dims(&json["output"]), expected.last().unwrap().1);
        let params: usize = expected.iter().map(|l| l.2).sum();
        let macs: u64 = expected.iter().map(|l| l.3).sum();
        let values: usize = input.iter().product::<usize>()
            + expected
                .iter()
                .map(|l| l.1.iter().product::<usize>())
                .sum::<usize>();
        assert_eq!(json["params"].as_u64(), Some(params as u64));
        assert_eq!(json["macs"].as_u64(), Some(macs));
        assert_eq!(json["activation_bytes"].as_u64(), Some(values as u64 * 4));
        // A plain chain's structure is its layers.
        let body: Vec<serde_json::Value> = (0..expected.len())
            .map(|i| serde_json::json!({ "type": "layer", "index": i, "path": i.to_string() }))
            .collect();
        assert_eq!(json["body"], serde_json::Value::Array(body));
        // The model agrees with the same reference.
        assert_eq!((net.params, net.macs), (params, macs));

        let json_layers = json["layers"].as_array().unwrap();
        assert_eq!(json_layers.len(), expected.len());
        for (i, ((layer, reference), model)) in json_layers
            .iter()
            .zip(&expected)
            .zip(&net.layers)
            .enumerate()
        {
            let (input, output, params, macs) = *reference;
            assert_eq!(layer["index"].as_u64(), Some(i as u64));
            // A plain chain's layers are named by their position.
            assert_eq!(layer["path"], i.to_string());
            assert_eq!(layer["name"].as_str(), Some(model.name.as_str()));
            assert_eq!(dims(&layer["input"]), input, "{name} layer {i}");
            assert_eq!(dims(&layer["output"]), output, "{name} layer {i}");
            assert_eq!(
                layer["params"].as_u64(),
                Some(params as u64),
                "{name} layer {i}"
            );
            assert_eq!(layer["macs"].as_u64(), Some(macs), "{name} layer {i}");
            let bytes = output.iter().product::<usize>() as u64 * 4;
            assert_eq!(layer["activation_bytes"].as_u64(), Some(bytes));
            assert_eq!(model.output.dims(), output);
            match layers[i] {
                Ref::Conv { k, f, s, p } => {
                    assert_eq!(layer["kind"], "conv");
                    let args = &layer["args"];
                    assert_eq!(args["k"].as_u64(), Some(k as u64));
                    assert_eq!(args["g"], 1);
                    assert_eq!(args["bias"], true);
                    for (key, v) in [("f", f), ("s", s), ("p", p), ("d", 1)] {
                        assert_eq!(args[key], serde_json::json!([v, v]), "{name} {i} {key}");
                    }
                }
                Ref::Pool { f, s } => {
                    assert_eq!(layer["kind"], "pool");
                    assert_eq!(
                        layer["args"],
                        serde_json::json!({ "f": [f, f], "s": [s, s], "p": [0, 0] })
                    );
                }
                Ref::Relu => {
                    assert_eq!(layer["kind"], "relu");
                    assert_eq!(layer["args"], serde_json::json!({}));
                }
                Ref::Fc { n } => {
                    assert_eq!(layer["kind"], "fc");
                    assert_eq!(layer["args"], serde_json::json!({ "n": n }));
                }
            }
        }
    }
}

#[test]
fn json_list_is_an_array_of_networks() {
    let nets: Vec<Network> = NETS.iter().map(|(n, b)| network(n, b)).collect();
    let json: serde_json::Value = serde_json::from_str(&render::json_list(&nets)).unwrap();
    let names: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["SeedNet", "LeNet5", "AlexNetStem"]);
    let empty: serde_json::Value = serde_json::from_str(&render::json_list([])).unwrap();
    assert_eq!(empty, serde_json::json!([]));
}

#[test]
fn markdown_rows_carry_the_reference_numbers() {
    for (name, body) in NETS {
        let net = network(name, body);
        let table = render::markdown(&net);
        let (input, layers) = reference_layers(name);
        let expected = reference(input, &layers);
        let rows: Vec<&str> = table.lines().skip(3).collect();
        assert_eq!(rows.len(), expected.len() + 1, "{name}: layers and a total");
        for (i, (row, (_, output, params, macs))) in rows.iter().zip(&expected).enumerate() {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            assert_eq!(cells[1], i.to_string());
            assert_eq!(
                cells[3],
                format!("{}×{}×{}", output[0], output[1], output[2])
            );
            assert_eq!(cells[4].replace(',', ""), params.to_string());
            assert_eq!(cells[5].replace(',', ""), macs.to_string());
        }
    }
}

/// A text element of the picture: its estimated box and its content.
struct Label {
    text: String,
    x0: f64,
    x1: f64,
    y0: f64,
    y1: f64,
}

/// Reads an SVG with roxmltree, checks every coordinate lies in the view
/// box (boxes, arrows, brackets and labels) and returns the text labels with their estimated extents (11 px
/// monospace: 0.62 em a character).
fn read_svg(svg: &str) -> (Vec<Label>, usize, [f64; 2]) {
    let doc = roxmltree::Document::parse(svg).expect("well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    assert_eq!(
        root.tag_name().namespace(),
        Some("http://www.w3.org/2000/svg")
    );
    let view: Vec<f64> = root
        .attribute("viewBox")
        .unwrap()
        .split(' ')
        .map(|v| v.parse().unwrap())
        .collect();
    let (w, h) = (view[2], view[3]);
    let inside = |x: f64, y: f64| (0.0..=w).contains(&x) && (0.0..=h).contains(&y);
    let mut labels = Vec::new();
    let mut boxes = 0;
    for node in doc.descendants().filter(|n| n.is_element()) {
        let num = |a: &str| node.attribute(a).map(|v| v.parse::<f64>().unwrap());
        match node.tag_name().name() {
            "rect" => {
                boxes += 1;
                let (x, y) = (num("x").unwrap(), num("y").unwrap());
                assert!(
                    inside(x, y) && inside(x + num("width").unwrap(), y + num("height").unwrap())
                );
            }
            "polygon" | "polyline" => {
                for point in node.attribute("points").unwrap().split(' ') {
                    let (x, y) = point.split_once(',').unwrap();
                    assert!(inside(x.parse().unwrap(), y.parse().unwrap()), "{point}");
                }
            }
            "text" => {
                let text = node.text().unwrap_or_default().to_string();
                let size = node
                    .ancestors()
                    .find_map(|n| n.attribute("font-size"))
                    .map_or(16.0, |v| v.parse().unwrap());
                let width = text.chars().count() as f64 * size * 0.62;
                let (x, y) = (num("x").unwrap(), num("y").unwrap());
                let x0 = if node.attribute("text-anchor") == Some("middle") {
                    x - width / 2.0
                } else {
                    x
                };
                let label = Label {
                    text,
                    x0,
                    x1: x0 + width,
                    y0: y - size * 0.8,
                    y1: y + size * 0.2,
                };
                assert!(
                    inside(label.x0, label.y0) && inside(label.x1, label.y1),
                    "label {:?} outside the picture",
                    label.text
                );
                labels.push(label);
            }
            _ => {}
        }
    }
    (labels, boxes, [w, h])
}

fn assert_no_overlap(labels: &[Label]) {
    for (i, a) in labels.iter().enumerate() {
        for b in &labels[i + 1..] {
            let apart = a.x1 <= b.x0 || b.x1 <= a.x0 || a.y1 <= b.y0 || b.y1 <= a.y0;
            assert!(apart, "labels {:?} and {:?} overlap", a.text, b.text);
        }
    }
}

#[test]
fn svg_is_well_formed_and_labels_every_volume() {
    for (name, body) in NETS {
        let net = network(name, body);
        let (labels, boxes, _) = read_svg(&render::svg(&net));
        let (input, layers) = reference_layers(name);
        // One box per volume: relu keeps its volume and is drawn with the
        // layer before it.
        let volumes = 1 + layers.iter().filter(|l| !matches!(l, Ref::Relu)).count();
        assert_eq!(boxes, volumes, "{name}");
        let texts: Vec<&str> = labels.iter().map(|l| l.text.as_str()).collect();
        let mut shapes = vec![input];
        shapes.extend(reference(input, &layers).iter().map(|l| l.1));
        for [c, h, w] in shapes {
            let label = format!("{c}×{h}×{w}");
            assert!(texts.contains(&label.as_str()), "{name}: no label {label}");
        }
        let all = texts.concat();
        for layer in &net.layers {
            let compact: String = layer.name.split_whitespace().collect();
            assert!(
                all.replace(' ', "").contains(&compact),
                "{name}: layer {} is not named",
                layer.name
            );
        }
        assert!(texts.contains(&name));
        assert_no_overlap(&labels);
    }
}

#[test]
fn svg_of_a_long_network_wraps_and_stays_legible() {
    let mut body = String::from("input(3, 224, 224)");
    for k in [16, 16, 32, 32, 64, 64, 128, 128] {
        body.push_str(&format!(" conv({k}, (3, 3), p = same) relu"));
        if k == 16 || k == 64 {
            body.push_str(" pool(2)");
        }
    }
    body.push_str(" avgpool(2) flatten fc(1000) relu fc(100) sigmoid fc(10) softmax");
    let net = network("Deep", &body);
    assert!(net.layers.len() >= 20);
    let svg = render::svg(&net);
    let (labels, boxes, [width, height]) = read_svg(&svg);
    assert!(width <= 900.0, "too wide to read: {width}");
    assert!(
        height > 2.0 * 150.0,
        "a long network wraps onto rows: {height}"
    );
    assert_eq!(boxes, 1 + 8 + 4 + 1 + 1 + 3);
    assert_no_overlap(&labels);
    assert!(svg.contains(r#"font-size="12""#), "labels at 12 px");
}

#[test]
fn summary_columns_line_up() {
    for (name, body) in NETS {
        let net = network(name, body);
        let text = render::summary(&net);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with(name));
        let rule = lines[1].chars().count();
        assert!(
            lines.iter().all(|l| l.chars().count() <= rule),
            "{name}: a line is wider than the rules"
        );
        // The output column starts at the same character on every row.
        let header = lines[2];
        let column = header.find("output").unwrap();
        let at = header[..column].chars().count();
        for row in &lines[4..4 + net.layers.len() + 1] {
            let cell: String = row.chars().skip(at).take_while(|c| *c != ' ').collect();
            assert!(cell.contains('×'), "{name}: {row:?}");
        }
    }
}

/// Every layer of `entries` in execution order: MAIN, then the shortcut,
/// then the activation after the add; checks each group's and residual's
/// totals against its layers on the way.
fn leaves(entries: &[serde_json::Value], layers: &[serde_json::Value], out: &mut Vec<usize>) {
    for entry in entries {
        let first = out.len();
        match entry["type"].as_str().unwrap() {
            "layer" => {
                let index = entry["index"].as_u64().unwrap() as usize;
                assert_eq!(entry["path"], layers[index]["path"]);
                out.push(index);
                continue;
            }
            "group" => leaves(entry["entries"].as_array().unwrap(), layers, out),
            "residual" => {
                let main_first = out.len();
                leaves(entry["main"].as_array().unwrap(), layers, out);
                let main_last = *out.last().unwrap();
                // MAIN runs on the block's input and ends on its output.
                assert_eq!(layers[out[main_first]]["input"], entry["input"]);
                assert_eq!(layers[main_last]["output"], entry["output"]);
                if let Some(shortcut) = entry["shortcut"].as_array() {
                    let sc_first = out.len();
                    leaves(shortcut, layers, out);
                    assert_eq!(layers[out[sc_first]]["input"], entry["input"]);
                    assert_eq!(layers[*out.last().unwrap()]["output"], entry["output"]);
                } else {
                    assert!(entry["shortcut"].is_null());
                    assert_eq!(entry["input"], entry["output"], "an identity add");
                }
                if let Some(act) = entry["act"].as_u64() {
                    let act = act as usize;
                    assert_eq!(layers[act]["kind"], "relu");
                    assert_eq!(layers[act]["input"], entry["output"]);
                    out.push(act);
                } else {
                    assert!(entry["act"].is_null());
                }
            }
            other => panic!("unknown entry type {other}"),
        }
        let params: u64 = out[first..]
            .iter()
            .map(|&i| layers[i]["params"].as_u64().unwrap())
            .sum();
        let macs: u64 = out[first..]
            .iter()
            .map(|&i| layers[i]["macs"].as_u64().unwrap())
            .sum();
        assert_eq!(entry["params"].as_u64(), Some(params), "{}", entry["path"]);
        assert_eq!(entry["macs"].as_u64(), Some(macs), "{}", entry["path"]);
        assert_eq!(
            layers[*out.last().unwrap()]["output"],
            entry["output"],
            "{}",
            entry["path"]
        );
        let path = entry["path"].as_str().unwrap();
        for &i in &out[first..] {
            let layer = layers[i]["path"].as_str().unwrap();
            assert!(layer.starts_with(&format!("{path}.")), "{layer} in {path}");
        }
    }
}

#[test]
fn json_structure_nests_groups_and_residuals() {
    for net in structured() {
        let json: serde_json::Value = serde_json::from_str(&render::json(&net)).unwrap();
        let layers = json["layers"].as_array().unwrap();
        assert_eq!(layers.len(), net.layers.len());
        for (layer, model) in layers.iter().zip(&net.layers) {
            assert_eq!(layer["path"], model.path.as_str());
            assert_eq!(layer["name"], model.name.as_str());
        }
        // The tree's leaves are the flat list, in execution order.
        let mut order = Vec::new();
        leaves(json["body"].as_array().unwrap(), layers, &mut order);
        assert_eq!(order, (0..layers.len()).collect::<Vec<_>>(), "{}", net.name);
    }

    let json: serde_json::Value =
        serde_json::from_str(&render::json(&structured_network("ResNet18"))).unwrap();
    // torchvision's count.
    assert_eq!(json["params"], 11_689_512);
    let layer2 = &json["body"][5];
    assert_eq!(layer2["type"], "group");
    assert_eq!(layer2["path"], "layer2");
    let block = &layer2["entries"][0];
    assert_eq!(block["type"], "residual");
    assert_eq!(block["path"], "layer2.0");
    assert_eq!(block["input"], serde_json::json!([64, 56, 56]));
    assert_eq!(block["output"], serde_json::json!([128, 28, 28]));
    let downsample = &block["shortcut"][0];
    assert_eq!(downsample["type"], "group");
    assert_eq!(downsample["path"], "layer2.0.downsample");
    let conv = &json["layers"][downsample["entries"][0]["index"].as_u64().unwrap() as usize];
    assert_eq!(conv["path"], "layer2.0.downsample.0");
    assert_eq!(conv["params"], 128 * 64);
    assert_eq!(
        json["layers"][block["act"].as_u64().unwrap() as usize]["path"],
        "layer2.0.relu"
    );
    // An identity block has no shortcut.
    assert!(layer2["entries"][1]["shortcut"].is_null());
}

/// What the rows of a structured network's table should be: one per
/// layer, group, residual, shortcut and add.
fn expected_rows(net: &Network) -> usize {
    fn count(entries: &[Entry]) -> usize {
        entries
            .iter()
            .map(|entry| match entry {
                Entry::Layer(_) => 1,
                Entry::Group(block) => 1 + count(&block.entries),
                Entry::Residual(residual) => {
                    let shortcut = residual.shortcut.as_deref().map_or(0, |sc| 1 + count(sc));
                    // The block, MAIN, the shortcut, the add, the activation.
                    1 + count(&residual.main) + shortcut + 1 + usize::from(residual.act.is_some())
                }
            })
            .sum()
    }
    count(&net.body)
}

#[test]
fn summary_nests_groups_and_residuals() {
    for net in structured() {
        let text = render::summary(&net);
        let lines: Vec<&str> = text.lines().collect();
        let rows = &lines[5..5 + expected_rows(&net)];
        assert!(
            lines[5 + expected_rows(&net)].starts_with('═'),
            "{}",
            net.name
        );
        // Every layer's row: its index, the tree, its name and its text.
        let mut layer_rows = rows
            .iter()
            .filter(|row| {
                row.chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_digit() || c == ' ')
            })
            .filter(|row| row.trim_start().starts_with(|c: char| c.is_ascii_digit()));
        for layer in &net.layers {
            let row = layer_rows.next().unwrap();
            let (index, rest) = row.trim_start().split_once(' ').unwrap();
            assert_eq!(index, layer.index.to_string(), "{row}");
            let name = layer.path.rsplit('.').next().unwrap();
            let label = rest.trim_start_matches([' ', '│', '├', '└', '─']);
            assert!(label.starts_with(name), "{row}: no name {name}");
            assert!(label.contains(&layer.name), "{row}");
        }
        // The tree is three characters a level.
        for row in rows {
            let label = &row.chars().skip(5).collect::<String>();
            let tree = label
                .chars()
                .take_while(|c| matches!(c, ' ' | '│' | '├' | '└' | '─'))
                .count();
            assert_eq!(tree % 3, 0, "{row}");
        }
    }

    let text = render::summary(&structured_network("ResNet18"));
    for row in [
        " 0   conv1    conv(64, 7, s = 2, p = 3, bias = false, floor)",
        "     layer1                       ",
        "     ├─ 0  residual(relu)                                           64×56×56           73,984      231,211,008",
        " 4   │  ├─ conv1  conv(64, 3, p = 1, bias = false)",
        "     │  ├─ add (main + x)                                           64×56×56                –                –",
        " 9   │  └─ relu ",
        "     │  ├─ shortcut                                                 128×28×28           8,448        6,422,528",
        "     │  │  └─ downsample",
        "21   │  │     ├─ 0  conv(128, 1, s = 2, bias = false, floor)",
        "     │  ├─ add (main + shortcut)",
        "59   fc       fc(1000)                                              1000×1×1          513,000          512,000       4,000 B",
    ] {
        assert!(text.contains(row), "no {row:?} in\n{text}");
    }
    assert!(text.contains("Total parameters:         11,689,512  (44.6 MiB as f32)"));
}

#[test]
fn summary_of_a_chain_with_names_lines_up_the_layers() {
    let net = network(
        "Named",
        "input(1, 8, 8) features: conv(4, 3) act: relu flatten classifier: fc(2)",
    );
    let text = render::summary(&net);
    for row in [
        "0   features    conv(4, 3)   4×6×6",
        "1   act         relu         4×6×6",
        "2   2           flatten      144×1×1",
        "3   classifier  fc(2)        2×1×1",
    ] {
        assert!(text.contains(row), "no {row:?} in\n{text}");
    }
    assert!(!text.contains('├'), "no tree in a chain");
    let table = render::markdown(&net);
    assert!(table.contains("| 0 | features: `conv(4, 3)` | 4×6×6 | 40 | 1,296 | 576 B |"));
}

#[test]
fn markdown_nests_groups_and_residuals() {
    for net in structured() {
        let table = render::markdown(&net);
        let rows: Vec<&str> = table.lines().collect();
        // Heading, rule, input, the rows, total.
        assert_eq!(rows.len(), 3 + expected_rows(&net) + 1, "{}", net.name);
        for row in &rows {
            assert_eq!(row.matches('|').count(), 7, "{row}");
        }
        let indexed: Vec<&str> = rows[3..]
            .iter()
            .filter(|row| {
                row.starts_with("| ") && row[2..].starts_with(|c: char| c.is_ascii_digit())
            })
            .copied()
            .collect();
        assert_eq!(indexed.len(), net.layers.len());
        for (row, layer) in indexed.iter().zip(&net.layers) {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            assert_eq!(cells[1], layer.index.to_string());
            assert!(cells[2].ends_with(&format!("`{}`", layer.name)), "{row}");
            assert_eq!(cells[3], layer.output.to_string());
        }
    }
    let table = render::markdown(&structured_network("TinyResNet"));
    let em = "\u{2003}";
    for row in [
        "| 0 | conv1: `conv(16, 3, p = 1, bias = false)` | 16×32×32 | 432 | 442,368 | 65,536 B |"
            .to_string(),
        "| | **layer1** | 16×32×32 | 4,672 | 4,718,592 | |".to_string(),
        format!(
            "| | {}**0**: `residual(relu)` | 16×32×32 | 4,672 | 4,718,592 | |",
            em.repeat(2)
        ),
        format!(
            "| 3 | {}conv1: `conv(16, 3, p = 1, bias = false)` |",
            em.repeat(4)
        ),
        format!("| | {}*add (main + x)* | 16×32×32 | | | |", em.repeat(4)),
        format!(
            "| 8 | {}`relu` | 16×32×32 | 0 | 0 | 65,536 B |",
            em.repeat(4)
        ),
        format!(
            "| | {}*shortcut* | 32×16×16 | 576 | 131,072 | |",
            em.repeat(4)
        ),
        format!(
            "| | {}**downsample** | 32×16×16 | 576 | 131,072 | |",
            em.repeat(6)
        ),
        format!(
            "| 14 | {}0: `conv(32, 1, s = 2, bias = false, floor)` |",
            em.repeat(8)
        ),
        format!(
            "| | {}*add (main + shortcut)* | 32×16×16 | | | |",
            em.repeat(4)
        ),
    ] {
        assert!(table.contains(&row), "no {row:?} in\n{table}");
    }
}

#[test]
fn svg_draws_a_bracket_for_each_residual() {
    for net in structured() {
        let svg = render::svg(&net);
        let (labels, _, _) = read_svg(&svg);
        assert_no_overlap(&labels);
        let texts: Vec<&str> = labels.iter().map(|l| l.text.as_str()).collect();
        for layer in &net.layers {
            let label = layer.output.to_string();
            assert!(
                texts.contains(&label.as_str()),
                "{}: no label {label}",
                net.name
            );
        }
        // Every layer is named: MAIN's between the boxes, the shortcut's
        // and the activation under the bracket.
        let all = texts.concat().replace(' ', "");
        for layer in &net.layers {
            let compact: String = layer.name.split_whitespace().collect();
            assert!(
                all.contains(&compact),
                "{}: {} not named",
                net.name,
                layer.name
            );
        }
        // One bracket per residual block, labelled with its path.
        fn residuals(entries: &[Entry], out: &mut Vec<String>) {
            for entry in entries {
                match entry {
                    Entry::Layer(_) => {}
                    Entry::Group(block) => residuals(&block.entries, out),
                    Entry::Residual(residual) => {
                        out.push(residual.path.clone());
                        residuals(&residual.main, out);
                    }
                }
            }
        }
        let mut paths = Vec::new();
        residuals(&net.body, &mut paths);
        let doc = roxmltree::Document::parse(&svg).unwrap();
        let arrowheads = doc
            .descendants()
            .filter(|n| n.has_tag_name("polyline"))
            .filter(|n| n.attribute("fill") == Some("none"))
            .count();
        assert!(arrowheads >= paths.len(), "{}", net.name);
        for path in &paths {
            assert!(
                texts
                    .iter()
                    .any(|t| t.starts_with(&format!("{path}: residual"))),
                "{}: no bracket for {path}",
                net.name
            );
        }
    }
    // A shortcut's layers are named under its bracket, not drawn as
    // volumes: ResNet-18 draws its input, the stem's two volumes, two
    // per block and the pooled and classified vectors.
    let net = structured_network("ResNet18");
    let (labels, boxes, _) = read_svg(&render::svg(&net));
    assert_eq!(boxes, 1 + 2 + 8 * 2 + 2);
    assert!(labels
        .iter()
        .any(|l| l.text.starts_with("shortcut: conv(128, 1,")));
}
