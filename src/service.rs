//! Assembling the service from its configuration: the rules to run (loaded, overridden,
//! filtered to what the backend can run) and the backend (embedded: the document store loaded
//! from the configured files; elasticsearch: the client, its index setup and health check).
//! `detectd run` and `detectd status` start here.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::backend::elasticsearch::ElasticsearchBackend;
use crate::backend::embedded::{DataWatcher, EmbeddedBackend, EmbeddedPaths, Store, StoreBuilder};
use crate::backend::{Backend, ExecutionRecord, RuleState};
use crate::config::{BackendKind, Config};
use crate::engine::{ExecRule, ExecutionResult, Status, Window};
use crate::fields::FieldCatalog;
use crate::http::Health;
use crate::kql::Ast;
use crate::rules::{Level, Rule};
use crate::scheduler::{
    cancel_on_shutdown_signals, clock_for_run, parse_cron, reload_triggers, BackendStore,
    ExecutionOutcome, ExecutionRecordDoc, ExecutionStatus, Executor, Recorder, RunSummary,
    ScheduledRule, Scheduler, SchedulerOptions, Window as SchedWindow,
};

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
pub fn load_store(paths: &[PathBuf], opts: &crate::ecs::NormalizeOptions) -> Store {
    let started = Instant::now();
    let mut builder = StoreBuilder::default();
    let mut rejected = 0usize;
    let summary = crate::ecs::reader::read_paths(
        paths,
        opts,
        |d| {
            if !builder.push_doc(&d.doc) {
                rejected += 1;
            }
            if builder.len() % 100_000 == 0 && !builder.is_empty() {
                tracing::info!(
                    documents = builder.len(),
                    seconds = started.elapsed().as_secs_f64(),
                    "loading embedded data"
                );
            }
        },
        |e| tracing::warn!(error = %e, "record skipped"),
    );
    let store = builder.finish();
    if rejected > 0 {
        tracing::warn!(
            documents = rejected,
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

/// How the embedded backend normalises CloudTrail: the defaults plus the configured GeoIP
/// databases (a database that cannot be opened stops the start, naming the file).
pub fn normalize_options(cfg: &Config) -> anyhow::Result<crate::ecs::NormalizeOptions> {
    crate::ecs::options_with_geoip(&cfg.embedded.geoip_databases)
        .context("embedded.geoip_databases")
}

/// The configured backend, ready to run rules (Elasticsearch: index setup done and a health
/// check logged per rule).
/// A rule the backend cannot run, found before it ran (e.g. its `min_stack_version` is newer
/// than the cluster): `(rule_id, name, reason)`.
pub type NotRunnable = (String, String, String);

/// The embedded backend's data watcher and how often it looks (`embedded.watch_interval`).
pub struct Watching {
    pub backend: Arc<EmbeddedBackend>,
    pub watcher: DataWatcher,
    pub every: std::time::Duration,
}

/// `embedded.watch_interval`: `None` for `off`.
pub fn watch_interval(cfg: &Config) -> anyhow::Result<Option<std::time::Duration>> {
    let s = cfg.embedded.watch_interval.trim();
    if s.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let d = crate::time::parse_interval(s)
        .ok()
        .and_then(|d| d.to_std().ok())
        .with_context(|| {
            format!(
                "embedded.watch_interval: `{s}` is not a duration such as `10s` or `1m`, nor `off`"
            )
        })?;
    Ok(Some(d))
}

/// The backend, the rules it cannot run, and (embedded, unless `watch_interval = "off"`) the
/// watcher of its data files.
pub async fn open_backend(
    cfg: &Config,
    rules: &[RunnableRule],
) -> anyhow::Result<(Arc<dyn Backend>, Vec<NotRunnable>, Option<Watching>)> {
    match cfg.backend {
        BackendKind::Embedded => {
            let data = cfg.embedded.data.clone();
            let opts = normalize_options(cfg)?;
            let every = watch_interval(cfg)?;
            // Taken before the files are read: a file that changes while they load is read
            // again by the first look.
            let watcher = every
                .map(|_| DataWatcher::new(&data, opts.clone(), std::time::Duration::from_secs(2)));
            let store = tokio::task::spawn_blocking(move || load_store(&data, &opts))
                .await
                .context("loading embedded data")?;
            let paths = EmbeddedPaths {
                alerts: cfg.embedded.alerts_file.clone(),
                state: cfg.embedded.state_file.clone(),
                executions: cfg.embedded.executions_file.clone(),
            };
            let backend = Arc::new(EmbeddedBackend::new(
                store,
                FieldCatalog::builtin(),
                &paths,
            )?);
            // Every rule's query evaluated over the store in one pass, before the first
            // executions (which would otherwise each parse the whole store).
            let queries: Vec<(Vec<String>, Ast, Vec<serde_json::Value>)> = rules
                .iter()
                .map(|r| {
                    (
                        r.exec.indices.clone(),
                        r.exec.query.clone(),
                        r.exec.filters.clone(),
                    )
                })
                .collect();
            let b = backend.clone();
            let started = Instant::now();
            tracing::info!(
                rules = queries.len(),
                documents = backend.store().len(),
                "evaluating rule queries over the embedded data"
            );
            let built = tokio::task::spawn_blocking(move || {
                let q: Vec<(&[String], &Ast, &[serde_json::Value])> = queries
                    .iter()
                    .map(|(i, q, f)| (i.as_slice(), q, f.as_slice()))
                    .collect();
                b.prepare(&q)
            })
            .await
            .context("evaluating rule queries")?;
            match built {
                Ok(n) => tracing::info!(
                    queries = n,
                    documents = backend.store().len(),
                    seconds = started.elapsed().as_secs_f64(),
                    "rule queries evaluated over the embedded data"
                ),
                // The executions build what they need themselves (and report it).
                Err(e) => tracing::warn!(error = %e, "evaluating rule queries ahead failed"),
            }
            let watching = watcher.zip(every).map(|(watcher, every)| Watching {
                backend: backend.clone(),
                watcher,
                every,
            });
            Ok((backend, Vec::new(), watching))
        }
        BackendKind::Elasticsearch => {
            let backend = ElasticsearchBackend::new(&cfg.elasticsearch, &cfg.alerts)?;
            // `GET /` needs the `monitor` cluster privilege; without it the rules run unchecked
            // (an unreachable cluster fails the setup just below anyway).
            let refused: Vec<NotRunnable> = match backend.cluster_info().await {
                Ok(info) => {
                    tracing::info!(engine = info.name(), version = %info.number, "cluster");
                    rules
                        .iter()
                        .filter_map(|r| {
                            let why = info.refuses_rule(&r.rule)?;
                            Some((r.rule.rule_id.clone(), r.rule.name.clone(), why))
                        })
                        .collect()
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cluster version unknown: min_stack_version not checked");
                    Vec::new()
                }
            };
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
            Ok((Arc::new(backend), refused, None))
        }
    }
}

/// The scheduler's view of a rule.
pub fn scheduled(r: &RunnableRule) -> Result<ScheduledRule, String> {
    let cron = match &r.rule.cron {
        Some(expr) => Some(
            parse_cron(expr).map_err(|e| format!("rule {}: cron `{expr}`: {e}", r.rule.rule_id))?,
        ),
        None => None,
    };
    Ok(ScheduledRule {
        rule_id: r.rule.rule_id.clone(),
        name: r.rule.name.clone(),
        interval: r.rule.interval,
        cron,
        from: r.rule.from.clone(),
        to: r.rule.to.clone(),
        enabled: r.rule.enabled,
    })
}

/// Rules by id, shared between the executor and the reload loop.
type RuleMap = Arc<RwLock<HashMap<String, Arc<RunnableRule>>>>;

/// Alerts of one rule during this run.
#[derive(Debug, Default)]
pub struct Tally {
    pub name: String,
    pub severity: String,
    pub created: std::collections::HashSet<String>,
    /// Distinct alerts that already existed before this run.
    pub existing: std::collections::HashSet<String>,
}

/// Runs scheduled executions through the engine on the backend, feeding metrics and a
/// per-rule tally of alerts for the final summary.
struct EngineExecutor {
    rules: RuleMap,
    backend: Arc<dyn Backend>,
    health: Arc<Health>,
    tally: Mutex<BTreeMap<String, Tally>>,
    /// To take a rule the cluster refuses out of the schedule.
    scheduler: std::sync::OnceLock<crate::scheduler::SchedulerHandle>,
}

impl EngineExecutor {
    /// The cluster refused the rule's request for good: reported once, taken out of the
    /// schedule (until the rules are reloaded), listed in `/readyz`.
    fn not_runnable(&self, rule: &RunnableRule, reason: &str) {
        tracing::error!(rule = %rule.rule.rule_id, name = %rule.rule.name, reason, "{NOT_RUNNABLE}: rule taken out of the schedule");
        crate::sync::lock(&self.health.not_runnable).insert(
            rule.rule.rule_id.clone(),
            format!("({}): {reason}", rule.rule.name),
        );
        let remaining: Vec<ScheduledRule> = {
            let mut map = crate::sync::write(&self.rules);
            map.remove(&rule.rule.rule_id);
            map.values().filter_map(|r| scheduled(r).ok()).collect()
        };
        if let Some(h) = self.scheduler.get() {
            h.reload(remaining);
        }
    }
}

#[async_trait]
impl Executor for EngineExecutor {
    async fn execute(
        &self,
        rule_id: &str,
        window: SchedWindow,
        started_at: DateTime<Utc>,
    ) -> ExecutionOutcome {
        let rule = crate::sync::read(&self.rules).get(rule_id).cloned();
        let Some(rule) = rule else {
            return ExecutionOutcome::failed(format!("rule {rule_id} is no longer loaded"));
        };
        let uuid = crate::scheduler::execution_uuid(rule_id, started_at, window);
        let w = Window {
            from: window.from,
            to: window.to,
        };
        let res =
            crate::engine::execute(&rule.exec, w, self.backend.as_ref(), &uuid, started_at).await;
        self.health.metrics.record_execution(&res);
        self.health
            .backend_ok
            .store(res.status != Status::Failed, Ordering::Relaxed);
        if res.alerts_created + res.duplicates > 0 {
            let mut t = crate::sync::lock(&self.tally);
            let e = t.entry(rule_id.to_string()).or_insert_with(|| Tally {
                name: rule.rule.name.clone(),
                severity: rule.exec.severity.clone(),
                ..Tally::default()
            });
            e.created.extend(res.created_ids.iter().cloned());
            for id in &res.duplicate_ids {
                if !e.created.contains(id) {
                    e.existing.insert(id.clone());
                }
            }
        }
        if res.not_runnable {
            self.not_runnable(&rule, res.message.as_deref().unwrap_or(""));
        } else if res.status == Status::Failed {
            tracing::warn!(rule = %rule_id, message = res.message.as_deref().unwrap_or(""), "execution failed");
        } else if res.capped {
            tracing::warn!(rule = %rule_id, alerts = res.alerts_created, "{}", crate::engine::MAX_SIGNALS_WARNING);
        }
        outcome(&res)
    }
}

/// How an execution record's message starts when the cluster refused the rule for good.
pub const NOT_RUNNABLE: &str = "not runnable on this cluster";

/// The scheduler's outcome of an engine result. Alerts that could not be written make the
/// execution failed, so its window is not marked covered and is retried.
fn outcome(res: &ExecutionResult) -> ExecutionOutcome {
    let status = match res.status {
        _ if res.failed_writes > 0 => ExecutionStatus::Failed,
        Status::Succeeded => ExecutionStatus::Succeeded,
        Status::PartialFailure => ExecutionStatus::PartialFailure,
        Status::Failed => ExecutionStatus::Failed,
    };
    ExecutionOutcome {
        status,
        hits: res.hits,
        alerts: res.alerts_created,
        duplicates: res.duplicates,
        capped: res.capped,
        warnings: res.warnings.clone(),
        retire: res.not_runnable,
        message: if res.not_runnable {
            res.message.as_ref().map(|m| format!("{NOT_RUNNABLE}: {m}"))
        } else {
            res.message.clone()
        },
        search_ms: res.search_ms.round() as u64,
        index_ms: res.index_ms.round() as u64,
        round_trips: res.round_trips,
    }
}

/// Forwards execution records to the backend and feeds the lag and gap metrics.
struct MeteredRecorder {
    inner: Arc<BackendStore>,
    health: Arc<Health>,
}

#[async_trait]
impl Recorder for MeteredRecorder {
    async fn record(&self, record: &ExecutionRecord) -> Result<(), crate::backend::Error> {
        if let Some(doc) = ExecutionRecordDoc::from_record(record) {
            let lag = (doc.started_at - doc.scheduled_at).num_milliseconds() as f64 / 1000.0;
            self.health.metrics.record_lag(lag);
            if doc.gap.is_some() {
                self.health.metrics.record_gap(&doc.rule_id);
            }
        }
        self.inner.record(record).await
    }
}

/// What `detectd run` was asked for.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Replay from this time (RFC 3339 or date math) at full speed.
    pub start: Option<String>,
    /// Stop the replay at this time (default: continue live).
    pub end: Option<String>,
    /// The config file to read again on reload (`None`: `config.toml` when present).
    pub config_path: Option<PathBuf>,
}

/// What a run is about to do, reported before the first execution.
#[derive(Debug, Clone)]
pub struct RunStart {
    pub rules: usize,
    pub backend: &'static str,
}

/// The end of a run: the scheduler's totals and the alerts of each rule.
#[derive(Debug)]
pub struct RunOutcome {
    pub summary: RunSummary,
    /// By rule id.
    pub tally: BTreeMap<String, Tally>,
}

/// `detectd run`: every enabled rule on its schedule; with `start` a replay. `started` is told
/// what runs once the backend is open, before the first execution.
pub async fn run(
    cfg: Config,
    opts: RunOptions,
    started: impl FnOnce(&RunStart),
) -> anyhow::Result<RunOutcome> {
    let config_path = opts.config_path.clone();
    let rules = load_rules(&cfg);
    if rules.is_empty() {
        anyhow::bail!("no runnable rules in {}", cfg.rules_dir.display());
    }
    let schedule: Vec<ScheduledRule> = rules
        .iter()
        .filter_map(|r| {
            scheduled(r)
                .map_err(|e| tracing::error!(error = %e, "rule not scheduled"))
                .ok()
        })
        .collect();
    let run_clock = clock_for_run(opts.start.as_deref(), opts.end.as_deref(), Utc::now())?;
    let (backend, refused, watching) = open_backend(&cfg, &rules).await?;
    let health = Arc::new(Health::default());
    // Rules the cluster cannot run: reported once here, never scheduled.
    let mut schedule = schedule;
    let mut rules = rules;
    for (id, name, why) in &refused {
        tracing::error!(rule = %id, name = %name, reason = %why, "{NOT_RUNNABLE}: rule not scheduled");
        crate::sync::lock(&health.not_runnable).insert(id.clone(), format!("({name}): {why}"));
    }
    schedule.retain(|s| !refused.iter().any(|(id, _, _)| *id == s.rule_id));
    rules.retain(|r| !refused.iter().any(|(id, _, _)| *id == r.rule.rule_id));
    if schedule.is_empty() {
        anyhow::bail!(
            "no rule of {} can run on this backend",
            cfg.rules_dir.display()
        );
    }
    health.metrics.set_rules_loaded(schedule.len() as u64);
    health.rules_loaded.store(true, Ordering::Relaxed);
    health.backend_ok.store(true, Ordering::Relaxed);
    let rule_map: RuleMap = Arc::new(RwLock::new(
        rules
            .into_iter()
            .map(|r| (r.rule.rule_id.clone(), Arc::new(r)))
            .collect(),
    ));
    let executor = Arc::new(EngineExecutor {
        rules: rule_map.clone(),
        backend: backend.clone(),
        health: health.clone(),
        tally: Mutex::new(BTreeMap::new()),
        scheduler: std::sync::OnceLock::new(),
    });
    let store = Arc::new(BackendStore(backend.clone()));
    let recorder = Arc::new(MeteredRecorder {
        inner: store.clone(),
        health: health.clone(),
    });
    let mut options = SchedulerOptions::from_config(&cfg.scheduler)?;
    options.end = run_clock.end;
    options.progress = opts.start.is_some();
    let scheduler = Scheduler::new(executor.clone(), store, recorder, run_clock.clock, options);
    let handle = scheduler.handle();
    let _ = executor.scheduler.set(handle.clone());
    let cancel = handle.cancellation();
    cancel_on_shutdown_signals(cancel.clone());
    if !cfg.http.listen.is_empty() {
        let (addr, _task) = crate::http::serve(&cfg.http.listen, health.clone(), cancel.clone())
            .await
            .with_context(|| format!("binding the http endpoint on {}", cfg.http.listen))?;
        tracing::info!(address = %addr, "serving /healthz, /readyz, /metrics");
    }
    // A run that goes on live looks for new data files; a replay that ends does not.
    if let Some(w) = watching.filter(|_| run_clock.end.is_none()) {
        tokio::spawn(watch_data(w, cancel.clone()));
    }
    let mut triggers = reload_triggers(
        Some(cfg.rules_dir.clone()),
        std::time::Duration::from_secs(5),
        cancel.clone(),
    );
    let mut reload_cfg = cfg.clone();
    let reload_handle = handle.clone();
    tokio::spawn(async move {
        while triggers.recv().await.is_some() {
            // config.toml is read again too (its rule overrides); a config that no longer
            // loads keeps the previous one.
            match Config::load_from(config_path.as_deref()) {
                Ok(c) => reload_cfg = c,
                Err(e) => {
                    tracing::error!(error = %e, "config not reloaded, keeping the previous one")
                }
            }
            let fresh = reload(&reload_cfg, &rule_map);
            tracing::info!(rules = fresh.len(), "rules reloaded");
            reload_handle.reload(fresh);
        }
    });
    started(&RunStart {
        rules: schedule.len(),
        backend: backend_name(&cfg),
    });
    let summary = scheduler.run(schedule).await?;
    cancel.cancel();
    // State and records still buffered by the backend (Elasticsearch's background writer);
    // if this fails the windows since the last written state run again at the next start.
    if let Err(e) = backend.flush().await {
        tracing::error!(error = %e, "state and execution records not all written");
    }
    let tally = std::mem::take(&mut *crate::sync::lock(&executor.tally));
    Ok(RunOutcome { summary, tally })
}

/// Looks at the embedded data files every `w.every` until `cancel`, adding what is new to the
/// store (see `backend::embedded::DataWatcher`).
async fn watch_data(w: Watching, cancel: tokio_util::sync::CancellationToken) {
    let Watching {
        backend,
        mut watcher,
        every,
    } = w;
    tracing::info!(files = watcher.files(), every = ?every, "watching the embedded data for new files");
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        let b = backend.clone();
        let looked = tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let res = watcher.poll(
                &b,
                Utc::now(),
                &mut |e| tracing::warn!(error = %e, "record skipped"),
            );
            (watcher, res, started.elapsed())
        })
        .await;
        match looked {
            Ok((back, res, took)) => {
                watcher = back;
                match res {
                    Ok(s) if s.files > 0 => tracing::info!(
                        files = s.files,
                        documents = s.documents,
                        already_stored = s.known,
                        errors = s.errors,
                        store = backend.store().len(),
                        seconds = took.as_secs_f64(),
                        "new embedded data read"
                    ),
                    Ok(_) => {}
                    Err(e) => tracing::error!(error = %e, "new embedded data not added"),
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "the embedded data watcher stopped");
                return;
            }
        }
    }
}

/// The configured backend's name.
pub fn backend_name(cfg: &Config) -> &'static str {
    match cfg.backend {
        BackendKind::Embedded => "embedded",
        BackendKind::Elasticsearch => "elasticsearch",
    }
}

/// What `detectd status` reports from: the rules' states, recent execution records, and the
/// rules the cluster cannot run (by rule id: the reason).
#[derive(Debug, Default)]
pub struct StatusSources {
    pub states: BTreeMap<String, RuleState>,
    pub records: Vec<ExecutionRecordDoc>,
    pub not_runnable: BTreeMap<String, String>,
}

/// Rule states, recent execution records, and which rules cannot run: on Elasticsearch, by the
/// cluster's version (`min_stack_version`) or because the last execution was refused for good.
pub async fn status_sources(cfg: &Config, rules: &[RunnableRule]) -> anyhow::Result<StatusSources> {
    let mut out = match cfg.backend {
        BackendKind::Embedded => StatusSources {
            states: crate::backend::embedded::read_state(&cfg.embedded.state_file)?,
            records: crate::backend::embedded::read_records(&cfg.embedded.executions_file)?
                .iter()
                .filter_map(ExecutionRecordDoc::from_record)
                .collect(),
            not_runnable: BTreeMap::new(),
        },
        BackendKind::Elasticsearch => {
            let backend = ElasticsearchBackend::new(&cfg.elasticsearch, &cfg.alerts)?;
            let info = backend.cluster_info().await?;
            StatusSources {
                states: backend.load_state().await?,
                records: backend
                    .recent_executions(10_000)
                    .await?
                    .iter()
                    .filter_map(ExecutionRecordDoc::from_record)
                    .collect(),
                not_runnable: rules
                    .iter()
                    .filter_map(|r| {
                        let why = info.refuses_rule(&r.rule)?;
                        Some((r.rule.rule_id.clone(), why))
                    })
                    .collect(),
            }
        }
    };
    let mut last: BTreeMap<&str, &ExecutionRecordDoc> = BTreeMap::new();
    for r in &out.records {
        let e = last.entry(r.rule_id.as_str()).or_insert(r);
        if r.started_at > e.started_at {
            *e = r;
        }
    }
    let refused: Vec<(String, String)> = last
        .into_iter()
        .filter_map(|(id, r)| {
            let m = r.message.as_deref()?;
            m.starts_with(NOT_RUNNABLE)
                .then(|| (id.to_string(), m.to_string()))
        })
        .collect();
    out.not_runnable.extend(refused);
    Ok(out)
}

/// Reloads the rules; a rule whose file no longer loads keeps its last good version.
fn reload(cfg: &Config, current: &RuleMap) -> Vec<ScheduledRule> {
    let report = crate::rules::load_paths(std::slice::from_ref(&cfg.rules_dir));
    let broken: std::collections::HashSet<PathBuf> = report
        .problems
        .iter()
        .filter(|p| p.level == Level::Error)
        .map(|p| p.file.clone())
        .collect();
    let mut fresh: HashMap<String, Arc<RunnableRule>> = load_rules(cfg)
        .into_iter()
        .map(|r| (r.rule.rule_id.clone(), Arc::new(r)))
        .collect();
    let mut map = crate::sync::write(current);
    for (id, old) in map.iter() {
        if !fresh.contains_key(id) && broken.contains(&old.rule.source) {
            tracing::warn!(rule = %id, file = %old.rule.source.display(), "rule file no longer loads, keeping its last good version");
            fresh.insert(id.clone(), old.clone());
        }
    }
    *map = fresh;
    map.values().filter_map(|r| scheduled(r).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &std::path::Path) -> Config {
        Config {
            rules_dir: dir.to_path_buf(),
            ..Config::default()
        }
    }

    #[test]
    fn reload_keeps_the_last_good_version_of_a_broken_rule_and_drops_removed_ones() {
        let tmp = tempfile::tempdir().unwrap();
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
        for f in [
            "execution_via_system_manager.toml",
            "defense_evasion_cloudtrail_logging_suspended.toml",
        ] {
            std::fs::copy(root.join(f), tmp.path().join(f)).unwrap();
        }
        let cfg = config(tmp.path());
        let map: RuleMap = Arc::new(RwLock::new(
            load_rules(&cfg)
                .into_iter()
                .map(|r| (r.rule.rule_id.clone(), Arc::new(r)))
                .collect(),
        ));
        assert_eq!(crate::sync::read(&map).len(), 2);

        // A syntax error in one file: its rule keeps running with the last good definition.
        std::fs::write(
            tmp.path().join("execution_via_system_manager.toml"),
            "[rule\nbroken",
        )
        .unwrap();
        let fresh = reload(&cfg, &map);
        assert_eq!(fresh.len(), 2);
        assert!(crate::sync::read(&map).contains_key("37b211e8-4e2f-440f-86d8-06cc8f158cfa"));

        // A removed file: its rule stops.
        std::fs::remove_file(tmp.path().join("execution_via_system_manager.toml")).unwrap();
        let fresh = reload(&cfg, &map);
        assert_eq!(fresh.len(), 1);
        assert_eq!(fresh[0].name, "AWS CloudTrail Log Suspension");
    }

    #[test]
    fn overrides_disable_rules_and_change_their_schedule() {
        let mut cfg = config(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules"));
        cfg.rules.insert(
            "37b211e8-4e2f-440f-86d8-06cc8f158cfa".into(),
            crate::config::RuleOverride {
                enabled: Some(false),
                ..Default::default()
            },
        );
        cfg.rules.insert(
            "1aa8fa52-44a7-4dae-b058-f3333b91c8d7".into(),
            crate::config::RuleOverride {
                interval: Some("1m".into()),
                max_signals: Some(7),
                ..Default::default()
            },
        );
        let rules = load_rules(&cfg);
        assert_eq!(rules.len(), 2, "the disabled rule is not run");
        let r = rules
            .iter()
            .find(|r| r.rule.rule_id == "1aa8fa52-44a7-4dae-b058-f3333b91c8d7")
            .unwrap();
        assert_eq!(r.exec.max_signals, 7);
        assert_eq!(scheduled(r).unwrap().interval, chrono::Duration::minutes(1));
    }
}
