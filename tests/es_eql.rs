//! EQL rules on the Elasticsearch backend, at the HTTP level: a `wiremock` server answers the
//! `_eql/search` with the REAL responses recorded from Elasticsearch 7.10
//! (`../shared/data/es-fixtures/115`–`121`), the engine runs the rule end to end (alerts through
//! `_bulk`), and every request sent is compared with a golden file
//! (`tests/golden/es_requests/eql_*.json`, `UPDATE_GOLDEN=1` regenerates them). The rules are
//! `tests/eql/*.toml`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use chrono::{DateTime, Utc};
use common::fixtures::{fixture, fixtures, reply};
use detectd::backend::elasticsearch::ElasticsearchBackend;
use detectd::engine::{execute, ExecRule, ExecutionResult, Status, Window};
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// "now" of the recorded fixtures.
const NOW: &str = "2026-11-23T21:04:28Z";
const CLOUDTRAIL: &str = "logs-aws.cloudtrail-*";
const ALERTS: &str = "detectd-alerts-default";

fn backend(uri: &str) -> ElasticsearchBackend {
    common::fixtures::mock_backend(uri, 5, 1)
}

fn rule(file: &str) -> ExecRule {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/eql")
        .join(file);
    let rule = detectd::rules::load_file(&p).unwrap().rule;
    ExecRule::from_rule(&rule).unwrap()
}

fn now() -> DateTime<Utc> {
    NOW.parse().unwrap()
}

async fn run(exec: &ExecRule, server: &MockServer) -> ExecutionResult {
    let b = backend(&server.uri());
    execute(exec, Window::at(exec, now()), &b, "exec-1", now()).await
}

/// Golden check: `actual` against `tests/golden/es_requests/NAME.json`.
fn check(name: &str, actual: &Value) {
    common::check_request_golden(name, actual);
}

/// The requests the mock received: method, path and query, body. Bulk bodies (alerts, whose
/// `@timestamp` and execution are the run's) are summarised as their action lines' ids.
async fn sent(server: &MockServer) -> Value {
    let reqs = server.received_requests().await.unwrap();
    Value::Array(
        reqs.iter()
            .map(|r| {
                let url = match r.url.query() {
                    Some(q) => format!("{}?{q}", r.url.path()),
                    None => r.url.path().to_string(),
                };
                let body = if r.body.is_empty() {
                    Value::Null
                } else if r.url.path().ends_with("_bulk") {
                    Value::Array(bulk_docs(r).into_iter().map(|(a, _)| a).collect())
                } else {
                    serde_json::from_slice(&r.body).unwrap()
                };
                json!({"method": r.method.to_string(), "url": url, "body": body})
            })
            .collect(),
    )
}

/// (action, document) pairs of a `_bulk` request.
fn bulk_docs(r: &Request) -> Vec<(Value, Value)> {
    let text = String::from_utf8(r.body.clone()).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    lines
        .chunks(2)
        .map(|c| (c[0].clone(), c[1].clone()))
        .collect()
}

/// Every alert document written through `_bulk`.
async fn alerts_written(server: &MockServer) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path().ends_with("_bulk"))
        .flat_map(|r| bulk_docs(r).into_iter().map(|(_, d)| d))
        .collect()
}

/// Answers a `_bulk` of `create` actions with 201 for every item.
struct BulkOk;

impl Respond for BulkOk {
    fn respond(&self, r: &Request) -> ResponseTemplate {
        let items: Vec<Value> = bulk_docs(r)
            .iter()
            .map(|(a, _)| {
                let (op, meta) = a.as_object().unwrap().iter().next().unwrap();
                json!({op: {"_index": meta["_index"], "_id": meta["_id"], "status": 201}})
            })
            .collect();
        ResponseTemplate::new(200).set_body_json(json!({"errors": false, "items": items}))
    }
}

/// Field caps of the cloudtrail pattern (recorded, fixture 020), the EQL search answered with
/// `eql`, and `_bulk` creating everything.
async fn cluster(eql: &Value) -> MockServer {
    let server = MockServer::start().await;
    let caps = fixture("020").unwrap();
    Mock::given(method("GET"))
        .and(path(format!("/{CLOUDTRAIL}/_field_caps")))
        .respond_with(reply(&caps))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/{CLOUDTRAIL}/_eql/search")))
        .respond_with(reply(eql))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/{ALERTS}/_bulk")))
        .respond_with(BulkOk)
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn eql_single_event_rule_alerts_once_per_event() {
    let Some(fx) = fixtures(&["115"]) else { return };
    let server = cluster(&fx[0]).await;
    let exec = rule("single_event.toml");
    let res = run(&exec, &server).await;
    assert_eq!(res.status, Status::PartialFailure, "{res:?}");
    assert_eq!(res.alerts_created, 3);
    assert_eq!(res.hits, 3);
    assert!(
        res.capped,
        "hits.total (3) reached max_signals (3): Kibana's cap warning"
    );
    let alerts = alerts_written(&server).await;
    assert_eq!(alerts.len(), 3);
    let events = fx[0]["response"]["hits"]["events"].as_array().unwrap();
    for (a, e) in alerts.iter().zip(events) {
        let id = detectd::alerts::alert_id(
            e["_index"].as_str().unwrap(),
            e["_id"].as_str().unwrap(),
            "eql-single-event-test",
            &[],
        );
        assert_eq!(a["kibana.alert.uuid"], json!(id), "the query rule's id");
        assert_eq!(a["kibana.alert.rule.type"], "eql");
        assert_eq!(a["kibana.alert.rule.rule_type_id"], "siem.eqlRule");
        assert_eq!(a["kibana.alert.ancestors"][0]["id"], e["_id"]);
        assert_eq!(a["event"]["kind"], "signal");
        assert!(a.get("kibana.alert.building_block_type").is_none());
        assert!(a.get("kibana.alert.group.id").is_none());
    }
    check("eql_single_event", &sent(&server).await);
}

#[tokio::test]
async fn eql_sequence_rule_writes_building_blocks_and_a_shell_alert() {
    let Some(fx) = fixtures(&["116"]) else { return };
    let server = cluster(&fx[0]).await;
    let exec = rule("sequence.toml");
    let res = run(&exec, &server).await;
    assert_eq!(res.status, Status::Succeeded, "{res:?}");
    assert_eq!(res.hits, 2, "two events in the one sequence");
    assert_eq!(res.alerts_created, 3, "two building blocks and the shell");
    assert!(!res.capped);
    let alerts = alerts_written(&server).await;
    assert_eq!(alerts.len(), 3);
    let shell = &alerts[2];
    let group = shell["kibana.alert.uuid"].as_str().unwrap();
    assert_eq!(shell["kibana.alert.group.id"], group);
    assert_eq!(shell["kibana.alert.depth"], 2);
    assert!(shell.get("kibana.alert.building_block_type").is_none());
    assert_eq!(shell["user"]["name"], "mallory", "the join key is shared");
    let seq_events = fx[0]["response"]["hits"]["sequences"][0]["events"]
        .as_array()
        .unwrap();
    let ancestors = shell["kibana.alert.ancestors"].as_array().unwrap();
    assert_eq!(ancestors.len(), 4, "each event and each building block");
    for (i, (bb, e)) in alerts[..2].iter().zip(seq_events).enumerate() {
        assert_eq!(bb["kibana.alert.building_block_type"], "default");
        assert_eq!(bb["kibana.alert.group.id"], group);
        assert_eq!(bb["kibana.alert.group.index"], i);
        assert_eq!(bb["kibana.alert.ancestors"][0]["id"], e["_id"]);
        assert_eq!(ancestors[2 * i]["id"], e["_id"]);
        assert_eq!(ancestors[2 * i + 1]["id"], bb["kibana.alert.uuid"]);
    }
    assert_eq!(
        shell["kibana.alert.rule.tiebreaker_field"], "event.sequence",
        "the rule's eql parameters are on the alert"
    );
    check("eql_sequence", &sent(&server).await);

    // The same sequence found again (an overlapping window): the same ids, all duplicates.
    let again = cluster(&fx[0]).await;
    let b = backend(&again.uri());
    let first = alerts
        .iter()
        .map(|a| a["kibana.alert.uuid"].clone())
        .collect::<Vec<_>>();
    let res2 = execute(&exec, Window::at(&exec, now()), &b, "exec-2", now()).await;
    assert_eq!(res2.alerts_created, 3);
    let second = alerts_written(&again)
        .await
        .iter()
        .map(|a| a["kibana.alert.uuid"].clone())
        .collect::<Vec<_>>();
    assert_eq!(first, second, "deterministic ids");
}

#[tokio::test]
async fn eql_sequence_without_match_succeeds_without_alerts() {
    let Some(fx) = fixtures(&["117"]) else { return };
    let server = cluster(&fx[0]).await;
    let res = run(&rule("sequence.toml"), &server).await;
    assert_eq!(res.status, Status::Succeeded, "{res:?}");
    assert_eq!(res.alerts_created, 0);
    assert!(alerts_written(&server).await.is_empty());
}

#[tokio::test]
async fn eql_refused_by_the_cluster_retires_the_rule() {
    // ambiguous mapping, syntax error, unknown field: HTTP 400, never worth sending again
    let Some(fx) = fixtures(&["118", "119", "120"]) else {
        return;
    };
    for (f, reason) in fx.iter().zip([
        "verification_exception",
        "parsing_exception",
        "Unknown column [no.such.field]",
    ]) {
        let server = cluster(f).await;
        let res = run(&rule("single_event.toml"), &server).await;
        assert_eq!(res.status, Status::Failed);
        assert!(res.not_runnable, "a 400 retires the rule: {res:?}");
        let msg = res.message.unwrap();
        assert!(
            msg.contains("eql search logs-aws.cloudtrail-*") && msg.contains(reason),
            "{msg}"
        );
        assert!(alerts_written(&server).await.is_empty());
    }
}

#[tokio::test]
async fn eql_on_patterns_matching_no_index_is_kibanas_warning() {
    // field caps lists no index (fixture 143): no EQL search is sent
    let Some(fx) = fixtures(&["143", "121"]) else {
        return;
    };
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/{CLOUDTRAIL}/_field_caps")))
        .respond_with(reply(&fx[0]))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/{CLOUDTRAIL}/_eql/search")))
        .respond_with(reply(&fx[1]))
        .expect(0)
        .mount(&server)
        .await;
    let res = run(&rule("single_event.toml"), &server).await;
    assert_eq!(res.status, Status::Succeeded, "{res:?}");
    assert_eq!(res.warnings.len(), 1, "{:?}", res.warnings);
    assert!(res.warnings[0].contains("no index matching: [\"logs-aws.cloudtrail-*\"]"));

    // field caps still sees an index, but the EQL search answers 404 index_not_found (the
    // index went away meanwhile; fixture 121): the same warning, not a failure
    let server = cluster(&fx[1]).await;
    let res = run(&rule("single_event.toml"), &server).await;
    assert_eq!(res.status, Status::Succeeded, "{res:?}");
    assert!(!res.not_runnable);
    assert_eq!(res.warnings.len(), 1, "{:?}", res.warnings);
    assert!(res.warnings[0].contains("no index matching"));
}

#[tokio::test]
async fn eql_on_the_embedded_backend_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let paths = detectd::backend::embedded::EmbeddedPaths {
        alerts: dir.path().join("alerts.ndjson"),
        state: dir.path().join("state.json"),
        executions: dir.path().join("executions.ndjson"),
    };
    let (store, _) = detectd::backend::embedded::Store::new(vec![]);
    let b = detectd::backend::embedded::EmbeddedBackend::new(
        store,
        detectd::fields::FieldCatalog::builtin(),
        &paths,
    )
    .unwrap();
    let exec = rule("single_event.toml");
    let res = execute(&exec, Window::at(&exec, now()), &b, "exec", now()).await;
    assert_eq!(res.status, Status::Failed);
    assert!(res
        .message
        .unwrap()
        .contains("eql rules need the Elasticsearch backend"),);
    // and the rule is never scheduled there
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/eql/single_event.toml");
    let r = detectd::rules::load_file(&p).unwrap().rule;
    assert!(r
        .support()
        .on(detectd::config::BackendKind::Embedded)
        .is_err());
    assert!(r
        .support()
        .on(detectd::config::BackendKind::Elasticsearch)
        .is_ok());
}

#[tokio::test]
async fn eql_partial_answer_writes_its_alerts_and_fails_the_execution() {
    // An 8.18+ cluster allowing partial results answers with `shard_failures` (shape of
    // Elasticsearch's `ShardFailure`); the events found are alerted, the window searched again.
    let Some(mut fx) = fixture("115") else { return };
    fx["response"]["is_partial"] = json!(true);
    fx["response"]["shard_failures"] = json!([{"shard": 0, "index": "logs-aws.cloudtrail-x",
        "reason": {"type": "node_disconnected_exception", "reason": "node left"}}]);
    let server = cluster(&fx).await;
    let res = run(&rule("single_event.toml"), &server).await;
    assert_eq!(res.status, Status::Failed, "{res:?}");
    assert!(!res.not_runnable);
    assert_eq!(res.alerts_created, 3);
    assert!(
        res.warnings
            .iter()
            .any(|w| w.contains("1 shard(s) failed") && w.contains("node left")),
        "{:?}",
        res.warnings
    );
}

#[tokio::test]
async fn eql_sequence_steps_that_are_missing_events_are_not_alerted() {
    // 8.x+ `!` steps come back as `{"missing": true}` events without a document (shape from
    // Elasticsearch's EQL response; not in the 7.10 recordings)
    let Some(mut fx) = fixture("116") else { return };
    let events = fx["response"]["hits"]["sequences"][0]["events"]
        .as_array_mut()
        .unwrap();
    events.insert(1, json!({"_index": "", "_id": "", "missing": true}));
    events.push(json!({"missing": true}));
    let server = cluster(&fx).await;
    let res = run(&rule("sequence.toml"), &server).await;
    assert_eq!(res.status, Status::Succeeded, "{res:?}");
    assert_eq!(res.hits, 2);
    assert_eq!(res.alerts_created, 3, "two building blocks and the shell");
}

/// `detectd run` end to end on the Elasticsearch backend (the fake cluster of
/// `tests/common/fake_es.rs` for everything but `_eql/search`, which answers with the recorded
/// 7.10 answers): an EQL sequence rule runs at every interval and writes the same three
/// alerts each time (deterministic ids); an EQL rule with a syntax error runs once and is
/// reported once as not runnable on this cluster.
#[tokio::test(flavor = "multi_thread")]
async fn detectd_run_schedules_eql_rules_and_retires_a_refused_one() {
    let Some(fx) = fixtures(&["116", "119"]) else {
        return;
    };
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/{CLOUDTRAIL}/_eql/search")))
        .respond_with(reply(&fx[0]))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/bad-*/_eql/search"))
        .respond_with(reply(&fx[1]))
        .with_priority(1)
        .mount(&server)
        .await;
    let (fake, counts) = common::fake_es::FakeEs::new(common::fake_es::FakeOptions::default());
    Mock::given(wiremock::matchers::any())
        .respond_with(fake)
        .mount(&server)
        .await;
    let tmp = tempfile::tempdir().unwrap();
    let rules = tmp.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::copy(root.join("tests/eql/sequence.toml"), rules.join("seq.toml")).unwrap();
    let bad = std::fs::read_to_string(root.join("tests/eql/single_event.toml"))
        .unwrap()
        .replace("eql-single-event-test", "eql-bad")
        .replace(CLOUDTRAIL, "bad-*")
        .replace("any where event.action ==", "any where event.action = =");
    std::fs::write(rules.join("bad.toml"), bad).unwrap();
    std::fs::write(tmp.path().join("config.toml"), "rules_dir = \"rules\"\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_detectd"))
        .current_dir(tmp.path())
        .args(["--config", "config.toml", "run"])
        .args([
            "--start",
            "2026-10-01T00:00:00Z",
            "--end",
            "2026-10-01T01:00:00Z",
        ])
        .env("DETECTD__BACKEND", "elasticsearch")
        .env("DETECTD__ELASTICSEARCH__URLS", server.uri())
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let reqs = server.received_requests().await.unwrap();
    let eql = |p: &str| {
        reqs.iter()
            .filter(|r| r.url.path() == format!("/{p}/_eql/search"))
            .count()
    };
    assert_eq!(eql(CLOUDTRAIL), 12, "every 5m for an hour\n{stderr}");
    assert_eq!(eql("bad-*"), 1, "refused once, never again\n{stderr}");
    let reported = stderr
        .lines()
        .filter(|l| {
            l.contains("ERROR")
                && l.contains("not runnable on this cluster")
                && l.contains("eql-bad")
        })
        .count();
    assert_eq!(reported, 1, "{stderr}");
    assert!(stderr.contains("parsing_exception"), "{stderr}");
    assert_eq!(
        counts
            .alerts_created
            .load(std::sync::atomic::Ordering::Relaxed),
        36
    );
    let ids: std::collections::BTreeSet<String> = reqs
        .iter()
        .filter(|r| r.url.path() == format!("/{ALERTS}/_bulk"))
        .flat_map(|r| {
            bulk_docs(r)
                .into_iter()
                .map(|(a, _)| a["create"]["_id"].to_string())
        })
        .collect();
    assert_eq!(ids.len(), 3, "the same three alerts each time: {ids:?}");
}

/// `detectd hunt` evaluates rules locally: with the Elasticsearch backend configured (so the
/// EQL rule passes the backend filter) it still never runs the EQL rule — whose execution
/// query is match-all — and says why; the query rule beside it hunts as usual.
#[test]
fn hunt_lists_eql_rules_as_not_run() {
    let tmp = tempfile::tempdir().unwrap();
    let rules = tmp.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::copy(root.join("tests/eql/sequence.toml"), rules.join("seq.toml")).unwrap();
    std::fs::copy(
        root.join("rules/defense_evasion_cloudtrail_logging_suspended.toml"),
        rules.join("stop.toml"),
    )
    .unwrap();
    std::fs::write(tmp.path().join("config.toml"), "rules_dir = \"rules\"\n").unwrap();
    let record = json!({"eventVersion": "1.08", "eventTime": "2026-10-01T00:10:00Z",
        "eventSource": "cloudtrail.amazonaws.com", "eventName": "StopLogging",
        "awsRegion": "us-east-1", "sourceIPAddress": "192.0.2.1",
        "userIdentity": {"type": "IAMUser", "userName": "mallory", "accountId": "123456789012"},
        "eventID": "e-1", "eventType": "AwsApiCall", "recipientAccountId": "123456789012"});
    let data = tmp.path().join("trail.json");
    std::fs::write(&data, json!({"Records": [record]}).to_string()).unwrap();
    let out_file = tmp.path().join("hunt.ndjson");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_detectd"))
        .current_dir(tmp.path())
        .args(["--config", "config.toml", "hunt", data.to_str().unwrap()])
        .args([
            "--start",
            "2026-10-01T00:00:00Z",
            "--end",
            "2026-10-01T01:00:00Z",
        ])
        .args(["--out", out_file.to_str().unwrap()])
        .env("DETECTD__BACKEND", "elasticsearch")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.lines().any(|l| l.contains("eql-sequence-test")
            && l.contains("eql rules need the Elasticsearch backend")),
        "{stderr}"
    );
    let alerts = std::fs::read_to_string(&out_file).unwrap_or_default();
    assert!(!alerts.contains("eql-sequence-test"), "{alerts}");
    assert_eq!(
        alerts.lines().count(),
        1,
        "the query rule alerts: {alerts}\n{stderr}"
    );
}
