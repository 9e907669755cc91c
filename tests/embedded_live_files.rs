//! A live `detectd run` on the embedded backend picks up a CloudTrail file written after it
//! started and alerts on it at the rule's next execution; the same event delivered again in a
//! second file is not alerted twice.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RULE: &str = "1aa8fa52-44a7-4dae-b058-f3333b91c8d7"; // AWS CloudTrail Log Suspension
const INTERVAL_SECS: u64 = 4;

fn record(id: &str, name: &str, t: &str) -> String {
    serde_json::json!({
        "eventVersion": "1.08", "eventTime": t, "eventSource": "cloudtrail.amazonaws.com",
        "eventName": name, "awsRegion": "us-east-1", "eventID": id,
        "sourceIPAddress": "198.51.100.7", "eventType": "AwsApiCall",
        "userAgent": "aws-cli/2.13.0",
        "userIdentity": {"type": "IAMUser", "userName": "mallory", "accountId": "111122223333",
            "arn": "arn:aws:iam::111122223333:user/mallory"},
        "requestParameters": {"name": "management-trail"},
        "recipientAccountId": "111122223333"
    })
    .to_string()
}

fn alerts(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[test]
fn a_file_written_after_start_is_alerted_on_at_the_next_execution() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("AWSLogs");
    std::fs::create_dir_all(&data).unwrap();
    let now = chrono::Utc::now();
    let t = |secs: i64| (now - chrono::Duration::seconds(secs)).to_rfc3339();
    // Before the start: an event no rule alerts on (StartLogging).
    std::fs::write(
        data.join("before.json"),
        format!(
            r#"{{"Records": [{}]}}"#,
            record("ev-before", "StartLogging", &t(120))
        ),
    )
    .unwrap();
    let config = format!(
        "rules_dir = {:?}\n[embedded]\ndata = [{:?}]\nwatch_interval = \"1s\"\n\
         [rules.{RULE:?}]\ninterval = \"{INTERVAL_SECS}s\"\n",
        root.join("rules"),
        data,
    );
    std::fs::write(tmp.path().join("config.toml"), config).unwrap();
    let log = std::fs::File::create(tmp.path().join("detectd.log")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_detectd"))
        .current_dir(tmp.path())
        .arg("run")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let alerts_file = tmp.path().join("alerts.ndjson");
    let logs = || std::fs::read_to_string(tmp.path().join("detectd.log")).unwrap_or_default();

    // Running live and watching: the first executions of the rule happened.
    let deadline = Instant::now() + Duration::from_secs(120);
    while !logs().contains("watching the embedded data for new files")
        || !std::fs::read_to_string(tmp.path().join("executions.ndjson"))
            .unwrap_or_default()
            .contains(RULE)
    {
        assert!(Instant::now() < deadline, "not running live:\n{}", logs());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(alerts(&alerts_file).is_empty(), "nothing to alert on yet");

    // A delivery file arrives (written elsewhere, then moved in, as a sync tool does).
    let stop = record("ev-stop", "StopLogging", &t(30));
    let staging = tmp.path().join("staging.json");
    std::fs::write(&staging, format!(r#"{{"Records": [{stop}]}}"#)).unwrap();
    std::fs::rename(&staging, data.join("later.json")).unwrap();
    let written = Instant::now();

    let deadline = written + Duration::from_secs(90);
    let found = loop {
        let a = alerts(&alerts_file);
        if !a.is_empty() {
            break a;
        }
        assert!(
            Instant::now() < deadline,
            "no alert 90 s after the file arrived:\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let latency = written.elapsed();
    eprintln!("alert {:.1} s after the file arrived (rule interval {INTERVAL_SECS} s, watch 1 s, settle 2 s)", latency.as_secs_f64());
    assert_eq!(found.len(), 1, "{found:?}");
    let a = &found[0];
    assert_eq!(a["kibana.alert.rule.rule_id"], RULE);
    assert_eq!(a["event"]["action"], "StopLogging");
    // read after the start: stamped with the time it was read, as an ingest pipeline does
    let ingested = a["event"]["ingested"].as_str().expect("event.ingested");
    assert!(chrono::DateTime::parse_from_rfc3339(ingested).unwrap() >= now);
    assert!(logs().contains("new embedded data read"));

    // The same event again in another file (a re-delivery): stored once, alerted once.
    std::fs::write(
        data.join("again.json"),
        format!(r#"{{"Records": [{stop}]}}"#),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !logs().contains("already_stored=1") {
        assert!(
            Instant::now() < deadline,
            "the second file was not read:\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // two more executions of the rule after it was read, and still one alert
    let executions = || {
        std::fs::read_to_string(tmp.path().join("executions.ndjson"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(RULE))
            .count()
    };
    let seen = executions();
    while executions() < seen + 2 {
        assert!(
            Instant::now() < deadline,
            "the rule stopped running:\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(alerts(&alerts_file).len(), 1);

    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}\n{}", logs());
}
