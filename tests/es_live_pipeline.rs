//! Live, against a real Elasticsearch 7.10+/8.x (`DETECTD_ES_URL`, with `DETECTD_ES_API_KEY` or
//! `DETECTD_ES_USERNAME`/`DETECTD_ES_PASSWORD`; `DETECTD_ES_INSECURE=1` skips TLS checks):
//! `detectd ingest` loads the committed sample as ECS into a fresh data stream, then
//! `detectd run` replays its last day with the seed rules on the Elasticsearch backend, and the
//! alerts index holds an alert for every event the generator injected. Skips, saying why,
//! when `DETECTD_ES_URL` is unset.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

mod common;
use common::live::Live;

fn detectd(dir: &Path, live: &Live, alerts: &str, args: &[&str]) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_detectd"));
    cmd.current_dir(dir)
        .args(["--config", "config.toml"])
        .args(args);
    live.env(&mut cmd, alerts);
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "detectd {args:?} failed\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread")]
async fn ingest_then_run_produces_the_seed_rule_alerts() {
    let Some(live) = Live::from_env() else { return };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let suffix = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    );
    let stream = format!("logs-aws.cloudtrail-detectdtest{suffix}");
    let alerts = format!("detectd-alerts-test{suffix}");
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("config.toml"),
        format!("rules_dir = {:?}\n", root.join("rules")),
    )
    .unwrap();

    let sample = root.join("sample/AWSLogs");
    let sample = sample.to_str().unwrap();
    detectd(
        tmp.path(),
        &live,
        &alerts,
        &["ingest", sample, "--index", &stream],
    );
    live.req(reqwest::Method::POST, &format!("/{stream}/_refresh"), None)
        .await;
    let (_, count) = live
        .req(reqwest::Method::GET, &format!("/{stream}/_count"), None)
        .await;
    assert_eq!(count["count"], 1732, "every sample record ingested");
    // A second ingest of the same files adds nothing: `_id` = the record's eventID.
    detectd(
        tmp.path(),
        &live,
        &alerts,
        &["ingest", sample, "--index", &stream],
    );
    live.req(reqwest::Method::POST, &format!("/{stream}/_refresh"), None)
        .await;
    let (_, count) = live
        .req(reqwest::Method::GET, &format!("/{stream}/_count"), None)
        .await;
    assert_eq!(count["count"], 1732, "a second ingest duplicates nothing");

    let summary = detectd(
        tmp.path(),
        &live,
        &alerts,
        &[
            "run",
            "--start",
            "2026-11-03T00:00:00Z",
            "--end",
            "2026-11-04T00:00:00Z",
        ],
    );
    live.req(reqwest::Method::POST, &format!("/{alerts}/_refresh"), None)
        .await;
    let (status, found) = live
        .req(
            reqwest::Method::POST,
            &format!("/{alerts}/_search"),
            Some(serde_json::json!({"size": 1000, "query": {"wildcard": {"kibana.alert.ancestors.index": {"value": format!("*{stream}*")}}}})),
        )
        .await;
    assert_eq!(status, 200, "{found}");
    let got: BTreeSet<(String, String)> = found["hits"]["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            let s = &h["_source"];
            (
                s["event"]["id"].as_str().unwrap_or_default().to_string(),
                s["kibana.alert.rule.rule_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("sample/MANIFEST.json")).unwrap())
            .unwrap();
    let expected: BTreeSet<(String, String)> = manifest["injected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["event_id"].as_str().unwrap().to_string(),
                i["rule_id"].as_str().unwrap().to_string(),
            )
        })
        .collect();

    // Clean up before asserting, so a failure leaves nothing behind.
    live.req(
        reqwest::Method::DELETE,
        &format!("/_data_stream/{stream}"),
        None,
    )
    .await;
    live.req(reqwest::Method::DELETE, &format!("/{stream}"), None)
        .await;
    for suffix in ["000001", "state", "executions"] {
        live.req(
            reqwest::Method::DELETE,
            &format!("/{alerts}-{suffix}"),
            None,
        )
        .await;
    }
    live.req(
        reqwest::Method::DELETE,
        &format!("/_index_template/{alerts}"),
        None,
    )
    .await;

    assert_eq!(
        got, expected,
        "alerts on the ingested stream = the injected events\n{summary}"
    );
}
