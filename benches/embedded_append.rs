//! What a live embedded run pays when files arrive: `EmbeddedBackend::append` of a batch of
//! documents to a large store whose rules' match sets are built (100 queries), for a batch
//! newer than everything stored (the usual case) and for one older than the newest stored
//! document (CloudTrail delivered late: the store then keeps a (time, document) index).
//!
//! `cargo bench --bench embedded_append` (`DETECTD_BENCH_RECORDS`, default 1,000,000 stored
//! documents; `DETECTD_BENCH_BATCH`, default 1,000). Prints the time per append, per appended
//! document, and the peak RSS.

use std::time::Instant;

use detectd::backend::embedded::{EmbeddedBackend, EmbeddedPaths, StoreBuilder};
use detectd::fields::FieldCatalog;
use serde_json::json;

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

const ACTIONS: usize = 100;
const T0: i64 = 1_790_000_000_000;

/// Document `i`, `ms` milliseconds after `T0`.
fn doc(i: usize, ms: i64) -> serde_json::Value {
    let t = chrono::DateTime::from_timestamp_millis(T0 + ms).unwrap_or_default();
    json!({
        "@timestamp": t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "event": {"id": format!("ev-{i}"), "action": format!("Action{}", i % ACTIONS),
                  "provider": "iam.amazonaws.com", "outcome": "success", "dataset": "aws.cloudtrail"},
        "user": {"name": format!("user-{}", i % 997)},
        "source": {"ip": format!("10.{}.{}.{}", i % 200, (i / 200) % 250, i % 250)},
        "cloud": {"account": {"id": "111122223333"}, "region": "us-east-1"}
    })
}

fn main() -> anyhow::Result<()> {
    let n: usize = std::env::var("DETECTD_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let batch: usize = std::env::var("DETECTD_BENCH_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000);
    let dir = tempfile::tempdir()?;
    let started = Instant::now();
    let mut b = StoreBuilder::default();
    for i in 0..n {
        b.push(doc(i, i as i64 * 100));
    }
    let backend = EmbeddedBackend::new(
        b.finish(),
        FieldCatalog::builtin(),
        &EmbeddedPaths {
            alerts: dir.path().join("alerts.ndjson"),
            state: dir.path().join("state.json"),
            executions: dir.path().join("executions.ndjson"),
        },
    )?;
    let queries: Vec<detectd::kql::Ast> = (0..ACTIONS)
        .map(|a| {
            detectd::kql::parse(&format!(
                "event.action: Action{a} and event.outcome: success"
            ))
        })
        .collect::<Result<_, _>>()?;
    let logs = vec!["logs-*".to_string()];
    let spec: Vec<(&[String], &detectd::kql::Ast, &[serde_json::Value])> = queries
        .iter()
        .map(|q| (logs.as_slice(), q, &[][..]))
        .collect();
    backend.prepare(&spec)?;
    println!(
        "store: {n} documents, {ACTIONS} match sets built in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let mut next = n;
    let end_ms = n as i64 * 100;
    for (label, older) in [
        ("newer than the store", false),
        ("older than the newest", true),
    ] {
        let rounds = 10;
        let mut total = 0.0;
        for r in 0..rounds {
            let mut add = StoreBuilder::default();
            for k in 0..batch {
                // older: spread over the whole stored period; newer: after everything stored
                let ms = if older {
                    (k as i64 * 7_919 + r as i64 * 13) % end_ms
                } else {
                    end_ms + (r * batch + k) as i64 * 100
                };
                add.push(doc(next, ms));
                next += 1;
            }
            let t = Instant::now();
            let added = backend.append(add)?;
            total += t.elapsed().as_secs_f64();
            assert_eq!(added, batch);
        }
        let per = total / rounds as f64;
        println!(
            "append {batch} documents {label}: {:.1} ms per append ({:.1} µs per document), store now {}",
            per * 1e3,
            per * 1e6 / batch as f64,
            backend.store().len()
        );
    }
    println!("peak RSS {:.0} MB", peak_rss_mb());
    Ok(())
}
