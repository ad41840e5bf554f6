//! The committed header, include/wgvision.h, is what cbindgen generates from src/ now:
//! a changed signature without a regenerated header fails here.
//!
//! Why a committed header checked by a test rather than a build script writing it: a
//! build script may only write into OUT_DIR (writing into the source tree breaks
//! `cargo package` and read-only checkouts), C users read the header in the repository
//! without building, and cbindgen then costs nothing in an ordinary build.
//! `WGVISION_BLESS=1 cargo test --release -p wgvision-capi --test header` rewrites it.
use std::path::Path;

#[test]
fn committed_header_matches_cbindgen() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("read cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(dir.join("src/lib.rs"))
        .generate()
        .expect("cbindgen parses src/");
    let mut generated = Vec::new();
    bindings.write(&mut generated);
    let generated = String::from_utf8(generated).unwrap();
    let path = dir.join("include/wgvision.h");
    if std::env::var_os("WGVISION_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != generated {
        let line = committed.lines().zip(generated.lines()).position(|(a, b)| a != b).unwrap_or(committed.lines().count().min(generated.lines().count()));
        panic!(
            "{} is out of date (first difference at line {}); regenerate it with\n  WGVISION_BLESS=1 cargo test --release -p wgvision-capi --test header",
            path.display(),
            line + 1
        );
    }
    // Every exported function made it into the header (cbindgen skips what it cannot
    // express without failing).
    let src = std::fs::read_to_string(dir.join("src/lib.rs")).unwrap();
    for name in src.lines().filter_map(|l| l.trim_start().strip_prefix("pub unsafe extern \"C\" fn ").or_else(|| l.trim_start().strip_prefix("pub extern \"C\" fn "))) {
        let name = name.split('(').next().unwrap();
        assert!(generated.contains(&format!("{name}(")), "{name} is missing from the header");
    }
}
