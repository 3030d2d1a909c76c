//! The documentation the build script wrote agrees with the formulas and
//! with the constants the `network!` macro generated for the same networks.

use cnn_example_build_docs::nets::{deep::Vgg, LeNet5, SeedNet};
use cnn_example_build_docs::shapes;

#[test]
fn seed_net_table_has_the_lecture_numbers() {
    // conv: 10 filters of 5·5·3 plus 10 biases; 10·32·32 outputs of 5·5·3 MACs.
    let conv_params = 5 * 5 * 3 * 10 + 10;
    let conv_macs = 10 * 32 * 32 * 5 * 5 * 3;
    // fc: 10·16·16 inputs to 10 outputs.
    let fc_params = 10 * 16 * 16 * 10 + 10;
    let table = shapes::SEED_NET_MARKDOWN;
    assert!(table.contains(&format!(
        "| 0 | `conv(10, 5, s = 1, p = 2)` | 10×32×32 | {conv_params} | 768,000 |"
    )));
    assert_eq!(conv_macs, 768_000);
    assert!(table.contains("| 3 | `fc(10)` | 10×1×1 | 25,610 |"));
    assert_eq!(fc_params, 25_610);
    assert!(table.contains("**26,370**"));
    assert_eq!(SeedNet::PARAMS, conv_params + fc_params);
    assert!(shapes::ALL_MARKDOWN.contains("## SeedNet"));
    assert!(shapes::ALL_MARKDOWN.contains("## LeNet5"));
    assert!(shapes::ALL_MARKDOWN.contains("## Vgg"));
}

#[test]
fn lenet_json_matches_the_macro_constants() {
    let json: serde_json::Value = serde_json::from_str(shapes::LENET5_JSON).unwrap();
    // 156 + 2,416 + 48,120 + 10,164 + 850, the classic LeNet-5 count.
    let params = (5 * 5 * 6 + 6)
        + (5 * 5 * 6 * 16 + 16)
        + (400 * 120 + 120)
        + (120 * 84 + 84)
        + (84 * 10 + 10);
    assert_eq!(json["params"].as_u64(), Some(params));
    assert_eq!(LeNet5::PARAMS as u64, params);
    assert_eq!(json["macs"].as_u64(), Some(LeNet5::MACS));
    let layers = json["layers"].as_array().unwrap();
    assert_eq!(layers.len(), LeNet5::LAYERS.len());
    for (layer, info) in layers.iter().zip(LeNet5::LAYERS) {
        assert_eq!(layer["name"].as_str(), Some(info.name));
        let output: Vec<usize> = layer["output"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(output, info.output);
        assert_eq!(layer["params"].as_u64(), Some(info.params as u64));
        assert_eq!(layer["macs"].as_u64(), Some(info.macs));
    }
}

#[test]
fn vgg_picture_is_svg_with_every_volume() {
    let doc = roxmltree::Document::parse(shapes::VGG_SVG).unwrap();
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let texts: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .collect();
    for info in Vgg::LAYERS {
        let [c, h, w] = info.output;
        let label = format!("{c}×{h}×{w}");
        assert!(texts.contains(&label.as_str()), "no {label}");
    }
    assert_eq!(Vgg::OUTPUT, [10, 1, 1]);
}
