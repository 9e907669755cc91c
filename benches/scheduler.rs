//! Scheduler throughput and timing: 10,000 rules on 1-minute intervals with a trivial
//! executor. Replays 10 simulated minutes at full speed, then runs live for
//! `DETECTD_BENCH_LIVE_SECS` seconds (default 120). Reports executions per second, start-time
//! lag against the planned instant (live), CPU time and peak RSS.
//!
//! `cargo bench --bench scheduler`

use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use detectd::backend::{Error, ExecutionRecord};
use detectd::scheduler::{
    Clock, ExecutionOutcome, Executor, MemoryStore, RealClock, Recorder, ScheduledRule, Scheduler,
    SchedulerOptions, SimClock, Window,
};
use detectd::time::parse_datemath;

const RULES: usize = 10_000;

struct Trivial;

#[async_trait]
impl Executor for Trivial {
    async fn execute(&self, _: &str, _: Window, _: DateTime<Utc>) -> ExecutionOutcome {
        ExecutionOutcome::default()
    }
}

/// Collects start lag (started_at − scheduled_at) in microseconds from each record.
#[derive(Default)]
struct LagRecorder(Mutex<Vec<i64>>);

#[async_trait]
impl Recorder for LagRecorder {
    async fn record(&self, record: &ExecutionRecord) -> Result<(), Error> {
        let parse = |k: &str| {
            record
                .get(k)
                .and_then(|v| v.as_str())
                .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        };
        if let (Some(s), Some(p)) = (parse("@timestamp"), parse("scheduled_at")) {
            if let Some(us) = (s - p).num_microseconds() {
                if let Ok(mut v) = self.0.lock() {
                    v.push(us);
                }
            }
        }
        Ok(())
    }
}

fn rules() -> Vec<ScheduledRule> {
    let from = parse_datemath("now-1m").ok();
    let to = parse_datemath("now").ok();
    let (Some(from), Some(to)) = (from, to) else {
        return Vec::new();
    };
    (0..RULES)
        .map(|i| ScheduledRule {
            rule_id: format!("bench-rule-{i:05}"),
            name: format!("Bench rule {i}"),
            interval: Duration::minutes(1),
            cron: None,
            from: from.clone(),
            to: to.clone(),
            enabled: true,
        })
        .collect()
}

/// User + system CPU seconds of this process (/proc/self/stat, clock ticks of 1/100 s).
fn cpu_secs() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return f64::NAN;
    };
    let Some(rest) = stat.rsplit_once(") ").map(|(_, r)| r) else {
        return f64::NAN;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        f.get(i)
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// Peak resident set size in MB (/proc/self/status VmHWM).
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn percentile(sorted: &[i64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1000.0
}

async fn phase(
    label: &str,
    clock: Arc<dyn Clock>,
    end: Option<DateTime<Utc>>,
    live_for: Option<std::time::Duration>,
) {
    let store = Arc::new(MemoryStore {
        no_history: true,
        ..MemoryStore::default()
    });
    let lags = Arc::new(LagRecorder::default());
    let s = Scheduler::new(
        Arc::new(Trivial),
        store,
        lags.clone(),
        clock,
        SchedulerOptions {
            end,
            ..SchedulerOptions::default()
        },
    );
    let handle = s.handle();
    if let Some(d) = live_for {
        tokio::spawn(async move {
            tokio::time::sleep(d).await;
            handle.shutdown();
        });
    }
    let cpu0 = cpu_secs();
    let t0 = Instant::now();
    let summary = match s.run(rules()).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{label}: {e}");
            return;
        }
    };
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_secs() - cpu0;
    let mut lag = lags.0.lock().map(|v| v.clone()).unwrap_or_default();
    lag.sort_unstable();
    println!(
        "{label}: {} executions in {wall:.2}s wall = {:.0} executions/s; failed {}; skipped {}; \
         CPU {cpu:.2}s ({:.1}% of one core); lag p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; \
         peak RSS {:.1} MB",
        summary.executions,
        summary.executions as f64 / wall,
        summary.failed,
        summary.skipped,
        100.0 * cpu / wall,
        percentile(&lag, 0.5),
        percentile(&lag, 0.99),
        percentile(&lag, 1.0),
        peak_rss_mb(),
    );
}

fn main() {
    let live_secs: u64 = std::env::var("DETECTD_BENCH_LIVE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start runtime: {e}");
            return;
        }
    };
    println!("scheduler bench: {RULES} rules, 1m interval, trivial executor, max_concurrent 8");
    rt.block_on(async {
        let start = Utc::now() - Duration::hours(2);
        phase(
            "replay 10 simulated minutes",
            Arc::new(SimClock::new(start)),
            Some(start + Duration::minutes(10)),
            None,
        )
        .await;
        if live_secs > 0 {
            phase(
                &format!("live {live_secs}s"),
                Arc::new(RealClock),
                None,
                Some(std::time::Duration::from_secs(live_secs)),
            )
            .await;
        }
    });
}
