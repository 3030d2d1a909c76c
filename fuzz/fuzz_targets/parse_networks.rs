//! Arbitrary text as the body of a `network!`: parsing and checking must
//! return networks or errors, never panic; whatever parses must plan and
//! render, and whatever fails must render its diagnostics.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let src = String::from_utf8_lossy(data);
    match cnn_spec::parse_networks(&src) {
        Ok(networks) => {
            for network in &networks {
                let _ = cnn_spec::plan::plan(network);
                let _ = cnn_spec::render::summary(network);
                let _ = cnn_spec::render::markdown(network);
                let _ = cnn_spec::render::json(network);
                let _ = cnn_spec::render::svg(network);
                let _ = cnn_spec::render::rustdoc(network);
            }
        }
        Err(error) => {
            let _ = error.to_string();
            let _ = error.into_compile_error();
        }
    }
});
