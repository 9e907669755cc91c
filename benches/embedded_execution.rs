//! One execution on the embedded backend over a large store: a query rule and a new_terms rule
//! (the seed rules) over ~1,000,000 generated CloudTrail records spanning 14 days.
//!
//! `cargo bench --bench embedded_execution` (`DETECTD_BENCH_RECORDS` scales the data set; the
//! generated files are cached under target/bench-data/). Prints load time, memory (peak RSS and
//! per document) and time per execution (mean, p50, p99) for each rule.

use std::path::Path;
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use detectd::backend::embedded::{EmbeddedBackend, EmbeddedPaths, StoreBuilder};
use detectd::engine::{execute, ExecRule, Window};
use detectd::fields::FieldCatalog;
use detectd::generate::{generate, Options};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or(0.0)
}

fn main() -> anyhow::Result<()> {
    let records: u64 = std::env::var("DETECTD_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let data = root.join(format!("target/bench-data/embedded-{records}"));
    if !data.join("MANIFEST.json").exists() {
        let started = Instant::now();
        let m = generate(&Options {
            out: data.clone(),
            seed: 7,
            days: 14,
            start: "2026-11-02".to_owned(),
            events_per_day: records * 823 / 10_000,
            accounts: 8,
            users_per_account: 100,
            compression: 1,
            force: true,
        })?;
        println!(
            "generated {} records in {:.1} s (cached in {})",
            m.records,
            started.elapsed().as_secs_f64(),
            data.display()
        );
    }

    let started = Instant::now();
    let mut builder = StoreBuilder::default();
    let summary = detectd::ecs::reader::read_paths(
        &[data.join("AWSLogs")],
        &detectd::ecs::NormalizeOptions::default(),
        |d| {
            builder.push_doc(&d.doc);
        },
        |_| {},
    );
    let store = builder.finish();
    let load_s = started.elapsed().as_secs_f64();
    let rss_loaded = peak_rss_mb();
    println!(
        "loaded {} documents ({} errors) in {load_s:.1} s: {:.0} documents/s; peak RSS {rss_loaded:.0} MB ({:.0} bytes/document)",
        store.len(),
        summary.errors,
        store.len() as f64 / load_s,
        rss_loaded * 1024.0 * 1024.0 / store.len().max(1) as f64
    );
    let (_, last) = store.span().unwrap_or((0, 0));
    let end = DateTime::from_timestamp_millis(last).unwrap_or_else(Utc::now);

    let report = detectd::rules::load_paths(&[root.join("rules")]);
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("MANIFEST.json"))?)?;
    let tmp = tempfile::tempdir()?;
    let backend = EmbeddedBackend::new(
        store,
        FieldCatalog::builtin(),
        &EmbeddedPaths {
            alerts: tmp.path().join("alerts.ndjson"),
            state: tmp.path().join("state.json"),
            executions: tmp.path().join("executions.ndjson"),
        },
    )?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    for name in [
        "AWS CloudTrail Log Suspension",
        "AWS SSM Command Document Created by Rare User",
    ] {
        let Some(rule) = report.rules.iter().find(|r| r.name == name) else {
            anyhow::bail!("seed rule {name} not found in rules/");
        };
        let exec = ExecRule::from_rule(rule).map_err(anyhow::Error::msg)?;
        // 50 executions every 2 hours over the last ~4 days of the data, plus one just after
        // each event the generator injected for this rule (so some windows have hits).
        let injected: Vec<DateTime<Utc>> = manifest["injected"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|i| i["rule_id"] == rule.rule_id.as_str())
            .filter_map(|i| detectd::time::parse_absolute(i["event_time"].as_str()?))
            .map(|t| t + Duration::minutes(1))
            .collect();
        let instants: Vec<DateTime<Utc>> = (0..50)
            .map(|k| end - Duration::hours(2 * k))
            .chain(injected)
            .collect();
        let mut times = Vec::new();
        let mut alerts = 0;
        let mut hits = 0;
        for at in instants {
            let started = Instant::now();
            let res = rt.block_on(execute(&exec, Window::at(&exec, at), &backend, "bench", at));
            times.push(started.elapsed().as_secs_f64() * 1000.0);
            alerts += res.alerts_created + res.duplicates;
            hits += res.hits;
        }
        let first = times[0];
        times.remove(0);
        times.sort_by(|a, b| a.total_cmp(b));
        let mean = times.iter().sum::<f64>() / times.len() as f64;
        println!(
            "{} ({}): first execution {first:.0} ms (builds the query's match set over the store); the other {}: mean {mean:.2} ms, p50 {:.2} ms, p99 {:.2} ms; {hits} hits, {alerts} alerts",
            name,
            if exec.new_terms.is_some() { "new_terms" } else { "query" },
            times.len(),
            percentile(&times, 0.5),
            percentile(&times, 0.99),
        );
    }
    println!("peak RSS after the executions {:.0} MB", peak_rss_mb());

    // The public AWS rules: their queries' match sets built one query at a time (what each
    // rule's first execution does when nothing was prepared) against all the others in one
    // pass (what `detectd run` does at start).
    let aws = std::env::var_os("DETECTD_SHARED_DATA")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("../shared/data"))
        .join("detection-rules/aws");
    if aws.is_dir() {
        let report = detectd::rules::load_paths(&[aws]);
        let execs: Vec<ExecRule> = report
            .rules
            .iter()
            // what the embedded backend runs (ES|QL rules execute on Elasticsearch only)
            .filter(|r| {
                r.support()
                    .on(detectd::config::BackendKind::Embedded)
                    .is_ok()
            })
            .filter_map(|r| ExecRule::from_rule(r).ok())
            .collect();
        let specs: Vec<(&[String], &detectd::kql::Ast, &[serde_json::Value])> = execs
            .iter()
            .map(|e| (e.indices.as_slice(), &e.query, e.filters.as_slice()))
            .collect();
        let single = 10.min(specs.len());
        let started = Instant::now();
        let mut built = 0;
        for s in &specs[..single] {
            built += backend.prepare(std::slice::from_ref(s))?;
        }
        let one_at_a_time = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let together = backend.prepare(&specs[single..])?;
        let one_pass = started.elapsed().as_secs_f64();
        println!(
            "AWS rule queries over {} documents on {} threads: {built} built one at a time in {one_at_a_time:.1} s ({:.2} s per query); the other {together} in one pass in {one_pass:.1} s ({:.3} s per query, x{:.0})",
            backend.store().len(),
            std::thread::available_parallelism().map_or(1, |p| p.get()),
            one_at_a_time / built.max(1) as f64,
            one_pass / together.max(1) as f64,
            (one_at_a_time / built.max(1) as f64) / (one_pass / together.max(1) as f64),
        );
    }
    Ok(())
}
