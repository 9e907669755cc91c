//! Golden tests of `detectd explain RULE.toml --at T`: every Elasticsearch request one
//! execution of each seed rule sends, as Dev Tools console text. `UPDATE_GOLDEN=1` rewrites the
//! expected files in tests/explain_golden/.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

const AT: &str = "2026-11-03T12:00:00Z";

fn check(rule_file: &str) {
    check_rule(
        &format!("rules/{rule_file}"),
        &rule_file.replace(".toml", ".txt"),
    );
}

/// `rule_path` (relative to the crate) against `tests/explain_golden/GOLDEN`.
fn check_rule(rule_path: &str, golden: &str) {
    let rule_file = rule_path;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(env!("CARGO_BIN_EXE_detectd"))
        .current_dir(root)
        .args(["explain", rule_path, "--at", AT])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = String::from_utf8(out.stdout).unwrap();
    let expected = root.join("tests/explain_golden").join(golden);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&expected, &got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&expected)
        .unwrap_or_else(|_| panic!("{} missing; run with UPDATE_GOLDEN=1", expected.display()));
    assert_eq!(
        got, want,
        "explain output of {rule_file} changed (UPDATE_GOLDEN=1 to accept)"
    );
}

#[test]
fn cloudtrail_log_suspension_query_rule() {
    check("defense_evasion_cloudtrail_logging_suspended.toml");
}

#[test]
fn execution_via_system_manager_query_rule() {
    check("execution_via_system_manager.toml");
}

#[test]
fn ssm_document_by_rare_user_new_terms_rule() {
    check("execution_ssm_command_document_created_by_rare_user.toml");
}

#[test]
fn threshold_rule_with_cardinality() {
    check_rule(
        "tests/scenarios/threshold_cardinality/rule.toml",
        "threshold_cardinality.txt",
    );
}

#[test]
fn threshold_rule_without_fields() {
    check_rule(
        "tests/scenarios/threshold_no_fields/rule.toml",
        "threshold_no_fields.txt",
    );
}

#[test]
fn eql_single_event_rule() {
    check_rule("tests/eql/single_event.toml", "eql_single_event.txt");
}

#[test]
fn eql_sequence_rule_with_override_category_timestamp_and_tiebreaker() {
    check_rule("tests/eql/sequence.toml", "eql_sequence.txt");
}

#[test]
fn esql_rule_with_metadata_id() {
    check_rule(
        "tests/esql_rules/cloudtrail_logging_stopped_esql.toml",
        "esql_metadata_id.txt",
    );
}

#[test]
fn esql_aggregating_rule() {
    check_rule(
        "tests/esql_rules/iam_discovery_burst_esql.toml",
        "esql_aggregating.txt",
    );
}

#[test]
fn unsupported_rule_types_are_refused_by_name() {
    let Some(rule) = std::env::var_os("DETECTD_SHARED_DATA")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data"))
        .join("detection-rules/aws")
        .read_dir()
        .ok()
        .and_then(|mut d| {
            d.find_map(|e| {
                let p = e.ok()?.path();
                let text = std::fs::read_to_string(&p).ok()?;
                text.contains("type = \"machine_learning\"").then_some(p)
            })
        })
    else {
        eprintln!("skipping: no machine_learning rule in the reference data");
        return;
    };
    let out = Command::new(env!("CARGO_BIN_EXE_detectd"))
        .arg("explain")
        .arg(&rule)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("machine_learning"));
}
