//! Raw CloudTrail records normalised per second on one core: the Stratus Red Team samples
//! (compact, one record per string) replicated; first the baseline (parse each record with
//! serde_json and write it back, no normalisation), then `normalize_str`, `normalize_str` plus
//! serialising the document, and the same records as an NDJSON file through `read_paths`
//! (reading + parsing + normalising).
//!
//! `cargo bench --bench ecs_normalize` (needs ../shared/data or DETECTD_SHARED_DATA).

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use detectd::ecs::{normalize_str, read_paths, NormalizeOptions};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let base = std::env::var_os("DETECTD_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    let dir = base.join("cloudtrail-samples/stratus-red-team-detonation-logs");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!(
            "skipping: {} not found (set DETECTD_SHARED_DATA)",
            dir.display()
        );
        return;
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let mut records: Vec<String> = Vec::new();
    for f in &files {
        let Ok(text) = std::fs::read_to_string(f) else {
            continue;
        };
        let Ok(serde_json::Value::Array(a)) = serde_json::from_str(&text) else {
            continue;
        };
        records.extend(a.iter().map(|r| r.to_string()));
    }
    let target = 200_000;
    let sample: Vec<&String> = records.iter().cycle().take(target).collect();
    let bytes: usize = sample.iter().map(|r| r.len()).sum();
    let opts = NormalizeOptions::default();

    // Warm-up, then the timed runs, each over the same records.
    for r in sample.iter().take(10_000) {
        std::hint::black_box(normalize_str(r, &opts).ok());
    }
    let rate = |label: &str, ok: usize, secs: f64| {
        println!(
            "{label}: {ok} records ({} distinct, {:.1} MB) in {secs:.3}s: {:.0} records/s, {:.1} MB/s",
            records.len(),
            bytes as f64 / 1e6,
            ok as f64 / secs,
            bytes as f64 / 1e6 / secs
        );
        ok as f64 / secs
    };

    // Baseline: what parsing each record with serde_json and writing it back costs (no
    // normalisation at all).
    let t = Instant::now();
    let mut ok = 0usize;
    for r in &sample {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(r) {
            std::hint::black_box(v.to_string());
            ok += 1;
        }
    }
    let baseline = rate(
        "baseline serde_json Value parse + to_string",
        ok,
        t.elapsed().as_secs_f64(),
    );

    let t = Instant::now();
    let mut ok = 0usize;
    for r in &sample {
        if std::hint::black_box(normalize_str(r, &opts)).is_ok() {
            ok += 1;
        }
    }
    let n = rate("normalize_str", ok, t.elapsed().as_secs_f64());
    println!("  = {:.2} x baseline", n / baseline);

    let t = Instant::now();
    let mut ok = 0usize;
    for r in &sample {
        if let Ok(d) = normalize_str(r, &opts) {
            std::hint::black_box(d.to_json());
            ok += 1;
        }
    }
    let n = rate(
        "normalize_str + to_json (what the store and `detectd ecs` do)",
        ok,
        t.elapsed().as_secs_f64(),
    );
    println!("  = {:.2} x baseline", n / baseline);

    let tmp = std::env::temp_dir().join(format!("detectd-ecs-bench-{}.ndjson", std::process::id()));
    {
        let Ok(f) = std::fs::File::create(&tmp) else {
            return;
        };
        let mut w = std::io::BufWriter::new(f);
        for r in &sample {
            let _ = writeln!(w, "{r}");
        }
    }
    let t = Instant::now();
    let mut docs = 0usize;
    let summary = read_paths(
        std::slice::from_ref(&tmp),
        &opts,
        |d| {
            docs += 1;
            std::hint::black_box(d);
        },
        |_| {},
    );
    let secs = t.elapsed().as_secs_f64();
    println!(
        "read_paths (NDJSON file): {} records in {secs:.3}s: {:.0} records/s, {:.1} MB/s ({} errors)",
        summary.documents,
        summary.documents as f64 / secs,
        bytes as f64 / 1e6 / secs,
        summary.errors
    );
    let _ = std::fs::remove_file(&tmp);

    // The same records as AWS delivers them: gzipped `{"Records": [...]}` files of 100 records.
    let dir = std::env::temp_dir().join(format!("detectd-ecs-bench-{}", std::process::id()));
    if std::fs::create_dir_all(&dir).is_err() {
        return;
    }
    for (i, chunk) in sample.chunks(100).enumerate() {
        let Ok(f) = std::fs::File::create(dir.join(format!("{i:05}.json.gz"))) else {
            return;
        };
        let mut w = flate2::write::GzEncoder::new(f, flate2::Compression::default());
        let body = chunk
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(",");
        let _ = write!(w, "{{\"Records\":[{body}]}}");
        let _ = w.finish();
    }
    let t = Instant::now();
    let summary = read_paths(
        std::slice::from_ref(&dir),
        &opts,
        |d| {
            std::hint::black_box(d);
        },
        |_| {},
    );
    let secs = t.elapsed().as_secs_f64();
    println!(
        "read_paths (2,000 gzipped delivery files): {} records in {secs:.3}s: {:.0} records/s, {:.1} MB/s ({} errors)",
        summary.documents,
        summary.documents as f64 / secs,
        bytes as f64 / 1e6 / secs,
        summary.errors
    );
    let _ = std::fs::remove_dir_all(&dir);
}
