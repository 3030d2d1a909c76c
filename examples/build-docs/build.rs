//! Writes the shape documentation of the networks declared in `src/nets.rs`
//! into `OUT_DIR`: for each network `NAME.md` (the shape table), `NAME.json`
//! and `NAME.svg`, and `shapes.md` with every table under a heading.

use std::error::Error;
use std::fs;
use std::path::PathBuf;

use cnn_spec::render;

fn main() -> Result<(), Box<dyn Error>> {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").ok_or("OUT_DIR is not set")?);
    let source = "src/nets.rs";
    println!("cargo::rerun-if-changed={source}");

    let scanned = cnn_spec::scan::scan_file(source)?;
    let mut all = String::new();
    // Only the valid networks: the `network!` macro reports the invalid
    // ones, with the compiler's diagnostics, when the crate compiles.
    for network in scanned.networks() {
        let name = &network.name;
        fs::write(out.join(format!("{name}.md")), render::markdown(network))?;
        fs::write(out.join(format!("{name}.json")), render::json(network))?;
        fs::write(out.join(format!("{name}.svg")), render::svg(network))?;
        all.push_str(&format!("## {name}\n\n{}\n", render::markdown(network)));
    }
    fs::write(out.join("shapes.md"), all)?;
    Ok(())
}
