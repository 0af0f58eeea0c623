//! The versions a C user sees agree with the manifests: `atmail_version()`
//! with the workspace version, `ATMAIL_ABI_VERSION` with
//! `[package.metadata.atmail] abi-version`. (`tools/install-c` writes both
//! into `atmail.pc` and the CMake package; tests/test_install_c.py reads
//! them back.)

use std::ffi::CStr;
use std::path::Path;

fn value_of<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find_map(|line| line.trim().strip_prefix(key))
        .map(|rest| {
            rest.trim_start_matches([' ', '=', ':'])
                .trim()
                .trim_matches('"')
        })
        .unwrap_or_else(|| panic!("{key} not found"))
}

#[test]
fn versions_agree_with_the_manifests() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let workspace = std::fs::read_to_string(dir.join("../Cargo.toml")).unwrap();
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    let version = value_of(&workspace, "version");
    // SAFETY: atmail_version returns a static NUL-terminated string.
    let reported = unsafe { CStr::from_ptr(atmail::atmail_version()) };
    assert_eq!(reported.to_str().unwrap(), version);
    let abi: u32 = value_of(&manifest, "abi-version").parse().unwrap();
    assert_eq!(atmail::ATMAIL_ABI_VERSION, abi);
}
