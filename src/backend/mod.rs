//! Backends: where events are searched and alerts, rule state and execution records are
//! written. The engine talks only to the narrow [`Backend`] trait, so an executor never knows
//! which backend runs: `elasticsearch` (production) turns the KQL AST into query DSL and sends
//! requests; `embedded` evaluates the same AST locally over ECS documents.
//!
//! Semantics every implementation must honour (../shared/docs/semantics.md §2–§5):
//! - a window is inclusive at both ends, on the primary time field, with the
//!   `timestamp_override` fallback to `@timestamp` unless disabled;
//! - hits come oldest first (time ascending, then a stable tie-break), paged with a cursor;
//! - documents that are alerts (`kibana.alert.*` present) are never returned as events to
//!   alert on;
//! - alert writes are idempotent by id: an id that already exists is a duplicate, not an error;
//! - threshold buckets are composite-like (arrays exploded, ordered by terms) over the window,
//!   a document covered by a signal-history entry (its terms, primary time at or before the
//!   entry's `last`) left out whole, as a `must_not` filter leaves it out.

pub mod elasticsearch;
pub mod embedded;
mod eql;

pub use eql::{EqlResult, EqlSequence, EqlSpec, EQL_NEEDS_ELASTICSEARCH};

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ecs::json::Json;
use crate::ecs::EcsDoc;
use crate::kql::Ast;

/// Kibana's warning when none of a rule's index patterns matches an index (the execution
/// succeeds; no search is sent).
pub fn no_index_warning(patterns: &[String]) -> String {
    format!(
        "This rule is attempting to query data from Elasticsearch indices listed in the \"Index pattern\" section of the rule definition, however no index matching: [\"{}\"] was found. This warning will continue to appear until a matching index is created or this rule is disabled.",
        patterns.join("\",\"")
    )
}

/// ES's limit on `_id` length in bytes.
pub const MAX_ID_BYTES: usize = 512;

/// The stable id a source document gets in both backends (the embedded store, and
/// `detectd ingest` into Elasticsearch, so a second ingest of the same files adds nothing):
/// its `event.id` (CloudTrail's `eventID`) when it is a string, else a hash of its compact
/// JSON text `compact`.
pub fn document_id(doc: &EcsDoc, compact: &str) -> String {
    document_id_with(doc, || compact)
}

/// [`document_id`], asking for the compact text only when the id is its hash.
pub fn document_id_with<S: AsRef<str>>(doc: &EcsDoc, compact: impl FnOnce() -> S) -> String {
    let id = match doc.as_json() {
        // Already-ECS documents may use dotted keys.
        Some(v) => return value_id(&v.to_value()),
        None => match doc.get("event.id") {
            Some(Json::String(s)) => Some(s),
            Some(Json::Array(ids)) => match ids.iter().find(|v| !v.is_null()) {
                Some(Json::String(s)) => Some(s),
                _ => None,
            },
            _ => None,
        },
    };
    match id {
        Some(s) if s.len() <= MAX_ID_BYTES => s.clone(),
        _ => hash_id(compact().as_ref()),
    }
}

/// [`document_id`] of a parsed document.
pub fn value_id(source: &Value) -> String {
    let mut ids = Vec::new();
    crate::fields::values_at(source, "event.id", &mut ids);
    match ids.first() {
        Some(Value::String(s)) if s.len() <= MAX_ID_BYTES => s.clone(),
        _ => hash_id(&source.to_string()),
    }
}

/// The id of a document without a usable `event.id`: a hash of its compact JSON.
fn hash_id(json: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(json.as_bytes());
    hex::encode(&h.finalize()[..16])
}

/// A backend failure, naming what was being done.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The backend could not be reached (connection refused, timeout, TLS).
    #[error("backend unreachable: {0}")]
    Unreachable(String),
    /// The backend answered with an error for this request.
    #[error("{operation} failed: {reason}")]
    Request { operation: String, reason: String },
    /// The cluster refuses the request itself (HTTP 400: a query it cannot run, such as a
    /// `wildcard` on a keyed `flattened` field before 8.x): sending it again cannot help.
    #[error("{operation} refused by the cluster: {reason}")]
    Rejected { operation: String, reason: String },
    /// Elasticsearch `too_many_clauses` (the caller may retry with a smaller batch).
    #[error("{operation} failed: too many clauses in the query")]
    TooManyClauses { operation: String },
    /// The query cannot be run on this backend (e.g. a field type it cannot evaluate).
    #[error("query not supported by this backend: {0}")]
    Unsupported(String),
    /// Local I/O (embedded files, state, alerts file).
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// The time field(s) a window applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeField {
    /// `@timestamp`, or the rule's `timestamp_override` (e.g. `event.ingested`).
    pub primary: String,
    /// With an override: documents missing it fall back to `@timestamp` (unless disabled).
    pub fallback_to_timestamp: bool,
}

/// What to search: the rule's query, filters and index patterns, over an inclusive time range.
#[derive(Debug, Clone)]
pub struct QuerySpec<'a> {
    pub indices: &'a [String],
    pub query: &'a Ast,
    /// Kibana filter objects from the rule (`[[rule.filters]]`), applied as Kibana does.
    pub filters: &'a [Value],
    pub time: &'a TimeField,
    /// Inclusive lower bound.
    pub from: DateTime<Utc>,
    /// Inclusive upper bound.
    pub to: DateTime<Utc>,
}

/// What an ES|QL rule runs (Elasticsearch only): its query over an inclusive time range, the
/// range applied as a query-DSL filter on the time field(s), as for a KQL rule.
#[derive(Debug, Clone)]
pub struct EsqlSpec<'a> {
    /// The rule's ES|QL query as written.
    pub query: &'a str,
    pub time: &'a TimeField,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

/// Why the embedded backend runs no ES|QL rule.
pub const ESQL_NEEDS_ELASTICSEARCH: &str = "ES|QL rules need the Elasticsearch backend";

/// One source document returned by a search.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// The concrete index (or, embedded, the source file) the document lives in.
    pub index: String,
    /// The document id (embedded: a stable id derived from the document).
    pub id: String,
    pub source: Value,
    /// Sort values of this hit: the cursor to continue after it.
    pub sort: Vec<Value>,
}

/// A page of hits; `cursor` continues after the last hit, `None` when there are no more.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub hits: Vec<Hit>,
    pub cursor: Option<Cursor>,
}

/// Opaque continuation of a paged search (Elasticsearch: PIT id + search_after).
#[derive(Debug, Clone, PartialEq)]
pub struct Cursor {
    pub pit: Option<String>,
    pub search_after: Vec<Value>,
}

/// A page of distinct term tuples from a composite aggregation (new_terms phase 1).
#[derive(Debug, Clone, Default)]
pub struct TermsPage {
    /// One tuple per bucket, values in `fields` order (arrays already exploded).
    pub tuples: Vec<Vec<Value>>,
    /// The composite `after_key`; `None` on the last page.
    pub after: Option<Value>,
}

/// A term tuple that is new in the window, with the first document that has it.
#[derive(Debug, Clone)]
pub struct NewTerm {
    pub values: Vec<Value>,
    pub hit: Hit,
}

/// What a threshold rule counts (semantics: Kibana's threshold rule, `[rule.threshold]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ThresholdSpec {
    /// 0–3 fields; empty = one bucket for every matching document.
    pub fields: Vec<String>,
    /// `[[rule.threshold.cardinality]]` fields: each bucket's distinct count of each.
    pub cardinality: Vec<String>,
}

/// One bucket of a threshold aggregation (a term tuple, or everything when there are no
/// fields), over the window minus what the signal history excludes.
#[derive(Debug, Clone, PartialEq)]
pub struct ThresholdBucket {
    /// Values in `fields` order (arrays exploded, as composite sources do).
    pub terms: Vec<Value>,
    /// Matching documents in the bucket.
    pub count: u64,
    /// Distinct values of each cardinality field, in `ThresholdSpec::cardinality` order.
    pub cardinality: Vec<u64>,
    /// The bucket's first and last event time (epoch millis, on the window's time field(s)).
    pub first_ms: i64,
    pub last_ms: i64,
}

/// A page of threshold buckets, ordered by terms; `after` continues, `None` on the last page.
#[derive(Debug, Clone, Default)]
pub struct ThresholdPage {
    pub buckets: Vec<ThresholdBucket>,
    pub after: Option<Value>,
}

/// One entry of a threshold rule's signal history (Kibana's `ThresholdSignalHistory`): a term
/// tuple already alerted, and the time of the last event of the alerted bucket. Documents with
/// these terms at or before `last` are not counted again.
#[derive(Debug, Clone, PartialEq)]
pub struct ThresholdSignal {
    /// (field, value) pairs; empty for a rule without threshold fields.
    pub terms: Vec<(String, Value)>,
    pub last: DateTime<Utc>,
}

/// The signal-history entry of a threshold alert document (as detectd writes it, flat
/// `kibana.alert.*` keys, or nested): its `threshold_result.terms` and `original_time`.
/// `None` for any other document.
pub fn threshold_signal(alert: &Value) -> Option<ThresholdSignal> {
    let get = |flat: &str, nested: &str| alert.get(flat).or_else(|| alert.pointer(nested));
    let result = get(
        "kibana.alert.threshold_result",
        "/kibana/alert/threshold_result",
    )?;
    let last = get("kibana.alert.original_time", "/kibana/alert/original_time")
        .and_then(crate::fields::date_millis)
        .and_then(DateTime::from_timestamp_millis)?;
    let terms = result
        .get("terms")
        .and_then(Value::as_array)
        .map(|ts| {
            ts.iter()
                .filter_map(|t| {
                    Some((
                        t.get("field")?.as_str()?.to_string(),
                        t.get("value")?.clone(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    Some(ThresholdSignal { terms, last })
}

/// An alert ready to write: deterministic id and the full alert document.
#[derive(Debug, Clone)]
pub struct AlertDoc {
    pub id: String,
    pub doc: Value,
}

/// What happened to a batch of alert writes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteOutcome {
    /// Ids written now.
    pub created: Vec<String>,
    /// Ids that already existed (an earlier overlapping window alerted on them).
    pub duplicates: Vec<String>,
    /// Ids that could not be written, with the reason (after retries).
    pub failed: Vec<(String, String)>,
}

/// Round trips and timings of one execution, filled in by the backend as it works.
#[derive(Debug, Default)]
pub struct ExecStats {
    pub round_trips: AtomicU64,
    pub search_micros: AtomicU64,
    pub index_micros: AtomicU64,
    /// Warnings for the execution record (the execution still succeeds), e.g. index patterns
    /// that match no index.
    pub warnings: std::sync::Mutex<Vec<String>>,
    /// Some of the window was not searched (shards failed): what was found is alerted, but the
    /// execution fails so the scheduler searches the window again.
    pub incomplete: std::sync::atomic::AtomicBool,
}

impl ExecStats {
    pub fn add_round_trip(&self) {
        self.round_trips.fetch_add(1, Ordering::Relaxed);
    }
    pub fn add_search(&self, d: std::time::Duration) {
        self.search_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }
    /// Adds a warning once (the same text from several pages or phases is kept once).
    pub fn add_warning(&self, w: impl Into<String>) {
        let w = w.into();
        let mut all = crate::sync::lock(&self.warnings);
        if !all.contains(&w) {
            all.push(w);
        }
    }
    pub fn add_index(&self, d: std::time::Duration) {
        self.index_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }
}

/// Persisted per-rule scheduler state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleState {
    /// Actual start time of the last execution.
    pub last_start: Option<DateTime<Utc>>,
    /// End of the last window fully covered (alerts stored).
    pub covered_until: Option<DateTime<Utc>>,
    /// `succeeded`, `partial failure` or `failed`.
    pub status: Option<String>,
    /// Uncovered ranges older than `max_backfill`, never silently dropped.
    #[serde(default)]
    pub gaps: Vec<GapRange>,
}

/// A time range no execution covered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GapRange {
    pub gte: DateTime<Utc>,
    pub lte: DateTime<Utc>,
}

/// The record of one execution (`detectd-executions` / `executions.ndjson`).
pub type ExecutionRecord = Value;

/// The one interface executors and the scheduler use.
#[async_trait]
pub trait Backend: Send + Sync {
    /// A page of hits in the window, oldest first, at most `size`; pass the previous page's
    /// cursor to continue. Call [`Backend::close_search`] with the last cursor when done early.
    async fn search_page(
        &self,
        q: &QuerySpec<'_>,
        size: usize,
        cursor: Option<&Cursor>,
        stats: &ExecStats,
    ) -> Result<Page, Error>;

    /// Releases what a paged search holds (Elasticsearch: closes the point in time).
    async fn close_search(&self, cursor: &Cursor, stats: &ExecStats) -> Result<(), Error>;

    /// new_terms phase 1: a page of distinct `fields` tuples among matching documents in the
    /// window (composite aggregation semantics: arrays explode, documents missing a field
    /// produce no tuple), at most `size` tuples, ordered by the tuple values.
    async fn terms_page(
        &self,
        q: &QuerySpec<'_>,
        fields: &[String],
        size: usize,
        after: Option<&Value>,
        stats: &ExecStats,
    ) -> Result<TermsPage, Error>;

    /// new_terms phases 2 and 3: of `tuples`, those whose first appearance in
    /// `[history_start, q.to]` (matching the query) is strictly after `q.from`, each with the
    /// first document in the window that has it.
    async fn new_terms(
        &self,
        q: &QuerySpec<'_>,
        fields: &[String],
        history_start: DateTime<Utc>,
        tuples: &[Vec<Value>],
        stats: &ExecStats,
    ) -> Result<Vec<NewTerm>, Error>;

    /// Threshold rules: a page of buckets (at most `size`, after `after`) of the documents
    /// matching `q` in its window, except those `exclude` covers (a signal's terms, primary
    /// time at or before its `last`). Every bucket is returned; the engine applies the
    /// threshold.
    async fn threshold_page(
        &self,
        q: &QuerySpec<'_>,
        spec: &ThresholdSpec,
        exclude: &[ThresholdSignal],
        size: usize,
        after: Option<&Value>,
        stats: &ExecStats,
    ) -> Result<ThresholdPage, Error>;

    /// Threshold rules: the signal history of `rule_id`, from its alerts whose last event
    /// (`kibana.alert.original_time`) is at or after `since`.
    async fn threshold_history(
        &self,
        rule_id: &str,
        since: DateTime<Utc>,
        stats: &ExecStats,
    ) -> Result<Vec<ThresholdSignal>, Error>;

    /// EQL rules: one `_eql/search` of the window (events or sequences, at most `q.size`).
    /// Only Elasticsearch evaluates EQL; every other backend refuses (never panics).
    async fn eql_search(&self, _q: &EqlSpec<'_>, _stats: &ExecStats) -> Result<EqlResult, Error> {
        Err(Error::Unsupported(EQL_NEEDS_ELASTICSEARCH.to_string()))
    }

    /// ES|QL rules: the rows of `q.query | limit size` over the window, in answer order, each
    /// as column → value with null cells left out. Only Elasticsearch (8.11+) runs ES|QL.
    async fn esql_rows(
        &self,
        _q: &EsqlSpec<'_>,
        _size: usize,
        _stats: &ExecStats,
    ) -> Result<Vec<serde_json::Map<String, Value>>, Error> {
        Err(Error::Unsupported(ESQL_NEEDS_ELASTICSEARCH.into()))
    }

    /// ES|QL rules with `METADATA _id`: the documents with these `_id`s in `indices` (the
    /// query's `FROM` list).
    async fn esql_sources(
        &self,
        _indices: &[String],
        _ids: &[Value],
        _stats: &ExecStats,
    ) -> Result<Vec<Hit>, Error> {
        Err(Error::Unsupported(ESQL_NEEDS_ELASTICSEARCH.into()))
    }

    /// Writes alerts with create semantics (existing ids are duplicates).
    async fn write_alerts(
        &self,
        alerts: &[AlertDoc],
        stats: &ExecStats,
    ) -> Result<WriteOutcome, Error>;

    /// Every rule's persisted state.
    async fn load_state(&self) -> Result<BTreeMap<String, RuleState>, Error>;

    /// Persists one rule's state (only after that execution's alerts are stored).
    async fn save_state(&self, rule_id: &str, state: &RuleState) -> Result<(), Error>;

    /// Appends an execution record.
    async fn record_execution(&self, record: &ExecutionRecord) -> Result<(), Error>;

    /// Writes whatever state and records the backend still holds (shutdown). Backends that
    /// write synchronously have nothing to do.
    async fn flush(&self) -> Result<(), Error> {
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_threshold_alert_reads_back_as_its_signal_history_entry() {
        let rule_fields = serde_json::Map::new();
        let t = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let ctx = crate::alerts::AlertContext {
            rule_fields: &rule_fields,
            rule_id: "rid",
            rule_name: "R",
            severity: "low",
            risk_score: 21.0,
            execution_uuid: "x",
            now: t("2024-05-01T00:00:00Z"),
        };
        let fields = vec!["user.name".to_string()];
        let terms = vec![json!("alice")];
        let result = crate::alerts::ThresholdResult {
            fields: &fields,
            terms: &terms,
            count: 3,
            cardinality: vec![],
            first: t("2024-04-30T23:50:00Z"),
            last: t("2024-04-30T23:55:00Z"),
        };
        let doc = crate::alerts::build_threshold_alert(&ctx, "id", &[], &result);
        let signal = threshold_signal(&doc).unwrap();
        assert_eq!(
            signal.terms,
            vec![("user.name".to_string(), json!("alice"))]
        );
        assert_eq!(signal.last, t("2024-04-30T23:55:00Z"));
        // nested, as another writer may store it
        let nested = json!({"kibana": {"alert": {
            "threshold_result": {"terms": [], "count": 9},
            "original_time": "2024-04-30T23:55:00Z"}}});
        assert_eq!(threshold_signal(&nested).unwrap().terms, vec![]);
        assert!(threshold_signal(&json!({"event": {"id": "1"}})).is_none());
    }
}
