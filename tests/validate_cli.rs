//! `detectd validate`, run as a binary: exit codes, text and JSON output.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn validate(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_detectd"))
        .current_dir(cwd)
        .arg("validate")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn seed_rules_validate_cleanly() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = validate(&["rules/"], root);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("3 files, 3 rules loaded (new_terms 1, query 2)"),
        "{stdout}"
    );
    assert!(stdout.contains("0 warnings, 0 errors"), "{stdout}");
    // Default path: `rules_dir` from the (default) config.
    let out = validate(&[], root);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("3 rules loaded"));
}

#[test]
fn broken_file_exits_1_and_names_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/execution_via_system_manager.toml"),
    )
    .unwrap();
    std::fs::write(dir.path().join("good.toml"), &good).unwrap();
    std::fs::write(
        dir.path().join("bad.toml"),
        good.replace("interval = \"10m\"", "interval = \"ten minutes\""),
    )
    .unwrap();
    let out = validate(&["."], dir.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("error: ./bad.toml: rule \"AWS Execution via System Manager\": rule.interval: invalid interval"),
        "{stdout}"
    );
    assert!(
        stdout.contains("2 files, 1 rules loaded (query 1)"),
        "{stdout}"
    );
    assert!(stdout.contains("0 warnings, 1 errors"), "{stdout}");

    let out = validate(&[".", "--format", "json"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["summary"]["errors"], 1);
    assert_eq!(v["summary"]["loaded"], 1);
    assert_eq!(v["problems"][0]["key"], "rule.interval");
    assert_eq!(v["problems"][0]["level"], "error");
    assert_eq!(v["problems"][0]["file"], "./bad.toml");
}

#[test]
fn public_rules_summary_by_type() {
    let Some(dir) = common::shared_data("detection-rules/aws") else {
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = validate(&[dir.to_str().unwrap(), "--format", "json"], root);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = &v["summary"];
    assert_eq!(s["loaded"], 228);
    assert_eq!(s["by_type"]["query"], 102);
    assert_eq!(s["by_type"]["new_terms"], 49);
    assert_eq!(s["by_type"]["eql"], 28);
    assert_eq!(s["by_type"]["esql"], 39);
    assert_eq!(s["by_type"]["threshold"], 5);
    assert_eq!(s["by_type"]["machine_learning"], 5);
    assert_eq!(s["runnable"], 156, "query, new_terms and threshold");
    assert_eq!(
        s["elasticsearch_only"], 28,
        "eql runs on Elasticsearch (the embedded backend does not evaluate EQL)"
    );
    assert_eq!(
        s["elasticsearch_8_11_only"], 39,
        "esql, on Elasticsearch 8.11 or newer"
    );
    assert!(s["unsupported"]
        .as_object()
        .unwrap()
        .keys()
        .all(|k| !k.contains("threshold")));
    assert_eq!(
        s["unsupported"]["machine_learning rules are not supported"],
        5
    );
    assert_eq!(s["errors"], 0);
    let geo = s["needs_geoip"].as_array().unwrap();
    assert!(geo.iter().any(|r| r
        .as_str()
        .unwrap()
        .contains("initial_access_aws_api_unusual_asn.toml")));
}
