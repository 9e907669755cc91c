//! What an EQL rule asks of a backend and what comes back: one `_eql/search` of the window
//! (Kibana's EQL executor sends exactly one request per execution), answered with events (a
//! single-event query) or sequences (a `sequence` query).

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{Hit, TimeField};

/// The error of a backend without an EQL evaluator (the embedded one).
pub const EQL_NEEDS_ELASTICSEARCH: &str =
    "eql rules need the Elasticsearch backend: the embedded backend does not evaluate EQL";

/// One EQL search: the rule's query over its index patterns and window.
#[derive(Debug, Clone)]
pub struct EqlSpec<'a> {
    pub indices: &'a [String],
    /// The EQL query as written in the rule.
    pub query: &'a str,
    /// Kibana filter objects from the rule (`[[rule.filters]]`).
    pub filters: &'a [Value],
    /// The window's time field(s), for the range filter (not EQL's ordering field).
    pub time: &'a TimeField,
    /// Inclusive lower bound.
    pub from: DateTime<Utc>,
    /// Inclusive upper bound.
    pub to: DateTime<Utc>,
    /// Events or sequences to return (Kibana: the rule's `max_signals`).
    pub size: usize,
    /// `event_category_override` (EQL's `event_category_field`; default `event.category`).
    pub event_category_field: Option<&'a str>,
    /// `timestamp_field` (EQL's ordering field; default `@timestamp`).
    pub timestamp_field: Option<&'a str>,
    /// `tiebreaker_field`.
    pub tiebreaker_field: Option<&'a str>,
}

/// One matched sequence: its join keys and its events, in sequence order.
#[derive(Debug, Clone, PartialEq)]
pub struct EqlSequence {
    pub join_keys: Vec<Value>,
    pub events: Vec<Hit>,
}

/// The answer to an EQL search: `events` for a single-event query, `sequences` for a sequence
/// query (the other is empty).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EqlResult {
    pub events: Vec<Hit>,
    pub sequences: Vec<EqlSequence>,
    /// `hits.total.value` (Kibana warns about the cap when it reaches `max_signals`).
    pub total: u64,
}
