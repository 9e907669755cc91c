//! The three seed rules in `rules/` against real attack recordings: the Stratus Red Team
//! SendCommand and cloudtrail-stop techniques, and the integration's CreateDocument pipeline
//! test, read raw through the CloudTrail normaliser and run on the embedded backend.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use detectd::backend::embedded::{EmbeddedBackend, EmbeddedPaths, Store};
use detectd::engine::{execute, ExecRule, Window};
use detectd::fields::FieldCatalog;
use serde_json::Value;

fn seed_rule(name: &str) -> ExecRule {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/rules"));
    let report = detectd::rules::load_paths(&[dir]);
    assert_eq!(report.errors(), 0, "{:?}", report.problems);
    let rule = report
        .rules
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no seed rule named {name:?}"));
    ExecRule::from_rule(rule).unwrap()
}

fn documents(path: &Path) -> Vec<Value> {
    let mut docs = Vec::new();
    let summary = detectd::ecs::reader::read_paths(
        &[path.to_path_buf()],
        &detectd::ecs::NormalizeOptions::default(),
        |d| docs.push(d.doc.into_value()),
        |e| panic!("{e}"),
    );
    assert!(summary.documents > 0);
    docs
}

/// Runs `rule` once over a window spanning every document; returns the alerted event actions.
async fn alerts(rule: &ExecRule, docs: Vec<Value>) -> Vec<String> {
    let (store, _) = Store::new(docs);
    let (lo, hi) = store.span().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let paths = EmbeddedPaths {
        alerts: tmp.path().join("a.ndjson"),
        state: tmp.path().join("s.json"),
        executions: tmp.path().join("e.ndjson"),
    };
    let backend = EmbeddedBackend::new(store, FieldCatalog::builtin(), &paths).unwrap();
    let window = Window {
        from: chrono::DateTime::from_timestamp_millis(lo - 1000).unwrap(),
        to: chrono::DateTime::from_timestamp_millis(hi + 1000).unwrap(),
    };
    let res = execute(rule, window, &backend, "seed", window.to).await;
    assert_eq!(
        res.status,
        detectd::engine::Status::Succeeded,
        "{:?}",
        res.message
    );
    std::fs::read_to_string(&paths.alerts)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            v["event"]["action"].as_str().unwrap().to_string()
        })
        .collect()
}

fn stratus(file: &str) -> Option<PathBuf> {
    common::shared_data(&format!(
        "cloudtrail-samples/stratus-red-team-detonation-logs/{file}"
    ))
}

#[tokio::test]
async fn stratus_send_command_triggers_execution_via_system_manager() {
    let Some(p) = stratus("aws.execution.ssm-send-command.json") else {
        return;
    };
    let got = alerts(
        &seed_rule("AWS Execution via System Manager"),
        documents(&p),
    )
    .await;
    assert_eq!(got, vec!["SendCommand"]);
}

#[tokio::test]
async fn stratus_cloudtrail_stop_triggers_log_suspension() {
    let Some(p) = stratus("aws.defense-evasion.cloudtrail-stop.json") else {
        return;
    };
    let got = alerts(&seed_rule("AWS CloudTrail Log Suspension"), documents(&p)).await;
    assert_eq!(got, vec!["StopLogging"]);
}

#[tokio::test]
async fn seed_rules_do_not_fire_on_unrelated_techniques() {
    let Some(p) = stratus("aws.persistence.iam-create-admin-user.json") else {
        return;
    };
    for name in [
        "AWS Execution via System Manager",
        "AWS CloudTrail Log Suspension",
    ] {
        assert!(
            alerts(&seed_rule(name), documents(&p)).await.is_empty(),
            "{name}"
        );
    }
}

#[tokio::test]
async fn create_document_pipeline_test_triggers_rare_user_rule_on_first_sight() {
    let Some(p) =
        common::shared_data("integrations-cloudtrail/tests/test-create-document-json.log")
    else {
        return;
    };
    let rule = seed_rule("AWS SSM Command Document Created by Rare User");
    let got = alerts(&rule, documents(&p)).await;
    assert_eq!(got, vec!["CreateDocument"]);
}
