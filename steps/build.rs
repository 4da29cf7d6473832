//! Embeds the requirements (`features/*.feature`) in the kit, so an installed `saga-conformance`
//! (`cargo install`, the `saga-conformance` image) runs the features its steps were built for
//! without the clone. Writes `$OUT_DIR/features.rs`: `FEATURES`, (file name, text) pairs sorted
//! by name. A build script rather than a directory-embedding macro because cargo re-runs it when
//! a feature file is added, removed or edited (`rerun-if-changed` on the directory).

use std::fmt::Write as _;
use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let dir = manifest.join("../features");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e} (the features sit beside steps/ in the clone)", dir.display()))
        .map(|entry| entry.expect("a directory entry of features/").file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".feature"))
        .collect();
    names.sort();
    assert!(!names.is_empty(), "no *.feature file in {}", dir.display());
    let mut code = String::from("/// The features of the clone this kit was built from: (file name, Gherkin text).\n");
    code.push_str("pub const FEATURES: &[(&str, &str)] = &[\n");
    for name in &names {
        let path = dir.join(name).canonicalize().expect("a feature file that was just listed");
        writeln!(code, "    ({name:?}, include_str!({:?})),", path.display().to_string()).expect("writing to a String");
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("features.rs");
    std::fs::write(&out, code).unwrap_or_else(|e| panic!("writing {}: {e}", out.display()));
}
