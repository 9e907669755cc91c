//! `detectd explain` and `dsl::rule_file_query` on the real detection-rules AWS rules.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use detectd::dsl::{rule_file_query, to_dsl};
use detectd::fields::FieldCatalog;

/// Every KQL rule of the public AWS rule set explains without error, and its query lands alone
/// in `bool.filter` with nothing in `must`/`should`/`must_not` (none of them has filters).
#[test]
fn every_aws_kuery_rule_explains() {
    let Some(dir) = common::shared_data("detection-rules/aws") else {
        return;
    };
    let fields = FieldCatalog::builtin();
    let mut n = 0;
    for entry in walkdir::WalkDir::new(dir) {
        let entry = entry.unwrap();
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let text = std::fs::read_to_string(path).unwrap();
        if !text.contains("language = \"kuery\"") {
            continue;
        }
        let q =
            rule_file_query(path, &fields).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let b = &q["bool"];
        assert_eq!(
            b["filter"].as_array().unwrap().len(),
            1,
            "{}",
            path.display()
        );
        for k in ["must", "should", "must_not"] {
            assert_eq!(b[k], serde_json::json!([]), "{} {k}", path.display());
        }
        n += 1;
    }
    assert!(n >= 150, "only {n} kuery rules found");
}

#[test]
fn explain_kql_with_a_saved_field_caps_fixture() {
    let Some(fixture) = common::shared_data("es-fixtures/020-field-caps-all.json") else {
        return;
    };
    let query = "event.action:Delete* and aws.cloudtrail.error_message:x";
    let out = Command::new(env!("CARGO_BIN_EXE_detectd"))
        .args(["explain", "--kql", query, "--field-caps"])
        .arg(&fixture)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&fixture).unwrap()).unwrap();
    let fields = FieldCatalog::from_field_caps(&v["response"]).unwrap();
    let expected = to_dsl(&detectd::kql::parse(query).unwrap(), &fields).unwrap();
    assert_eq!(printed, expected);
    // keyword + text across the two indices: query_string, not wildcard.
    assert!(printed.to_string().contains("query_string"));
}

#[test]
fn explain_reports_kql_errors_with_a_caret() {
    let out = Command::new(env!("CARGO_BIN_EXE_detectd"))
        .args(["explain", "--kql", "event.action:("])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("kql:") && err.contains('^'), "{err}");
}
