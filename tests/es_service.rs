//! `detectd run` and `detectd status` end to end against a fake Elasticsearch
//! (`tests/common/fake_es.rs`): a rule the cluster refuses with a permanent 400 runs once and
//! is then taken out of the schedule; a rule whose `min_stack_version` is newer than the
//! cluster is reported and never searched, and so is an ES|QL rule on a cluster before 8.11 (no
//! `_query` sent); the other rules run at every interval; state and
//! records go through `_bulk` without refresh waits.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::Ordering;

use common::fake_es::{FakeEs, FakeOptions};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer};

fn rule(dir: &Path, id: &str, index: &str, query: &str, extra_metadata: &str) {
    let text = format!(
        r#"[metadata]
creation_date = "2026/11/01"
maturity = "production"
updated_date = "2026/11/01"
{extra_metadata}

[rule]
author = ["detectd"]
description = "Test rule {id}."
from = "now-6m"
index = ["{index}"]
interval = "5m"
language = "kuery"
license = "Apache-2.0"
name = "Rule {id}"
risk_score = 21
rule_id = "{id}"
severity = "low"
type = "query"
query = '{query}'
"#
    );
    std::fs::write(dir.join(format!("{id}.toml")), text).unwrap();
}

fn detectd(dir: &Path, url: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_detectd"))
        .current_dir(dir)
        .args(["--config", "config.toml"])
        .args(args)
        .env("DETECTD__BACKEND", "elasticsearch")
        .env("DETECTD__ELASTICSEARCH__URLS", url)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_and_too_new_rules_are_reported_once_and_not_run_again() {
    let server = MockServer::start().await;
    let (fake, counts) = FakeEs::new(FakeOptions {
        refuse_marker: Some("RefuseMe".into()),
        ..FakeOptions::default()
    });
    Mock::given(any()).respond_with(fake).mount(&server).await;
    let tmp = tempfile::tempdir().unwrap();
    let rules = tmp.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    rule(&rules, "ok", "ok-*", "event.action: StopLogging", "");
    rule(&rules, "refused", "refused-*", "event.action: RefuseMe", "");
    rule(
        &rules,
        "too-new",
        "new-*",
        "event.action: StopLogging",
        "min_stack_version = \"9.3.0\"",
    );
    // ES|QL needs 8.11; the fake cluster answers as 7.10.0
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/esql_rules/iam_discovery_burst_esql.toml"),
        rules.join("esql.toml"),
    )
    .unwrap();
    let esql_id = "6e3bcbd8-4e1a-4b8e-9d1c-0e5a1c000002";
    std::fs::write(tmp.path().join("config.toml"), "rules_dir = \"rules\"\n").unwrap();

    let (_, stdout, stderr) = detectd(
        tmp.path(),
        &server.uri(),
        &[
            "run",
            "--start",
            "2026-10-01T00:00:00Z",
            "--end",
            "2026-10-01T01:00:00Z",
        ],
    );
    let by_path = counts.by_path.lock().unwrap().clone();
    let searches = |p: &str| by_path.get(&format!("/{p}/_search")).copied().unwrap_or(0);
    assert_eq!(searches("ok-*"), 12, "{by_path:?}\n{stdout}\n{stderr}");
    assert_eq!(searches("refused-*"), 1, "{by_path:?}\n{stderr}");
    assert_eq!(searches("new-*"), 0, "{by_path:?}");
    assert!(!by_path.contains_key("/_query"), "{by_path:?}");
    assert_eq!(counts.refused.load(Ordering::Relaxed), 1);
    let reported = |id: &str| {
        stderr
            .lines()
            .filter(|l| {
                l.contains("ERROR") && l.contains("not runnable on this cluster") && l.contains(id)
            })
            .count()
    };
    assert_eq!(reported("refused"), 1, "{stderr}");
    assert_eq!(reported("too-new"), 1, "{stderr}");
    assert_eq!(reported(esql_id), 1, "{stderr}");
    assert!(
        stderr.contains(
            "ES|QL needs Elasticsearch 8.11 or newer; this cluster is Elasticsearch 7.10.0"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("9.3.0"), "{stderr}");
    // nothing waited for a refresh, and state and records reached the cluster
    assert_eq!(counts.refresh_waits.load(Ordering::Relaxed), 0);
    assert!(counts.state_docs.load(Ordering::Relaxed) >= 1);
    let records = counts.record_docs.lock().unwrap().clone();
    assert_eq!(records.len(), 13, "12 + 1 records: {records:#?}");

    let (ok, validate, stderr) = detectd(tmp.path(), &server.uri(), &["validate", "--cluster"]);
    assert!(ok, "{stderr}");
    assert!(stderr.contains("cluster: Elasticsearch 7.10.0"), "{stderr}");
    assert!(
        validate.contains("not runnable on this cluster: 2 rules")
            && validate.contains("Rule too-new")
            && validate.contains("needs Elastic stack 9.3.0")
            && validate.contains("(rules/esql.toml): ES|QL needs Elasticsearch 8.11 or newer"),
        "{validate}"
    );

    let (ok, status, stderr) = detectd(tmp.path(), &server.uri(), &["status"]);
    assert!(ok, "{stderr}");
    let line = status.lines().find(|l| l.starts_with("too-new")).unwrap();
    assert!(
        line.contains("not runnable on this cluster: needs Elastic stack 9.3.0"),
        "{status}"
    );
    let line = status.lines().find(|l| l.starts_with(esql_id)).unwrap();
    assert!(
        line.contains("not runnable on this cluster: ES|QL needs Elasticsearch 8.11 or newer"),
        "{status}"
    );
}
