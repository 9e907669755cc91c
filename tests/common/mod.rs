//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod fake_es;
pub mod fixtures;
pub mod live;
pub mod mmdb;

use std::path::PathBuf;

/// The reference data folder (`../shared/data` beside the project, or `DETECTD_SHARED_DATA`),
/// joined with `sub`. `None` (after printing why) when it is absent, so the caller can skip.
pub fn shared_data(sub: &str) -> Option<PathBuf> {
    let base = std::env::var_os("DETECTD_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    let p = base.join(sub);
    if p.exists() {
        Some(p)
    } else {
        eprintln!(
            "skipping: reference data {} not found (set DETECTD_SHARED_DATA)",
            p.display()
        );
        None
    }
}

/// Golden check of a request we build: `actual` against `tests/golden/es_requests/NAME.json`
/// (`UPDATE_GOLDEN=1` writes it instead).
pub fn check_request_golden(name: &str, actual: &serde_json::Value) {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(format!("tests/golden/es_requests/{name}.json"));
    let text = serde_json::to_string_pretty(actual).unwrap() + "\n";
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&file, &text).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&file)
        .unwrap_or_else(|_| panic!("{} missing (UPDATE_GOLDEN=1)", file.display()));
    assert_eq!(
        expected, text,
        "golden {name} differs (UPDATE_GOLDEN=1 regenerates it)"
    );
}
