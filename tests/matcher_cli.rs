//! `detectd match`: grep for KQL over ECS NDJSON.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::{Command, Stdio};

const LINES: &str = concat!(
    r#"{"event":{"action":"CreateUser","provider":"iam.amazonaws.com"}}"#,
    "\n",
    "{not json\n",
    r#"{"event":{"action":"DeleteUser","provider":"iam.amazonaws.com"}}"#,
    "\n",
    "\n",
    r#"{ "event" : { "action" : "CreateUser" } }"#,
    "\n",
);

fn detectd(args: &[&str], stdin: Option<&str>) -> (String, String, Option<i32>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_detectd"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    let out = child.wait_with_output().unwrap();
    (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
        out.status.code(),
    )
}

#[test]
fn prints_matching_lines_unchanged_and_reports_bad_json_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.ndjson");
    std::fs::write(&file, LINES).unwrap();
    let path = file.to_str().unwrap();
    let (out, err, code) = detectd(&["match", "--kql", "event.action:CreateUser", path], None);
    assert_eq!(
        out,
        concat!(
            r#"{"event":{"action":"CreateUser","provider":"iam.amazonaws.com"}}"#,
            "\n",
            r#"{ "event" : { "action" : "CreateUser" } }"#,
            "\n"
        )
    );
    assert!(err.contains(&format!("{path}:2")), "stderr: {err}");
    assert_eq!(code, Some(0));
}

#[test]
fn count_and_stdin() {
    let (out, _, code) = detectd(
        &[
            "match",
            "--kql",
            "event.action:*User and not event.action:Delete*",
            "--count",
        ],
        Some(LINES),
    );
    assert_eq!(out, "2\n");
    assert_eq!(code, Some(0));
    let (out, _, code) = detectd(
        &["match", "--kql", "event.action:Nothing", "--count"],
        Some(LINES),
    );
    assert_eq!(out, "0\n");
    assert_eq!(code, Some(1), "like grep: 1 when nothing matched");
}

#[test]
fn field_caps_types_the_fields() {
    let dir = tempfile::tempdir().unwrap();
    let caps = dir.path().join("caps.json");
    // With `event.action` as text, the match is by token and case-insensitive.
    std::fs::write(&caps, r#"{"indices":["i"],"fields":{"event.action":{"text":{"type":"text","searchable":true,"aggregatable":false}}}}"#).unwrap();
    let args = ["match", "--kql", "event.action:createuser", "--count"];
    let (out, _, _) = detectd(&args, Some(LINES));
    assert_eq!(out, "0\n", "built-in catalog: keyword, case-sensitive");
    let mut with_caps = args.to_vec();
    with_caps.extend(["--field-caps", caps.to_str().unwrap()]);
    let (out, _, _) = detectd(&with_caps, Some(LINES));
    assert_eq!(out, "2\n");
}

#[test]
fn bad_query_is_an_error() {
    let (_, err, code) = detectd(&["match", "--kql", "event.action:(a or"], Some(LINES));
    assert_eq!(code, Some(2));
    assert!(err.contains("invalid kql query"), "{err}");
}
