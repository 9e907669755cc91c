//! `detectd hunt` against the windowed replay it reproduces (`detectd run --start/--end` on the
//! embedded backend, the baseline), same rules, same generated data, same period, same run.
//!
//! `DETECTD_SHARED_DATA=/work/shared/data cargo bench --bench hunt`. Environment:
//! - `DETECTD_BENCH_RECORDS`: size of the generated data set (default 219,000 records), over
//!   `DETECTD_BENCH_DAYS` days (default 14) ending on 2026-10-03, cached under
//!   target/bench-data/;
//! - `DETECTD_BENCH_BASELINE=0` skips the replay (large data sets);
//! - `DETECTD_BENCH_NO_PREFILTER=0` skips the run without the prefilter;
//! - `DETECTD_BENCH_START`/`DETECTD_BENCH_END`: the period (default 2026-10-01 to 2026-10-03).
//!
//! Each command runs as a child process under `/usr/bin/time`, which gives wall time, CPU
//! (user + system) and peak RSS.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use detectd::generate::{generate, Options};

struct Measured {
    wall: f64,
    cpu: f64,
    rss_mb: f64,
    stderr: String,
}

fn measure(args: &[&str]) -> anyhow::Result<Measured> {
    let out = Command::new("/usr/bin/time")
        .args(["-f", "TIME %e %U %S %M"])
        .arg(env!("CARGO_BIN_EXE_detectd"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let Some(line) = stderr.lines().rev().find(|l| l.starts_with("TIME ")) else {
        anyhow::bail!("no timing from /usr/bin/time:\n{stderr}");
    };
    let f: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    if f.len() != 4 {
        anyhow::bail!("bad timing line {line}");
    }
    Ok(Measured {
        wall: f[0],
        cpu: f[1] + f[2],
        rss_mb: f[3] / 1024.0,
        stderr,
    })
}

fn alert_ids(path: &Path) -> BTreeSet<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["kibana.alert.uuid"].as_str().map(str::to_string))
        .collect()
}

fn main() -> anyhow::Result<()> {
    let records: u64 = std::env::var("DETECTD_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(219_000);
    let baseline = std::env::var("DETECTD_BENCH_BASELINE").map_or(true, |v| v != "0");
    let shared = std::env::var("DETECTD_SHARED_DATA").unwrap_or_else(|_| "../shared/data".into());
    let rules = Path::new(&shared).join("detection-rules/aws");
    if !rules.exists() {
        anyhow::bail!("{} not found (set DETECTD_SHARED_DATA)", rules.display());
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let days: u32 = std::env::var("DETECTD_BENCH_DAYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(14);
    let data = root.join(format!("target/bench-data/hunt-{records}-{days}d"));
    if !data.join("MANIFEST.json").exists() {
        let started = Instant::now();
        let m = generate(&Options {
            out: data.clone(),
            seed: 7,
            days,
            // The data set ends on 2026-10-03, as in the period below.
            start: (chrono::NaiveDate::from_ymd_opt(2026, 10, 4).unwrap_or_default()
                - chrono::Duration::days(i64::from(days)))
            .to_string(),
            events_per_day: records * 823 / 10_000 * 14 / u64::from(days),
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
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("MANIFEST.json"))?)?;
    let n = manifest["records"].as_u64().unwrap_or(0) as f64;
    let start =
        std::env::var("DETECTD_BENCH_START").unwrap_or_else(|_| "2026-10-01T00:00:00Z".into());
    let end = std::env::var("DETECTD_BENCH_END").unwrap_or_else(|_| "2026-10-03T00:00:00Z".into());

    let tmp = tempfile::tempdir()?;
    let logs = data.join("AWSLogs");
    let config = tmp.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "rules_dir = {:?}\nbackend = \"embedded\"\n[embedded]\ndata = [{:?}]\nalerts_file = {:?}\nstate_file = {:?}\nexecutions_file = {:?}\n[http]\nlisten = \"\"\n",
            rules,
            logs,
            tmp.path().join("replay.ndjson"),
            tmp.path().join("state.json"),
            tmp.path().join("executions.ndjson"),
        ),
    )?;
    let cfg = config.to_str().unwrap_or_default();
    let logs_s = logs.to_str().unwrap_or_default();
    println!(
        "{n} records, period {start} .. {end}, rules {}",
        rules.display()
    );
    println!("| run | wall s | CPU s | records / CPU-second | peak RSS MB | alerts |");
    println!("|---|---|---|---|---|---|");
    let row = |name: &str, m: &Measured, alerts: usize| {
        println!(
            "| {name} | {:.1} | {:.1} | {:.0} | {:.0} | {alerts} |",
            m.wall,
            m.cpu,
            n / m.cpu.max(1e-9),
            m.rss_mb
        );
    };
    let mut replay_ids = None;
    let mut replay_cpu = None;
    if baseline {
        let m = measure(&["--config", cfg, "run", "--start", &start, "--end", &end])?;
        let ids = alert_ids(&tmp.path().join("replay.ndjson"));
        row(
            "baseline: `detectd run --start --end` (embedded replay)",
            &m,
            ids.len(),
        );
        replay_cpu = Some(m.cpu);
        replay_ids = Some(ids);
    }
    let mut variants = vec![("`detectd hunt`", &[][..])];
    if std::env::var("DETECTD_BENCH_NO_PREFILTER").map_or(true, |v| v != "0") {
        variants.push(("`detectd hunt --no-prefilter`", &["--no-prefilter"][..]));
    }
    for (name, extra) in variants {
        let out = tmp.path().join("hunt.ndjson");
        let out_s = out.to_str().unwrap_or_default();
        let mut args = vec![
            "--config", cfg, "hunt", logs_s, "--start", &start, "--end", &end, "--out", out_s,
        ];
        args.extend_from_slice(extra);
        let m = measure(&args)?;
        let ids = alert_ids(&out);
        row(name, &m, ids.len());
        if let Some(line) = m.stderr.lines().find(|l| l.contains("skipped unparsed")) {
            println!("    {line}");
        }
        if let Some(r) = &replay_ids {
            println!(
                "    same alert ids as the replay: {} (CPU ×{:.1} less)",
                *r == ids,
                replay_cpu.unwrap_or(0.0) / m.cpu.max(1e-9)
            );
        }
    }
    Ok(())
}
