//! The scenario suite: `tests/scenarios/NAME/{rule.toml, events.ndjson, scenario.toml,
//! expected.json}`. Each scenario loads its rule, stores its ECS events, runs the executions
//! `scenario.toml` lists (each at its instant, window per semantics.md §2) and compares the
//! counts of each execution and the final set of alerts (source event id + new terms; for
//! threshold alerts their first event time, count and terms) with
//! the expectation. It always runs on the embedded backend, and also on a real Elasticsearch
//! when `DETECTD_ES_URL` is set (own index with the integration's mappings, events loaded,
//! executions run, alerts compared, everything deleted). If the backends disagree, one has a bug.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use detectd::backend::elasticsearch::ElasticsearchBackend;
use detectd::backend::embedded::{EmbeddedBackend, EmbeddedPaths, Store};
use detectd::config::AlertsConfig;
use detectd::engine::{execute, ExecRule, Window};
use detectd::fields::FieldCatalog;
use serde::Deserialize;
use serde_json::Value;

mod common;

#[derive(Debug, Deserialize)]
struct Scenario {
    #[allow(dead_code)]
    description: String,
    execution: Vec<Execution>,
}

#[derive(Debug, Deserialize)]
struct Execution {
    at: String,
    alerts: u64,
    duplicates: u64,
    capped: Option<bool>,
    /// A text the execution's warnings must contain (none expected when absent).
    warning: Option<String>,
}

/// (source event id, new terms) of an alert; for a threshold alert
/// (`threshold from <from> count <count>`, its term values).
type AlertKey = (String, Vec<String>);

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|t| {
            t.iter()
                .map(|x| match x {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn threshold_key(from: &Value, count: &Value) -> String {
    format!(
        "threshold from {} count {count}",
        from.as_str().unwrap_or_default()
    )
}

fn scenario_dirs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

fn events(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("events.ndjson"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn expected(dir: &Path) -> BTreeSet<AlertKey> {
    let v: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    v.iter()
        .map(|a| {
            if let Some(t) = a.get("threshold") {
                return (
                    threshold_key(&t["from"], &t["count"]),
                    strings(t.get("terms")),
                );
            }
            let terms = a
                .get("new_terms")
                .and_then(Value::as_array)
                .map(|t| t.iter().map(|x| x.as_str().unwrap().to_string()).collect())
                .unwrap_or_default();
            (a["event_id"].as_str().unwrap().to_string(), terms)
        })
        .collect()
}

fn alert_key(alert: &Value) -> AlertKey {
    if let Some(t) = alert.get("kibana.alert.threshold_result") {
        let values: Vec<Value> = t["terms"]
            .as_array()
            .map(|ts| ts.iter().map(|x| x["value"].clone()).collect())
            .unwrap_or_default();
        return (
            threshold_key(&t["from"], &t["count"]),
            strings(Some(&Value::Array(values))),
        );
    }
    let terms = alert
        .get("kibana.alert.new_terms")
        .and_then(Value::as_array)
        .map(|t| {
            t.iter()
                .map(|x| x.as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default();
    (alert["event"]["id"].as_str().unwrap().to_string(), terms)
}

fn load(dir: &Path) -> Result<(String, Scenario, ExecRule), String> {
    let name = dir.file_name().unwrap().to_string_lossy().to_string();
    let scenario: Scenario =
        toml::from_str(&std::fs::read_to_string(dir.join("scenario.toml")).unwrap()).unwrap();
    let loaded =
        detectd::rules::load_file(&dir.join("rule.toml")).map_err(|e| format!("{name}: {e}"))?;
    let rule = ExecRule::from_rule(&loaded.rule).map_err(|e| format!("{name}: {e}"))?;
    Ok((name, scenario, rule))
}

/// Runs the scenario's executions on `backend`, checking each execution's counts.
async fn run_executions(
    name: &str,
    scenario: &Scenario,
    rule: &ExecRule,
    backend: &dyn detectd::backend::Backend,
) -> Result<(), String> {
    for (n, exec) in scenario.execution.iter().enumerate() {
        let at = detectd::time::parse_absolute(&exec.at).unwrap();
        let res = execute(rule, Window::at(rule, at), backend, "scenario", at).await;
        let ctx = format!(
            "{name} execution {} at {}: {:?}",
            n + 1,
            exec.at,
            res.message
        );
        if res.status == detectd::engine::Status::Failed {
            return Err(format!("{ctx}: failed"));
        }
        if res.alerts_created != exec.alerts || res.duplicates != exec.duplicates {
            return Err(format!(
                "{ctx}: alerts {} duplicates {}, expected {} and {}",
                res.alerts_created, res.duplicates, exec.alerts, exec.duplicates
            ));
        }
        match &exec.warning {
            Some(w) if !res.warnings.iter().any(|x| x.contains(w.as_str())) => {
                return Err(format!(
                    "{ctx}: warnings {:?}, expected one containing {w:?}",
                    res.warnings
                ));
            }
            None if !res.warnings.is_empty() && !res.capped => {
                return Err(format!("{ctx}: unexpected warnings {:?}", res.warnings));
            }
            _ => {}
        }
        if let Some(capped) = exec.capped {
            if res.capped != capped {
                return Err(format!("{ctx}: capped {}, expected {capped}", res.capped));
            }
        }
    }
    Ok(())
}

fn compare(name: &str, alerts: BTreeSet<AlertKey>, dir: &Path) -> Result<(), String> {
    let want = expected(dir);
    if alerts != want {
        return Err(format!("{name}: alerts {alerts:?}, expected {want:?}"));
    }
    Ok(())
}

async fn run_embedded(dir: &Path) -> Result<(), String> {
    let (name, scenario, rule) = load(dir)?;
    let (store, rejected) = Store::new(events(dir));
    assert!(rejected.is_empty(), "{name}: events without @timestamp");
    let tmp = tempfile::tempdir().unwrap();
    let paths = EmbeddedPaths {
        alerts: tmp.path().join("alerts.ndjson"),
        state: tmp.path().join("state.json"),
        executions: tmp.path().join("executions.ndjson"),
    };
    let backend = EmbeddedBackend::new(store, FieldCatalog::builtin(), &paths).unwrap();
    run_executions(&name, &scenario, &rule, &backend).await?;
    let alerts: BTreeSet<AlertKey> = std::fs::read_to_string(&paths.alerts)
        .unwrap_or_default()
        .lines()
        .map(|l| alert_key(&serde_json::from_str(l).unwrap()))
        .collect();
    compare(&name, alerts, dir)
}

/// Mappings of the aws integration for the fields the scenarios use (our own subset).
fn source_mappings() -> Value {
    let kw = serde_json::json!({"type": "keyword", "ignore_above": 1024});
    let ck = serde_json::json!({"type": "constant_keyword", "value": "aws.cloudtrail"});
    serde_json::json!({
        "dynamic_templates": [{"strings": {"match_mapping_type": "string", "mapping": kw}}],
        "properties": {
            "@timestamp": {"type": "date"},
            "event": {"properties": {"ingested": {"type": "date"}, "dataset": ck,
                "action": kw, "provider": kw, "outcome": kw, "id": kw, "kind": kw}},
            "data_stream": {"properties": {"dataset": ck}},
            "source": {"properties": {"ip": {"type": "ip"}, "address": kw}},
            "user": {"properties": {"name": kw}},
            "aws": {"properties": {"cloudtrail": {"properties": {
                "response_elements": {"type": "keyword", "ignore_above": 8191},
                "user_identity": {"properties": {"arn": kw, "type": kw}}}}}}
        }
    })
}

/// The same scenario on a real cluster: a fresh index named to match the rule's patterns
/// (patterns that do not match it are pointed at names that match nothing).
async fn run_live(live: &common::live::Live, dir: &Path, n: usize) -> Result<(), String> {
    use reqwest::Method;
    let (name, scenario, mut rule) = load(dir)?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    // One dash only, so 8.x's built-in `logs-*-*` data-stream template does not apply.
    let index = format!("logs-aws.cloudtrail.detectdtest{stamp}x{n}");
    let alias = format!("detectd-alerts-scenario{stamp}x{n}");
    rule.indices = rule
        .indices
        .iter()
        .map(|p| {
            let prefix = p.trim_end_matches('*');
            if p.ends_with('*') && index.starts_with(prefix) {
                index.clone()
            } else {
                format!("{p}-detectd-matches-nothing-{stamp}")
            }
        })
        .collect();
    let (mut status, mut body) = live
        .req(
            Method::PUT,
            &format!("/{index}"),
            Some(serde_json::json!({"mappings": source_mappings()})),
        )
        .await;
    if status >= 300 && body.to_string().contains("[constant_keyword]") {
        // A node without the constant_keyword module (Elasticsearch from the published jars):
        // the scenario events carry event.dataset themselves, so keyword gives the same hits.
        eprintln!("{name}: the cluster has no constant_keyword, mapped as keyword");
        let text = source_mappings().to_string().replace(
            "\"constant_keyword\",\"value\":\"aws.cloudtrail\"",
            "\"keyword\"",
        );
        let mappings: Value = serde_json::from_str(&text).unwrap();
        (status, body) = live
            .req(
                Method::PUT,
                &format!("/{index}"),
                Some(serde_json::json!({ "mappings": mappings })),
            )
            .await;
    }
    if status >= 300 {
        return Err(format!("{name}: create index: {body}"));
    }
    let mut bulk = String::new();
    for e in events(dir) {
        bulk.push_str(
            &serde_json::json!({"index": {"_index": index, "_id": e["event"]["id"]}}).to_string(),
        );
        bulk.push('\n');
        bulk.push_str(&e.to_string());
        bulk.push('\n');
    }
    let mut r = live
        .client
        .post(format!("{}/_bulk?refresh=true", live.url))
        .header("Content-Type", "application/x-ndjson")
        .body(bulk);
    if let Some((u, p)) = &live.auth {
        r = r.basic_auth(u, Some(p));
    }
    if let Some(k) = &live.api_key {
        r = r.header("Authorization", format!("ApiKey {k}"));
    }
    let loaded: Value = r.send().await.unwrap().json().await.unwrap();
    let result = async {
        if loaded["errors"] != Value::Bool(false) {
            return Err(format!("{name}: bulk load: {loaded}"));
        }
        let backend = ElasticsearchBackend::new(
            &live.es_config(&alias),
            &AlertsConfig {
                index: alias.clone(),
                ..AlertsConfig::default()
            },
        )
        .map_err(|e| format!("{name}: {e}"))?;
        backend
            .setup()
            .await
            .map_err(|e| format!("{name}: setup: {e}"))?;
        run_executions(&name, &scenario, &rule, &backend).await?;
        live.req(Method::POST, &format!("/{alias}/_refresh"), None)
            .await;
        let (_, found) = live
            .req(
                Method::POST,
                &format!("/{alias}/_search"),
                Some(serde_json::json!({"size": 1000})),
            )
            .await;
        let alerts: BTreeSet<AlertKey> = found["hits"]["hits"]
            .as_array()
            .map(|h| h.iter().map(|h| alert_key(&h["_source"])).collect())
            .unwrap_or_default();
        compare(&format!("{name} (elasticsearch)"), alerts, dir)
    }
    .await;
    live.req(Method::DELETE, &format!("/{index}"), None).await;
    for suffix in ["000001", "state", "executions"] {
        live.req(Method::DELETE, &format!("/{alias}-{suffix}"), None)
            .await;
    }
    live.req(Method::DELETE, &format!("/_index_template/{alias}"), None)
        .await;
    result
}

#[tokio::test]
async fn scenarios_on_the_embedded_backend() {
    let dirs = scenario_dirs();
    assert!(dirs.len() >= 16, "scenario folders found: {}", dirs.len());
    let mut failures = Vec::new();
    for dir in &dirs {
        if let Err(e) = run_embedded(dir).await {
            failures.push(e);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} scenarios failed:\n{}",
        failures.len(),
        dirs.len(),
        failures.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn scenarios_on_elasticsearch() {
    let Some(live) = common::live::Live::from_env() else {
        return;
    };
    let dirs = scenario_dirs();
    let mut failures = Vec::new();
    for (n, dir) in dirs.iter().enumerate() {
        if let Err(e) = run_live(&live, dir, n).await {
            failures.push(e);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} scenarios failed on Elasticsearch:\n{}",
        failures.len(),
        dirs.len(),
        failures.join("\n")
    );
}
