//! The scheduler loop driven by a simulated (or manually advanced) clock and a fake executor
//! that records every call: windows, instants, concurrency, timeouts, state after failures,
//! backfill, gaps, cron, reload and shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use detectd::backend::RuleState;
use detectd::scheduler::{
    format_status_json, format_status_text, next_due, status_report, Clock, ExecutionOutcome,
    ExecutionRecordDoc, ExecutionStatus, Executor, MemoryStore, RunSummary, ScheduledRule,
    Scheduler, SchedulerOptions, SimClock, Window, WindowKind,
};
use detectd::time::{parse_absolute, parse_datemath};

fn at(s: &str) -> DateTime<Utc> {
    parse_absolute(s).unwrap()
}

fn rule(id: &str, interval: &str, from: &str) -> ScheduledRule {
    ScheduledRule {
        rule_id: id.to_string(),
        name: format!("Rule {id}"),
        interval: detectd::time::parse_interval(interval).unwrap(),
        cron: None,
        from: parse_datemath(from).unwrap(),
        to: parse_datemath("now").unwrap(),
        enabled: true,
    }
}

#[derive(Debug, Clone)]
struct Call {
    rule_id: String,
    window: Window,
    started_at: DateTime<Utc>,
}

/// What the fake executor does for one call.
struct Behave {
    sleep_ms: u64,
    status: ExecutionStatus,
    alerts: u64,
}

type Policy = Box<dyn Fn(&str, Window, DateTime<Utc>) -> Behave + Send + Sync>;

struct Fake {
    calls: Mutex<Vec<Call>>,
    active: Mutex<HashMap<String, usize>>,
    global: AtomicUsize,
    max_global: AtomicUsize,
    max_per_rule: AtomicUsize,
    policy: Policy,
}

impl Fake {
    fn new(policy: Policy) -> Arc<Fake> {
        Arc::new(Fake {
            calls: Mutex::new(Vec::new()),
            active: Mutex::new(HashMap::new()),
            global: AtomicUsize::new(0),
            max_global: AtomicUsize::new(0),
            max_per_rule: AtomicUsize::new(0),
            policy,
        })
    }

    fn ok() -> Arc<Fake> {
        Fake::new(Box::new(|_, _, _| Behave {
            sleep_ms: 0,
            status: ExecutionStatus::Succeeded,
            alerts: 1,
        }))
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    fn calls_of(&self, rule_id: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.rule_id == rule_id)
            .collect()
    }
}

#[async_trait]
impl Executor for Fake {
    async fn execute(
        &self,
        rule_id: &str,
        window: Window,
        started_at: DateTime<Utc>,
    ) -> ExecutionOutcome {
        self.calls.lock().unwrap().push(Call {
            rule_id: rule_id.to_string(),
            window,
            started_at,
        });
        let g = self.global.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_global.fetch_max(g, Ordering::SeqCst);
        {
            let mut a = self.active.lock().unwrap();
            let n = a.entry(rule_id.to_string()).or_default();
            *n += 1;
            self.max_per_rule.fetch_max(*n, Ordering::SeqCst);
        }
        let b = (self.policy)(rule_id, window, started_at);
        if b.sleep_ms > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(b.sleep_ms)).await;
        }
        *self.active.lock().unwrap().get_mut(rule_id).unwrap() -= 1;
        self.global.fetch_sub(1, Ordering::SeqCst);
        ExecutionOutcome {
            status: b.status,
            hits: b.alerts,
            alerts: b.alerts,
            message: (b.status == ExecutionStatus::Failed).then(|| "boom".to_string()),
            ..ExecutionOutcome::default()
        }
    }
}

fn options(end: DateTime<Utc>) -> SchedulerOptions {
    SchedulerOptions {
        end: Some(end),
        ..SchedulerOptions::default()
    }
}

async fn replay(
    rules: Vec<ScheduledRule>,
    exec: Arc<Fake>,
    store: Arc<MemoryStore>,
    start: DateTime<Utc>,
    opts: SchedulerOptions,
) -> RunSummary {
    let s = Scheduler::new(
        exec,
        store.clone(),
        store,
        Arc::new(SimClock::new(start)),
        opts,
    );
    tokio::time::timeout(std::time::Duration::from_secs(30), s.run(rules))
        .await
        .expect("replay finished")
        .unwrap()
}

fn records(store: &MemoryStore) -> Vec<ExecutionRecordDoc> {
    store
        .records()
        .iter()
        .map(|r| ExecutionRecordDoc::from_record(r).unwrap())
        .collect()
}

#[tokio::test]
async fn replay_of_one_hour_of_a_5m_rule_runs_12_times_at_the_grid_instants() {
    let start = at("2024-05-01T10:00:00Z");
    let exec = Fake::ok();
    let store = Arc::new(MemoryStore::default());
    let r = rule("r1", "5m", "now-6m");
    let first = next_due(&r, start).unwrap();
    let sum = replay(
        vec![r],
        exec.clone(),
        store.clone(),
        start,
        options(start + Duration::hours(1)),
    )
    .await;
    let calls = exec.calls();
    assert_eq!(calls.len(), 12);
    assert_eq!(sum.executions, 12);
    assert_eq!(sum.alerts, 12);
    for (k, c) in calls.iter().enumerate() {
        let t = first + Duration::minutes(5 * k as i64);
        assert_eq!(c.started_at, t);
        // The window comes from the execution's start time: [t - 6m, t].
        assert_eq!(
            c.window,
            Window {
                from: t - Duration::minutes(6),
                to: t
            }
        );
    }
    let recs = records(&store);
    assert_eq!(recs.len(), 12);
    assert!(recs.iter().all(|r| r.kind == WindowKind::Scheduled
        && r.status == ExecutionStatus::Succeeded
        && r.scheduled_at == r.started_at
        && r.rule_name == "Rule r1"));
    let state = store.state("r1").unwrap();
    assert_eq!(state.covered_until, Some(calls[11].started_at));
    assert_eq!(state.last_start, Some(calls[11].started_at));
    assert_eq!(state.status.as_deref(), Some("succeeded"));
}

#[tokio::test]
async fn concurrency_limit_is_respected_and_no_rule_runs_twice_at_once() {
    let start = at("2024-05-01T10:00:00Z");
    // Executions last longer (real time) than the simulated interval advances.
    let exec = Fake::new(Box::new(|_, _, _| Behave {
        sleep_ms: 3,
        status: ExecutionStatus::Succeeded,
        alerts: 0,
    }));
    let store = Arc::new(MemoryStore::default());
    let rules: Vec<_> = (0..40)
        .map(|i| rule(&format!("r{i}"), "1m", "now-1m"))
        .collect();
    let opts = SchedulerOptions {
        max_concurrent: 4,
        ..options(start + Duration::minutes(10))
    };
    let sum = replay(rules, exec.clone(), store, start, opts).await;
    assert_eq!(sum.executions, 400);
    assert_eq!(exec.calls().len(), 400);
    let max = exec.max_global.load(Ordering::SeqCst);
    assert!(max <= 4, "{max} executions at once");
    assert!(max >= 2, "executions never overlapped ({max})");
    assert_eq!(exec.max_per_rule.load(Ordering::SeqCst), 1);
    // Replay never skips an instant: each rule ran at each of its 10 instants in order.
    for i in 0..40 {
        let calls = exec.calls_of(&format!("r{i}"));
        assert_eq!(calls.len(), 10);
        assert!(calls
            .windows(2)
            .all(|w| w[1].started_at - w[0].started_at == Duration::minutes(1)));
    }
}

#[tokio::test]
async fn an_execution_over_the_timeout_is_cancelled_and_recorded_as_failed() {
    let start = at("2024-05-01T10:00:00Z");
    let exec = Fake::new(Box::new(|id, _, _| Behave {
        sleep_ms: if id == "slow" { 10_000 } else { 0 },
        status: ExecutionStatus::Succeeded,
        alerts: 0,
    }));
    let store = Arc::new(MemoryStore::default());
    let opts = SchedulerOptions {
        execution_timeout: std::time::Duration::from_millis(50),
        ..options(start + Duration::minutes(5))
    };
    let sum = replay(
        vec![rule("slow", "5m", "now-6m"), rule("fast", "5m", "now-6m")],
        exec,
        store.clone(),
        start,
        opts,
    )
    .await;
    assert_eq!(sum.executions, 2);
    assert_eq!(sum.failed, 1);
    let recs = records(&store);
    let slow = recs.iter().find(|r| r.rule_id == "slow").unwrap();
    assert_eq!(slow.status, ExecutionStatus::Failed);
    assert!(
        slow.message.as_deref().unwrap().contains("timed out"),
        "{slow:?}"
    );
    assert_eq!(store.state("slow").unwrap().covered_until, None);
    assert_eq!(
        store.state("slow").unwrap().status.as_deref(),
        Some("failed")
    );
    let fast = store.state("fast").unwrap();
    assert!(fast.covered_until.is_some());
}

#[tokio::test]
async fn a_failed_execution_leaves_covered_until_and_the_next_run_retries_its_window() {
    let start = at("2024-05-01T10:00:00Z");
    let r = rule("r1", "5m", "now-6m");
    let first = next_due(&r, start).unwrap();
    let failing = first + Duration::minutes(5);
    let exec = Fake::new(Box::new(move |_, _, t| Behave {
        sleep_ms: 0,
        status: if t == failing {
            ExecutionStatus::Failed
        } else {
            ExecutionStatus::Succeeded
        },
        alerts: 0,
    }));
    let store = Arc::new(MemoryStore::default());
    let sum = replay(
        vec![r],
        exec.clone(),
        store.clone(),
        start,
        options(first + Duration::minutes(11)),
    )
    .await;
    assert_eq!(sum.failed, 1);
    // The save after the failure kept the previous covered_until.
    let saves = store.saves.lock().unwrap().clone();
    assert_eq!(saves[0].1.covered_until, Some(first));
    assert_eq!(saves[1].1.status.as_deref(), Some("failed"));
    assert_eq!(saves[1].1.covered_until, Some(first));
    // Next run: the uncovered time since `first` (4 minutes, less than one window) is
    // queried with the normal window, which starts at `first`.
    let calls = exec.calls();
    assert_eq!(calls.len(), 3);
    let next = first + Duration::minutes(10);
    assert_eq!(calls[2].started_at, next);
    assert_eq!(
        calls[2].window,
        Window {
            from: first,
            to: next
        }
    );
    assert_eq!(store.state("r1").unwrap().covered_until, Some(next));
}

#[tokio::test]
async fn backfill_after_downtime_covers_the_whole_gap_in_order_and_nothing_twice() {
    let start = at("2024-05-01T10:00:00Z");
    let r = rule("r1", "5m", "now-6m");
    let first = next_due(&r, start).unwrap();
    let covered = start - Duration::hours(3);
    let store = Arc::new(MemoryStore::with_states(BTreeMap::from([(
        "r1".to_string(),
        RuleState {
            covered_until: Some(covered),
            ..RuleState::default()
        },
    )])));
    let exec = Fake::ok();
    replay(
        vec![r],
        exec.clone(),
        store.clone(),
        start,
        options(first + Duration::seconds(1)),
    )
    .await;
    let calls = exec.calls();
    // From `covered` to the normal window, contiguous, oldest first.
    let mut expect = covered;
    for c in &calls {
        assert_eq!(c.window.from, expect, "{calls:?}");
        assert!(c.window.to > c.window.from);
        assert!(c.window.to - c.window.from < Duration::minutes(12));
        assert_eq!(c.started_at, first);
        expect = c.window.to;
    }
    assert_eq!(expect, first);
    // Whole 6-minute backfill windows, then the normal window (with the remainder).
    let backfill = (first - Duration::minutes(6) - covered).num_minutes() / 6;
    assert_eq!(calls.len() as i64, backfill + 1);
    let recs = records(&store);
    assert!(recs[..recs.len() - 1]
        .iter()
        .all(|r| r.kind == WindowKind::Backfill));
    assert_eq!(recs.last().unwrap().kind, WindowKind::Scheduled);
    assert!(recs.iter().all(|r| r.gap.is_none()));
    let state = store.state("r1").unwrap();
    assert_eq!(state.covered_until, Some(first));
    assert!(state.gaps.is_empty());
}

#[tokio::test]
async fn downtime_beyond_max_backfill_is_recorded_as_a_gap() {
    let start = at("2024-05-01T10:00:00Z");
    let r = rule("r1", "5m", "now-6m");
    let first = next_due(&r, start).unwrap();
    let covered = start - Duration::hours(48);
    let store = Arc::new(MemoryStore::with_states(BTreeMap::from([(
        "r1".to_string(),
        RuleState {
            covered_until: Some(covered),
            ..RuleState::default()
        },
    )])));
    let exec = Fake::ok();
    let opts = SchedulerOptions {
        max_backfill: Duration::hours(1),
        ..options(first + Duration::seconds(1))
    };
    let sum = replay(vec![r], exec.clone(), store.clone(), start, opts).await;
    assert_eq!(sum.gaps, 1);
    let gap_end = first - Duration::minutes(6) - Duration::hours(1);
    let state = store.state("r1").unwrap();
    assert_eq!(state.gaps.len(), 1);
    assert_eq!(state.gaps[0].gte, covered);
    assert_eq!(state.gaps[0].lte, gap_end);
    let recs = records(&store);
    assert_eq!(recs[0].gap.as_ref(), Some(&state.gaps[0]));
    assert_eq!(
        recs[0].gap_duration_s,
        Some((gap_end - covered).num_seconds())
    );
    assert!(recs[1..].iter().all(|r| r.gap.is_none()));
    assert_eq!(exec.calls()[0].window.from, gap_end);
    // The status report shows the open gap.
    let rows = status_report(
        &[rule("r1", "5m", "now-6m")],
        &store.states.lock().unwrap().clone(),
        &recs,
        first,
    );
    assert_eq!(rows[0].open_gaps.len(), 1);
    assert!(format_status_text(&rows).contains("gap r1:"));
}

#[tokio::test]
async fn cron_rules_run_at_their_cron_instants() {
    let start = at("2024-05-01T10:00:00Z");
    let mut r = rule("c", "1h", "now-10m");
    r.cron = Some(cron::Schedule::from_str("0 */10 * * * *").unwrap());
    let exec = Fake::ok();
    let store = Arc::new(MemoryStore::default());
    replay(
        vec![r],
        exec.clone(),
        store,
        start,
        options(start + Duration::hours(1)),
    )
    .await;
    let got: Vec<_> = exec.calls().iter().map(|c| c.started_at).collect();
    let want: Vec<_> = (0..6).map(|k| start + Duration::minutes(10 * k)).collect();
    assert_eq!(got, want);
}

#[tokio::test]
async fn disabled_rules_never_run() {
    let start = at("2024-05-01T10:00:00Z");
    let mut r = rule("off", "1m", "now-1m");
    r.enabled = false;
    let exec = Fake::ok();
    let store = Arc::new(MemoryStore::default());
    replay(
        vec![r, rule("on", "1m", "now-1m")],
        exec.clone(),
        store,
        start,
        options(start + Duration::minutes(5)),
    )
    .await;
    assert!(exec.calls_of("off").is_empty());
    assert_eq!(exec.calls_of("on").len(), 5);
}

/// A clock the test moves forward by hand.
struct ManualClock {
    now: tokio::sync::watch::Sender<DateTime<Utc>>,
}

impl ManualClock {
    fn new(t: DateTime<Utc>) -> Arc<ManualClock> {
        Arc::new(ManualClock {
            now: tokio::sync::watch::channel(t).0,
        })
    }
    fn advance_to(&self, t: DateTime<Utc>) {
        self.now.send_replace(t);
    }
}

#[async_trait]
impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.borrow()
    }
    async fn sleep_until(&self, t: DateTime<Utc>) {
        let mut rx = self.now.subscribe();
        let _ = rx.wait_for(|now| *now >= t).await;
    }
}

async fn wait_until(what: &str, cond: impl Fn() -> bool) {
    for _ in 0..500 {
        if cond() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn reload_adds_removes_and_changes_rules() {
    let start = at("2024-05-01T10:00:00Z");
    let clock = ManualClock::new(start);
    let exec = Fake::ok();
    let store = Arc::new(MemoryStore::default());
    let s = Scheduler::new(
        exec.clone(),
        store.clone(),
        store.clone(),
        clock.clone(),
        SchedulerOptions::default(),
    );
    let handle = s.handle();
    let task = tokio::spawn(s.run(vec![
        rule("keep", "1m", "now-1m"),
        rule("drop", "1m", "now-1m"),
    ]));
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    // Live clock semantics: move minute by minute, letting each due execution finish.
    for (m, n) in [(1, 1), (2, 2)] {
        clock.advance_to(start + Duration::minutes(m));
        wait_until("runs before reload", || {
            exec.calls_of("keep").len() == n && exec.calls_of("drop").len() == n
        })
        .await;
    }
    let t1 = start + Duration::minutes(2);
    assert!(handle.reload(vec![
        rule("keep", "1m", "now-2m"),
        rule("new", "1m", "now-1m"),
    ]));
    // Let the loop take the reload before time moves on.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    for (m, n) in [(3, 1), (4, 2), (5, 3)] {
        clock.advance_to(start + Duration::minutes(m));
        wait_until("runs after reload", || {
            exec.calls_of("keep").len() == n + 2 && exec.calls_of("new").len() == n
        })
        .await;
    }
    assert_eq!(exec.calls_of("drop").len(), 2);
    // The changed rule uses its new look-back from the next execution on.
    let keep = exec.calls_of("keep");
    for c in &keep[2..] {
        assert_eq!(c.window.to - c.window.from, Duration::minutes(2));
    }
    for c in &keep[..2] {
        assert_eq!(c.window.to - c.window.from, Duration::minutes(1));
    }
    assert!(exec.calls_of("new").iter().all(|c| c.started_at > t1));

    handle.shutdown();
    let sum = tokio::time::timeout(std::time::Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(sum.executions, 10);
}

#[tokio::test]
async fn shutdown_lets_the_running_execution_finish_and_persist() {
    let start = at("2024-05-01T10:00:00Z");
    let clock = ManualClock::new(start);
    let exec = Fake::new(Box::new(|_, _, _| Behave {
        sleep_ms: 300,
        status: ExecutionStatus::Succeeded,
        alerts: 2,
    }));
    let store = Arc::new(MemoryStore::default());
    let s = Scheduler::new(
        exec.clone(),
        store.clone(),
        store.clone(),
        clock.clone(),
        SchedulerOptions::default(),
    );
    let handle = s.handle();
    let task = tokio::spawn(s.run(vec![rule("r", "1m", "now-1m")]));
    // Let the scheduler read its start time before the clock moves.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    clock.advance_to(start + Duration::minutes(1));
    wait_until("execution started", || exec.calls().len() == 1).await;
    handle.shutdown();
    let sum = tokio::time::timeout(std::time::Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(sum.executions, 1);
    assert_eq!(sum.alerts, 2);
    assert!(store.state("r").unwrap().covered_until.is_some());
    assert_eq!(store.records().len(), 1);
}

#[tokio::test]
async fn status_report_summarises_state_and_records() {
    let start = at("2024-05-01T10:00:00Z");
    let exec = Fake::ok();
    let store = Arc::new(MemoryStore::default());
    let rules = vec![rule("a", "5m", "now-6m"), rule("b", "1h", "now-61m")];
    let end = start + Duration::hours(25);
    replay(rules.clone(), exec, store.clone(), start, options(end)).await;
    let recs = records(&store);
    let states = store.states.lock().unwrap().clone();
    let rows = status_report(&rules, &states, &recs, end);
    // The day before `end` holds 288 five-minute and 24 hourly executions, one alert each.
    assert_eq!(rows[0].alerts_last_day, 288);
    assert_eq!(rows[1].alerts_last_day, 24);
    assert_eq!(rows[0].status.as_deref(), Some("succeeded"));
    assert_eq!(rows[0].last_run, states["a"].last_start);
    assert!(rows[0].next_run.unwrap() > end);
    assert!(rows[1].next_run.unwrap() - end <= Duration::hours(1));
    assert!(rows.iter().all(|r| r.open_gaps.is_empty()));
    let text = format_status_text(&rows);
    assert!(text.starts_with("RULE"));
    assert_eq!(text.lines().count(), 3);
    let json: serde_json::Value = serde_json::from_str(&format_status_json(&rows)).unwrap();
    assert_eq!(json[1]["rule_id"], "b");
    assert_eq!(json[1]["alerts_last_day"], 24);
}

#[tokio::test]
async fn live_a_rule_still_running_skips_its_next_instant_and_later_backfills_it() {
    let start = at("2024-05-01T10:00:00Z");
    let clock = ManualClock::new(start);
    let exec = Fake::new(Box::new(|_, _, _| Behave {
        sleep_ms: 400,
        status: ExecutionStatus::Succeeded,
        alerts: 0,
    }));
    let store = Arc::new(MemoryStore::default());
    let s = Scheduler::new(
        exec.clone(),
        store.clone(),
        store.clone(),
        clock.clone(),
        SchedulerOptions::default(),
    );
    let handle = s.handle();
    let task = tokio::spawn(s.run(vec![rule("r", "1m", "now-1m")]));
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    clock.advance_to(start + Duration::minutes(1));
    wait_until("first run", || exec.calls().len() == 1).await;
    // The next instant comes while the first execution still runs: skipped, not doubled.
    clock.advance_to(start + Duration::minutes(2));
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(exec.calls().len(), 1);
    clock.advance_to(start + Duration::minutes(3));
    wait_until("third instant", || exec.calls().len() >= 2).await;
    handle.shutdown();
    let sum = tokio::time::timeout(std::time::Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(sum.skipped, 1);
    assert_eq!(exec.max_per_rule.load(Ordering::SeqCst), 1);
    // The skipped minute is covered by a backfill window before the normal one.
    let calls = exec.calls();
    assert_eq!(calls[1].window.from, calls[0].window.to);
    assert_eq!(
        calls.last().unwrap().window.to,
        start + Duration::minutes(3)
    );
}

#[tokio::test]
async fn a_state_save_failure_is_recorded_and_the_window_queried_again() {
    let start = at("2024-05-01T10:00:00Z");
    let r = rule("r1", "5m", "now-6m");
    let first = next_due(&r, start).unwrap();
    let store = Arc::new(MemoryStore::default());
    store.fail_saves.store(true, Ordering::SeqCst);
    let exec = Fake::ok();
    replay(
        vec![r.clone()],
        exec.clone(),
        store.clone(),
        start,
        options(first + Duration::seconds(1)),
    )
    .await;
    let recs = records(&store);
    assert_eq!(recs.len(), 1);
    assert!(recs[0]
        .message
        .as_deref()
        .unwrap()
        .contains("rule state not saved"));
    assert_eq!(store.state("r1"), None);
    // The store is back: the next run (a restart) covers from the previous window on.
    store.fail_saves.store(false, Ordering::SeqCst);
    let next = first + Duration::minutes(20);
    replay(
        vec![r],
        exec.clone(),
        store.clone(),
        next - Duration::seconds(1),
        options(next + Duration::seconds(1)),
    )
    .await;
    let calls = exec.calls();
    assert_eq!(calls.len(), 2);
    // No state was persisted, so this is a first run: the normal window only.
    assert_eq!(
        calls[1].window,
        Window {
            from: next - Duration::minutes(6),
            to: next
        }
    );
    assert_eq!(store.state("r1").unwrap().covered_until, Some(next));
}

#[tokio::test]
async fn a_restart_resumes_from_covered_until_with_no_window_lost_or_repeated() {
    let r = rule("r1", "5m", "now-6m");
    let start = at("2024-05-01T10:00:00Z");
    let store = Arc::new(MemoryStore::default());
    let exec = Fake::ok();
    // Run for 30 minutes, stop for 47 minutes, run again for 30 minutes.
    replay(
        vec![r.clone()],
        exec.clone(),
        store.clone(),
        start,
        options(start + Duration::minutes(30)),
    )
    .await;
    let restart = start + Duration::minutes(77);
    replay(
        vec![r],
        exec.clone(),
        store.clone(),
        restart,
        options(restart + Duration::minutes(30)),
    )
    .await;
    let calls = exec.calls();
    // Beyond the first window, consecutive windows touch or overlap by at most the rule's own
    // overlap (1 minute); across the downtime they are contiguous.
    for w in calls.windows(2) {
        let (a, b) = (w[0].window, w[1].window);
        assert!(b.from <= a.to, "hole between {a:?} and {b:?}");
        assert!(
            a.to - b.from <= Duration::minutes(1),
            "overlap between {a:?} and {b:?}"
        );
    }
    let backfill = records(&store)
        .iter()
        .filter(|r| r.kind == WindowKind::Backfill)
        .count();
    assert!(backfill >= 7, "{backfill} backfill windows");
}

#[tokio::test]
async fn a_replay_restarted_from_its_start_resumes_where_the_saved_state_ends() {
    let r = rule("r1", "5m", "now-6m");
    let start = at("2024-05-01T10:00:00Z");
    let end = start + Duration::hours(1);
    // Uninterrupted: the reference windows.
    let whole = Fake::ok();
    replay(
        vec![r.clone()],
        whole.clone(),
        Arc::new(MemoryStore::default()),
        start,
        options(end),
    )
    .await;
    // Killed after 25 minutes, then the same command again (same --start, same --end).
    let store = Arc::new(MemoryStore::default());
    let first = Fake::ok();
    replay(
        vec![r.clone()],
        first.clone(),
        store.clone(),
        start,
        options(start + Duration::minutes(25)),
    )
    .await;
    let second = Fake::ok();
    replay(vec![r], second.clone(), store.clone(), start, options(end)).await;
    let windows = |f: &Fake| f.calls().iter().map(|c| c.window).collect::<Vec<_>>();
    let (a, b) = (windows(&first), windows(&second));
    assert!(!a.is_empty() && !b.is_empty());
    assert_eq!(
        [a, b].concat(),
        windows(&whole),
        "the restart runs exactly the windows the uninterrupted replay ran after the kill"
    );
}
