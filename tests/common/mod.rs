//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod fake_es;
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
