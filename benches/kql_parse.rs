//! Benchmark: parses every KQL query of the AWS detection rules repeatedly and reports the mean
//! time per query. Run with `cargo bench --bench kql_parse` (reads `../shared/data` or
//! `DETECTD_SHARED_DATA`).

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn main() {
    let base = std::env::var_os("DETECTD_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    let dir = base.join("detection-rules/aws");
    if !dir.exists() {
        eprintln!(
            "skipping: {} not found (set DETECTD_SHARED_DATA)",
            dir.display()
        );
        return;
    }
    let queries = match load_queries(&dir) {
        Ok(q) => q,
        Err(e) => {
            eprintln!("cannot read rules: {e}");
            std::process::exit(1);
        }
    };
    let bytes: usize = queries.iter().map(String::len).sum();
    println!("{} kuery queries, {bytes} bytes in all", queries.len());

    // Warm up, then run rounds until at least two seconds have passed.
    for q in &queries {
        let _ = black_box(detectd::kql::parse(black_box(q)));
    }
    let mut rounds = 0u32;
    let mut best = Duration::MAX;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(2) {
        let round = Instant::now();
        for q in &queries {
            let _ = black_box(detectd::kql::parse(black_box(q)));
        }
        best = best.min(round.elapsed());
        rounds += 1;
    }
    let total = start.elapsed();
    let parses = f64::from(rounds) * queries.len() as f64;
    let mean_us = total.as_secs_f64() * 1e6 / parses;
    let best_us = best.as_secs_f64() * 1e6 / queries.len() as f64;
    println!(
        "{rounds} rounds: mean {mean_us:.2} µs per query (best round {best_us:.2} µs per query)"
    );
}

fn load_queries(dir: &std::path::Path) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let mut queries = Vec::new();
    for entry in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let entry = entry?;
        if entry.path().extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let doc: toml::Table = toml::from_str(&std::fs::read_to_string(entry.path())?)?;
        let Some(rule) = doc.get("rule").and_then(|r| r.as_table()) else {
            continue;
        };
        if rule.get("language").and_then(|l| l.as_str()) != Some("kuery") {
            continue;
        }
        if let Some(q) = rule.get("query").and_then(|q| q.as_str()) {
            queries.push(q.to_string());
        }
    }
    Ok(queries)
}
