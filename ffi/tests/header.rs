//! `include/atmail.h` is what cbindgen makes of `ffi/src` with
//! `ffi/cbindgen.toml`: this test regenerates it and fails on any
//! difference. `ATMAIL_BLESS=1` writes the new header instead.

use std::path::Path;

#[test]
fn the_committed_header_is_current() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).unwrap();
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen")
        .write(&mut generated);
    // ffi/include/atmail.h links to the repository's include/atmail.h, and is
    // the header itself in the packaged crate.
    let path = crate_dir.join("include/atmail.h");
    if std::env::var_os("ATMAIL_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "include/atmail.h is stale: run ATMAIL_BLESS=1 cargo test -p atmail-ffi --test header"
    );
}
