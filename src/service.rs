//! Assembling the service from its configuration: the rules to run (loaded, overridden,
//! filtered to what the backend can run) and the backend (embedded: the document store loaded
//! from the configured files; elasticsearch: the client, its index setup and health check).
//! `detectd run` and `detectd status` start here.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;

use crate::backend::elasticsearch::ElasticsearchBackend;
use crate::backend::embedded::{EmbeddedBackend, EmbeddedPaths, Store};
use crate::backend::Backend;
use crate::config::{BackendKind, Config};
use crate::engine::ExecRule;
use crate::fields::FieldCatalog;
use crate::rules::{Level, Rule};

/// A rule the service runs: the validated rule and its execution view.
#[derive(Debug, Clone)]
pub struct RunnableRule {
    pub rule: Rule,
    pub exec: ExecRule,
}

/// Loads the rules directory, applies the operator's overrides, and keeps the enabled rules
/// the configured backend can run. Problems are logged with file and key; one bad file never
/// stops the others.
pub fn load_rules(cfg: &Config) -> Vec<RunnableRule> {
    let report = crate::rules::load_paths(std::slice::from_ref(&cfg.rules_dir));
    for p in &report.problems {
        match p.level {
            Level::Error => tracing::error!(problem = %p, "rule not loaded"),
            Level::Warning => tracing::warn!(problem = %p, "rule warning"),
        }
    }
    let mut out = Vec::new();
    for mut rule in report.rules {
        if let Some(o) = cfg.rules.get(&rule.rule_id) {
            if let Err(e) = rule.apply_override(o) {
                tracing::error!(rule = %rule.rule_id, error = %e, "invalid override in config, rule skipped");
                continue;
            }
        }
        if !rule.enabled {
            tracing::info!(rule = %rule.rule_id, name = %rule.name, "rule disabled");
            continue;
        }
        if let Err(reason) = rule.support().on(cfg.backend) {
            tracing::info!(rule = %rule.rule_id, name = %rule.name, reason, "rule not run on this backend");
            continue;
        }
        match ExecRule::from_rule(&rule) {
            Ok(exec) => out.push(RunnableRule { rule, exec }),
            Err(reason) => tracing::info!(rule = %rule.rule_id, reason = %reason, "rule not run"),
        }
    }
    out
}

/// Reads the embedded backend's data (raw CloudTrail through the normaliser, or ECS NDJSON)
/// into a store, logging skipped records with file and record number.
pub fn load_store(paths: &[PathBuf]) -> Store {
    let started = Instant::now();
    let mut docs = Vec::new();
    let opts = crate::ecs::NormalizeOptions::default();
    let summary = crate::ecs::reader::read_paths(
        paths,
        &opts,
        |d| docs.push(d.doc),
        |e| tracing::warn!(error = %e, "record skipped"),
    );
    let (store, rejected) = Store::new(docs);
    if !rejected.is_empty() {
        tracing::warn!(
            documents = rejected.len(),
            "documents without a usable @timestamp skipped"
        );
    }
    tracing::info!(
        files = summary.files,
        documents = store.len(),
        errors = summary.errors,
        seconds = started.elapsed().as_secs_f64(),
        "embedded data loaded"
    );
    store
}

/// The configured backend, ready to run rules (Elasticsearch: index setup done and a health
/// check logged per rule).
pub async fn open_backend(
    cfg: &Config,
    rules: &[RunnableRule],
) -> anyhow::Result<Arc<dyn Backend>> {
    match cfg.backend {
        BackendKind::Embedded => {
            let data = cfg.embedded.data.clone();
            let store = tokio::task::spawn_blocking(move || load_store(&data))
                .await
                .context("loading embedded data")?;
            let paths = EmbeddedPaths {
                alerts: cfg.embedded.alerts_file.clone(),
                state: cfg.embedded.state_file.clone(),
                executions: cfg.embedded.executions_file.clone(),
            };
            let backend = EmbeddedBackend::new(store, FieldCatalog::builtin(), &paths)?;
            Ok(Arc::new(backend))
        }
        BackendKind::Elasticsearch => {
            let backend = ElasticsearchBackend::new(&cfg.elasticsearch, &cfg.alerts)?;
            backend
                .setup()
                .await
                .context("setting up the alerts index")?;
            let targets: Vec<_> = rules
                .iter()
                .map(|r| {
                    (
                        r.rule.rule_id.clone(),
                        r.rule.name.clone(),
                        r.rule.index.clone(),
                        r.exec.time.primary.clone(),
                    )
                })
                .collect();
            for p in backend.health_check(&targets).await {
                tracing::warn!(rule = %p.rule_id, name = %p.rule_name, problem = %p.problem, "health check");
            }
            Ok(Arc::new(backend))
        }
    }
}
