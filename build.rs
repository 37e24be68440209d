//! Embeds the built web app (`web/dist`, made by `scripts/build-web.sh`) into the binary: writes
//! `$OUT_DIR/web_assets.rs`, a table of `include_bytes!` entries, each file with its
//! precompressed `.gz` and `.br` siblings. A checkout without the built app fails here, saying
//! what to run, rather than producing a server that answers `/` with nothing.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let dist = root.join("web/dist");
    println!("cargo:rerun-if-changed=web/dist");
    println!("cargo:rerun-if-changed=build.rs");
    if !dist.join("index.html").is_file() {
        panic!(
            "\n\nThe web app is not built: {} is missing.\n\
             Run scripts/build-web.sh (it needs Node.js 20.19+ and npm),\n\
             or scripts/setup.sh, which does it for you; then build again.\n\n",
            dist.join("index.html").display()
        );
    }
    let mut files = Vec::new();
    walk(&dist, &mut files);
    files.sort();
    let mut out = String::from("pub static ASSETS: &[Asset] = &[\n");
    for f in &files {
        let name = f.to_string_lossy();
        if name.ends_with(".gz") || name.ends_with(".br") {
            continue;
        }
        println!("cargo:rerun-if-changed={}", f.display());
        let rel = f
            .strip_prefix(&dist)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let sibling = |ext: &str| {
            let p = PathBuf::from(format!("{name}.{ext}"));
            if p.is_file() {
                format!("Some(include_bytes!({:?}))", p.to_string_lossy())
            } else {
                "None".to_string()
            }
        };
        writeln!(
            out,
            "    Asset {{ path: {rel:?}, raw: include_bytes!({name:?}), gzip: {}, brotli: {} }},",
            sibling("gz"),
            sibling("br")
        )
        .unwrap();
    }
    out.push_str("];\n");
    let dest = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("web_assets.rs");
    std::fs::write(dest, out).unwrap();
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            println!("cargo:rerun-if-changed={}", path.display());
            walk(&path, out);
        } else {
            out.push(path);
        }
    }
}
