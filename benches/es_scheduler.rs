//! Scheduler throughput on the Elasticsearch backend, end to end: `detectd run` (the binary, a
//! child process) replays `DETECTD_BENCH_MINUTES` (default 5) of 1,000 query rules on a
//! 1-minute interval against a fake Elasticsearch on 127.0.0.1 (`tests/common/fake_es.rs`)
//! that answers searches in 5 ms, one search in 50 with a hit (so alerts are written too), and
//! holds every `refresh=wait_for` request for the refresh delay, first 1 s (a real node's
//! refresh interval) then 0. Reports executions per second of wall time (between the first
//! and the last search the fake saw) and per CPU-second of detectd (user + system time of the
//! child, from `getrusage(RUSAGE_CHILDREN)`).
//!
//! With `DETECTD_BASELINE_BIN` set to another detectd binary (e.g. one built from an older
//! commit), the same runs are made with it first, over `DETECTD_BENCH_BASELINE_MINUTES`
//! (default 1: at 8 executions per second a minute of 1,000 rules takes two minutes).
//!
//! `DETECTD_BASELINE_BIN=/path/to/old/detectd cargo bench --bench es_scheduler`

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/fake_es.rs"]
mod fake_es;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use fake_es::{FakeEs, FakeOptions};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer};

const RULES: usize = 1000;

fn rules(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..RULES {
        let text = format!(
            r#"[metadata]
creation_date = "2026/11/01"
maturity = "production"
updated_date = "2026/11/01"

[rule]
author = ["detectd"]
description = "Benchmark rule {i}."
from = "now-2m"
index = ["logs-aws.cloudtrail-*"]
interval = "1m"
language = "kuery"
license = "Apache-2.0"
name = "Bench {i}"
risk_score = 21
rule_id = "bench-{i:04}"
severity = "low"
type = "query"
query = 'event.action: "StopLogging" and event.provider: "cloudtrail.amazonaws.com"'
"#
        );
        std::fs::write(dir.join(format!("bench-{i:04}.toml")), text).unwrap();
    }
}

/// User + system CPU seconds of every child waited for so far.
fn children_cpu() -> f64 {
    let mut u = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given; RUSAGE_CHILDREN is always valid.
    let r = unsafe {
        libc::getrusage(libc::RUSAGE_CHILDREN, u.as_mut_ptr());
        u.assume_init()
    };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(r.ru_utime) + t(r.ru_stime)
}

struct Run {
    executions: u64,
    wall: f64,
    total_wall: f64,
    cpu: f64,
    refresh_waits: u64,
    alerts: u64,
}

async fn run(bin: &str, minutes: u32, refresh: Duration) -> Run {
    let server = MockServer::start().await;
    let (fake, counts) = FakeEs::new(FakeOptions {
        search_delay: Duration::from_millis(5),
        refresh_delay: refresh,
        hit_every: 50,
        ..FakeOptions::default()
    });
    Mock::given(any()).respond_with(fake).mount(&server).await;
    let tmp = tempfile::tempdir().unwrap();
    rules(&tmp.path().join("rules"));
    std::fs::write(tmp.path().join("config.toml"), "rules_dir = \"rules\"\n").unwrap();
    let end = format!("2026-10-01T00:{minutes:02}:00Z");
    let bin = bin.to_string();
    let dir = tmp.path().to_path_buf();
    let uri = server.uri();
    let cpu0 = children_cpu();
    let started = Instant::now();
    let out = tokio::task::spawn_blocking(move || {
        // DETECTD_BENCH_WRAP: a profiler to run detectd under, e.g. `perf record -g -o p.data`
        let wrap: Vec<String> = std::env::var("DETECTD_BENCH_WRAP")
            .map(|w| w.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default();
        let mut cmd = match wrap.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        cmd.current_dir(dir)
            .args(["--config", "config.toml", "run", "--start"])
            .args(["2026-10-01T00:00:00Z", "--end", &end])
            .env("DETECTD__BACKEND", "elasticsearch")
            .env("DETECTD__ELASTICSEARCH__URLS", uri)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let total_wall = started.elapsed().as_secs_f64();
    let cpu = children_cpu() - cpu0;
    if !out.status.success() {
        eprintln!(
            "detectd failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let executions = counts.rule_searches.load(Ordering::Relaxed);
    let wall = counts
        .first_last
        .lock()
        .unwrap()
        .map(|(f, l)| (l - f).as_secs_f64())
        .unwrap_or(total_wall);
    Run {
        executions,
        wall,
        total_wall,
        cpu,
        refresh_waits: counts.refresh_waits.load(Ordering::Relaxed),
        alerts: counts.alerts_created.load(Ordering::Relaxed),
    }
}

fn report(name: &str, refresh: Duration, r: &Run) -> (f64, f64) {
    let per_wall = r.executions as f64 / r.wall.max(1e-9);
    let per_cpu = r.executions as f64 / r.cpu.max(1e-9);
    println!(
        "{name:<9} refresh {:>4} ms: {:>6} executions, {:>7.1}/s wall ({:.1} s between first and last search, {:.1} s in all), {:>7.0}/CPU-s ({:.2} CPU-s), {} refresh waits, {} alerts",
        refresh.as_millis(),
        r.executions,
        per_wall,
        r.wall,
        r.total_wall,
        per_cpu,
        r.cpu,
        r.refresh_waits,
        r.alerts
    );
    (per_wall, per_cpu)
}

fn main() {
    let minutes: u32 = std::env::var("DETECTD_BENCH_MINUTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let baseline_minutes: u32 = std::env::var("DETECTD_BENCH_BASELINE_MINUTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "{RULES} query rules, 1-minute interval, fake Elasticsearch: searches 5 ms, 1 in 50 with a hit"
    );
    rt.block_on(async {
        let mut rows = Vec::new();
        if let Ok(baseline) = std::env::var("DETECTD_BASELINE_BIN") {
            for refresh in [Duration::from_secs(1), Duration::ZERO] {
                let r = run(&baseline, baseline_minutes, refresh).await;
                rows.push(("baseline", refresh, report("baseline", refresh, &r)));
            }
        }
        for refresh in [Duration::from_secs(1), Duration::ZERO] {
            let r = run(env!("CARGO_BIN_EXE_detectd"), minutes, refresh).await;
            rows.push(("detectd", refresh, report("detectd", refresh, &r)));
        }
        let find = |n: &str, ms: u128| {
            rows.iter()
                .find(|(name, r, _)| *name == n && r.as_millis() == ms)
                .map(|(_, _, v)| *v)
        };
        if let (Some(b), Some(n)) = (find("baseline", 1000), find("detectd", 1000)) {
            println!(
                "with 1 s refresh: x{:.1} executions/s wall, x{:.1} executions/CPU-s against the baseline",
                n.0 / b.0,
                n.1 / b.1
            );
        }
        if let (Some(a), Some(z)) = (find("detectd", 1000), find("detectd", 0)) {
            println!(
                "detectd, refresh 1 s vs 0: {:.2} (wall rate ratio)",
                a.0 / z.0
            );
        }
    });
}
