//! Elasticsearch faults against a mock cluster, through the engine (`detectd::engine::execute`):
//! after each fault the execution is either failed (so the scheduler does not advance the
//! window) or succeeded with every alert acknowledged, and a re-run after a failure creates each
//! missing alert once and nothing twice. Error bodies are the recorded ones from
//! `../shared/data/es-fixtures` where one exists (PIT expiry: 033, search rejection: 128).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use detectd::backend::elasticsearch::ElasticsearchBackend;
use detectd::engine::{execute, ExecRule, ExecutionResult, Status, Window};
use serde_json::{json, Value};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const FROM: &str = "2026-11-23T20:04:28Z";
const TO: &str = "2026-11-23T21:04:28Z";

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

/// A recorded response body by fixture number, or `fallback` when the data is absent.
fn fixture_body(num: &str, fallback: Value) -> Value {
    let Some(dir) = common::shared_data("es-fixtures") else {
        return fallback;
    };
    let Some(p) = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&format!("{num}-"))
        })
    else {
        return fallback;
    };
    let v: Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
    v["response"].clone()
}

/// Which request a fault hook sees: the kind and how many of that kind came before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    FirstPage,
    PitPage,
    Bulk,
    Other,
}

type Fault = Box<dyn Fn(Kind, usize, &Request) -> Option<ResponseTemplate> + Send + Sync>;

/// A small cluster: `docs` matching events, point in time, `_bulk` create (201 the first time
/// an id is seen, 409 after), and a fault hook consulted before each answer.
struct Cluster {
    docs: usize,
    created: Mutex<BTreeMap<String, usize>>,
    counts: Mutex<BTreeMap<&'static str, usize>>,
    fault: Mutex<Option<Fault>>,
    requests: AtomicUsize,
}

impl Cluster {
    fn new(docs: usize) -> Arc<Cluster> {
        Arc::new(Cluster {
            docs,
            created: Mutex::new(BTreeMap::new()),
            counts: Mutex::new(BTreeMap::new()),
            fault: Mutex::new(None),
            requests: AtomicUsize::new(0),
        })
    }

    fn set_fault(&self, f: Option<Fault>) {
        *self.fault.lock().unwrap() = f;
    }

    fn hits(&self, body: &Value) -> Value {
        let size = body["size"].as_u64().unwrap_or(10) as usize;
        let after = body["search_after"][0]
            .as_i64()
            .map_or(0, |a| a as usize + 1);
        let hits: Vec<Value> = (after..self.docs)
            .take(size)
            .map(|i| {
                json!({"_index": "events-1", "_id": format!("e{i}"), "_source": {"@timestamp": FROM, "event": {"action": "StopLogging"}}, "sort": [i]})
            })
            .collect();
        json!({"took": 1, "timed_out": false, "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0}, "hits": {"hits": hits}})
    }
}

struct Responder(Arc<Cluster>);

impl Respond for Responder {
    fn respond(&self, r: &Request) -> ResponseTemplate {
        self.0.requests.fetch_add(1, Ordering::SeqCst);
        let p = r.url.path().to_string();
        let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        let kind = if p == "/events/_search" {
            Kind::FirstPage
        } else if p == "/_search" {
            Kind::PitPage
        } else if p.ends_with("/_bulk") {
            Kind::Bulk
        } else {
            Kind::Other
        };
        let n = {
            let mut c = self.0.counts.lock().unwrap();
            let e = c.entry(format!("{kind:?}").leak()).or_insert(0);
            *e += 1;
            *e - 1
        };
        if let Some(f) = self.0.fault.lock().unwrap().as_ref() {
            if let Some(resp) = f(kind, n, r) {
                return resp;
            }
        }
        let ok = |v: Value| ResponseTemplate::new(200).set_body_json(v);
        match kind {
            Kind::FirstPage | Kind::PitPage => ok(self.0.hits(&body)),
            Kind::Bulk => {
                let text = String::from_utf8(r.body.clone()).unwrap();
                let lines: Vec<&str> = text.lines().collect();
                let mut items = Vec::new();
                for pair in lines.chunks(2) {
                    let action: Value = serde_json::from_str(pair[0]).unwrap();
                    let id = action["create"]["_id"].as_str().unwrap_or("").to_string();
                    let mut created = self.0.created.lock().unwrap();
                    let c = created.entry(id.clone()).or_insert(0);
                    *c += 1;
                    let status = if *c == 1 { 201 } else { 409 };
                    items.push(
                        json!({"create": {"_index": "alerts-000001", "_id": id, "status": status}}),
                    );
                }
                ok(json!({"took": 1, "errors": true, "items": items}))
            }
            Kind::Other if p == "/" => ok(
                json!({"name": "n", "cluster_name": "c", "version": {"number": "7.10.2", "distribution": "default"}, "tagline": "You Know, for Search"}),
            ),
            Kind::Other if p.ends_with("/_field_caps") => ok(
                json!({"indices": ["events-1"], "fields": {"event.action": {"keyword": {"type": "keyword", "searchable": true, "aggregatable": true}}, "@timestamp": {"date": {"type": "date", "searchable": true, "aggregatable": true}}}}),
            ),
            Kind::Other if p.ends_with("/_pit") && r.method.as_str() == "POST" => {
                ok(json!({"id": "pit-1"}))
            }
            Kind::Other if p == "/_pit" => ok(json!({"succeeded": true, "num_freed": 1})),
            Kind::Other => ResponseTemplate::new(404)
                .set_body_json(json!({"error": {"type": "not_found", "reason": p}, "status": 404})),
        }
    }
}

fn rule(max_signals: u32) -> ExecRule {
    let text = format!(
        "[metadata]\ncreation_date = \"2026/11/01\"\nmaturity = \"production\"\nupdated_date = \"2026/11/01\"\n[rule]\nauthor = [\"t\"]\ndescription = \"d\"\nindex = [\"events\"]\nlanguage = \"kuery\"\nlicense = \"Apache-2.0\"\nname = \"n\"\nrisk_score = 21\nrule_id = \"fault-rule\"\nseverity = \"low\"\ntype = \"query\"\nmax_signals = {max_signals}\nquery = \"event.action: StopLogging\"\n"
    );
    let rule = detectd::rules::load_str(&text, std::path::Path::new("fault.toml"))
        .unwrap()
        .rule;
    ExecRule::from_rule(&rule).unwrap()
}

fn backend(uri: &str, timeout_secs: u64) -> ElasticsearchBackend {
    common::fixtures::mock_backend(uri, timeout_secs, 3)
}

async fn start(docs: usize) -> (MockServer, Arc<Cluster>) {
    let server = MockServer::start().await;
    let cluster = Cluster::new(docs);
    Mock::given(any())
        .respond_with(Responder(cluster.clone()))
        .mount(&server)
        .await;
    (server, cluster)
}

async fn run(exec: &ExecRule, b: &ElasticsearchBackend) -> ExecutionResult {
    let window = Window {
        from: t(FROM),
        to: t(TO),
    };
    execute(exec, window, b, "x", t(TO)).await
}

/// Every alert id the cluster holds was created exactly once, and there are `n` of them.
fn assert_each_alert_once(cluster: &Cluster, runs: &[&ExecutionResult], n: usize) {
    let mut created: Vec<&String> = runs.iter().flat_map(|r| &r.created_ids).collect();
    let total = created.len();
    created.sort();
    created.dedup();
    assert_eq!(created.len(), total, "an alert was created twice");
    assert_eq!(total, n, "alerts created over all runs");
    assert_eq!(cluster.created.lock().unwrap().len(), n);
}

/// A failed execution (the scheduler keeps the window), or a succeeded one whose alerts were
/// all acknowledged.
fn assert_failed_or_complete(r: &ExecutionResult, expected_alerts: u64) {
    match r.status {
        Status::Failed => {}
        _ => assert_eq!(
            r.alerts_created + r.duplicates,
            expected_alerts,
            "a window that is not failed has every alert acknowledged: {r:?}"
        ),
    }
}

#[tokio::test]
async fn connection_refused_at_start_fails_the_execution() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    drop(l);
    let started = Instant::now();
    let r = run(&rule(100), &backend(&url, 5)).await;
    assert_eq!(r.status, Status::Failed, "{r:?}");
    assert_eq!(r.alerts_created, 0);
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn a_node_that_stops_answering_mid_paging_fails_and_the_rerun_alerts_once() {
    let (server, cluster) = start(150).await;
    let exec = rule(200);
    // The first page (100, full) is read and alerted, then the node stops answering while the
    // point in time is paged (no reply within the 1 s timeout).
    cluster.set_fault(Some(Box::new(|kind, _, _| {
        (kind == Kind::PitPage)
            .then(|| ResponseTemplate::new(200).set_delay(Duration::from_secs(3)))
    })));
    let b = backend(&server.uri(), 1);
    let first = run(&exec, &b).await;
    assert_eq!(first.status, Status::Failed, "{first:?}");
    assert_failed_or_complete(&first, 150);

    // The node answers again: the window runs again (the scheduler did not advance it).
    cluster.set_fault(None);
    let second = run(&exec, &b).await;
    assert_eq!(second.status, Status::Succeeded, "{second:?}");
    assert_eq!(second.alerts_created + second.duplicates, 150);
    assert_each_alert_once(&cluster, &[&first, &second], 150);
}

/// A TCP proxy in front of the mock cluster that can go down for real: its connections are
/// cut and its port closed, so a client sees a reset and then "connection refused"; it comes
/// back on the same port.
struct Proxy {
    addr: std::net::SocketAddr,
    target: std::net::SocketAddr,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Proxy {
    async fn start(target: std::net::SocketAddr) -> Arc<Proxy> {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let p = Arc::new(Proxy {
            addr,
            target,
            task: Mutex::new(None),
        });
        p.up();
        p
    }

    /// Listens again on the same port.
    fn up(&self) {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.set_reuseaddr(true).unwrap();
        sock.bind(self.addr).unwrap();
        let listener = sock.listen(64).unwrap();
        let target = self.target;
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            // Dropping this task (abort) drops the listener and every connection with it.
            while let Ok((mut inbound, _)) = listener.accept().await {
                conns.spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        *self.task.lock().unwrap() = Some(task);
    }

    /// Cuts every connection and closes the port.
    fn down(&self) {
        if let Some(t) = self.task.lock().unwrap().take() {
            t.abort();
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

#[tokio::test]
async fn a_node_that_goes_down_mid_paging_fails_the_execution_and_the_rerun_alerts_once() {
    let (server, cluster) = start(250).await;
    let proxy = Proxy::start(*server.address()).await;
    let exec = rule(300);
    // The first page (100) is read and alerted; while the point in time is paged the node goes
    // down: the connection of that request is cut, and the retries find the port closed.
    let p = proxy.clone();
    cluster.set_fault(Some(Box::new(move |kind, _, _| {
        (kind == Kind::PitPage).then(|| {
            p.down();
            ResponseTemplate::new(200).set_delay(Duration::from_secs(2))
        })
    })));
    let b = backend(&proxy.url(), 5);
    let first = run(&exec, &b).await;
    assert_eq!(first.status, Status::Failed, "{first:?}");
    let message = first.message.clone().unwrap_or_default();
    assert!(!message.is_empty(), "the failure says why: {first:?}");
    assert_failed_or_complete(&first, 250);
    assert!(
        tokio::net::TcpStream::connect(proxy.addr).await.is_err(),
        "the port is closed while the node is down"
    );
    assert!(first.alerts_created < 250, "{first:?}");

    // The node is back on the same address: the same window runs again (the scheduler did not
    // advance it); every alert exists once.
    cluster.set_fault(None);
    proxy.up();
    let second = run(&exec, &b).await;
    assert_eq!(second.status, Status::Succeeded, "{second:?}");
    assert_eq!(second.alerts_created + second.duplicates, 250);
    assert_each_alert_once(&cluster, &[&first, &second], 250);
    eprintln!("node down mid-paging: {message}");
}

#[tokio::test]
async fn a_search_timeout_fails_the_execution() {
    let (server, cluster) = start(5).await;
    cluster.set_fault(Some(Box::new(|kind, _, _| {
        (kind == Kind::FirstPage).then(|| {
            ResponseTemplate::new(200)
                .set_body_json(json!({"hits": {"hits": []}}))
                .set_delay(Duration::from_secs(3))
        })
    })));
    let exec = rule(100);
    let b = backend(&server.uri(), 1);
    let started = Instant::now();
    let r = run(&exec, &b).await;
    assert_eq!(r.status, Status::Failed, "{r:?}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    cluster.set_fault(None);
    let again = run(&exec, &b).await;
    assert_eq!(again.status, Status::Succeeded);
    assert_each_alert_once(&cluster, &[&r, &again], 5);
}

#[tokio::test]
async fn retry_after_is_honoured_on_429() {
    let (server, cluster) = start(5).await;
    let rejected = fixture_body(
        "128",
        json!({"error": {"type": "es_rejected_execution_exception", "reason": "rejected execution"}, "status": 429}),
    );
    cluster.set_fault(Some(Box::new(move |kind, n, _| {
        (kind == Kind::FirstPage && n == 0).then(|| {
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "2")
                .set_body_json(rejected.clone())
        })
    })));
    let started = Instant::now();
    let r = run(&rule(100), &backend(&server.uri(), 5)).await;
    let took = started.elapsed();
    assert_eq!(r.status, Status::Succeeded, "{r:?}");
    assert_eq!(r.alerts_created, 5);
    // The backoff alone is 1 ms: the wait is the server's.
    assert!(
        took >= Duration::from_secs(2),
        "Retry-After: 2 not honoured ({took:?})"
    );
    assert_each_alert_once(&cluster, &[&r], 5);
}

#[tokio::test]
async fn a_503_without_retry_after_is_retried_with_backoff_then_fails() {
    let (server, cluster) = start(5).await;
    cluster.set_fault(Some(Box::new(|kind, _, _| {
        (kind == Kind::FirstPage).then(|| {
            ResponseTemplate::new(503).set_body_json(json!({"error": {"type": "unavailable_shards_exception", "reason": "primary shard is not active"}, "status": 503}))
        })
    })));
    let exec = rule(100);
    let b = backend(&server.uri(), 5);
    let r = run(&exec, &b).await;
    assert_eq!(r.status, Status::Failed, "{r:?}");
    assert!(r.message.as_deref().unwrap_or("").contains("503"), "{r:?}");
    assert_eq!(
        cluster.counts.lock().unwrap()["FirstPage"],
        4,
        "one try and three retries"
    );
    cluster.set_fault(None);
    let again = run(&exec, &b).await;
    assert_eq!(again.status, Status::Succeeded);
    assert_each_alert_once(&cluster, &[&r, &again], 5);
}

#[tokio::test]
async fn a_500_fails_the_execution_without_retrying() {
    let (server, cluster) = start(5).await;
    cluster.set_fault(Some(Box::new(|kind, _, _| {
        (kind == Kind::FirstPage).then(|| {
            ResponseTemplate::new(500).set_body_json(
                json!({"error": {"type": "null_pointer_exception", "reason": null}, "status": 500}),
            )
        })
    })));
    let r = run(&rule(100), &backend(&server.uri(), 5)).await;
    assert_eq!(r.status, Status::Failed, "{r:?}");
    assert_eq!(cluster.counts.lock().unwrap()["FirstPage"], 1);
    assert_eq!(r.alerts_created, 0);
}

#[tokio::test]
async fn shard_failures_alert_what_was_found_say_so_and_fail_the_window() {
    let (server, cluster) = start(5).await;
    let c2 = cluster.clone();
    cluster.set_fault(Some(Box::new(move |kind, _, r| {
        (kind == Kind::FirstPage).then(|| {
            let body: Value = serde_json::from_slice(&r.body).unwrap();
            let mut v = c2.hits(&body);
            v["_shards"] = json!({"total": 2, "successful": 1, "skipped": 0, "failed": 1, "failures": [{"shard": 0, "index": "events-2", "node": "n", "reason": {"type": "illegal_argument_exception", "reason": "boom"}}]});
            ResponseTemplate::new(200).set_body_json(v)
        })
    })));
    let b = backend(&server.uri(), 5);
    let r = run(&rule(100), &b).await;
    // what the good shard found is alerted, the failure is on the record, and the execution
    // fails so the scheduler keeps the window and searches it again (as Kibana does)
    assert_eq!(r.status, Status::Failed, "{r:?}");
    assert_eq!(r.alerts_created, 5, "{r:?}");
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("shard") && w.contains("boom")),
        "a partial result is on the execution record: {r:?}"
    );
    // the shard is back: the re-run succeeds and creates nothing twice
    cluster.set_fault(None);
    let again = run(&rule(100), &b).await;
    assert_eq!(again.status, Status::Succeeded, "{again:?}");
    assert_eq!(again.duplicates, 5);
    assert_each_alert_once(&cluster, &[&r, &again], 5);
}

#[tokio::test]
async fn an_expired_point_in_time_fails_the_execution_and_the_rerun_alerts_once() {
    let (server, cluster) = start(250).await;
    let missing = fixture_body(
        "033",
        json!({"error": {"root_cause": [{"type": "search_context_missing_exception", "reason": "No search context found for id [1]"}], "type": "search_phase_execution_exception", "reason": "all shards failed"}, "status": 404}),
    );
    // The second PIT page finds its context gone (keep_alive elapsed, node restarted).
    cluster.set_fault(Some(Box::new(move |kind, n, _| {
        (kind == Kind::PitPage && n == 1)
            .then(|| ResponseTemplate::new(404).set_body_json(missing.clone()))
    })));
    let exec = rule(1000);
    let b = backend(&server.uri(), 5);
    let first = run(&exec, &b).await;
    assert_eq!(first.status, Status::Failed, "{first:?}");
    assert!(
        first
            .message
            .as_deref()
            .unwrap_or("")
            .contains("search_context_missing"),
        "{first:?}"
    );
    cluster.set_fault(None);
    let second = run(&exec, &b).await;
    assert_eq!(second.status, Status::Succeeded, "{second:?}");
    assert_eq!(second.alerts_created + second.duplicates, 250);
    assert_each_alert_once(&cluster, &[&first, &second], 250);
}

#[tokio::test]
async fn bulk_items_that_keep_failing_fail_the_execution_and_only_they_are_retried() {
    let (server, cluster) = start(6).await;
    let c2 = cluster.clone();
    // The items at positions 0 and 3 of the first bulk are refused with a 503 every time they are
    // sent;
    // the others are created (201) or already there (409).
    let failing: Arc<Mutex<Option<Vec<String>>>> = Arc::new(Mutex::new(None));
    cluster.set_fault(Some(Box::new(move |kind, _, r| {
        (kind == Kind::Bulk).then(|| {
            let text = String::from_utf8(r.body.clone()).unwrap();
            let ids: Vec<String> = text
                .lines()
                .step_by(2)
                .map(|l| {
                    let action: Value = serde_json::from_str(l).unwrap();
                    action["create"]["_id"].as_str().unwrap().to_string()
                })
                .collect();
            let mut f = failing.lock().unwrap();
            let fail = f.get_or_insert_with(|| vec![ids[0].clone(), ids[3].clone()]);
            let mut items = Vec::new();
            for id in ids {
                if fail.contains(&id) {
                    items.push(json!({"create": {"_id": id, "status": 503, "error": {"type": "unavailable_shards_exception", "reason": "primary shard is not active"}}}));
                } else {
                    let mut created = c2.created.lock().unwrap();
                    let c = created.entry(id.clone()).or_insert(0);
                    *c += 1;
                    let status = if *c == 1 { 201 } else { 409 };
                    items.push(json!({"create": {"_id": id, "status": status}}));
                }
            }
            ResponseTemplate::new(200).set_body_json(json!({"errors": true, "items": items}))
        })
    })));
    let exec = rule(100);
    let b = backend(&server.uri(), 5);
    let first = run(&exec, &b).await;
    // Not succeeded: the service's executor counts a window with unwritten alerts as failed, so
    // the scheduler runs it again.
    assert_ne!(first.status, Status::Succeeded, "{first:?}");
    assert_eq!(first.failed_writes, 2, "{first:?}");
    assert_eq!(first.alerts_created, 4);
    let sent = server.received_requests().await.unwrap();
    let bulks: Vec<usize> = sent
        .iter()
        .filter(|r| r.url.path().ends_with("/_bulk"))
        .map(|r| String::from_utf8_lossy(&r.body).lines().count() / 2)
        .collect();
    assert_eq!(bulks[0], 6);
    assert!(bulks.len() > 1, "failing items are retried: {bulks:?}");
    assert!(
        bulks[1..].iter().all(|n| *n == 2),
        "only the failing items are retried: {bulks:?}"
    );
    cluster.set_fault(None);
    let second = run(&exec, &b).await;
    assert_eq!(second.status, Status::Succeeded, "{second:?}");
    assert_eq!(second.alerts_created, first.failed_writes);
    assert_eq!(second.duplicates, 6 - first.failed_writes, "409 is success");
    assert_each_alert_once(&cluster, &[&first, &second], 6);
}

#[tokio::test]
async fn a_rule_with_10000_values_is_reported_by_the_cluster_not_a_crash() {
    let (server, cluster) = start(5).await;
    let refused = fixture_body(
        "075",
        json!({"error": {"root_cause": [{"type": "too_many_clauses", "reason": "maxClauseCount is set to 1024"}], "type": "search_phase_execution_exception", "reason": "all shards failed"}, "status": 400}),
    );
    cluster.set_fault(Some(Box::new(move |kind, _, _| {
        (kind == Kind::FirstPage).then(|| ResponseTemplate::new(400).set_body_json(refused.clone()))
    })));
    let values: Vec<String> = (0..10_000).map(|i| format!("\"user-{i}\"")).collect();
    let text = format!(
        "[metadata]\ncreation_date = \"2026/11/01\"\nmaturity = \"production\"\nupdated_date = \"2026/11/01\"\n[rule]\nauthor = [\"t\"]\ndescription = \"d\"\nindex = [\"events\"]\nlanguage = \"kuery\"\nlicense = \"Apache-2.0\"\nname = \"n\"\nrisk_score = 21\nrule_id = \"many-values\"\nseverity = \"low\"\ntype = \"query\"\nquery = '''\nuser.name: ({})\n'''\n",
        values.join(" or ")
    );
    let rule = detectd::rules::load_str(&text, std::path::Path::new("many.toml"))
        .unwrap()
        .rule;
    let exec = ExecRule::from_rule(&rule).unwrap();
    let r = run(&exec, &backend(&server.uri(), 5)).await;
    assert_eq!(r.status, Status::Failed, "{r:?}");
    let msg = r.message.clone().unwrap_or_default();
    assert!(
        msg.contains("clause") || msg.contains("maxClauseCount"),
        "{msg}"
    );
    // The request carried every value (one should clause each), as Kibana sends it.
    let sent = server.received_requests().await.unwrap();
    let body = sent
        .iter()
        .find(|r| r.url.path() == "/events/_search")
        .map(|r| String::from_utf8_lossy(&r.body).to_string())
        .unwrap();
    assert!(body.contains("user-9999"));
    assert_eq!(r.alerts_created, 0);
}
