//! EQL rules on Elasticsearch: one `_eql/search` of the window, as Kibana's EQL executor sends
//! it (`requests::eql`), read into events or sequences.
//!
//! Before the search, `_field_caps` of the patterns (cached, shared with the other rule types)
//! says whether any index matches: if none does, Kibana's no-index warning and no search (an
//! `_eql/search` on such a pattern is a 404 on 7.10, es-fixture 121; a 404
//! `index_not_found_exception` that still comes back, e.g. the index was deleted meanwhile, is
//! the same warning). A 400 (syntax error, unknown field, ambiguous mapping: es-fixtures
//! 118–120) is `Error::Rejected`: the rule is retired and reported once.

use std::time::Instant;

use elasticsearch::http::Method;
use serde::Deserialize;
use serde_json::Value;

use super::responses::{describe_error, error_types};
use super::transport::{ok_or_error, ReqBody};
use super::{requests, ElasticsearchBackend};
use crate::backend::{EqlResult, EqlSequence, EqlSpec, Error, ExecStats, Hit};
use crate::kql::Ast;

/// An `_eql/search` answer (7.10 to 9.x).
#[derive(Debug, Deserialize)]
struct EqlResponse {
    #[serde(default)]
    is_partial: bool,
    #[serde(default)]
    timed_out: bool,
    /// 8.18+ with partial results allowed: the shards that failed.
    #[serde(default)]
    shard_failures: Vec<Value>,
    hits: EqlHits,
}

#[derive(Debug, Deserialize)]
struct EqlHits {
    #[serde(default)]
    total: Option<EqlTotal>,
    #[serde(default)]
    events: Option<Vec<EqlEvent>>,
    #[serde(default)]
    sequences: Option<Vec<RawSequence>>,
}

#[derive(Debug, Deserialize)]
struct EqlTotal {
    value: u64,
}

#[derive(Debug, Deserialize)]
struct RawSequence {
    #[serde(default)]
    join_keys: Vec<Value>,
    #[serde(default)]
    events: Vec<EqlEvent>,
}

/// An event of an answer. 8.x+ sequences with `!` (missing event) steps list those steps as
/// `{"missing": true}` events without a document: they are no event to alert on and are left
/// out (Kibana, which predates them, would build a building block of nothing).
#[derive(Debug, Deserialize)]
struct EqlEvent {
    #[serde(rename = "_index", default)]
    index: String,
    #[serde(rename = "_id", default)]
    id: String,
    #[serde(rename = "_source", default)]
    source: Value,
    #[serde(default)]
    missing: bool,
}

fn to_hits(events: Vec<EqlEvent>) -> Vec<Hit> {
    events
        .into_iter()
        .filter(|e| !e.missing)
        .map(|e| Hit {
            index: e.index,
            id: e.id,
            source: e.source,
            sort: Vec::new(),
        })
        .collect()
}

impl ElasticsearchBackend {
    pub(super) async fn eql_window(
        &self,
        q: &EqlSpec<'_>,
        stats: &ExecStats,
    ) -> Result<EqlResult, Error> {
        let (cat, matched) = self.sources(q.indices, Some(stats)).await?;
        if !matched {
            stats.add_warning(crate::backend::no_index_warning(q.indices));
            return Ok(EqlResult::default());
        }
        let rq = crate::dsl::rule_query(&Ast::MatchAll, q.filters, &cat)
            .map_err(|e| Error::Unsupported(e.to_string()))?;
        let body = requests::eql::search_body(
            q.query,
            &rq,
            requests::time_range_filter(q.time, q.from, q.to),
            q.size,
            q.event_category_field,
            q.timestamp_field,
            q.tiebreaker_field,
        );
        let op = format!("eql search {}", q.indices.join(","));
        let started = Instant::now();
        let r = self
            .call(
                &op,
                Method::Post,
                &requests::eql::search_path(q.indices),
                Some(ReqBody::Json(body)),
                Some(stats),
            )
            .await;
        stats.add_search(started.elapsed());
        let r = r?;
        if r.status == 404
            && error_types(&r.body)
                .iter()
                .any(|t| t == "index_not_found_exception")
        {
            stats.add_warning(crate::backend::no_index_warning(q.indices));
            return Ok(EqlResult::default());
        }
        let v = ok_or_error(&op, r)?;
        read_response(&op, v, stats)
    }
}

/// Events or sequences of an `_eql/search` answer; a partial or timed-out answer marks the
/// execution incomplete (the window is searched again), as a shard failure does for `_search`.
fn read_response(op: &str, v: Value, stats: &ExecStats) -> Result<EqlResult, Error> {
    let resp: EqlResponse = serde_json::from_value(v).map_err(|e| Error::Request {
        operation: op.to_string(),
        reason: format!("unexpected response: {e}"),
    })?;
    if resp.is_partial || resp.timed_out || !resp.shard_failures.is_empty() {
        let reasons: Vec<String> = resp
            .shard_failures
            .iter()
            .map(|f| f.get("reason").map(describe_error).unwrap_or_default())
            .collect();
        tracing::warn!(
            operation = op,
            is_partial = resp.is_partial,
            timed_out = resp.timed_out,
            failed_shards = resp.shard_failures.len(),
            reasons = ?reasons,
            "partial eql results"
        );
        stats
            .incomplete
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let what = if resp.timed_out {
            "the eql search timed out".to_string()
        } else if reasons.is_empty() {
            "the eql search answer is partial".to_string()
        } else {
            format!("{} shard(s) failed: {}", reasons.len(), reasons.join("; "))
        };
        stats.add_warning(format!("partial results: {what}"));
    }
    let EqlHits {
        total,
        events,
        sequences,
    } = resp.hits;
    if events.is_none() && sequences.is_none() {
        // Kibana: "eql query response should have either `sequences` or `events` but had
        // neither".
        return Err(Error::Request {
            operation: op.to_string(),
            reason: "the eql response has neither events nor sequences".to_string(),
        });
    }
    Ok(EqlResult {
        events: to_hits(events.unwrap_or_default()),
        sequences: sequences
            .unwrap_or_default()
            .into_iter()
            .map(|s| EqlSequence {
                join_keys: s.join_keys,
                events: to_hits(s.events),
            })
            .collect(),
        total: total.map_or(0, |t| t.value),
    })
}
