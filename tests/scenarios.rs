//! The scenario suite: `tests/scenarios/NAME/{rule.toml, events.ndjson, scenario.toml,
//! expected.json}`. Each scenario loads its rule, stores its ECS events, runs the executions
//! `scenario.toml` lists (each at its instant, window per semantics.md §2) and compares the
//! counts of each execution and the final set of alerts (source event id + new terms) with
//! the expectation. It always runs on the embedded backend.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use detectd::backend::embedded::{EmbeddedBackend, EmbeddedPaths, Store};
use detectd::engine::{execute, ExecRule, Window};
use detectd::fields::FieldCatalog;
use serde::Deserialize;
use serde_json::Value;

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
}

/// (source event id, new terms) of an alert.
type AlertKey = (String, Vec<String>);

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

async fn run_embedded(dir: &Path) -> Result<(), String> {
    let name = dir.file_name().unwrap().to_string_lossy().to_string();
    let scenario: Scenario =
        toml::from_str(&std::fs::read_to_string(dir.join("scenario.toml")).unwrap()).unwrap();
    let loaded =
        detectd::rules::load_file(&dir.join("rule.toml")).map_err(|e| format!("{name}: {e}"))?;
    let rule = ExecRule::from_rule(&loaded.rule).map_err(|e| format!("{name}: {e}"))?;
    let (store, rejected) = Store::new(events(dir));
    assert!(rejected.is_empty(), "{name}: events without @timestamp");
    let tmp = tempfile::tempdir().unwrap();
    let paths = EmbeddedPaths {
        alerts: tmp.path().join("alerts.ndjson"),
        state: tmp.path().join("state.json"),
        executions: tmp.path().join("executions.ndjson"),
    };
    let backend = EmbeddedBackend::new(store, FieldCatalog::builtin(), &paths).unwrap();
    for (n, exec) in scenario.execution.iter().enumerate() {
        let at = detectd::time::parse_absolute(&exec.at).unwrap();
        let res = execute(&rule, Window::at(&rule, at), &backend, "scenario", at).await;
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
        if let Some(capped) = exec.capped {
            if res.capped != capped {
                return Err(format!("{ctx}: capped {}, expected {capped}", res.capped));
            }
        }
    }
    let alerts: BTreeSet<AlertKey> = std::fs::read_to_string(&paths.alerts)
        .unwrap_or_default()
        .lines()
        .map(|l| alert_key(&serde_json::from_str(l).unwrap()))
        .collect();
    let want = expected(dir);
    if alerts != want {
        return Err(format!("{name}: alerts {alerts:?}, expected {want:?}"));
    }
    Ok(())
}

#[tokio::test]
async fn scenarios_on_the_embedded_backend() {
    let dirs = scenario_dirs();
    assert!(dirs.len() >= 13, "scenario folders found: {}", dirs.len());
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
