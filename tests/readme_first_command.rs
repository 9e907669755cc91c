//! The README's first command: `detectd run --start <sample last day> --end <next day>` on the
//! default embedded configuration replays the committed sample, prints the alert summary and
//! writes exactly the alerts the generator's manifest says the seed rules must produce. A second
//! run creates nothing new (alerts are deduplicated by id across runs).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn run(dir: &Path, config: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_detectd"))
        .current_dir(dir)
        .args(["--config"])
        .arg(config)
        .args([
            "run",
            "--start",
            "2026-11-03T00:00:00Z",
            "--end",
            "2026-11-04T00:00:00Z",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn replaying_the_sample_alerts_on_every_injected_event_and_nothing_else() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tmp = tempfile::tempdir().unwrap();
    // The committed config.toml, with the repository's rules and sample (paths are relative to
    // the working directory, which is a fresh folder here).
    let config = std::fs::read_to_string(root.join("config.toml"))
        .unwrap()
        .replace(
            "rules_dir = \"rules\"",
            &format!("rules_dir = {:?}", root.join("rules")),
        )
        .replace(
            "data = [\"sample/AWSLogs\"]",
            &format!("data = [{:?}]", root.join("sample/AWSLogs")),
        );
    let config_path = tmp.path().join("config.toml");
    std::fs::write(&config_path, config).unwrap();

    let first = run(tmp.path(), &config_path);
    for rule in [
        "AWS CloudTrail Log Suspension",
        "AWS Execution via System Manager",
        "AWS SSM Command Document Created by Rare User",
    ] {
        assert!(first.contains(rule), "summary names {rule}:\n{first}");
    }
    assert!(first.contains("alerts: alerts.ndjson"), "{first}");

    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("sample/MANIFEST.json")).unwrap())
            .unwrap();
    let expected: BTreeSet<(String, String)> = manifest["injected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["event_id"].as_str().unwrap().to_string(),
                i["rule_id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let alerts: Vec<Value> = std::fs::read_to_string(tmp.path().join("alerts.ndjson"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let got: BTreeSet<(String, String)> = alerts
        .iter()
        .map(|a| {
            (
                a["event"]["id"].as_str().unwrap().to_string(),
                a["kibana.alert.rule.rule_id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(got, expected, "alerts = the manifest's injected events");
    assert_eq!(alerts.len(), expected.len(), "one alert per injected event");

    let second = run(tmp.path(), &config_path);
    assert!(second.contains(": 0 new alerts,"), "{second}");
    let again = std::fs::read_to_string(tmp.path().join("alerts.ndjson")).unwrap();
    assert_eq!(
        again.lines().count(),
        alerts.len(),
        "no alert written twice"
    );
}
