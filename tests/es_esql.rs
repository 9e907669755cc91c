//! ES|QL rules against a mock cluster (`wiremock`), through the engine: the `_query` request
//! (golden: `tests/golden/es_requests/esql_*.json`, `UPDATE_GOLDEN=1` regenerates them), the
//! source documents of a `METADATA _id` query, one alert per row of an aggregating query with
//! ids that a re-run finds again, Kibana's limit raising, and the clusters that cannot run ES|QL
//! (OpenSearch, Elasticsearch before 8.11), which get no `_query` and retire the rule.
//!
//! No recorded ES|QL exchange exists (../shared/data/es-fixtures are 7.10): the answers are
//! written in the shape Elasticsearch 8.19 gives (`took`, `is_partial`, `documents_found`,
//! `values_loaded`, `columns` with `name`/`type`, `values` row by row, null for a missing field,
//! arrays for multi-valued fields).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use detectd::backend::elasticsearch::ElasticsearchBackend;
use detectd::config::BackendKind;
use detectd::engine::{execute, ExecRule, ExecutionResult, Status, Window};
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const FROM: &str = "2026-11-23T20:04:28Z";
const TO: &str = "2026-11-23T20:10:28Z";
const INDEX: &str = ".ds-logs-aws.cloudtrail-default-2026.11.23-000001";

const METADATA_QUERY: &str = "from logs-aws.cloudtrail-* metadata _id, _version, _index\n| where event.provider == \"s3.amazonaws.com\" and event.action == \"CopyObject\"\n| keep @timestamp, user.name, event.action, Esql.target_bucket, _id, _version, _index\n";
const STATS_QUERY: &str = "from logs-aws.cloudtrail-*\n| where event.action == \"GetCallerIdentity\"\n| stats Esql.event_count = count(*), Esql.source_ip_values = values(source.ip) by user.name, cloud.account.id\n| where Esql.event_count >= 2\n";

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn window() -> Window {
    Window {
        from: t(FROM),
        to: t(TO),
    }
}

fn rule_toml(rule_id: &str, query: &str, max_signals: u32) -> String {
    format!(
        "[metadata]\ncreation_date = \"2026/11/01\"\nmaturity = \"production\"\nupdated_date = \"2026/11/01\"\n\n[rule]\nauthor = [\"t\"]\ndescription = \"d\"\nlanguage = \"esql\"\nlicense = \"Elastic License v2\"\nname = \"ES|QL {rule_id}\"\nrisk_score = 47\nrule_id = \"{rule_id}\"\nseverity = \"medium\"\ntimestamp_override = \"event.ingested\"\ntype = \"esql\"\nmax_signals = {max_signals}\nquery = '''\n{query}'''\n"
    )
}

fn rule(rule_id: &str, query: &str, max_signals: u32) -> (detectd::rules::Rule, ExecRule) {
    let loaded = detectd::rules::load_str(
        &rule_toml(rule_id, query, max_signals),
        std::path::Path::new("esql.toml"),
    )
    .unwrap();
    let exec = ExecRule::from_rule(&loaded.rule).unwrap();
    (loaded.rule, exec)
}

fn backend(uri: &str) -> ElasticsearchBackend {
    common::fixtures::mock_backend(uri, 5, 1)
}

/// `GET /` of a cluster: Elasticsearch `number`, or OpenSearch's with its `distribution`.
async fn mount_root(server: &MockServer, number: &str, opensearch: bool) {
    let mut version =
        json!({"number": number, "build_flavor": "default", "lucene_version": "9.12.2"});
    if opensearch {
        version = json!({"distribution": "opensearch", "number": number, "minimum_wire_compatibility_version": "7.10.0"});
    }
    Mock::given(method("GET"))
        .and(path("/"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "name": "node-1", "cluster_name": "c", "cluster_uuid": "u",
            "version": version, "tagline": "You Know, for Search"
        })))
        .mount(server)
        .await;
}

/// A `_query` answer in Elasticsearch 8.19's shape.
fn esql_answer(columns: &[(&str, &str)], values: Vec<Value>) -> Value {
    json!({
        "took": 7,
        "is_partial": false,
        "documents_found": values.len(),
        "values_loaded": values.len() * columns.len(),
        "columns": columns.iter().map(|(n, ty)| json!({"name": n, "type": ty})).collect::<Vec<_>>(),
        "values": values
    })
}

/// `_bulk` of alert creates: 201 for a new id, 409 for one already written (as a real alias
/// answers `create`), every document kept.
#[derive(Clone, Default)]
struct Alerts {
    docs: Arc<Mutex<Vec<(String, Value)>>>,
}

impl Respond for Alerts {
    fn respond(&self, r: &Request) -> ResponseTemplate {
        let text = String::from_utf8(r.body.clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let mut docs = self.docs.lock().unwrap();
        let mut items = Vec::new();
        for pair in lines.chunks(2) {
            let action: Value = serde_json::from_str(pair[0]).unwrap();
            let id = action["create"]["_id"].as_str().unwrap().to_string();
            if docs.iter().any(|(i, _)| *i == id) {
                items.push(json!({"create": {"_index": ".internal.alerts-000001", "_id": id, "status": 409,
                    "error": {"type": "version_conflict_engine_exception", "reason": format!("[{id}]: version conflict, document already exists (current version [1])")}}}));
            } else {
                docs.push((id.clone(), serde_json::from_str(pair[1]).unwrap()));
                items.push(json!({"create": {"_index": ".internal.alerts-000001", "_id": id, "status": 201}}));
            }
        }
        ResponseTemplate::new(200).set_body_json(json!({"took": 3, "errors": true, "items": items}))
    }
}

impl Alerts {
    async fn mount(&self, server: &MockServer) {
        Mock::given(method("POST"))
            .and(path("/detectd-alerts-default/_bulk"))
            .respond_with(self.clone())
            .mount(server)
            .await;
    }
    fn ids(&self) -> HashSet<String> {
        self.docs
            .lock()
            .unwrap()
            .iter()
            .map(|(i, _)| i.clone())
            .collect()
    }
    fn doc(&self, id: &str) -> Value {
        self.docs
            .lock()
            .unwrap()
            .iter()
            .find(|(i, _)| i == id)
            .unwrap()
            .1
            .clone()
    }
}

/// Every request the mock received but the alert writes: method, path and query, body.
async fn sent(server: &MockServer) -> Value {
    let reqs = server.received_requests().await.unwrap();
    Value::Array(
        reqs.iter()
            .filter(|r| !r.url.path().ends_with("/_bulk"))
            .map(|r| {
                let url = match r.url.query() {
                    Some(q) => format!("{}?{q}", r.url.path()),
                    None => r.url.path().to_string(),
                };
                let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
                json!({"method": r.method.to_string(), "url": url, "body": body})
            })
            .collect(),
    )
}

/// Golden check: `actual` against `tests/golden/es_requests/NAME.json`.
fn check(name: &str, actual: &Value) {
    common::check_request_golden(name, actual);
}

async fn run(exec: &ExecRule, b: &ElasticsearchBackend) -> ExecutionResult {
    execute(exec, window(), b, "exec-1", t(TO)).await
}

#[tokio::test]
async fn metadata_id_query_alerts_on_its_source_documents() {
    let server = MockServer::start().await;
    mount_root(&server, "8.19.21", false).await;
    let columns = [
        ("@timestamp", "date"),
        ("user.name", "keyword"),
        ("event.action", "keyword"),
        ("Esql.target_bucket", "keyword"),
        ("_id", "keyword"),
        ("_version", "long"),
        ("_index", "keyword"),
    ];
    Mock::given(method("POST"))
        .and(path("/_query"))
        .respond_with(ResponseTemplate::new(200).set_body_json(esql_answer(
            &columns,
            vec![
                json!([
                    "2026-11-23T20:05:00.000Z",
                    "alice",
                    "CopyObject",
                    "exfil-bucket",
                    "ev-1",
                    1,
                    INDEX
                ]),
                json!([
                    "2026-11-23T20:06:00.000Z",
                    null,
                    "CopyObject",
                    "exfil-bucket",
                    "ev-2",
                    1,
                    INDEX
                ]),
            ],
        )))
        .expect(2)
        .mount(&server)
        .await;
    let source = |id: &str, user: Value| {
        json!({"_index": INDEX, "_id": id, "_score": 0.0, "_source": {
            "@timestamp": "2026-11-23T20:05:00.000Z",
            "event": {"action": "CopyObject", "provider": "s3.amazonaws.com", "kind": "event", "ingested": "2026-11-23T20:05:30.000Z"},
            "user": user,
            "cloud": {"account": {"id": "123456789012"}},
            "data_stream": {"dataset": "aws.cloudtrail"}
        }})
    };
    Mock::given(method("POST"))
        .and(path("/logs-aws.cloudtrail-*/_search"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "took": 2, "timed_out": false,
            "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
            "hits": {"total": {"value": 2, "relation": "eq"}, "max_score": 0.0, "hits": [
                source("ev-1", json!({"name": "alice-in-source", "id": "AID1"})),
                source("ev-2", json!({"name": "bob"})),
            ]}
        })))
        .expect(2)
        .mount(&server)
        .await;
    let alerts = Alerts::default();
    alerts.mount(&server).await;
    let b = backend(&server.uri());
    let (_, exec) = rule("esql-metadata", METADATA_QUERY, 100);

    let res = run(&exec, &b).await;
    assert_eq!(res.status, Status::Succeeded, "{res:?}");
    assert_eq!((res.hits, res.alerts_created), (2, 2));
    check("esql_metadata_id", &sent(&server).await);

    // The alert id is the query rule's: source index, source _id, rule.
    let id = detectd::alerts::alert_id(INDEX, "ev-1", "esql-metadata", &[]);
    assert!(alerts.ids().contains(&id));
    let a = alerts.doc(&id);
    assert_eq!(
        a["user"],
        json!({"id": "AID1", "name": "alice"}),
        "the row's column wins"
    );
    assert_eq!(a["Esql"]["target_bucket"], "exfil-bucket");
    assert_eq!(a["event"]["kind"], "signal");
    assert_eq!(
        a["event"]["provider"], "s3.amazonaws.com",
        "the source is merged in"
    );
    assert!(a.get("_id").is_none() && a.get("_index").is_none() && a.get("_version").is_none());
    assert_eq!(a["kibana.alert.ancestors"][0]["id"], "ev-1");
    assert_eq!(a["kibana.alert.ancestors"][0]["index"], INDEX);
    assert_eq!(a["kibana.alert.rule.type"], "esql");
    assert_eq!(a["kibana.alert.rule.rule_type_id"], "siem.esqlRule");
    assert_eq!(a["kibana.alert.original_time"], "2026-11-23T20:05:00.000Z");
    // A null cell leaves the source's value.
    let b2 = alerts.doc(&detectd::alerts::alert_id(
        INDEX,
        "ev-2",
        "esql-metadata",
        &[],
    ));
    assert_eq!(b2["user"]["name"], "bob");

    // The next overlapping window finds the same events: duplicates, no new alert.
    let again = run(&exec, &b).await;
    assert_eq!(
        (again.alerts_created, again.duplicates),
        (0, 2),
        "{again:?}"
    );
}

#[tokio::test]
async fn aggregating_query_alerts_once_per_row_with_ids_a_rerun_finds_again() {
    let server = MockServer::start().await;
    mount_root(&server, "8.11.0", false).await;
    let columns = [
        ("Esql.event_count", "long"),
        ("Esql.source_ip_values", "ip"),
        ("user.name", "keyword"),
        ("cloud.account.id", "keyword"),
    ];
    Mock::given(method("POST"))
        .and(path("/_query"))
        .respond_with(ResponseTemplate::new(200).set_body_json(esql_answer(
            &columns,
            vec![
                json!([5, ["10.0.0.1", "10.0.0.2"], "alice", "123456789012"]),
                json!([2, "10.0.0.9", "bob", "123456789012"]),
            ],
        )))
        .mount(&server)
        .await;
    let alerts = Alerts::default();
    alerts.mount(&server).await;
    let b = backend(&server.uri());
    let (_, exec) = rule("esql-stats", STATS_QUERY, 100);

    let res = run(&exec, &b).await;
    assert_eq!(res.status, Status::Succeeded, "{res:?}");
    assert_eq!((res.hits, res.alerts_created), (2, 2));
    check("esql_aggregating", &sent(&server).await);
    let reqs = server.received_requests().await.unwrap();
    assert!(
        !reqs.iter().any(|r| r.url.path().ends_with("/_search")),
        "an aggregating query reads no source document"
    );
    let docs = alerts.docs.lock().unwrap().clone();
    let alice = docs
        .iter()
        .find(|(_, d)| d["user"]["name"] == "alice")
        .unwrap();
    assert_eq!(alice.1["Esql"]["event_count"], 5);
    assert_eq!(
        alice.1["Esql"]["source_ip_values"],
        json!(["10.0.0.1", "10.0.0.2"])
    );
    assert_eq!(alice.1["cloud"]["account"]["id"], "123456789012");
    assert_eq!(alice.1["kibana.alert.ancestors"][0]["id"], "");
    assert!(
        alice.1.get("kibana.alert.original_time").is_none(),
        "a row has no event time"
    );

    // The same window again (a retry): the same ids, duplicates.
    let again = run(&exec, &b).await;
    assert_eq!(
        (again.alerts_created, again.duplicates),
        (0, 2),
        "{again:?}"
    );
}

/// Answers `_query` with as many rows as its `| limit N` asks, up to `total`, each row a
/// distinct aggregate, and counts the calls.
struct Rows {
    total: usize,
}

impl Respond for Rows {
    fn respond(&self, r: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        let q = body["query"].as_str().unwrap();
        let limit: usize = q.rsplit("| limit ").next().unwrap().trim().parse().unwrap();
        let values: Vec<Value> = (0..limit.min(self.total))
            .map(|i| json!([i + 10, format!("user{i:02}")]))
            .collect();
        ResponseTemplate::new(200).set_body_json(esql_answer(
            &[("Esql.event_count", "long"), ("user.name", "keyword")],
            values,
        ))
    }
}

#[tokio::test]
async fn a_full_answer_of_duplicates_raises_the_limit_by_max_signals_up_to_three_times() {
    let server = MockServer::start().await;
    mount_root(&server, "9.5.3", false).await;
    Mock::given(method("POST"))
        .and(path("/_query"))
        .respond_with(Rows { total: 100 })
        .mount(&server)
        .await;
    let alerts = Alerts::default();
    alerts.mount(&server).await;
    let b = backend(&server.uri());
    let (_, exec) = rule("esql-paging", STATS_QUERY, 4);

    // First window: limit 4, a full answer, 4 alerts: the cap, a partial success as Kibana's.
    let first = run(&exec, &b).await;
    assert_eq!(first.alerts_created, 4);
    assert!(first.capped, "{first:?}");
    // Again: the 4 rows are duplicates, so the limit goes to 8 and the next 4 rows alert.
    let second = run(&exec, &b).await;
    assert_eq!(
        (second.alerts_created, second.duplicates),
        (4, 4),
        "{second:?}"
    );
    // Again: 8 duplicates, limit 12 (3 × max_signals, the most Kibana asks for): 4 new.
    let third = run(&exec, &b).await;
    assert_eq!(
        (third.alerts_created, third.duplicates),
        (4, 8),
        "{third:?}"
    );
    // Again: 12 duplicates and no further request; the execution says so.
    let fourth = run(&exec, &b).await;
    assert_eq!(
        (fourth.alerts_created, fourth.duplicates),
        (0, 12),
        "{fourth:?}"
    );
    assert!(
        fourth
            .warnings
            .iter()
            .any(|w| w.contains("more than 12 rows")),
        "{fourth:?}"
    );
    let limits: Vec<String> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/_query")
        .map(|r| {
            let b: Value = serde_json::from_slice(&r.body).unwrap();
            b["query"]
                .as_str()
                .unwrap()
                .rsplit('|')
                .next()
                .unwrap()
                .trim()
                .to_string()
        })
        .collect();
    assert_eq!(
        limits,
        [
            "limit 4", "limit 4", "limit 8", "limit 4", "limit 8", "limit 12", "limit 4",
            "limit 8", "limit 12"
        ]
    );
}

async fn retired_without_a_query(number: &str, opensearch: bool, expected: &str) {
    let server = MockServer::start().await;
    mount_root(&server, number, opensearch).await;
    let b = backend(&server.uri());
    let (rule, exec) = rule("esql-old", STATS_QUERY, 100);
    let res = run(&exec, &b).await;
    assert_eq!(res.status, Status::Failed);
    assert!(res.not_runnable, "retired, never run again: {res:?}");
    assert!(
        res.message.as_deref().unwrap().contains(expected),
        "{res:?}"
    );
    let reqs = server.received_requests().await.unwrap();
    assert!(
        reqs.iter().all(|r| r.url.path() == "/"),
        "no _query sent: {reqs:?}"
    );
    // validate --cluster and the service check the same before the start
    let info = b.cluster_info().await.unwrap();
    assert_eq!(info.refuses_rule(&rule).as_deref(), Some(expected));
}

#[tokio::test]
async fn opensearch_retires_esql_rules_without_sending_the_query() {
    retired_without_a_query(
        "2.19.6",
        true,
        "ES|QL needs Elasticsearch 8.11 or newer; this cluster is OpenSearch 2.19.6",
    )
    .await;
}

#[tokio::test]
async fn elasticsearch_before_8_11_retires_esql_rules_without_sending_the_query() {
    retired_without_a_query(
        "8.10.4",
        false,
        "ES|QL needs Elasticsearch 8.11 or newer; this cluster is Elasticsearch 8.10.4",
    )
    .await;
}

#[tokio::test]
async fn an_unknown_index_fails_the_execution_but_a_syntax_error_retires_the_rule() {
    let server = MockServer::start().await;
    mount_root(&server, "8.19.21", false).await;
    // verification_exception: depends on the data (the index may be created later)
    Mock::given(method("POST"))
        .and(path("/_query"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": {"root_cause": [{"type": "verification_exception", "reason": "Found 1 problem\nline 1:6: Unknown index [logs-aws.cloudtrail-*]"}],
                "type": "verification_exception", "reason": "Found 1 problem\nline 1:6: Unknown index [logs-aws.cloudtrail-*]"},
            "status": 400
        })))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/_query"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": {"root_cause": [{"type": "parsing_exception", "reason": "line 2:3: mismatched input 'wher' expecting {'dissect', 'eval', ...}"}],
                "type": "parsing_exception", "reason": "line 2:3: mismatched input 'wher' expecting {'dissect', 'eval', ...}"},
            "status": 400
        })))
        .mount(&server)
        .await;
    let b = backend(&server.uri());
    let (_, exec) = rule("esql-bad", STATS_QUERY, 100);
    let unknown = run(&exec, &b).await;
    assert_eq!(unknown.status, Status::Failed);
    assert!(!unknown.not_runnable, "{unknown:?}");
    assert!(unknown.message.unwrap().contains("Unknown index"));
    let syntax = run(&exec, &b).await;
    assert_eq!(syntax.status, Status::Failed);
    assert!(syntax.not_runnable, "{syntax:?}");
    assert!(syntax.message.unwrap().contains("parsing_exception"));
}

#[tokio::test]
async fn a_cluster_without_the_query_endpoint_retires_the_rule() {
    // An Elasticsearch without the x-pack-esql module (the Maven Central node of
    // scripts/search-node.sh without DETECTD_ES_ESQL=1) answers so:
    let server = MockServer::start().await;
    mount_root(&server, "9.5.3", false).await;
    Mock::given(method("POST"))
        .and(path("/_query"))
        .respond_with(ResponseTemplate::new(405).set_body_json(json!({
            "error": "Incorrect HTTP method for uri [/_query] and method [POST], allowed: [GET, PUT, DELETE, HEAD]",
            "status": 405
        })))
        .expect(1)
        .mount(&server)
        .await;
    let b = backend(&server.uri());
    let (_, exec) = rule("esql-no-endpoint", STATS_QUERY, 100);
    let res = run(&exec, &b).await;
    assert_eq!(res.status, Status::Failed);
    assert!(res.not_runnable, "{res:?}");
    assert!(res
        .message
        .unwrap()
        .contains("this cluster has no ES|QL endpoint"),);
}

#[test]
fn esql_rules_run_on_elasticsearch_only() {
    let (rule, _) = rule("esql-support", STATS_QUERY, 100);
    assert!(rule.support().on(BackendKind::Elasticsearch).is_ok());
    assert_eq!(
        rule.support().on(BackendKind::Embedded),
        Err("ES|QL rules need the Elasticsearch backend (`_query`, Elasticsearch 8.11 or newer)")
    );
}

#[tokio::test]
async fn the_embedded_backend_answers_an_esql_rule_with_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let paths = detectd::backend::embedded::EmbeddedPaths {
        alerts: dir.path().join("alerts.ndjson"),
        state: dir.path().join("state.json"),
        executions: dir.path().join("executions.ndjson"),
    };
    let (store, _) = detectd::backend::embedded::Store::new(Vec::new());
    let b = detectd::backend::embedded::EmbeddedBackend::new(
        store,
        detectd::fields::FieldCatalog::builtin(),
        &paths,
    )
    .unwrap();
    let (_, exec) = rule("esql-embedded", STATS_QUERY, 100);
    let res = execute(&exec, window(), &b, "exec-1", t(TO)).await;
    assert_eq!(res.status, Status::Failed);
    assert!(res
        .message
        .unwrap()
        .contains("ES|QL rules need the Elasticsearch backend"),);
}
