//! Embedded matcher throughput: the 134 AWS query/new_terms KQL rules of elastic/detection-rules
//! against ECS CloudTrail documents (the aws integration's pipeline test outputs, replicated with
//! varied actions, users and sources). Reports document×rule evaluations per second on one core,
//! with the per-document `prepare` included. Run: `cargo bench --bench matcher`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

use detectd::fields::FieldCatalog;
use detectd::matcher::{Matcher, MatcherSet};
use serde_json::{json, Value};

fn shared_data() -> Option<PathBuf> {
    let base = std::env::var_os("DETECTD_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    base.exists().then_some(base)
}

fn main() {
    let Some(data) = shared_data() else {
        eprintln!("skipping: reference data not found (set DETECTD_SHARED_DATA)");
        return;
    };
    let catalog = FieldCatalog::builtin();

    // Rules.
    let mut set = MatcherSet::new();
    let mut names = Vec::new();
    let mut actions: Vec<String> = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(data.join("detection-rules/aws"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    for path in files {
        let doc: toml::Value = toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let rule = &doc["rule"];
        let ty = rule.get("type").and_then(|v| v.as_str()).unwrap_or("");
        let lang = rule.get("language").and_then(|v| v.as_str()).unwrap_or("");
        if !matches!(ty, "query" | "new_terms") || lang != "kuery" {
            continue;
        }
        let query = rule["query"].as_str().unwrap();
        let ast = detectd::kql::parse(query).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let m =
            Matcher::compile(&ast, &catalog).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        set.add(&m);
        names.push(path.file_name().unwrap().to_string_lossy().to_string());
        // Harvest `event.action:...` literals to vary the documents with actions rules look for.
        for part in query.split("event.action").skip(1) {
            for word in part
                .split(|c: char| !(c.is_ascii_alphanumeric()))
                .filter(|w| w.len() > 3 && w.chars().next().is_some_and(|c| c.is_ascii_uppercase()))
                .take(4)
            {
                actions.push(word.to_string());
            }
        }
    }
    actions.sort();
    actions.dedup();

    // Documents.
    let mut pool: Vec<Value> = Vec::new();
    for e in std::fs::read_dir(data.join("integrations-cloudtrail/tests")).unwrap() {
        let p = e.unwrap().path();
        if p.to_string_lossy().ends_with("-expected.json") {
            let v: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            pool.extend(v["expected"].as_array().unwrap().iter().cloned());
        }
    }
    let users = ["alice", "bob", "terraform", "root", "svc-deploy"];
    let mut docs = Vec::new();
    for i in 0..5000usize {
        let mut d = pool[i % pool.len()].clone();
        if i % 3 == 0 && !actions.is_empty() {
            d["event"]["action"] = json!(actions[i % actions.len()]);
        }
        d["user"]["name"] = json!(users[i % users.len()]);
        d["source"]["ip"] = json!(format!("198.51.{}.{}", i % 256, (i / 256) % 256));
        docs.push(d);
    }

    println!(
        "{} rules, {} documents ({} distinct pipeline outputs), {} actions harvested",
        set.len(),
        docs.len(),
        pool.len(),
        actions.len()
    );

    // Warm-up and hit count.
    let mut hits = 0u64;
    for d in &docs {
        let p = set.prepare(d);
        for r in 0..set.len() {
            hits += u64::from(set.matches(r, &p));
        }
    }

    let rounds = 20;
    let start = Instant::now();
    let mut total = 0u64;
    for _ in 0..rounds {
        for d in &docs {
            let p = set.prepare(black_box(d));
            for r in 0..set.len() {
                total += u64::from(set.matches(r, black_box(&p)));
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let evals = (rounds * docs.len() * set.len()) as f64;
    black_box(total);

    let start = Instant::now();
    for _ in 0..rounds {
        for d in &docs {
            black_box(set.prepare(black_box(d)));
        }
    }
    let prep = start.elapsed().as_secs_f64();

    println!("matching document×rule pairs per pass: {hits}");
    println!(
        "{:.1} million document×rule evaluations/s (one core, prepare included); {:.0} ns per evaluation; prepare {:.2} µs per document",
        evals / secs / 1e6,
        secs * 1e9 / evals,
        prep * 1e6 / (rounds * docs.len()) as f64
    );
}
