//! The scheduling loop: one timer heap for all rules, executions spawned into a `JoinSet`
//! under a semaphore (`max_concurrent`), one execution per rule at a time, windows planned
//! from the rule's persisted `covered_until`, state saved only after the alerts are stored.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::{Id, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::clock::Clock;
use super::plan::{next_due, next_due_after, normal_window, plan, ScheduledRule, Window};
use super::record::{ExecutionOutcome, ExecutionRecordDoc, ExecutionStatus, Executor};
use super::store::{Recorder, StateStore};
use crate::backend::{self, RuleState};
use crate::config::SchedulerConfig;
use crate::time::{format_interval, parse_interval, TimeError};

/// A scheduler that cannot start.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error("invalid scheduler.{key}: {source}")]
    Config {
        key: &'static str,
        source: TimeError,
    },
    #[error("cannot load rule state: {0}")]
    LoadState(backend::Error),
    #[error("rule {rule_id}: {reason}")]
    InvalidRule { rule_id: String, reason: String },
    #[error("invalid {arg}: {source}")]
    InvalidTime {
        arg: &'static str,
        source: TimeError,
    },
    #[error("--end {end} is not after --start {start}")]
    EndBeforeStart {
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    },
}

/// How the scheduler runs.
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    /// Executions running at once (at least 1).
    pub max_concurrent: usize,
    /// How far before the normal window a rule catches up after downtime.
    pub max_backfill: Duration,
    /// An execution running longer is cancelled and recorded as failed.
    pub execution_timeout: std::time::Duration,
    /// On shutdown, how long running executions may take to finish.
    pub shutdown_grace: std::time::Duration,
    /// Replay end (exclusive): executions due at or after it are not started, and `run`
    /// returns once the executions before it are done. `None` runs until shutdown.
    pub end: Option<DateTime<Utc>>,
    /// Show a progress bar (only drawn when stderr is a terminal).
    pub progress: bool,
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        SchedulerOptions {
            max_concurrent: 8,
            max_backfill: Duration::hours(24),
            execution_timeout: std::time::Duration::from_secs(300),
            shutdown_grace: std::time::Duration::from_secs(30),
            end: None,
            progress: false,
        }
    }
}

impl SchedulerOptions {
    /// Options from `[scheduler]` in config.toml.
    pub fn from_config(c: &SchedulerConfig) -> Result<SchedulerOptions, SchedulerError> {
        let max_backfill =
            parse_interval(&c.max_backfill).map_err(|source| SchedulerError::Config {
                key: "max_backfill",
                source,
            })?;
        let timeout =
            parse_interval(&c.execution_timeout).map_err(|source| SchedulerError::Config {
                key: "execution_timeout",
                source,
            })?;
        Ok(SchedulerOptions {
            max_concurrent: c.max_concurrent.max(1),
            max_backfill,
            execution_timeout: timeout
                .to_std()
                .unwrap_or(std::time::Duration::from_secs(300)),
            ..SchedulerOptions::default()
        })
    }
}

/// Totals of one `run`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunSummary {
    /// Executor calls (one per window).
    pub executions: u64,
    pub failed: u64,
    pub alerts: u64,
    /// Gaps recorded (uncovered time beyond `max_backfill`).
    pub gaps: u64,
    /// Due instants skipped because the rule was still running (live only).
    pub skipped: u64,
}

/// Controls a running scheduler from elsewhere (signal handlers, the rule watcher).
#[derive(Debug, Clone)]
pub struct SchedulerHandle {
    reload: mpsc::UnboundedSender<Vec<ScheduledRule>>,
    cancel: CancellationToken,
}

impl SchedulerHandle {
    /// Replaces the rule set: added rules start, removed rules stop (a running execution
    /// finishes), changed rules use the new definition from their next execution. Returns
    /// false when the scheduler has stopped.
    pub fn reload(&self, rules: Vec<ScheduledRule>) -> bool {
        self.reload.send(rules).is_ok()
    }

    /// Stops starting executions; running ones finish (bounded by `shutdown_grace`).
    pub fn shutdown(&self) {
        self.cancel.cancel();
    }

    /// The token that stops the scheduler when cancelled.
    pub fn cancellation(&self) -> CancellationToken {
        self.cancel.clone()
    }
}

/// The scheduler. Build with [`Scheduler::new`], take a [`Scheduler::handle`], then
/// [`Scheduler::run`].
pub struct Scheduler {
    shared: Arc<Shared>,
    reload_rx: mpsc::UnboundedReceiver<Vec<ScheduledRule>>,
    handle: SchedulerHandle,
}

struct Shared {
    executor: Arc<dyn Executor>,
    store: Arc<dyn StateStore>,
    recorder: Arc<dyn Recorder>,
    clock: Arc<dyn Clock>,
    options: SchedulerOptions,
    states: Mutex<HashMap<String, RuleState>>,
    /// Rules an outcome retired (`ExecutionOutcome::retire`), never executed again.
    retired: Mutex<HashSet<String>>,
    executions: AtomicU64,
    failed: AtomicU64,
    alerts: AtomicU64,
    gaps: AtomicU64,
}

struct Entry {
    rule: Arc<ScheduledRule>,
    generation: u64,
}

type Due = Reverse<(DateTime<Utc>, u64, String, u64)>;

impl Scheduler {
    pub fn new(
        executor: Arc<dyn Executor>,
        store: Arc<dyn StateStore>,
        recorder: Arc<dyn Recorder>,
        clock: Arc<dyn Clock>,
        options: SchedulerOptions,
    ) -> Scheduler {
        let (tx, rx) = mpsc::unbounded_channel();
        Scheduler {
            shared: Arc::new(Shared {
                executor,
                store,
                recorder,
                clock,
                options,
                states: Mutex::new(HashMap::new()),
                retired: Mutex::new(HashSet::new()),
                executions: AtomicU64::new(0),
                failed: AtomicU64::new(0),
                alerts: AtomicU64::new(0),
                gaps: AtomicU64::new(0),
            }),
            reload_rx: rx,
            handle: SchedulerHandle {
                reload: tx,
                cancel: CancellationToken::new(),
            },
        }
    }

    /// A handle to reload rules or shut down while `run` is going.
    pub fn handle(&self) -> SchedulerHandle {
        self.handle.clone()
    }

    /// Loads the rule states, then runs `rules` until shutdown (or the replay end).
    pub async fn run(self, rules: Vec<ScheduledRule>) -> Result<RunSummary, SchedulerError> {
        let Scheduler {
            shared,
            mut reload_rx,
            handle,
        } = self;
        let loaded = shared
            .store
            .load_all()
            .await
            .map_err(SchedulerError::LoadState)?;
        if let Ok(mut states) = shared.states.lock() {
            states.extend(loaded);
        }
        let cancel = handle.cancel.clone();
        drop(handle);
        let clock = shared.clock.clone();
        let opts = shared.options.clone();
        let start = clock.now();
        let mut sched = Schedule::default();
        sched.reload(rules, start);
        info!(
            rules = sched.table.len(),
            start = %start,
            end = ?opts.end,
            simulated = clock.is_simulated(),
            "scheduler started"
        );

        let semaphore = Arc::new(Semaphore::new(opts.max_concurrent.max(1)));
        let mut tasks: JoinSet<()> = JoinSet::new();
        let mut running: HashMap<Id, String> = HashMap::new();
        let mut running_rules: HashSet<String> = HashSet::new();
        let mut skipped = 0u64;
        let mut resumed = 0u64;
        let progress = Progress::new(opts.progress, start, opts.end);
        let mut reload_open = true;

        'main: loop {
            while let Some(res) = tasks.try_join_next_with_id() {
                reap(res, &mut running, &mut running_rules);
            }
            let next = sched.heap.peek().map(|Reverse(d)| d.0);
            if let Some(end) = opts.end {
                // Replay done: nothing left before the end.
                if next.is_none_or(|due| due >= end) {
                    break;
                }
            }
            tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                msg = reload_rx.recv(), if reload_open => {
                    match msg {
                        Some(rules) => sched.reload(rules, clock.now()),
                        None => reload_open = false,
                    }
                    continue;
                }
                Some(res) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                    reap(res, &mut running, &mut running_rules);
                    continue;
                }
                _ = sleep_opt(clock.as_ref(), next) => {}
            }
            let Some(Reverse((due, _, rule_id, generation))) = sched.heap.pop() else {
                continue;
            };
            let Some(rule) = sched.current(&rule_id, generation) else {
                continue;
            };
            if let Some(after) = next_due_after(&rule, due) {
                sched.push(after, &rule_id, generation);
            }
            if clock.is_simulated() && !running_rules.contains(&rule_id) {
                // A restarted replay resumes: an instant whose window the saved state already
                // covers ran before the restart (its alerts are stored), so the windows that
                // follow are the ones an uninterrupted replay runs.
                let covered = shared
                    .states
                    .lock()
                    .ok()
                    .and_then(|s| s.get(&rule_id).and_then(|st| st.covered_until));
                if covered.is_some_and(|c| normal_window(&rule, due).to <= c) {
                    resumed += 1;
                    continue;
                }
            }
            if running_rules.contains(&rule_id) {
                if clock.is_simulated() {
                    // Replay: every instant runs, so wait for this rule's previous execution.
                    while running_rules.contains(&rule_id) {
                        tokio::select! {
                            _ = cancel.cancelled() => break 'main,
                            res = tasks.join_next_with_id() => match res {
                                Some(res) => reap(res, &mut running, &mut running_rules),
                                None => break,
                            },
                        }
                    }
                } else {
                    skipped += 1;
                    warn!(rule = %rule_id, due = %due, "rule still running, skipping this execution");
                    continue;
                }
            }
            let permit = tokio::select! {
                _ = cancel.cancelled() => break,
                p = semaphore.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            let started_at = clock.now();
            let shared2 = shared.clone();
            let abort = tasks.spawn(execute_rule(shared2, rule, due, started_at, permit));
            running.insert(abort.id(), rule_id.clone());
            running_rules.insert(rule_id);
            progress.update(
                clock.is_simulated(),
                started_at,
                shared.executions.load(Ordering::Relaxed),
                shared.alerts.load(Ordering::Relaxed),
            );
        }

        // Stop starting executions; let the running ones finish.
        let grace = if cancel.is_cancelled() {
            Some(opts.shutdown_grace)
        } else {
            None
        };
        let drain = async {
            while let Some(res) = tasks.join_next_with_id().await {
                reap(res, &mut running, &mut running_rules);
            }
        };
        match grace {
            Some(g) => {
                if tokio::time::timeout(g, drain).await.is_err() {
                    warn!(
                        running = tasks.len(),
                        "executions still running after the shutdown grace period, cancelling them"
                    );
                    tasks.shutdown().await;
                }
            }
            None => drain.await,
        }
        progress.finish();
        let summary = RunSummary {
            executions: shared.executions.load(Ordering::Relaxed),
            failed: shared.failed.load(Ordering::Relaxed),
            alerts: shared.alerts.load(Ordering::Relaxed),
            gaps: shared.gaps.load(Ordering::Relaxed),
            skipped,
        };
        info!(
            executions = summary.executions,
            failed = summary.failed,
            alerts = summary.alerts,
            gaps = summary.gaps,
            skipped = summary.skipped,
            resumed,
            "scheduler stopped"
        );
        Ok(summary)
    }
}

async fn sleep_opt(clock: &dyn Clock, t: Option<DateTime<Utc>>) {
    match t {
        Some(t) => clock.sleep_until(t).await,
        None => std::future::pending().await,
    }
}

fn reap(
    res: Result<(Id, ()), tokio::task::JoinError>,
    running: &mut HashMap<Id, String>,
    running_rules: &mut HashSet<String>,
) {
    let id = match res {
        Ok((id, ())) => id,
        Err(e) => {
            error!(error = %e, "execution task ended abnormally");
            e.id()
        }
    };
    if let Some(rule) = running.remove(&id) {
        running_rules.remove(&rule);
    }
}

/// The rule table and the heap of due instants.
#[derive(Default)]
struct Schedule {
    table: HashMap<String, Entry>,
    heap: BinaryHeap<Due>,
    seq: u64,
    generation: u64,
}

impl Schedule {
    fn push(&mut self, at: DateTime<Utc>, rule_id: &str, generation: u64) {
        self.seq += 1;
        self.heap
            .push(Reverse((at, self.seq, rule_id.to_string(), generation)));
    }

    fn current(&self, rule_id: &str, generation: u64) -> Option<Arc<ScheduledRule>> {
        let e = self.table.get(rule_id)?;
        (e.generation == generation && e.rule.enabled).then(|| e.rule.clone())
    }

    /// Applies a new rule set at `now`.
    fn reload(&mut self, rules: Vec<ScheduledRule>, now: DateTime<Utc>) {
        let ids: HashSet<&str> = rules.iter().map(|r| r.rule_id.as_str()).collect();
        let removed: Vec<String> = self
            .table
            .keys()
            .filter(|k| !ids.contains(k.as_str()))
            .cloned()
            .collect();
        for id in removed {
            self.table.remove(&id);
            info!(rule = %id, "rule removed from the schedule");
        }
        let mut seen = HashSet::new();
        for rule in rules {
            if !seen.insert(rule.rule_id.clone()) {
                warn!(rule = %rule.rule_id, "duplicate rule_id, the later definition wins");
            }
            let reschedule = match self.table.get(&rule.rule_id) {
                None => {
                    debug!(rule = %rule.rule_id, "rule added to the schedule");
                    true
                }
                Some(e) => !e.rule.same_schedule(&rule) || e.rule.enabled != rule.enabled,
            };
            let id = rule.rule_id.clone();
            if reschedule {
                self.generation += 1;
                let generation = self.generation;
                let first = if rule.enabled {
                    next_due(&rule, now)
                } else {
                    None
                };
                self.table.insert(
                    id.clone(),
                    Entry {
                        rule: Arc::new(rule),
                        generation,
                    },
                );
                if let Some(at) = first {
                    self.push(at, &id, generation);
                }
            } else if let Some(e) = self.table.get_mut(&id) {
                e.rule = Arc::new(rule);
            }
        }
    }
}

/// Cancels the inner execution if the outer task is dropped (shutdown) or times out.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn run_window(
    shared: &Shared,
    rule_id: &str,
    window: Window,
    started_at: DateTime<Utc>,
) -> ExecutionOutcome {
    let exec = shared.executor.clone();
    let id = rule_id.to_string();
    let mut handle = AbortOnDrop(tokio::spawn(async move {
        exec.execute(&id, window, started_at).await
    }));
    let timeout = shared.options.execution_timeout;
    match tokio::time::timeout(timeout, &mut handle.0).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(e)) => ExecutionOutcome::failed(format!("execution aborted: {e}")),
        Err(_) => ExecutionOutcome::failed(format!(
            "execution timed out after {}",
            Duration::from_std(timeout)
                .map(format_interval)
                .unwrap_or_else(|_| format!("{timeout:?}"))
        )),
    }
}

/// One due instant of one rule: plan the windows, run them oldest first, save state after
/// each covered window, record each.
async fn execute_rule(
    shared: Arc<Shared>,
    rule: Arc<ScheduledRule>,
    scheduled_at: DateTime<Utc>,
    started_at: DateTime<Utc>,
    _permit: OwnedSemaphorePermit,
) {
    let rule_id = rule.rule_id.as_str();
    if shared.retired.lock().is_ok_and(|r| r.contains(rule_id)) {
        return;
    }
    let current = |shared: &Shared| -> RuleState {
        shared
            .states
            .lock()
            .ok()
            .and_then(|s| s.get(rule_id).cloned())
            .unwrap_or_default()
    };
    let covered = current(&shared).covered_until;
    let the_plan = plan(&rule, started_at, covered, shared.options.max_backfill);
    let mut gap = the_plan.gap;
    if let Some(g) = &gap {
        warn!(
            rule = %rule_id,
            gap_from = %g.gte,
            gap_to = %g.lte,
            gap_duration_s = (g.lte - g.gte).num_seconds(),
            "uncovered time older than max_backfill recorded as a gap"
        );
    }
    for (kind, window) in the_plan.windows {
        if shared.retired.lock().is_ok_and(|r| r.contains(rule_id)) {
            break; // an earlier window retired the rule: its later windows would fail the same way
        }
        let t0 = Instant::now();
        let mut outcome = run_window(&shared, rule_id, window, started_at).await;
        let duration_ms = t0.elapsed().as_millis() as u64;
        let outcome_retire = outcome.retire;

        let mut state = current(&shared);
        state.last_start = Some(started_at);
        state.status = Some(outcome.status.as_str().to_string());
        let covered = outcome.status.covers_window();
        if covered {
            state.covered_until = Some(state.covered_until.map_or(window.to, |c| c.max(window.to)));
            if let Some(g) = &gap {
                if !state.gaps.contains(g) {
                    state.gaps.push(g.clone());
                }
            }
        }
        let saved = match shared.store.save(rule_id, &state).await {
            Ok(()) => {
                if let Ok(mut states) = shared.states.lock() {
                    states.insert(rule_id.to_string(), state);
                }
                true
            }
            Err(e) => {
                error!(rule = %rule_id, error = %e, "cannot save rule state");
                let note = format!("rule state not saved: {e}");
                outcome.message = Some(match outcome.message.take() {
                    Some(m) => format!("{m}; {note}"),
                    None => note,
                });
                false
            }
        };

        shared.executions.fetch_add(1, Ordering::Relaxed);
        shared.alerts.fetch_add(outcome.alerts, Ordering::Relaxed);
        if outcome.status == ExecutionStatus::Failed {
            shared.failed.fetch_add(1, Ordering::Relaxed);
        }
        let record_gap = if covered && saved {
            gap.take()
        } else {
            gap.clone()
        };
        if record_gap.is_some() && covered && saved {
            shared.gaps.fetch_add(1, Ordering::Relaxed);
        }
        let doc = ExecutionRecordDoc {
            started_at,
            scheduled_at,
            rule_id: rule_id.to_string(),
            rule_name: rule.name.clone(),
            kind,
            window,
            status: outcome.status,
            hits: outcome.hits,
            alerts: outcome.alerts,
            duplicates: outcome.duplicates,
            capped: outcome.capped,
            gap_duration_s: record_gap.as_ref().map(|g| (g.lte - g.gte).num_seconds()),
            gap: record_gap,
            duration_ms,
            search_ms: outcome.search_ms,
            index_ms: outcome.index_ms,
            round_trips: outcome.round_trips,
            warnings: outcome.warnings,
            message: outcome.message,
        };
        if let Err(e) = shared.recorder.record(&doc.to_record()).await {
            warn!(rule = %rule_id, error = %e, "cannot write execution record");
        }
        if outcome_retire {
            if let Ok(mut r) = shared.retired.lock() {
                r.insert(rule_id.to_string());
            }
        }
        match doc.status {
            ExecutionStatus::Failed => warn!(
                rule = %rule_id,
                kind = ?kind,
                from = %window.from,
                to = %window.to,
                message = doc.message.as_deref().unwrap_or(""),
                duration_ms,
                "rule execution failed"
            ),
            // Executions that alert are news; quiet ones are detail (a replay runs thousands).
            _ if doc.alerts > 0 || doc.capped => info!(
                rule = %rule_id,
                kind = ?kind,
                from = %window.from,
                to = %window.to,
                status = doc.status.as_str(),
                hits = doc.hits,
                alerts = doc.alerts,
                duplicates = doc.duplicates,
                capped = doc.capped,
                duration_ms,
                "rule executed"
            ),
            _ => debug!(
                rule = %rule_id,
                kind = ?kind,
                from = %window.from,
                to = %window.to,
                status = doc.status.as_str(),
                hits = doc.hits,
                duplicates = doc.duplicates,
                duration_ms,
                "rule executed"
            ),
        }
        if !covered || !saved {
            break;
        }
    }
}

/// The replay progress bar (simulated time, executions, alerts), drawn only on a terminal.
struct Progress(Option<indicatif::ProgressBar>, DateTime<Utc>);

impl Progress {
    fn new(enabled: bool, start: DateTime<Utc>, end: Option<DateTime<Utc>>) -> Progress {
        if !enabled || !std::io::stderr().is_terminal() {
            return Progress(None, start);
        }
        let bar = match end {
            Some(end) => {
                let bar = indicatif::ProgressBar::new((end - start).num_seconds().max(1) as u64);
                if let Ok(style) =
                    indicatif::ProgressStyle::with_template("{bar:40} {percent:>3}% {msg}")
                {
                    bar.set_style(style);
                }
                bar
            }
            None => indicatif::ProgressBar::new_spinner(),
        };
        bar.set_draw_target(indicatif::ProgressDrawTarget::stderr_with_hz(4));
        Progress(Some(bar), start)
    }

    fn update(&self, simulated: bool, now: DateTime<Utc>, executions: u64, alerts: u64) {
        if let Some(bar) = &self.0 {
            if !simulated {
                // The replay caught up and continues live: the bar has done its job.
                if !bar.is_finished() {
                    bar.finish_and_clear();
                }
                return;
            }
            bar.set_position((now - self.1).num_seconds().max(0) as u64);
            bar.set_message(format!(
                "{}  executions {executions}  alerts {alerts}",
                now.format("%Y-%m-%d %H:%M:%S")
            ));
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}
