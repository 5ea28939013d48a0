//! Compiles proto/norrsken.proto with a pure-Rust protobuf compiler (no protoc needed) and
//! embeds the repository's catalog/ folder as the default indicator catalog.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let root = manifest.parent().ok_or("no workspace root")?.to_path_buf();
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    // Checkouts at different paths share one target folder (CI reuses the build); rerun when
    // the checkout changes so the paths below are this checkout's.
    println!("cargo:rerun-if-env-changed=CARGO_MANIFEST_DIR");

    let proto_dir = root.join("proto");
    let proto = proto_dir.join("norrsken.proto");
    println!("cargo:rerun-if-changed={}", proto.display());
    let fds = protox::compile([&proto], [&proto_dir])?;
    prost_build::Config::new().compile_fds(fds)?;

    let catalog = root.join("catalog");
    println!("cargo:rerun-if-changed={}", catalog.display());
    let mut files: Vec<PathBuf> = std::fs::read_dir(&catalog)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("toml"))
        .collect();
    files.sort();
    let mut src = String::from("pub const FILES: &[(&str, &str)] = &[\n");
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
        let name = f.file_name().and_then(|n| n.to_str()).ok_or("bad catalog file name")?;
        src.push_str(&format!("    (\"catalog/{name}\", include_str!({:?})),\n", f.display().to_string()));
    }
    src.push_str("];\n");
    // The standard populations of age standardisation (catalog/standards/*.toml).
    let standards = catalog.join("standards");
    println!("cargo:rerun-if-changed={}", standards.display());
    let mut files: Vec<PathBuf> = std::fs::read_dir(&standards)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("toml"))
        .collect();
    files.sort();
    src.push_str("pub const STANDARDS: &[(&str, &str)] = &[\n");
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
        let name = f.file_name().and_then(|n| n.to_str()).ok_or("bad standard file name")?;
        src.push_str(&format!("    (\"catalog/standards/{name}\", include_str!({:?})),\n", f.display().to_string()));
    }
    src.push_str("];\n");
    std::fs::write(out.join("embedded_catalog.rs"), src)?;
    Ok(())
}
