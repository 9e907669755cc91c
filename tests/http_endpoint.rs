//! The operations endpoint end to end on the embedded backend: `detectd run` replaying the
//! sample then running live serves /healthz, /readyz and /metrics, and stops cleanly (exit 0)
//! on SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let status = buf.split_whitespace().nth(1)?.parse().ok()?;
    let body = buf
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}

#[test]
fn metrics_health_and_graceful_shutdown() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tmp = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = format!(
        "rules_dir = {:?}\n[embedded]\ndata = [{:?}]\n[http]\nlisten = \"127.0.0.1:{port}\"\n",
        root.join("rules"),
        root.join("sample/AWSLogs")
    );
    std::fs::write(tmp.path().join("config.toml"), config).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_detectd"))
        .current_dir(tmp.path())
        .args(["run", "--start", "2026-11-03T00:00:00Z"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    // Wait until the replay has executed rules and created the sample's alerts.
    let deadline = Instant::now() + Duration::from_secs(120);
    let metrics = loop {
        if let Some((200, body)) = get(port, "/metrics") {
            if body.contains(
                "detectd_alerts_created_total{rule_id=\"1aa8fa52-44a7-4dae-b058-f3333b91c8d7\"} 1",
            ) {
                break body;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no alerts in /metrics within 120 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(metrics.contains("detectd_rules_loaded 3"), "{metrics}");
    assert!(metrics.contains("status=\"succeeded\""), "{metrics}");
    assert!(
        metrics.contains("detectd_execution_duration_seconds_bucket"),
        "{metrics}"
    );
    assert!(
        metrics.contains("detectd_schedule_lag_seconds_count"),
        "{metrics}"
    );
    assert_eq!(get(port, "/healthz").unwrap().0, 200);
    let (status, body) = get(port, "/readyz").unwrap();
    assert_eq!(status, 200, "{body}");

    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "detectd did not stop within 60 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "exit status after SIGTERM: {status:?}");
    let state = std::fs::read_to_string(tmp.path().join("state.json")).unwrap();
    assert!(
        state.contains("covered_until"),
        "state persisted on shutdown"
    );
}
