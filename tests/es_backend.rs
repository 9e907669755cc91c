//! HTTP-level tests of the Elasticsearch backend: a `wiremock` server answers with the REAL
//! responses recorded from Elasticsearch 7.10 (`../shared/data/es-fixtures/`), and every request
//! the backend sent is compared with a golden file (`tests/golden/es_requests/NAME.json`,
//! `UPDATE_GOLDEN=1` regenerates them).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::fixtures::{fixture, fixtures, reply};
use detectd::backend::elasticsearch::ElasticsearchBackend;
use detectd::backend::{
    AlertDoc, Backend, Error, ExecStats, QuerySpec, ThresholdSignal, ThresholdSpec, TimeField,
};
use detectd::config::{AlertsConfig, ElasticsearchConfig};
use detectd::kql::{Ast, Field, LiteralKind, Part, Value as KqlValue};
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const FROM: &str = "2026-11-23T20:04:28Z";
const TO: &str = "2026-11-23T21:04:28Z";
const HISTORY: &str = "2026-11-16T21:04:28Z";
const BOTH: &str = "logs-aws.cloudtrail-*,filebeat-*";

fn body_json(r: &Request) -> Value {
    serde_json::from_slice(&r.body).unwrap_or(Value::Null)
}

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn backend(uri: &str) -> ElasticsearchBackend {
    common::fixtures::mock_backend(uri, 5, 3)
}

fn is(field: &str, value: &str) -> Ast {
    Ast::Is {
        field: Some(Field {
            name: field.to_string(),
            wildcard: false,
        }),
        value: KqlValue {
            parts: vec![Part::Text(value.to_string())],
            quoted: true,
            kind: LiteralKind::String,
        },
    }
}

/// Golden check: `actual` against `tests/golden/es_requests/NAME.json`.
fn check(name: &str, actual: &Value) {
    common::check_request_golden(name, actual);
}

/// Every request the mock received: method, path and query, body (NDJSON as a list of lines).
async fn sent(server: &MockServer) -> Value {
    let reqs = server.received_requests().await.unwrap();
    Value::Array(
        reqs.iter()
            .map(|r| {
                let ndjson = r
                    .headers
                    .get("content-type")
                    .is_some_and(|v| v.to_str().unwrap().contains("ndjson"));
                let body = if r.body.is_empty() {
                    Value::Null
                } else if ndjson {
                    let text = String::from_utf8(r.body.clone()).unwrap();
                    assert!(text.ends_with('\n'), "bulk body must end with a newline");
                    Value::Array(
                        text.lines()
                            .map(|l| serde_json::from_str(l).unwrap())
                            .collect(),
                    )
                } else {
                    body_json(r)
                };
                let url = match r.url.query() {
                    Some(q) => format!("{}?{q}", r.url.path()),
                    None => r.url.path().to_string(),
                };
                json!({"method": r.method.to_string(), "url": url, "body": body})
            })
            .collect(),
    )
}

async fn mount_field_caps(server: &MockServer, indices: &str) {
    let Some(fx) = fixture("020") else { return };
    // `GET /` (7.10): the backend asks which engine it talks to before its first point in time
    if let Some(root) = fixture("001") {
        Mock::given(method("GET"))
            .and(path("/"))
            .respond_with(reply(&root))
            .mount(server)
            .await;
    }
    Mock::given(method("GET"))
        .and(path(format!("/{indices}/_field_caps")))
        .respond_with(reply(&fx))
        .mount(server)
        .await;
}

fn search_after_is(r: &Request, expected: Option<&Value>) -> bool {
    body_json(r).get("search_after") == expected
}

#[tokio::test]
async fn search_pages_through_pit_to_the_empty_page_and_closes_it() {
    let Some(fx) = fixtures(&["026", "027", "028", "025", "031", "023"]) else {
        return;
    };
    let server = MockServer::start().await;
    mount_field_caps(&server, BOTH).await;
    // The first page is a plain search; it comes back full (3 of 3), so a PIT is opened and
    // the pages run in it from the start.
    Mock::given(method("POST"))
        .and(path(format!("/{BOTH}/_search")))
        .respond_with(reply(&fx[5]))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/{BOTH}/_pit")))
        .respond_with(reply(&fx[0]))
        .expect(1)
        .mount(&server)
        .await;
    let after1 = fx[1]["response"]["hits"]["hits"][2]["sort"].clone();
    let after2 = fx[2]["response"]["hits"]["hits"][2]["sort"].clone();
    Mock::given(method("POST"))
        .and(path("/_search"))
        .and(|r: &Request| search_after_is(r, None))
        .respond_with(reply(&fx[1]))
        .mount(&server)
        .await;
    let a1 = after1.clone();
    Mock::given(method("POST"))
        .and(path("/_search"))
        .and(move |r: &Request| search_after_is(r, Some(&a1)))
        .respond_with(reply(&fx[2]))
        .mount(&server)
        .await;
    let a2 = after2.clone();
    Mock::given(method("POST"))
        .and(path("/_search"))
        .and(move |r: &Request| search_after_is(r, Some(&a2)))
        .respond_with(reply(&fx[3]))
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/_pit"))
        .respond_with(reply(&fx[4]))
        .expect(1)
        .mount(&server)
        .await;

    let b = backend(&server.uri());
    let indices = vec![
        "logs-aws.cloudtrail-*".to_string(),
        "filebeat-*".to_string(),
    ];
    let query = is("event.provider", "ssm.amazonaws.com");
    let time = TimeField {
        primary: "@timestamp".into(),
        fallback_to_timestamp: true,
    };
    let q = QuerySpec {
        indices: &indices,
        query: &query,
        filters: &[],
        time: &time,
        from: t(FROM),
        to: t(TO),
    };
    let stats = ExecStats::default();
    let mut ids = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = b.search_page(&q, 3, cursor.as_ref(), &stats).await.unwrap();
        pages += 1;
        ids.extend(page.hits.iter().map(|h| h.id.clone()));
        match page.cursor {
            Some(c) => {
                assert_eq!(c.pit.as_deref(), fx[0]["response"]["id"].as_str());
                cursor = Some(c)
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(ids.len(), 6);
    assert_eq!(
        ids[0],
        fx[1]["response"]["hits"]["hits"][0]["_id"]
            .as_str()
            .unwrap()
    );
    // field caps, plain first page, open PIT, 3 searches, close PIT
    assert_eq!(stats.round_trips.load(Ordering::Relaxed), 7);
    check("search_pages_pit", &sent(&server).await);
}

#[tokio::test]
async fn timestamp_override_sorts_on_both_fields_and_passes_long_max_back() {
    let Some(fx) = fixtures(&["026", "034", "035", "036", "037", "031"]) else {
        return;
    };
    let server = MockServer::start().await;
    mount_field_caps(&server, "logs-aws.cloudtrail-*").await;
    Mock::given(method("POST"))
        .and(path("/logs-aws.cloudtrail-*/_search"))
        .respond_with(reply(&fx[1]))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/logs-aws.cloudtrail-*/_pit"))
        .respond_with(reply(&fx[0]))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/_search"))
        .and(|r: &Request| search_after_is(r, None))
        .respond_with(reply(&fx[1]))
        .mount(&server)
        .await;
    for i in 1..4 {
        let hits = fx[i]["response"]["hits"]["hits"].as_array().unwrap();
        let after = hits.last().unwrap()["sort"].clone();
        let next = reply(&fx[i + 1]);
        Mock::given(method("POST"))
            .and(path("/_search"))
            .and(move |r: &Request| search_after_is(r, Some(&after)))
            .respond_with(next)
            .mount(&server)
            .await;
    }
    Mock::given(method("DELETE"))
        .and(path("/_pit"))
        .respond_with(reply(&fx[5]))
        .mount(&server)
        .await;

    let b = backend(&server.uri());
    let indices = vec!["logs-aws.cloudtrail-*".to_string()];
    let query = is("event.provider", "ssm.amazonaws.com");
    let time = TimeField {
        primary: "event.ingested".into(),
        fallback_to_timestamp: true,
    };
    let q = QuerySpec {
        indices: &indices,
        query: &query,
        filters: &[],
        time: &time,
        from: t(FROM),
        to: t(TO),
    };
    let stats = ExecStats::default();
    let mut n = 0;
    let mut cursor = None;
    loop {
        let page = b.search_page(&q, 5, cursor.as_ref(), &stats).await.unwrap();
        n += page.hits.len();
        match page.cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(n, 12);
    let reqs = sent(&server).await;
    let third = reqs
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["url"] == "/_search")
        .nth(2)
        .unwrap();
    // a document missing event.ingested sorts with Long.MAX_VALUE, passed back exactly
    assert_eq!(
        third["body"]["search_after"][0],
        json!(9223372036854775807u64)
    );
    check("search_timestamp_override", &reqs);
}

#[tokio::test]
async fn terms_page_follows_after_key_until_it_is_absent() {
    let Some(fx) = fixtures(&["038", "039", "040", "041"]) else {
        return;
    };
    let server = MockServer::start().await;
    mount_field_caps(&server, "logs-aws.cloudtrail-*").await;
    for (i, f) in fx.iter().enumerate() {
        let after = if i == 0 {
            None
        } else {
            Some(fx[i - 1]["response"]["aggregations"]["new_terms"]["after_key"].clone())
        };
        Mock::given(method("POST"))
            .and(path("/logs-aws.cloudtrail-*/_search"))
            .and(move |r: &Request| {
                body_json(r)["aggs"]["new_terms"]["composite"]
                    .get("after")
                    .cloned()
                    == after
            })
            .respond_with(reply(f))
            .mount(&server)
            .await;
    }
    let b = backend(&server.uri());
    let indices = vec!["logs-aws.cloudtrail-*".to_string()];
    let query = is("event.action", "CreateDocument");
    let time = TimeField {
        primary: "@timestamp".into(),
        fallback_to_timestamp: true,
    };
    let q = QuerySpec {
        indices: &indices,
        query: &query,
        filters: &[],
        time: &time,
        from: t(FROM),
        to: t(TO),
    };
    let fields = vec!["cloud.account.id".to_string(), "user.name".to_string()];
    let stats = ExecStats::default();
    let mut tuples = Vec::new();
    let mut after: Option<Value> = None;
    let mut pages = 0;
    loop {
        let p = b
            .terms_page(&q, &fields, 2, after.as_ref(), &stats)
            .await
            .unwrap();
        pages += 1;
        tuples.extend(p.tuples);
        match p.after {
            Some(a) => after = Some(a),
            None => break,
        }
    }
    assert_eq!(pages, 4);
    assert_eq!(tuples.len(), 5);
    assert!(tuples.contains(&vec![json!("210987654321"), json!("dave")]));
    check("terms_page_composite", &sent(&server).await);
}

#[tokio::test]
async fn new_terms_single_field_keeps_bucket_selector_survivors_with_first_doc() {
    let Some(fx) = fixtures(&["043", "045"]) else {
        return;
    };
    let server = MockServer::start().await;
    mount_field_caps(&server, "logs-aws.cloudtrail-*").await;
    Mock::given(method("POST"))
        .and(path("/logs-aws.cloudtrail-*/_search"))
        .and(|r: &Request| {
            body_json(r)["aggs"]["new_terms"]["aggs"]
                .get("first_seen")
                .is_some()
        })
        .respond_with(reply(&fx[0]))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/logs-aws.cloudtrail-*/_search"))
        .and(|r: &Request| {
            body_json(r)["aggs"]["new_terms"]["aggs"]
                .get("docs")
                .is_some()
        })
        .respond_with(reply(&fx[1]))
        .expect(1)
        .mount(&server)
        .await;
    let b = backend(&server.uri());
    let indices = vec!["logs-aws.cloudtrail-*".to_string()];
    let query = is("event.action", "CreateDocument");
    let time = TimeField {
        primary: "@timestamp".into(),
        fallback_to_timestamp: true,
    };
    let q = QuerySpec {
        indices: &indices,
        query: &query,
        filters: &[],
        time: &time,
        from: t(FROM),
        to: t(TO),
    };
    let field = vec!["aws.cloudtrail.user_identity.arn".to_string()];
    let tuples: Vec<Vec<Value>> = fx[0]["request"]["body"]["aggs"]["new_terms"]["terms"]["include"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| vec![v.clone()])
        .collect();
    let stats = ExecStats::default();
    let new = b
        .new_terms(&q, &field, t(HISTORY), &tuples, &stats)
        .await
        .unwrap();
    let values: Vec<&str> = new.iter().map(|n| n.values[0].as_str().unwrap()).collect();
    assert_eq!(
        values,
        vec![
            "arn:aws:iam::210987654321:user/dave",
            "arn:aws:sts::123456789012:assumed-role/DevOpsRole/carol"
        ]
    );
    assert_eq!(new[0].hit.id, "y8U5CqIBEJDJKNHweBcv");
    assert_eq!(new[0].hit.source["user"]["name"], "dave");
    assert_eq!(stats.round_trips.load(Ordering::Relaxed), 3);
    check("new_terms_single_field", &sent(&server).await);
}

async fn mount_multi_pages(server: &MockServer, fx: &[Value]) {
    for (i, f) in fx.iter().enumerate() {
        let after = if i == 0 {
            None
        } else {
            Some(fx[i - 1]["response"]["aggregations"]["new_terms"]["after_key"].clone())
        };
        Mock::given(method("POST"))
            .and(path("/logs-aws.cloudtrail-*/_search"))
            .and(move |r: &Request| {
                body_json(r)["aggs"]["new_terms"]["composite"]
                    .get("after")
                    .cloned()
                    == after
            })
            .respond_with(reply(f))
            .mount(server)
            .await;
    }
}

#[tokio::test]
async fn new_terms_several_fields_pages_past_empty_pages_with_after_key() {
    let Some(fx) = fixtures(&["046", "047", "048", "049"]) else {
        return;
    };
    let server = MockServer::start().await;
    mount_field_caps(&server, "logs-aws.cloudtrail-*").await;
    mount_multi_pages(&server, &fx).await;
    let b = backend(&server.uri());
    let indices = vec!["logs-aws.cloudtrail-*".to_string()];
    let query = is("event.action", "CreateDocument");
    let time = TimeField {
        primary: "@timestamp".into(),
        fallback_to_timestamp: true,
    };
    let q = QuerySpec {
        indices: &indices,
        query: &query,
        filters: &[],
        time: &time,
        from: t(FROM),
        to: t(TO),
    };
    let fields = vec!["cloud.account.id".to_string(), "user.name".to_string()];
    let tuples: Vec<Vec<Value>> = [
        ("123456789012", "alice"),
        ("123456789012", "bob"),
        ("123456789012", "carol"),
        ("123456789012", "terraform"),
        ("210987654321", "dave"),
    ]
    .iter()
    .map(|(a, u)| vec![json!(a), json!(u)])
    .collect();
    let stats = ExecStats::default();
    let new = b
        .new_terms(&q, &fields, t(HISTORY), &tuples, &stats)
        .await
        .unwrap();
    let got: Vec<Vec<Value>> = new.iter().map(|n| n.values.clone()).collect();
    assert_eq!(
        got,
        vec![
            vec![json!("123456789012"), json!("carol")],
            vec![json!("210987654321"), json!("dave")]
        ]
    );
    assert_eq!(new[1].hit.id, "y8U5CqIBEJDJKNHweBcv");
    check("new_terms_several_fields", &sent(&server).await);
}

#[tokio::test]
async fn too_many_clauses_halves_the_batch() {
    let Some(fx) = fixtures(&["075", "049"]) else {
        return;
    };
    let server = MockServer::start().await;
    mount_field_caps(&server, "logs-aws.cloudtrail-*").await;
    fn should_len(r: &Request) -> usize {
        body_json(r)["query"]["bool"]["filter"][2]["bool"]["should"]
            .as_array()
            .map_or(0, Vec::len)
    }
    Mock::given(method("POST"))
        .and(path("/logs-aws.cloudtrail-*/_search"))
        .and(|r: &Request| should_len(r) > 250)
        .respond_with(reply(&fx[0]))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/logs-aws.cloudtrail-*/_search"))
        .and(|r: &Request| should_len(r) <= 250)
        .respond_with(reply(&fx[1]))
        .mount(&server)
        .await;
    let b = backend(&server.uri());
    let indices = vec!["logs-aws.cloudtrail-*".to_string()];
    let query = is("event.action", "CreateDocument");
    let time = TimeField {
        primary: "@timestamp".into(),
        fallback_to_timestamp: true,
    };
    let q = QuerySpec {
        indices: &indices,
        query: &query,
        filters: &[],
        time: &time,
        from: t(FROM),
        to: t(TO),
    };
    let fields = vec!["cloud.account.id".to_string(), "user.name".to_string()];
    let tuples: Vec<Vec<Value>> = (0..600)
        .map(|i| vec![json!("123456789012"), json!(format!("user{i}"))])
        .collect();
    let stats = ExecStats::default();
    let new = b
        .new_terms(&q, &fields, t(HISTORY), &tuples, &stats)
        .await
        .unwrap();
    assert!(new.is_empty());
    let reqs = server.received_requests().await.unwrap();
    let sizes: Vec<usize> = reqs
        .iter()
        .filter(|r| r.url.path().ends_with("_search"))
        .map(should_len)
        .collect();
    assert_eq!(sizes, vec![500, 250, 250, 100]);
}

#[tokio::test]
async fn search_parse_error_is_a_request_error_with_the_reason_and_closes_the_pit() {
    let Some(fx) = fixtures(&["026", "071", "031", "023"]) else {
        return;
    };
    let server = MockServer::start().await;
    mount_field_caps(&server, BOTH).await;
    // A full plain first page: the PIT is opened, its first search fails, the PIT is closed.
    Mock::given(method("POST"))
        .and(path(format!("/{BOTH}/_search")))
        .respond_with(reply(&fx[3]))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/{BOTH}/_pit")))
        .respond_with(reply(&fx[0]))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/_search"))
        .respond_with(reply(&fx[1]))
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/_pit"))
        .respond_with(reply(&fx[2]))
        .expect(1)
        .mount(&server)
        .await;
    let b = backend(&server.uri());
    let indices = vec![
        "logs-aws.cloudtrail-*".to_string(),
        "filebeat-*".to_string(),
    ];
    let query = is("event.provider", "ssm.amazonaws.com");
    let time = TimeField {
        primary: "@timestamp".into(),
        fallback_to_timestamp: true,
    };
    let q = QuerySpec {
        indices: &indices,
        query: &query,
        filters: &[],
        time: &time,
        from: t(FROM),
        to: t(TO),
    };
    let err = b
        .search_page(&q, 3, None, &ExecStats::default())
        .await
        .unwrap_err();
    // a 400 is the request itself: permanent, never retried
    match err {
        Error::Rejected { operation, reason } => {
            assert_eq!(operation, format!("search {BOTH}"));
            assert!(
                reason.contains("HTTP 400") && reason.contains("parsing_exception"),
                "{reason}"
            );
            assert!(reason.contains("trem"), "{reason}");
        }
        e => panic!("unexpected {e:?}"),
    }
}

/// Answers with the given responses in turn (the last one repeats).
struct Sequence {
    replies: Vec<ResponseTemplate>,
    n: Arc<AtomicUsize>,
}

impl Respond for Sequence {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let i = self.n.fetch_add(1, Ordering::SeqCst);
        self.replies[i.min(self.replies.len() - 1)].clone()
    }
}

#[tokio::test]
async fn circuit_breaking_and_rejections_are_retried_with_backoff() {
    let Some(fx) = fixtures(&["124", "125", "128", "042"]) else {
        return;
    };
    let server = MockServer::start().await;
    mount_field_caps(&server, "logs-aws.cloudtrail-*").await;
    let n = Arc::new(AtomicUsize::new(0));
    let replies = vec![reply(&fx[0]), reply(&fx[1]), reply(&fx[2]), reply(&fx[3])];
    Mock::given(method("POST"))
        .and(path("/logs-aws.cloudtrail-*/_search"))
        .respond_with(Sequence {
            replies,
            n: n.clone(),
        })
        .mount(&server)
        .await;
    let b = backend(&server.uri());
    let indices = vec!["logs-aws.cloudtrail-*".to_string()];
    let query = is("event.action", "CreateDocument");
    let time = TimeField {
        primary: "@timestamp".into(),
        fallback_to_timestamp: true,
    };
    let q = QuerySpec {
        indices: &indices,
        query: &query,
        filters: &[],
        time: &time,
        from: t(FROM),
        to: t(TO),
    };
    let stats = ExecStats::default();
    let page = b
        .terms_page(
            &q,
            &["aws.cloudtrail.user_identity.arn".to_string()],
            10,
            None,
            &stats,
        )
        .await
        .unwrap();
    assert_eq!(page.tuples.len(), 5);
    assert_eq!(n.load(Ordering::SeqCst), 4);
    // field caps + 4 attempts
    assert_eq!(stats.round_trips.load(Ordering::Relaxed), 5);

    // retries are bounded: always 429 gives up with the reason after 1 + 3 attempts
    let server = MockServer::start().await;
    mount_field_caps(&server, "logs-aws.cloudtrail-*").await;
    Mock::given(method("POST"))
        .and(path("/logs-aws.cloudtrail-*/_search"))
        .respond_with(reply(&fx[1]))
        .expect(4)
        .mount(&server)
        .await;
    let b = backend(&server.uri());
    let err = b
        .terms_page(&q, &["user.name".to_string()], 10, None, &stats)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("HTTP 429")
            && err.to_string().contains("circuit_breaking_exception"),
        "{err}"
    );
}

fn alerts_from_bulk(fx: &Value) -> Vec<AlertDoc> {
    let lines: Vec<Value> = fx["request"]["body"]
        .as_str()
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    lines
        .chunks(2)
        .map(|c| AlertDoc {
            id: c[0]["create"]["_id"].as_str().unwrap().to_string(),
            doc: c[1].clone(),
        })
        .collect()
}

#[tokio::test]
async fn bulk_create_reports_created_duplicates_and_mapper_failures() {
    let Some(fx) = fixtures(&["102", "103", "104"]) else {
        return;
    };
    for (f, name) in fx
        .iter()
        .zip(["bulk_created", "bulk_duplicates", "bulk_mapper_errors"])
    {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/detectd-alerts-default/_bulk"))
            .respond_with(reply(f))
            .expect(1)
            .mount(&server)
            .await;
        let b = backend(&server.uri());
        let alerts = alerts_from_bulk(f);
        let stats = ExecStats::default();
        let out = b.write_alerts(&alerts, &stats).await.unwrap();
        let reqs = server.received_requests().await.unwrap();
        // byte for byte what was recorded against Elasticsearch
        assert_eq!(
            String::from_utf8(reqs[0].body.clone()).unwrap(),
            f["request"]["body"].as_str().unwrap()
        );
        // no refresh wait on the execution path (alerts.refresh = false)
        assert_eq!(reqs[0].url.query(), None);
        match name {
            "bulk_created" => assert_eq!(out.created.len(), 3),
            "bulk_duplicates" => {
                assert!(out.created.is_empty());
                assert_eq!(
                    out.duplicates,
                    alerts.iter().map(|a| a.id.clone()).collect::<Vec<_>>()
                );
            }
            _ => {
                assert_eq!(out.created, vec!["alert-ok-1", "alert-ok-2"]);
                assert_eq!(out.failed.len(), 2);
                assert_eq!(out.failed[0].0, "alert-bad-1");
                assert!(
                    out.failed[0].1.starts_with("mapper_parsing_exception"),
                    "{}",
                    out.failed[0].1
                );
                assert!(
                    out.failed[1].1.contains("number_format_exception"),
                    "{}",
                    out.failed[1].1
                );
            }
        }
        assert_eq!(stats.round_trips.load(Ordering::Relaxed), 1);
        check(name, &sent(&server).await);
    }
}

#[tokio::test]
async fn bulk_retries_rejected_items_then_the_whole_request_on_429() {
    let Some(fx) = fixtures(&["126", "102"]) else {
        return;
    };
    let alerts = alerts_from_bulk(&fx[1]);
    let ok = fx[1]["response"].clone();
    let mut partial = ok.clone();
    partial["errors"] = json!(true);
    partial["items"][1]["create"]["status"] = json!(429);
    partial["items"][1]["create"]["error"] =
        json!({"type": "es_rejected_execution_exception", "reason": "rejected execution"});
    let retried = json!({"errors": false, "items": [ok["items"][1].clone()]});
    let server = MockServer::start().await;
    let n = Arc::new(AtomicUsize::new(0));
    let replies = vec![
        reply(&fx[0]),
        ResponseTemplate::new(200).set_body_json(partial),
        ResponseTemplate::new(200).set_body_json(retried),
    ];
    Mock::given(method("POST"))
        .and(path("/detectd-alerts-default/_bulk"))
        .respond_with(Sequence {
            replies,
            n: n.clone(),
        })
        .mount(&server)
        .await;
    let b = backend(&server.uri());
    let stats = ExecStats::default();
    let out = b.write_alerts(&alerts, &stats).await.unwrap();
    assert_eq!(out.created.len(), 3);
    assert!(out.failed.is_empty() && out.duplicates.is_empty());
    let reqs = server.received_requests().await.unwrap();
    assert_eq!(reqs.len(), 3);
    // the third request carries only the rejected item
    let third = String::from_utf8(reqs[2].body.clone()).unwrap();
    assert_eq!(third.lines().count(), 2);
    assert!(third.contains(&alerts[1].id));
    assert_eq!(stats.round_trips.load(Ordering::Relaxed), 3);
}

#[tokio::test]
async fn dead_cluster_is_unreachable_quickly() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let b = backend(&format!("http://127.0.0.1:{port}"));
    let started = Instant::now();
    let err = b
        .write_alerts(
            &[AlertDoc {
                id: "a".into(),
                doc: json!({}),
            }],
            &ExecStats::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unreachable(_)), "{err:?}");
    assert!(
        err.to_string()
            .contains("bulk write to detectd-alerts-default"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn setup_installs_template_and_bootstraps_the_write_alias() {
    let Some(fx) = fixtures(&["099", "005", "100"]) else {
        return;
    };
    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path("/_index_template/detectd-alerts-default"))
        .respond_with(reply(&fx[0]))
        .expect(1)
        .mount(&server)
        .await;
    let missing = ResponseTemplate::new(404)
        .set_body_json(json!({"error": "alias [detectd-alerts-default] missing", "status": 404}));
    Mock::given(method("GET"))
        .and(path("/_alias/detectd-alerts-default"))
        .respond_with(missing)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/detectd-alerts-default"))
        .respond_with(reply(&fx[1]))
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path("/detectd-alerts-default-000001"))
        .respond_with(reply(&fx[2]))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("HEAD"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path("/detectd-state"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"acknowledged": true})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path("/detectd-executions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"acknowledged": true})))
        .expect(1)
        .mount(&server)
        .await;
    backend(&server.uri()).setup().await.unwrap();
    check("setup_fresh_cluster", &sent(&server).await);
}

#[tokio::test]
async fn setup_refuses_a_concrete_index_named_like_the_alias() {
    let Some(fx) = fixtures(&["099", "110"]) else {
        return;
    };
    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path("/_index_template/detectd-alerts-default"))
        .respond_with(reply(&fx[0]))
        .mount(&server)
        .await;
    let missing = ResponseTemplate::new(404)
        .set_body_json(json!({"error": "alias [detectd-alerts-default] missing", "status": 404}));
    Mock::given(method("GET"))
        .and(path("/_alias/detectd-alerts-default"))
        .respond_with(missing)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/detectd-alerts-default"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"detectd-alerts-default": {"aliases": {}}})),
        )
        .mount(&server)
        .await;
    let err = backend(&server.uri()).setup().await.unwrap_err();
    assert!(
        err.to_string()
            .contains("a concrete index named detectd-alerts-default exists"),
        "{err}"
    );
    // the recorded gotcha: bootstrapping afterwards fails
    assert_eq!(fx[1]["status"], 200);
}

#[tokio::test]
async fn setup_accepts_an_existing_write_alias() {
    let Some(fx) = fixtures(&["099", "101"]) else {
        return;
    };
    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path("/_index_template/detectd-alerts-default"))
        .respond_with(reply(&fx[0]))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/_alias/detectd-alerts-default"))
        .respond_with(reply(&fx[1]))
        .mount(&server)
        .await;
    Mock::given(method("HEAD"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    backend(&server.uri()).setup().await.unwrap();
    let reqs = server.received_requests().await.unwrap();
    assert!(reqs
        .iter()
        .all(|r| r.method.as_str() != "PUT"
            || r.url.path() == "/_index_template/detectd-alerts-default"));
}

#[tokio::test]
async fn health_check_reports_missing_indices_forbidden_and_unmapped_time_field() {
    let Some(fx) = fixtures(&["008", "019", "020", "018"]) else {
        return;
    };
    let mixed = "nomatch-*,logs-aws.cloudtrail-*";
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/nomatch-*/_search"))
        .respond_with(reply(&fx[0]))
        .mount(&server)
        .await;
    let forbidden = json!({"error": {"root_cause": [{"type": "security_exception", "reason": "action [indices:data/read/search] is unauthorized for user [detectd]"}], "type": "security_exception", "reason": "action [indices:data/read/search] is unauthorized for user [detectd]"}, "status": 403});
    Mock::given(method("POST"))
        .and(path("/secret-*/_search"))
        .respond_with(ResponseTemplate::new(403).set_body_json(forbidden))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/{BOTH}/_search")))
        .respond_with(reply(&fx[1]))
        .mount(&server)
        .await;
    mount_field_caps(&server, BOTH).await;
    Mock::given(method("POST"))
        .and(path("/detectd-alerts-default/_search"))
        .respond_with(reply(&fx[1]))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/{mixed}/_search")))
        .respond_with(reply(&fx[3]))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/logs-aws.cloudtrail-*/_search"))
        .respond_with(reply(&fx[1]))
        .mount(&server)
        .await;
    mount_field_caps(&server, mixed).await;
    let b = backend(&server.uri());
    let both = vec![
        "logs-aws.cloudtrail-*".to_string(),
        "filebeat-*".to_string(),
    ];
    let rules = vec![
        (
            "r1".to_string(),
            "no data".to_string(),
            vec!["nomatch-*".to_string()],
            "@timestamp".to_string(),
        ),
        (
            "r2".to_string(),
            "forbidden".to_string(),
            vec!["secret-*".to_string()],
            "@timestamp".to_string(),
        ),
        (
            "r5".to_string(),
            "one pattern matches".to_string(),
            vec!["nomatch-*".to_string(), "logs-aws.cloudtrail-*".to_string()],
            "@timestamp".to_string(),
        ),
        (
            "r3".to_string(),
            "fine".to_string(),
            both.clone(),
            "@timestamp".to_string(),
        ),
        (
            "r4".to_string(),
            "bad time".to_string(),
            both,
            "event.created".to_string(),
        ),
    ];
    let problems = b.health_check(&rules).await;
    let summary: Vec<(String, String)> = problems
        .iter()
        .map(|p| (p.rule_id.clone(), p.problem.clone()))
        .collect();
    assert_eq!(summary.len(), 3, "{summary:?}");
    assert_eq!(
        summary[0],
        ("r1".to_string(), "no index matches nomatch-*".to_string())
    );
    assert!(
        summary[1].1.starts_with("no read privilege on secret-*"),
        "{summary:?}"
    );
    assert_eq!(summary[2].0, "r4");
    assert!(
        summary[2].1.contains("event.created is not mapped"),
        "{summary:?}"
    );
    check("health_check", &sent(&server).await);
}

/// Answers a `_bulk` of `index`/`create` actions with 201 for every item.
struct BulkOk;

impl Respond for BulkOk {
    fn respond(&self, r: &Request) -> ResponseTemplate {
        let text = String::from_utf8(r.body.clone()).unwrap();
        let items: Vec<Value> = text
            .lines()
            .step_by(2)
            .map(|action| {
                let a: Value = serde_json::from_str(action).unwrap();
                let (op, meta) = a.as_object().unwrap().iter().next().unwrap();
                json!({op: {"_index": meta["_index"], "_id": meta["_id"], "status": 201}})
            })
            .collect();
        ResponseTemplate::new(200).set_body_json(json!({"errors": false, "items": items}))
    }
}

fn state_at(t_: &str) -> detectd::backend::RuleState {
    detectd::backend::RuleState {
        last_start: Some(t(t_)),
        covered_until: Some(t(t_)),
        status: Some("succeeded".into()),
        gaps: vec![],
    }
}

#[tokio::test]
async fn state_and_records_reach_the_cluster_through_one_bulk_and_are_read_after_a_refresh() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/_bulk"))
        .respond_with(BulkOk)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/t-state/_refresh"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"_shards": {"total": 1, "successful": 1, "failed": 0}})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let stored = json!({"hits": {"hits": [{"_index": "t-state", "_id": "rule-1", "_source": {"rule_id": "rule-1", "last_start": TO, "covered_until": TO, "status": "succeeded", "gaps": []}}]}});
    Mock::given(method("POST"))
        .and(path("/t-state/_search"))
        .respond_with(ResponseTemplate::new(200).set_body_json(stored))
        .expect(1)
        .mount(&server)
        .await;
    let es = ElasticsearchConfig {
        urls: vec![server.uri()],
        state_index: "t-state".into(),
        executions_index: "t-executions".into(),
        ..ElasticsearchConfig::default()
    };
    let b = ElasticsearchBackend::new(&es, &AlertsConfig::default()).unwrap();
    // Handing documents over sends nothing (the writer flushes after 500 documents or 1 s).
    b.save_state("rule-1", &state_at(FROM)).await.unwrap();
    b.record_execution(&json!({"@timestamp": TO, "rule_id": "rule-1", "status": "succeeded"}))
        .await
        .unwrap();
    b.save_state("rule-1", &state_at(TO)).await.unwrap();
    assert!(server.received_requests().await.unwrap().is_empty());
    // Reading the state flushes our writes, refreshes the index, then searches it.
    let loaded = b.load_state().await.unwrap();
    assert_eq!(loaded.get("rule-1"), Some(&state_at(TO)));
    let reqs = sent(&server).await;
    let bulk = &reqs[0]["body"];
    // the rule's second state replaced the first one still waiting; the record kept its place
    assert_eq!(bulk.as_array().unwrap().len(), 4, "{bulk}");
    assert_eq!(bulk[0]["index"]["_index"], "t-state");
    assert_eq!(bulk[0]["index"]["_id"], "rule-1");
    assert_eq!(bulk[1]["covered_until"], json!(TO));
    assert_eq!(bulk[2]["index"]["_index"], "t-executions");
    check("state_and_executions", &reqs);
}

#[tokio::test]
async fn the_writer_flushes_by_size_and_by_time_and_retries_a_refused_bulk() {
    let server = MockServer::start().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let unavailable = ResponseTemplate::new(503).set_body_json(json!({"error": {"type": "unavailable_shards_exception", "reason": "primary shard is not active"}, "status": 503}));
    Mock::given(method("POST"))
        .and(path("/_bulk"))
        .respond_with(Sequence {
            replies: vec![
                unavailable.clone(),
                unavailable.clone(),
                unavailable.clone(),
                unavailable,
                ResponseTemplate::new(200).set_body_json(json!({"errors": false, "items": [
                    {"index": {"_index": "detectd-state", "_id": "r1", "status": 200}},
                    {"index": {"_index": "detectd-state", "_id": "r2", "status": 201}}
                ]})),
                ResponseTemplate::new(200).set_body_json(json!({"errors": false, "items": [
                    {"index": {"_index": "detectd-state", "_id": "r3", "status": 201}}
                ]})),
            ],
            n: calls.clone(),
        })
        .mount(&server)
        .await;
    let b = backend(&server.uri()).with_flush(detectd::backend::elasticsearch::FlushPolicy {
        max_docs: 2,
        interval: Duration::from_millis(100),
    });
    // Two documents: a flush by size, refused (503 after the request's own retries), kept.
    b.save_state("r1", &state_at(FROM)).await.unwrap();
    b.save_state("r2", &state_at(FROM)).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while calls.load(Ordering::SeqCst) < 5 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // 4 attempts of the refused request (3 retries), then the kept documents again after the
    // writer's pause: written.
    assert_eq!(calls.load(Ordering::SeqCst), 5);
    // One document: flushed by time, without any flush call.
    b.save_state("r3", &state_at(TO)).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while calls.load(Ordering::SeqCst) < 6 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(calls.load(Ordering::SeqCst), 6);
    let reqs = server.received_requests().await.unwrap();
    let last = String::from_utf8(reqs[5].body.clone()).unwrap();
    assert!(last.contains("\"_id\":\"r3\""), "{last}");
    // nothing left to flush
    b.flush().await.unwrap();
    assert_eq!(server.received_requests().await.unwrap().len(), 6);
}

/// Answers a `_bulk` with one item per action line: the first item of the first request is
/// rejected (429), every other one created.
struct BulkAnswer {
    calls: Arc<AtomicUsize>,
}

impl Respond for BulkAnswer {
    fn respond(&self, r: &Request) -> ResponseTemplate {
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        let text = String::from_utf8(r.body.clone()).unwrap();
        let n = text.lines().count() / 2;
        let items: Vec<Value> = (0..n)
            .map(|i| {
                if call == 0 && i == 0 {
                    json!({"create": {"_index": ".ds-x", "_id": null, "status": 429, "error": {"type": "es_rejected_execution_exception", "reason": "rejected"}}})
                } else {
                    json!({"create": {"_index": ".ds-x", "_id": format!("id{call}-{i}"), "status": 201}})
                }
            })
            .collect();
        ResponseTemplate::new(200).set_body_json(json!({"errors": call == 0, "items": items}))
    }
}

#[tokio::test]
async fn ingest_installs_the_template_and_bulk_creates_normalised_records() {
    let Some(tests) = common::shared_data("integrations-cloudtrail/tests") else {
        return;
    };
    let files = vec![
        tests.join("test-create-document-json.log"),
        tests.join("test-console-login-json.log"),
    ];
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/_index_template/logs-aws.cloudtrail"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"error": {"type": "resource_not_found_exception", "reason": "index template matching [logs-aws.cloudtrail] not found"}, "status": 404})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path("/_index_template/logs-aws.cloudtrail"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"acknowledged": true})))
        .expect(1)
        .mount(&server)
        .await;
    let calls = Arc::new(AtomicUsize::new(0));
    Mock::given(method("POST"))
        .and(path("/logs-aws.cloudtrail-default/_bulk"))
        .respond_with(BulkAnswer {
            calls: calls.clone(),
        })
        .mount(&server)
        .await;
    let b = backend(&server.uri());
    let totals = detectd::backend::elasticsearch::ingest::ingest(
        &b,
        &files,
        "logs-aws.cloudtrail-default",
        detectd::ecs::NormalizeOptions::default(),
    )
    .await
    .unwrap();
    // what the reader alone makes of the same files
    let mut expected = Vec::new();
    let summary = detectd::ecs::read_paths(
        &files,
        &detectd::ecs::NormalizeOptions::default(),
        |d| expected.push(d.doc.into_value()),
        |e| panic!("{e}"),
    );
    assert!(expected.len() >= 2);
    assert_eq!(totals.files, 2);
    assert_eq!(totals.documents, expected.len());
    assert_eq!(totals.indexed, expected.len());
    assert_eq!(totals.skipped, summary.errors);
    assert_eq!(totals.failed, 0);
    let reqs = server.received_requests().await.unwrap();
    let bulks: Vec<&Request> = reqs
        .iter()
        .filter(|r| r.url.path().ends_with("_bulk"))
        .collect();
    // one bulk per file plus the retry of the rejected item
    assert_eq!(bulks.len(), 3);
    let sent_docs = |r: &Request| -> Vec<Value> {
        String::from_utf8(r.body.clone())
            .unwrap()
            .lines()
            .skip(1)
            .step_by(2)
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let mut sent = sent_docs(bulks[0]);
    assert_eq!(sent_docs(bulks[1]), sent[..1], "the rejected item, again");
    sent.extend(sent_docs(bulks[2]));
    assert_eq!(sent, expected, "the reader's documents, in order");
    assert_eq!(sent[0]["event"]["provider"], "ssm.amazonaws.com");
    // `create` with the document's event.id (CloudTrail's eventID) as `_id`
    let first = String::from_utf8(bulks[0].body.clone()).unwrap();
    let ids: Vec<String> = first
        .lines()
        .step_by(2)
        .map(|l| {
            let a: Value = serde_json::from_str(l).unwrap();
            a["create"]["_id"].as_str().unwrap().to_string()
        })
        .collect();
    let events: Vec<String> = sent_docs(bulks[0])
        .iter()
        .map(|d| d["event"]["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, events);
    let template: Vec<Value> = reqs
        .iter()
        .filter(|r| r.method.as_str() == "PUT")
        .map(body_json)
        .collect();
    check("ingest_template", &Value::Array(template));
}

#[tokio::test]
async fn odd_responses_partial_failures_closed_pits_and_too_many_buckets() {
    let Some(fx) = fixtures(&["053", "122", "032", "033"]) else {
        return;
    };
    let indices = vec![
        "logs-aws.cloudtrail-*".to_string(),
        "filebeat-*".to_string(),
    ];
    let query = is("event.action", "CreateDocument");
    let time = TimeField {
        primary: "@timestamp".into(),
        fallback_to_timestamp: true,
    };
    let q = QuerySpec {
        indices: &indices,
        query: &query,
        filters: &[],
        time: &time,
        from: t(FROM),
        to: t(TO),
    };
    let fields = vec!["cloud.account.id".to_string(), "user.name".to_string()];
    let stats = ExecStats::default();

    // 200 with one failed shard: the other shard's buckets are the page
    let server = MockServer::start().await;
    mount_field_caps(&server, BOTH).await;
    Mock::given(method("POST"))
        .and(path(format!("/{BOTH}/_search")))
        .respond_with(reply(&fx[0]))
        .mount(&server)
        .await;
    let page = backend(&server.uri())
        .terms_page(&q, &fields, 10, None, &stats)
        .await
        .unwrap();
    let expected = fx[0]["response"]["aggregations"]["new_terms"]["buckets"]
        .as_array()
        .unwrap()
        .len();
    assert!(expected > 0);
    assert_eq!(page.tuples.len(), expected);

    // 503 too_many_buckets (empty root_cause): not retried, the cause comes from caused_by
    let server = MockServer::start().await;
    mount_field_caps(&server, BOTH).await;
    Mock::given(method("POST"))
        .and(path(format!("/{BOTH}/_search")))
        .respond_with(reply(&fx[1]))
        .expect(1)
        .mount(&server)
        .await;
    let err = backend(&server.uri())
        .terms_page(&q, &fields, 10, None, &stats)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("HTTP 503")
            && err.to_string().contains("too_many_buckets_exception"),
        "{err}"
    );

    // closing an already closed PIT is fine; searching it is an error naming the cause
    let server = MockServer::start().await;
    mount_field_caps(&server, BOTH).await;
    Mock::given(method("DELETE"))
        .and(path("/_pit"))
        .respond_with(reply(&fx[2]))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/_search"))
        .respond_with(reply(&fx[3]))
        .mount(&server)
        .await;
    let b = backend(&server.uri());
    let cursor = detectd::backend::Cursor {
        pit: Some("gone".into()),
        search_after: vec![json!(1795466668000u64)],
    };
    b.close_search(&cursor, &stats).await.unwrap();
    let err = b
        .search_page(&q, 3, Some(&cursor), &stats)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("HTTP 404")
            && err.to_string().contains("search_context_missing_exception"),
        "{err}"
    );
}

fn cloudtrail_record(i: usize) -> Value {
    json!({
        "eventVersion": "1.08", "eventTime": format!("2024-01-01T00:{:02}:{:02}Z", (i / 60) % 60, i % 60),
        "eventSource": "iam.amazonaws.com", "eventName": "CreateUser",
        "awsRegion": "us-east-1", "sourceIPAddress": "10.0.0.1",
        "userIdentity": {"type": "IAMUser", "userName": "alice", "accountId": "123"},
        "requestParameters": {"userName": format!("u{i}")},
        "eventID": format!("id-{i}")
    })
}

#[tokio::test]
async fn ingest_streams_large_files_in_batches_and_skips_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    // 2,500 records in one S3 delivery file: three bulks (1,000, 1,000, 500)
    let records: Vec<Value> = (0..2500).map(cloudtrail_record).collect();
    std::fs::write(
        dir.path().join("a-big.json"),
        json!({ "Records": records }).to_string(),
    )
    .unwrap();
    // NDJSON with a broken line and a non-CloudTrail object between two good records
    std::fs::write(
        dir.path().join("b-mixed.ndjson"),
        format!(
            "{}\n{{\"eventTime\": \n{{\"foo\": 1}}\n{}\n",
            cloudtrail_record(9000),
            cloudtrail_record(9001)
        ),
    )
    .unwrap();
    // a gzip file cut in the middle
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(
        &mut gz,
        json!({ "Records": records[..50] }).to_string().as_bytes(),
    )
    .unwrap();
    let gz = gz.finish().unwrap();
    std::fs::write(dir.path().join("c-cut.json.gz"), &gz[..gz.len() / 2]).unwrap();

    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/_index_template/logs-aws.cloudtrail"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"index_templates": []})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/logs-aws.cloudtrail-default/_bulk"))
        .respond_with(BulkAnswer {
            // past the first call: every item created
            calls: Arc::new(AtomicUsize::new(1)),
        })
        .mount(&server)
        .await;
    let b = backend(&server.uri());
    let totals = detectd::backend::elasticsearch::ingest::ingest(
        &b,
        &[dir.path().to_path_buf()],
        "logs-aws.cloudtrail-default",
        detectd::ecs::NormalizeOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(totals.files, 3);
    assert_eq!(totals.failed, 0);
    // the cut gzip keeps the records before the cut
    let from_cut = totals.documents - 2502;
    assert!(from_cut < 50, "{totals:?}");
    assert_eq!(totals.indexed, totals.documents);
    // the broken line, the non-CloudTrail object, the truncation
    assert_eq!(totals.skipped, 3, "{totals:?}");
    let reqs = server.received_requests().await.unwrap();
    let sizes: Vec<usize> = reqs
        .iter()
        .filter(|r| r.url.path().ends_with("_bulk"))
        .map(|r| String::from_utf8(r.body.clone()).unwrap().lines().count() / 2)
        .collect();
    let mut want = vec![1000, 1000, 500, 2];
    if from_cut > 0 {
        want.push(from_cut);
    }
    assert_eq!(sizes, want);
    // the template was found: not installed again
    assert!(reqs.iter().all(|r| r.method.as_str() != "PUT"));

    // The same files again: the same `_id`s, every one already there (409), nothing failed.
    let ids = |reqs: &[Request]| -> Vec<String> {
        reqs.iter()
            .filter(|r| r.url.path().ends_with("_bulk"))
            .flat_map(|r| {
                String::from_utf8(r.body.clone())
                    .unwrap()
                    .lines()
                    .step_by(2)
                    .map(|l| serde_json::from_str::<Value>(l).unwrap()["create"]["_id"].to_string())
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let first_ids = ids(&reqs);
    let again = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/_index_template/logs-aws.cloudtrail"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"index_templates": []})))
        .mount(&again)
        .await;
    Mock::given(method("POST"))
        .and(path("/logs-aws.cloudtrail-default/_bulk"))
        .respond_with(|r: &Request| {
            let n = String::from_utf8(r.body.clone()).unwrap().lines().count() / 2;
            let items: Vec<Value> = (0..n)
                .map(|_| json!({"create": {"status": 409, "error": {"type": "version_conflict_engine_exception", "reason": "document already exists"}}}))
                .collect();
            ResponseTemplate::new(200).set_body_json(json!({"errors": true, "items": items}))
        })
        .mount(&again)
        .await;
    let b = backend(&again.uri());
    let second = detectd::backend::elasticsearch::ingest::ingest(
        &b,
        &[dir.path().to_path_buf()],
        "logs-aws.cloudtrail-default",
        detectd::ecs::NormalizeOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(second.duplicates, totals.documents);
    assert_eq!((second.indexed, second.failed), (0, 0));
    assert_eq!(ids(&again.received_requests().await.unwrap()), first_ids);
    // one id per event: the cut file repeats the big file's first records (same eventIDs)
    assert_eq!(
        first_ids
            .iter()
            .collect::<std::collections::HashSet<_>>()
            .len(),
        first_ids.len() - from_cut
    );
}

#[tokio::test]
async fn ingest_stops_with_the_clusters_error_and_does_not_hang() {
    let dir = tempfile::tempdir().unwrap();
    let records: Vec<Value> = (0..3500).map(cloudtrail_record).collect();
    std::fs::write(
        dir.path().join("big.json"),
        json!({ "Records": records }).to_string(),
    )
    .unwrap();
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/_index_template/logs-aws.cloudtrail"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"index_templates": []})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/logs-aws.cloudtrail-default/_bulk"))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({"error": {"type": "security_exception", "reason": "action [indices:data/write/bulk] is unauthorized"}, "status": 403})))
        .mount(&server)
        .await;
    let b = backend(&server.uri());
    let err = tokio::time::timeout(
        Duration::from_secs(30),
        detectd::backend::elasticsearch::ingest::ingest(
            &b,
            &[dir.path().to_path_buf()],
            "logs-aws.cloudtrail-default",
            detectd::ecs::NormalizeOptions::default(),
        ),
    )
    .await
    .expect("the reading thread stops when the sender gives up")
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("bulk ingest into logs-aws.cloudtrail-default")
            && err.contains("security_exception"),
        "{err}"
    );
    let bulks = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path().ends_with("_bulk"))
        .count();
    assert_eq!(bulks, 1, "no bulk after the first refusal");
}

fn spec<'a>(indices: &'a [String], query: &'a Ast, time: &'a TimeField) -> QuerySpec<'a> {
    QuerySpec {
        indices,
        query,
        filters: &[],
        time,
        from: t(FROM),
        to: t(TO),
    }
}

fn at_timestamp() -> TimeField {
    TimeField {
        primary: "@timestamp".into(),
        fallback_to_timestamp: false,
    }
}

#[tokio::test]
async fn index_patterns_matching_nothing_are_a_warning_and_send_no_search() {
    // field caps of a pattern matching nothing: 200, no indices (recorded on 7.10); opening a
    // point in time on it is a 500 null_pointer_exception (fixture 132), so none may be sent.
    let Some(fx) = fixtures(&["143", "132"]) else {
        return;
    };
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/logs-gcp*-nothing/_field_caps"))
        .respond_with(reply(&fx[0]))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/logs-gcp*-nothing/_pit"))
        .respond_with(reply(&fx[1]))
        .expect(0)
        .mount(&server)
        .await;
    let b = backend(&server.uri());
    let indices = vec!["logs-gcp*-nothing".to_string()];
    let query = is("event.action", "StopLogging");
    let time = at_timestamp();
    let q = spec(&indices, &query, &time);
    let stats = ExecStats::default();
    let page = b.search_page(&q, 100, None, &stats).await.unwrap();
    assert!(page.hits.is_empty() && page.cursor.is_none());
    let terms = b
        .terms_page(&q, &["user.name".to_string()], 10, None, &stats)
        .await
        .unwrap();
    assert!(terms.tuples.is_empty() && terms.after.is_none());
    let warnings = stats.warnings.lock().unwrap().clone();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("no index matching: [\"logs-gcp*-nothing\"] was found"),
        "{}",
        warnings[0]
    );
    // two field caps, nothing else
    let reqs = server.received_requests().await.unwrap();
    assert!(
        reqs.iter().all(|r| r.url.path().ends_with("_field_caps")),
        "{reqs:?}"
    );

    // Through the engine: the execution succeeds, with Kibana's warning.
    let rule = detectd::rules::load_str(
        "[metadata]\ncreation_date = \"2026/11/01\"\nmaturity = \"production\"\nupdated_date = \"2026/11/01\"\n[rule]\nauthor = [\"t\"]\ndescription = \"d\"\nindex = [\"logs-gcp*-nothing\"]\nlanguage = \"kuery\"\nlicense = \"Apache-2.0\"\nname = \"n\"\nrisk_score = 21\nrule_id = \"r\"\nseverity = \"low\"\ntype = \"query\"\nquery = \"event.action: StopLogging\"\n",
        std::path::Path::new("nothing.toml"),
    )
    .unwrap()
    .rule;
    let exec = detectd::engine::ExecRule::from_rule(&rule).unwrap();
    let res = detectd::engine::execute(
        &exec,
        detectd::engine::Window {
            from: t(FROM),
            to: t(TO),
        },
        &b,
        "exec-1",
        t(TO),
    )
    .await;
    assert_eq!(res.status, detectd::engine::Status::Succeeded, "{res:?}");
    assert_eq!(res.warnings.len(), 1);
    assert!(res.warnings[0].starts_with("This rule is attempting to query data"));
}

#[tokio::test]
async fn a_first_page_that_is_not_full_opens_no_point_in_time() {
    let Some(fx) = fixtures(&["020", "023"]) else {
        return;
    };
    let server = MockServer::start().await;
    mount_field_caps(&server, BOTH).await;
    Mock::given(method("POST"))
        .and(path(format!("/{BOTH}/_search")))
        .respond_with(reply(&fx[1]))
        .expect(1)
        .mount(&server)
        .await;
    let b = backend(&server.uri());
    let indices = vec![
        "logs-aws.cloudtrail-*".to_string(),
        "filebeat-*".to_string(),
    ];
    let query = is("event.provider", "ssm.amazonaws.com");
    let time = at_timestamp();
    let stats = ExecStats::default();
    // 3 hits for a page of 100: the window is done after one search
    let page = b
        .search_page(&spec(&indices, &query, &time), 100, None, &stats)
        .await
        .unwrap();
    assert_eq!(page.hits.len(), 3);
    assert!(page.cursor.is_none());
    assert_eq!(stats.round_trips.load(Ordering::Relaxed), 2);
    let reqs = server.received_requests().await.unwrap();
    assert!(body_json(&reqs[1]).get("pit").is_none());
}

#[tokio::test]
async fn new_terms_first_seen_with_an_override_is_kibanas_combined_timestamp() {
    // Recorded on 7.10: the first-seen aggregation without runtime fields (which 7.10 refuses,
    // fixture 159) keeps carol, dave (no event.ingested: first seen by @timestamp) and erin.
    let Some(fx) = fixtures(&["160", "162"]) else {
        return;
    };
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/fx-cloudtrail-*/_field_caps"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"indices": ["fx-cloudtrail-000001"], "fields": {
            "user.name": {"keyword": {"type": "keyword", "searchable": true, "aggregatable": true}},
            "event.action": {"keyword": {"type": "keyword", "searchable": true, "aggregatable": true}}
        }})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/fx-cloudtrail-*/_search"))
        .and(|r: &Request| {
            body_json(r)["aggs"]["new_terms"]["aggs"]
                .get("filtering_agg")
                .is_some()
        })
        .respond_with(reply(&fx[0]))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/fx-cloudtrail-*/_search"))
        .and(|r: &Request| {
            body_json(r)["aggs"]["new_terms"]["aggs"]
                .get("docs")
                .is_some()
        })
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"hits": {"hits": []}, "aggregations": {"new_terms": {"buckets": []}}}),
        ))
        .mount(&server)
        .await;
    let b = backend(&server.uri());
    let indices = vec!["fx-cloudtrail-*".to_string()];
    let query = is("event.action", "GetObject");
    let time = TimeField {
        primary: "event.ingested".into(),
        fallback_to_timestamp: true,
    };
    let recorded = &fx[0]["request"]["body"];
    let from: DateTime<Utc> = DateTime::from_timestamp_millis(1796165958000).unwrap();
    let q = QuerySpec {
        indices: &indices,
        query: &query,
        filters: &[],
        time: &time,
        from,
        to: t("2026-12-01T23:59:18Z"),
    };
    let tuples: Vec<Vec<Value>> = recorded["aggs"]["new_terms"]["terms"]["include"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| vec![v.clone()])
        .collect();
    let stats = ExecStats::default();
    b.new_terms(
        &q,
        &["user.name".to_string()],
        t("2026-11-24T23:59:18Z"),
        &tuples,
        &stats,
    )
    .await
    .unwrap();
    let reqs = server.received_requests().await.unwrap();
    let searches: Vec<Value> = reqs
        .iter()
        .filter(|r| r.url.path().ends_with("_search"))
        .map(body_json)
        .collect();
    // The history request's first-seen aggregations are exactly the recorded ones.
    assert_eq!(
        searches[0]["aggs"]["new_terms"]["aggs"],
        recorded["aggs"]["new_terms"]["aggs"]
    );
    // ... and the survivors of the recorded answer are the terms looked up in the window.
    let mut include: Vec<&str> = searches[1]["aggs"]["new_terms"]["terms"]["include"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    include.sort();
    assert_eq!(include, ["carol", "dave", "erin"]);

    // Several fields: the same sub-aggregations under the composite (fixture 162).
    let composite = detectd::backend::elasticsearch::requests::new_terms_composite_body(
        json!({"match_all": {}}),
        &["user.name".to_string()],
        10,
        &time,
        from,
        None,
        true,
    );
    let mut expected = fx[1]["request"]["body"]["aggs"]["new_terms"]["aggs"].clone();
    expected.as_object_mut().unwrap().remove("docs");
    let mut ours = composite["aggs"]["new_terms"]["aggs"].clone();
    ours.as_object_mut().unwrap().remove("docs");
    assert_eq!(ours, expected);
}

/// A tiny cluster for the crash test: three events, alerts created once by id (then 409), and
/// the state index as the background writer fills it.
#[derive(Default)]
struct FakeCluster {
    alerts: std::sync::Mutex<std::collections::BTreeMap<String, usize>>,
    states: std::sync::Mutex<std::collections::BTreeMap<String, Value>>,
}

struct FakeResponder(Arc<FakeCluster>);

impl Respond for FakeResponder {
    fn respond(&self, r: &Request) -> ResponseTemplate {
        let p = r.url.path().to_string();
        let ok = |v: Value| ResponseTemplate::new(200).set_body_json(v);
        if p.ends_with("/_field_caps") {
            return ok(
                json!({"indices": ["events-1"], "fields": {"event.action": {"keyword": {"type": "keyword", "searchable": true, "aggregatable": true}}}}),
            );
        }
        if p == "/events/_search" {
            let hits: Vec<Value> = (0..3)
                .map(|i| json!({"_index": "events-1", "_id": format!("e{i}"), "_source": {"@timestamp": FROM, "event": {"action": "StopLogging"}}, "sort": [i]}))
                .collect();
            return ok(json!({"hits": {"hits": hits}}));
        }
        if p == "/detectd-state/_refresh" {
            return ok(json!({}));
        }
        if p == "/detectd-state/_search" {
            let states = self.0.states.lock().unwrap();
            let hits: Vec<Value> = states
                .iter()
                .map(|(id, s)| json!({"_index": "detectd-state", "_id": id, "_source": s}))
                .collect();
            return ok(json!({"hits": {"hits": hits}}));
        }
        if p.ends_with("/_bulk") {
            let text = String::from_utf8(r.body.clone()).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            let mut items = Vec::new();
            for pair in lines.chunks(2) {
                let action: Value = serde_json::from_str(pair[0]).unwrap();
                let doc: Value = serde_json::from_str(pair[1]).unwrap();
                if let Some(meta) = action.get("create") {
                    let id = meta["_id"].as_str().unwrap().to_string();
                    let mut alerts = self.0.alerts.lock().unwrap();
                    let n = alerts.entry(id.clone()).or_insert(0);
                    *n += 1;
                    let status = if *n == 1 { 201 } else { 409 };
                    items.push(json!({"create": {"_id": id, "status": status}}));
                } else {
                    let meta = &action["index"];
                    if meta["_index"] == "detectd-state" {
                        self.0
                            .states
                            .lock()
                            .unwrap()
                            .insert(meta["_id"].as_str().unwrap().to_string(), doc);
                    }
                    items.push(json!({"index": {"_id": meta["_id"], "status": 201}}));
                }
            }
            return ok(json!({"errors": false, "items": items}));
        }
        ResponseTemplate::new(404).set_body_json(json!({"error": "unexpected request"}))
    }
}

#[tokio::test]
async fn a_crash_between_alert_write_and_state_flush_reruns_the_window_without_duplicates() {
    let server = MockServer::start().await;
    let cluster = Arc::new(FakeCluster::default());
    Mock::given(wiremock::matchers::any())
        .respond_with(FakeResponder(cluster.clone()))
        .mount(&server)
        .await;
    let rule = detectd::rules::load_str(
        "[metadata]\ncreation_date = \"2026/11/01\"\nmaturity = \"production\"\nupdated_date = \"2026/11/01\"\n[rule]\nauthor = [\"t\"]\ndescription = \"d\"\nindex = [\"events\"]\nlanguage = \"kuery\"\nlicense = \"Apache-2.0\"\nname = \"n\"\nrisk_score = 21\nrule_id = \"crash-rule\"\nseverity = \"low\"\ntype = \"query\"\nquery = \"event.action: StopLogging\"\n",
        std::path::Path::new("crash.toml"),
    )
    .unwrap()
    .rule;
    let exec = detectd::engine::ExecRule::from_rule(&rule).unwrap();
    let window = detectd::engine::Window {
        from: t(FROM),
        to: t(TO),
    };
    let slow_flush = detectd::backend::elasticsearch::FlushPolicy {
        max_docs: 500,
        interval: Duration::from_secs(3600),
    };
    // Run 1: alerts acknowledged, the state handed to the writer... and the process dies before
    // the writer flushed it (the backend is leaked: no flush at shutdown either).
    let first = backend(&server.uri()).with_flush(slow_flush);
    let res = detectd::engine::execute(&exec, window, &first, "x1", t(TO)).await;
    assert_eq!(res.alerts_created, 3, "{res:?}");
    first
        .save_state(
            "crash-rule",
            &detectd::backend::RuleState {
                last_start: Some(t(TO)),
                covered_until: Some(t(TO)),
                status: Some("succeeded".into()),
                gaps: vec![],
            },
        )
        .await
        .unwrap();
    std::mem::forget(first);

    // Restart: the rule's state never reached the cluster, so its window runs again; the
    // alerts come back as duplicates, none is created twice.
    let second = backend(&server.uri()).with_flush(slow_flush);
    assert!(!second
        .load_state()
        .await
        .unwrap()
        .contains_key("crash-rule"));
    let again = detectd::engine::execute(&exec, window, &second, "x2", t(TO)).await;
    assert_eq!(again.status, detectd::engine::Status::Succeeded);
    assert_eq!((again.alerts_created, again.duplicates), (0, 3));
    let state = detectd::backend::RuleState {
        last_start: Some(t(TO)),
        covered_until: Some(t(TO)),
        status: Some("succeeded".into()),
        gaps: vec![],
    };
    second.save_state("crash-rule", &state).await.unwrap();
    second.flush().await.unwrap();
    let third = backend(&server.uri());
    assert_eq!(
        third.load_state().await.unwrap().get("crash-rule"),
        Some(&state)
    );
    let alerts = cluster.alerts.lock().unwrap();
    assert_eq!(alerts.len(), 3, "three distinct alerts");
    assert!(
        alerts.values().all(|n| *n == 2),
        "each sent twice, created once: {alerts:?}"
    );
}

#[tokio::test]
async fn without_painless_first_seen_is_filtered_by_detectd() {
    // A cluster that runs no scripts refuses the bucket_selector; detectd then asks for the
    // first-seen aggregations alone and keeps the terms first seen after `from` itself.
    if fixture("020").is_none() {
        return;
    }
    let server = MockServer::start().await;
    mount_field_caps(&server, "logs-aws.cloudtrail-*").await;
    Mock::given(method("POST"))
        .and(path("/logs-aws.cloudtrail-*/_search"))
        .and(|r: &Request| body_json(r)["aggs"]["new_terms"]["aggs"].get("filtering_agg").is_some())
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": {"root_cause": [{"type": "parsing_exception", "reason": "Unknown aggregation type [bucket_selector]"}], "type": "parsing_exception", "reason": "Unknown aggregation type [bucket_selector]"}, "status": 400})))
        .expect(1)
        .mount(&server)
        .await;
    let from_ms = t(FROM).timestamp_millis() as f64;
    Mock::given(method("POST"))
        .and(path("/logs-aws.cloudtrail-*/_search"))
        .and(|r: &Request| {
            let aggs = &body_json(r)["aggs"]["new_terms"]["aggs"];
            aggs.get("first_seen").is_some() && aggs.get("filtering_agg").is_none()
        })
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"aggregations": {"new_terms": {"buckets": [
                {"key": "alice", "doc_count": 3, "first_seen": {"value": from_ms - 86_400_000.0}},
                {"key": "carol", "doc_count": 1, "first_seen": {"value": from_ms + 60_000.0}},
                {"key": "nobody", "doc_count": 0, "first_seen": {"value": null}}
            ]}}}),
        ))
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/logs-aws.cloudtrail-*/_search"))
        .and(|r: &Request| body_json(r)["aggs"]["new_terms"]["aggs"].get("docs").is_some())
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"aggregations": {"new_terms": {"buckets": [
            {"key": "carol", "doc_count": 1, "docs": {"hits": {"hits": [{"_index": "i", "_id": "c1", "_source": {"user": {"name": "carol"}}, "sort": [1]}]}}}
        ]}}})))
        .expect(2)
        .mount(&server)
        .await;
    let b = backend(&server.uri());
    let indices = vec!["logs-aws.cloudtrail-*".to_string()];
    let query = is("event.action", "CreateDocument");
    let time = at_timestamp();
    let q = spec(&indices, &query, &time);
    let tuples = vec![
        vec![json!("alice")],
        vec![json!("carol")],
        vec![json!("nobody")],
    ];
    for _ in 0..2 {
        // the second execution goes straight to the request without the selector
        let new = b
            .new_terms(
                &q,
                &["user.name".to_string()],
                t(HISTORY),
                &tuples,
                &ExecStats::default(),
            )
            .await
            .unwrap();
        assert_eq!(new.len(), 1);
        assert_eq!(new[0].values, vec![json!("carol")]);
        assert_eq!(new[0].hit.id, "c1");
    }
    let reqs = server.received_requests().await.unwrap();
    let first_docs = reqs
        .iter()
        .map(body_json)
        .find(|b| b["aggs"]["new_terms"]["aggs"].get("docs").is_some())
        .unwrap();
    assert_eq!(
        first_docs["aggs"]["new_terms"]["terms"]["include"],
        json!(["carol"])
    );
}

/// A composite threshold response page (hand-written in the shape Elasticsearch answers: no
/// threshold exchange is among the recorded fixtures).
fn threshold_reply(buckets: Value, after_key: Option<Value>) -> ResponseTemplate {
    let mut agg = json!({"buckets": buckets});
    if let Some(a) = after_key {
        agg["after_key"] = a;
    }
    ResponseTemplate::new(200).set_body_json(json!({
        "took": 3, "timed_out": false,
        "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
        "hits": {"hits": []},
        "aggregations": {"new_terms": agg}
    }))
}

#[tokio::test]
async fn threshold_buckets_page_the_composite_with_history_exclusions_and_times() {
    if fixture("020").is_none() {
        return;
    }
    let server = MockServer::start().await;
    mount_field_caps(&server, "logs-aws.cloudtrail-*").await;
    let key = |u: &str| json!({"user.name": u});
    let bucket = |u: &str, n: u64, ips: u64, min: f64, max: f64| {
        json!({"key": key(u), "doc_count": n, "min_time": {"value": min}, "max_time": {"value": max},
            "fallback": {"doc_count": 0, "min": {"value": null}, "max": {"value": null}},
            "cardinality_0": {"value": ips}})
    };
    let pages = [
        (
            None,
            threshold_reply(
                json!([
                    bucket("alice", 5, 2, 1_795_982_700_000.0, 1_795_983_000_000.0),
                    bucket("bob", 1, 1, 1_795_982_800_000.0, 1_795_982_800_000.0)
                ]),
                Some(key("bob")),
            ),
        ),
        (
            Some(key("bob")),
            threshold_reply(
                // carol's events lack the override: first/last come from the fallback
                json!([{"key": key("carol"), "doc_count": 3,
                    "min_time": {"value": null}, "max_time": {"value": null},
                    "fallback": {"doc_count": 3, "min": {"value": 1_795_982_600_000.0}, "max": {"value": 1_795_982_900_000.0}},
                    "cardinality_0": {"value": 3}}]),
                Some(key("carol")),
            ),
        ),
        (Some(key("carol")), threshold_reply(json!([]), None)),
    ];
    for (after, resp) in pages {
        Mock::given(method("POST"))
            .and(path("/logs-aws.cloudtrail-*/_search"))
            .and(move |r: &Request| {
                body_json(r)["aggs"]["new_terms"]["composite"]
                    .get("after")
                    .cloned()
                    == after
            })
            .respond_with(resp)
            .mount(&server)
            .await;
    }
    let b = backend(&server.uri());
    let indices = vec!["logs-aws.cloudtrail-*".to_string()];
    let query = is("event.action", "ConsoleLogin");
    let time = TimeField {
        primary: "event.ingested".into(),
        fallback_to_timestamp: true,
    };
    let q = spec(&indices, &query, &time);
    let th = ThresholdSpec {
        fields: vec!["user.name".into()],
        cardinality: vec!["source.ip".into()],
    };
    let history = vec![ThresholdSignal {
        terms: vec![("user.name".into(), json!("dave"))],
        last: t("2026-11-23T20:30:00Z"),
    }];
    let stats = ExecStats::default();
    let (mut all, mut after, mut n) = (Vec::new(), None::<Value>, 0);
    loop {
        let p = b
            .threshold_page(&q, &th, &history, 2, after.as_ref(), &stats)
            .await
            .unwrap();
        n += 1;
        all.extend(p.buckets);
        match p.after {
            Some(a) => after = Some(a),
            None => break,
        }
    }
    assert_eq!(n, 3, "pages until an empty page without after_key");
    assert_eq!(all.len(), 3);
    assert_eq!(all[0].terms, vec![json!("alice")]);
    assert_eq!((all[0].count, all[0].cardinality.clone()), (5, vec![2]));
    assert_eq!(
        (all[0].first_ms, all[0].last_ms),
        (1_795_982_700_000, 1_795_983_000_000)
    );
    assert_eq!(
        (all[2].first_ms, all[2].last_ms),
        (1_795_982_600_000, 1_795_982_900_000),
        "the fallback's times when the override is missing"
    );
    check("threshold_buckets", &sent(&server).await);
}

#[tokio::test]
async fn threshold_without_fields_is_one_filter_bucket() {
    if fixture("020").is_none() {
        return;
    }
    let server = MockServer::start().await;
    mount_field_caps(&server, "logs-aws.cloudtrail-*").await;
    Mock::given(method("POST"))
        .and(path("/logs-aws.cloudtrail-*/_search"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "_shards": {"total": 1, "successful": 1, "failed": 0},
            "hits": {"hits": []},
            "aggregations": {"new_terms": {"doc_count": 7,
                "min_time": {"value": 1_795_982_700_000.0, "value_as_string": "2026-11-23T20:05:00.000Z"},
                "max_time": {"value": 1_795_983_000_000.0}}}
        })))
        .mount(&server)
        .await;
    let b = backend(&server.uri());
    let indices = vec!["logs-aws.cloudtrail-*".to_string()];
    let query = is("event.action", "DeleteSecret");
    let time = at_timestamp();
    let q = spec(&indices, &query, &time);
    let p = b
        .threshold_page(
            &q,
            &ThresholdSpec::default(),
            &[],
            10_000,
            None,
            &ExecStats::default(),
        )
        .await
        .unwrap();
    assert!(p.after.is_none());
    assert_eq!(p.buckets.len(), 1);
    assert_eq!((p.buckets[0].count, p.buckets[0].terms.len()), (7, 0));
    check("threshold_no_fields", &sent(&server).await);
}

#[tokio::test]
async fn threshold_history_refreshes_then_reads_the_rules_threshold_alerts() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/detectd-alerts-default/_refresh"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"_shards": {"total": 1, "successful": 1, "failed": 0}})),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/detectd-alerts-default/_search"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "_shards": {"total": 1, "successful": 1, "failed": 0},
            "hits": {"hits": [
                {"_index": "detectd-alerts-default-000001", "_id": "x1", "_source": {
                    "kibana.alert.threshold_result": {"terms": [{"field": "user.name", "value": "alice"}], "count": 3, "from": "2026-11-23T20:06:00.000Z"},
                    "kibana.alert.original_time": "2026-11-23T20:08:00.000Z",
                    "kibana.alert.rule.rule_id": "r1"}},
                {"_index": "detectd-alerts-default-000001", "_id": "x2", "_source": {"odd": true}}
            ]}
        })))
        .mount(&server)
        .await;
    let b = backend(&server.uri());
    let h = b
        .threshold_history("r1", t(FROM), &ExecStats::default())
        .await
        .unwrap();
    assert_eq!(
        h,
        vec![ThresholdSignal {
            terms: vec![("user.name".into(), json!("alice"))],
            last: t("2026-11-23T20:08:00Z"),
        }],
        "a hit that is not a threshold alert is skipped"
    );
    check("threshold_history", &sent(&server).await);
}
