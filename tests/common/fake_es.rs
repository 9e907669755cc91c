//! A fake Elasticsearch for `detectd run` end to end (a `wiremock` responder): it answers every
//! request the service sends — `GET /`, the start-up setup, the health check, field caps,
//! searches, `_bulk`, the old per-document state writes — the way a 7.10 node does, with
//! optional latencies: `search_delay` for every search and `refresh_delay` for any request with
//! `refresh=wait_for` (a real node holds those until its next refresh, up to 1 s). It counts
//! what it was sent. Used by tests/es_service.rs and benches/es_scheduler.rs.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use wiremock::{Request, Respond, ResponseTemplate};

/// How the fake behaves.
#[derive(Debug, Clone)]
pub struct FakeOptions {
    /// `version.number` of `GET /`.
    pub version: String,
    pub search_delay: Duration,
    pub refresh_delay: Duration,
    /// A rule search whose body contains this text is refused with the 400 a 7.10 node gives a
    /// `wildcard` on a keyed `flattened` field.
    pub refuse_marker: Option<String>,
    /// Every n-th rule search returns one hit (0: never).
    pub hit_every: u64,
}

impl Default for FakeOptions {
    fn default() -> Self {
        FakeOptions {
            version: "7.10.0".into(),
            search_delay: Duration::ZERO,
            refresh_delay: Duration::ZERO,
            refuse_marker: None,
            hit_every: 0,
        }
    }
}

/// What the fake was sent.
#[derive(Debug, Default)]
pub struct FakeCounts {
    /// Rule searches (not probes, not state reads).
    pub rule_searches: AtomicU64,
    pub refused: AtomicU64,
    pub alerts_created: AtomicU64,
    pub state_docs: AtomicU64,
    pub records: AtomicU64,
    pub refresh_waits: AtomicU64,
    /// First and last rule search, for a rate.
    pub first_last: Mutex<Option<(Instant, Instant)>>,
    /// `rule_id` and `status` of each execution record, in arrival order.
    pub record_docs: Mutex<Vec<String>>,
    /// Rule searches by index pattern path.
    pub by_path: Mutex<BTreeMap<String, u64>>,
}

pub struct FakeEs {
    pub opts: FakeOptions,
    pub counts: Arc<FakeCounts>,
}

const REFUSED: &str = r#"{"error": {"root_cause": [{"type": "query_shard_exception", "reason": "failed to create query: [wildcard] queries are not currently supported on keyed [flattened] fields.", "index": "events-1"}], "type": "search_phase_execution_exception", "reason": "all shards failed", "phase": "query", "grouped": true}, "status": 400}"#;

impl FakeEs {
    pub fn new(opts: FakeOptions) -> (FakeEs, Arc<FakeCounts>) {
        let counts = Arc::new(FakeCounts::default());
        (
            FakeEs {
                opts,
                counts: counts.clone(),
            },
            counts,
        )
    }

    fn answer(&self, r: &Request) -> (u16, Value, Duration) {
        let path = r.url.path();
        let query = r.url.query().unwrap_or("");
        let method = r.method.as_str();
        let wait = if query.contains("refresh=wait_for") {
            self.counts.refresh_waits.fetch_add(1, Ordering::Relaxed);
            self.opts.refresh_delay
        } else {
            Duration::ZERO
        };
        let ok = |v: Value| (200, v, wait);
        if path == "/" {
            return ok(
                json!({"version": {"number": self.opts.version}, "tagline": "You Know, for Search"}),
            );
        }
        if path.starts_with("/_index_template/") {
            return ok(json!({"acknowledged": true}));
        }
        if let Some(alias) = path.strip_prefix("/_alias/") {
            return ok(
                json!({format!("{alias}-000001"): {"aliases": {alias: {"is_write_index": true}}}}),
            );
        }
        if method == "HEAD" || (method == "PUT" && path.matches('/').count() == 1) {
            return ok(json!({"acknowledged": true}));
        }
        if path.ends_with("/_field_caps") {
            let kw =
                json!({"keyword": {"type": "keyword", "searchable": true, "aggregatable": true}});
            let date = json!({"date": {"type": "date", "searchable": true, "aggregatable": true}});
            return ok(json!({"indices": ["events-1"], "fields": {
                "@timestamp": date, "event.ingested": date,
                "event.action": kw, "event.provider": kw, "event.outcome": kw,
                "event.dataset": kw, "user.name": kw
            }}));
        }
        if path.ends_with("/_refresh") {
            return ok(json!({"_shards": {"total": 1, "successful": 1, "failed": 0}}));
        }
        if path.ends_with("/_pit") || path == "/_pit" {
            return if method == "DELETE" {
                ok(json!({"succeeded": true, "num_freed": 1}))
            } else {
                ok(json!({"id": "fake-pit"}))
            };
        }
        if path.ends_with("/_bulk") {
            return self.bulk(r, wait);
        }
        if method == "PUT" && path.contains("/_doc/") {
            self.counts.state_docs.fetch_add(1, Ordering::Relaxed);
            return (201, json!({"result": "created"}), wait);
        }
        if method == "POST" && path.ends_with("/_doc") {
            self.counts.records.fetch_add(1, Ordering::Relaxed);
            return (201, json!({"result": "created"}), wait);
        }
        if path.ends_with("/_search") {
            return self.search(r, path, query);
        }
        (
            404,
            json!({"error": format!("fake: no answer for {method} {path}")}),
            Duration::ZERO,
        )
    }

    fn search(&self, r: &Request, path: &str, query: &str) -> (u16, Value, Duration) {
        let empty = json!({"took": 1, "timed_out": false, "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0}, "hits": {"total": {"value": 0, "relation": "eq"}, "max_score": null, "hits": []}});
        // health-check probes, state and record reads
        if query.contains("allow_no_indices=false")
            || path.contains("state/")
            || path.contains("executions/")
            || path.contains("alerts")
        {
            return (200, empty, Duration::ZERO);
        }
        let now = Instant::now();
        {
            let mut fl = self.counts.first_last.lock().unwrap();
            *fl = Some(fl.map_or((now, now), |(f, _)| (f, now)));
        }
        *self
            .counts
            .by_path
            .lock()
            .unwrap()
            .entry(path.to_string())
            .or_default() += 1;
        let n = self.counts.rule_searches.fetch_add(1, Ordering::Relaxed) + 1;
        let body = String::from_utf8_lossy(&r.body);
        if let Some(m) = &self.opts.refuse_marker {
            if body.contains(m.as_str()) {
                self.counts.refused.fetch_add(1, Ordering::Relaxed);
                return (
                    400,
                    serde_json::from_str(REFUSED).unwrap(),
                    self.opts.search_delay,
                );
            }
        }
        let mut resp = empty;
        if body.contains("\"aggs\"") {
            resp["aggregations"] = json!({"new_terms": {"buckets": []}});
        } else if self.opts.hit_every > 0 && n % self.opts.hit_every == 0 {
            resp["hits"]["hits"] = json!([{
                "_index": "events-1",
                "_id": format!("event-{n}"),
                "_source": {"@timestamp": "2026-10-01T00:00:00Z", "event": {"action": "StopLogging"}},
                "sort": [1759276800000u64]
            }]);
        }
        (200, resp, self.opts.search_delay)
    }

    fn bulk(&self, r: &Request, wait: Duration) -> (u16, Value, Duration) {
        let text = String::from_utf8_lossy(&r.body);
        let mut items = Vec::new();
        let lines: Vec<&str> = text.lines().collect();
        for pair in lines.chunks(2) {
            let a: Value = serde_json::from_str(pair[0]).unwrap_or(Value::Null);
            let doc: Value = pair
                .get(1)
                .and_then(|d| serde_json::from_str(d).ok())
                .unwrap_or(Value::Null);
            let Some((op, meta)) = a.as_object().and_then(|o| o.iter().next()) else {
                continue;
            };
            match op.as_str() {
                "create" => {
                    self.counts.alerts_created.fetch_add(1, Ordering::Relaxed);
                }
                _ => {
                    let index = meta["_index"].as_str().unwrap_or_default();
                    if index.ends_with("state") {
                        self.counts.state_docs.fetch_add(1, Ordering::Relaxed);
                    } else {
                        self.counts.records.fetch_add(1, Ordering::Relaxed);
                        self.counts.record_docs.lock().unwrap().push(format!(
                            "{} {} {}",
                            doc["rule_id"].as_str().unwrap_or_default(),
                            doc["status"].as_str().unwrap_or_default(),
                            meta["_id"].as_str().unwrap_or_default()
                        ));
                    }
                }
            }
            items.push(json!({op: {"_index": meta["_index"], "_id": meta["_id"], "status": 201}}));
        }
        (
            200,
            json!({"took": 1, "errors": false, "items": items}),
            wait,
        )
    }
}

impl Respond for FakeEs {
    fn respond(&self, r: &Request) -> ResponseTemplate {
        let (status, body, delay) = self.answer(r);
        let t = ResponseTemplate::new(status).set_body_json(body);
        if delay.is_zero() {
            t
        } else {
            t.set_delay(delay)
        }
    }
}
