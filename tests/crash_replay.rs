//! Crash safety of the embedded backend, through the binary: `detectd run --start/--end` is
//! SIGKILLed at random points and restarted until it completes; the alerts file must then hold
//! exactly the alert ids of an uninterrupted run, each once. A torn last line (a partial
//! write) is repaired on restart.
//!
//! `soak` (ignored) repeats the kill loop for `DETECTD_SOAK_MINUTES` (default 5) and prints the
//! totals RELIABILITY.md records:
//! `DETECTD_SOAK_MINUTES=10 cargo test --release --test crash_replay -- --ignored soak --nocapture`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The replay is the last day; the first is history for the new_terms rules.
const START: &str = "2026-11-02T00:00:00Z";
const END: &str = "2026-11-03T00:00:00Z";

/// Every CloudTrail event, overlapping windows (duplicates by id), many alerts per window.
const BROAD: &str = r#"
[metadata]
creation_date = "2026/12/01"
maturity = "production"
updated_date = "2026/12/01"

[rule]
author = ["detectd tests"]
description = "Every CloudTrail event."
from = "now-40m"
index = ["logs-aws.cloudtrail-*"]
interval = "30m"
language = "kuery"
license = "Apache-2.0"
max_signals = 1000
name = "Crash Test Every Event"
risk_score = 21
rule_id = "22222222-0000-4000-8000-000000000001"
severity = "low"
type = "query"
version = 1
query = '''
event.dataset: "aws.cloudtrail"
'''
"#;

/// new_terms over the user with a six-hour history.
const NEW_USERS: &str = r#"
[metadata]
creation_date = "2026/12/01"
maturity = "production"
updated_date = "2026/12/01"

[rule]
author = ["detectd tests"]
description = "A user not seen in the previous six hours."
from = "now-35m"
index = ["logs-aws.cloudtrail-*"]
interval = "30m"
language = "kuery"
license = "Apache-2.0"
max_signals = 100
name = "Crash Test New Users"
risk_score = 21
rule_id = "22222222-0000-4000-8000-000000000002"
severity = "low"
type = "new_terms"
version = 1
query = '''
event.dataset: "aws.cloudtrail"
'''

[rule.new_terms]
field = "new_terms_fields"
value = ["user.name"]

[[rule.new_terms.history_window_start]]
field = "history_window_start"
value = "now-6h"
"#;

/// A generated data set, rules and a config whose output files live in `out/`.
struct Setup {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    config: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let out = Command::new(env!("CARGO_BIN_EXE_detectd"))
            .args(["generate", "--out"])
            .arg(dir.join("data"))
            .args([
                "--days",
                "2",
                "--events-per-day",
                "300",
                "--start",
                "2026-11-01",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let rules = dir.join("rules");
        std::fs::create_dir_all(&rules).unwrap();
        let seed = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
        for e in std::fs::read_dir(&seed).unwrap() {
            let p = e.unwrap().path();
            std::fs::copy(&p, rules.join(p.file_name().unwrap())).unwrap();
        }
        std::fs::write(rules.join("broad.toml"), BROAD).unwrap();
        std::fs::write(rules.join("new_users.toml"), NEW_USERS).unwrap();
        let config = dir.join("config.toml");
        std::fs::write(
            &config,
            format!(
                "rules_dir = {rules:?}\nbackend = \"embedded\"\n[embedded]\ndata = [{data:?}]\n\
                 alerts_file = {alerts:?}\nstate_file = {state:?}\nexecutions_file = {exec:?}\n",
                rules = rules.display().to_string(),
                data = dir.join("data/AWSLogs").display().to_string(),
                alerts = dir.join("out/alerts.ndjson").display().to_string(),
                state = dir.join("out/state.json").display().to_string(),
                exec = dir.join("out/executions.ndjson").display().to_string(),
            ),
        )
        .unwrap();
        Setup {
            _tmp: tmp,
            dir,
            config,
        }
    }

    fn alerts_file(&self) -> PathBuf {
        self.dir.join("out/alerts.ndjson")
    }

    /// Removes the output files (a fresh start).
    fn reset(&self) {
        let _ = std::fs::remove_dir_all(self.dir.join("out"));
    }

    fn command(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_detectd"));
        c.arg("--config")
            .arg(&self.config)
            .args(["run", "--start", START, "--end", END])
            .current_dir(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        c
    }

    /// One uninterrupted run: its duration.
    fn run_to_end(&self) -> Duration {
        let t = Instant::now();
        let out = self.command().output().unwrap();
        assert!(
            out.status.success(),
            "detectd run failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        t.elapsed()
    }
}

/// The alert ids of an alerts file, in file order (duplicates kept), and the lines that are
/// not alerts.
fn read_ids(path: &Path) -> (Vec<String>, Vec<String>) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut ids = Vec::new();
    let mut bad = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str::<Value>(line)
            .ok()
            .and_then(|v| v["kibana.alert.uuid"].as_str().map(str::to_string))
        {
            Some(id) => ids.push(id),
            None => bad.push(line.to_string()),
        }
    }
    (ids, bad)
}

/// xorshift64*: a seeded source of kill delays (no dependency, reproducible).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }
}

#[derive(Debug, Default)]
struct Tally {
    rounds: u64,
    kills: u64,
    restarts: u64,
    lost: usize,
    duplicated: usize,
    extra: usize,
    bad_lines: usize,
}

/// One round: a fresh start, killed after a random delay below `max_delay` and restarted
/// until a run completes (exit 0); the final file is compared with `expected`.
fn crash_round(
    s: &Setup,
    rng: &mut Rng,
    max_delay: Duration,
    expected: &BTreeSet<String>,
    t: &mut Tally,
) {
    s.reset();
    t.rounds += 1;
    loop {
        let mut child = s.command().stderr(Stdio::null()).spawn().unwrap();
        let delay = Duration::from_millis(rng.below(max_delay.as_millis() as u64));
        let deadline = Instant::now() + delay;
        let finished = loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "detectd run exited with {status}");
                break true;
            }
            if Instant::now() >= deadline {
                break false;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        if finished {
            break;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        t.kills += 1;
        t.restarts += 1;
    }
    let (ids, bad) = read_ids(&s.alerts_file());
    let set: BTreeSet<String> = ids.iter().cloned().collect();
    t.duplicated += ids.len() - set.len();
    t.lost += expected.difference(&set).count();
    t.extra += set.difference(expected).count();
    t.bad_lines += bad.len();
}

fn baseline(s: &Setup) -> (BTreeSet<String>, Duration) {
    s.reset();
    let took = s.run_to_end();
    let (ids, bad) = read_ids(&s.alerts_file());
    assert!(bad.is_empty(), "lines that are not alerts: {bad:?}");
    let set: BTreeSet<String> = ids.iter().cloned().collect();
    assert_eq!(
        set.len(),
        ids.len(),
        "an uninterrupted run wrote an alert twice"
    );
    assert!(
        set.len() > 100,
        "too few alerts to test with: {}",
        set.len()
    );
    (set, took)
}

#[test]
fn sigkill_at_random_points_loses_and_duplicates_no_alert() {
    let s = Setup::new();
    let (expected, took) = baseline(&s);
    // Kills land anywhere from start-up to half a whole run: every round is killed several
    // times, and completes once the state has advanced far enough.
    let max_delay = took / 2;
    let mut rng = Rng(0x5eed_0015);
    let mut t = Tally::default();
    // A guard against a hang, not a time limit: a loaded machine runs fewer rounds a minute.
    let budget = Instant::now() + Duration::from_secs(300);
    while t.kills < 20 || t.rounds < 2 {
        assert!(Instant::now() < budget, "kill loop over budget: {t:?}");
        crash_round(&s, &mut rng, max_delay, &expected, &mut t);
        assert_eq!(
            (t.lost, t.duplicated, t.extra, t.bad_lines),
            (0, 0, 0, 0),
            "{t:?}"
        );
    }
    eprintln!("{} alerts, baseline {took:?}: {t:?}", expected.len());
}

#[test]
fn torn_last_line_is_repaired_on_restart() {
    let s = Setup::new();
    let (expected, _) = baseline(&s);
    // A crash in the middle of appending the last alert: its line is cut short and the state
    // never recorded its window (state is written after the alerts are synced).
    let path = s.alerts_file();
    let text = std::fs::read_to_string(&path).unwrap();
    let last_start = text.trim_end().rfind('\n').unwrap() + 1;
    let torn_at = last_start + (text.len() - last_start) / 2;
    std::fs::write(&path, &text.as_bytes()[..torn_at]).unwrap();
    std::fs::remove_file(s.dir.join("out/state.json")).unwrap();

    let out = s.command().output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("torn") && stderr.contains("alerts.ndjson"),
        "the repair is logged naming the file:\n{stderr}"
    );
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.ends_with('\n'));
    let (ids, bad) = read_ids(&path);
    assert!(
        bad.is_empty(),
        "the torn fragment is still in the file: {bad:?}"
    );
    let set: BTreeSet<String> = ids.iter().cloned().collect();
    assert_eq!(set.len(), ids.len(), "an alert written twice");
    assert_eq!(set, expected);
}

#[test]
#[ignore = "soak: DETECTD_SOAK_MINUTES of kill loops"]
fn soak() {
    let minutes: u64 = std::env::var("DETECTD_SOAK_MINUTES")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(5);
    let s = Setup::new();
    let (expected, took) = baseline(&s);
    let max_delay = took / 2;
    let seed = std::env::var("DETECTD_SOAK_SEED")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0x5eed_0015);
    let mut rng = Rng(seed);
    let mut t = Tally::default();
    let stop = Instant::now() + Duration::from_secs(minutes * 60);
    while Instant::now() < stop {
        crash_round(&s, &mut rng, max_delay, &expected, &mut t);
    }
    println!(
        "soak: {minutes} min, seed {seed:#x}, {} alerts per run, baseline {took:?}: {} rounds, {} kills, {} restarts, {} lost, {} duplicated, {} unexpected, {} bad lines",
        expected.len(),
        t.rounds,
        t.kills,
        t.restarts,
        t.lost,
        t.duplicated,
        t.extra,
        t.bad_lines
    );
    assert_eq!(
        (t.lost, t.duplicated, t.extra, t.bad_lines),
        (0, 0, 0, 0),
        "{t:?}"
    );
}
