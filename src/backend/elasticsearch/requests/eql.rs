//! The `_eql/search` request of an EQL rule, as Kibana's `buildEqlSearchRequest`
//! (x-pack/plugins/security_solution/server/lib/detection_engine/rule_types/eql/
//! build_eql_search_request.ts, Kibana 8.15.0; the same shape on Kibana main) builds it:
//!
//! `POST /<patterns>/_eql/search?allow_no_indices=true` with
//! `{size: max_signals, query, filter: {bool: {filter: [time range, getQueryFilter(filters)]}},
//! event_category_field?, tiebreaker_field?, timestamp_field?}`.
//!
//! Where detectd differs, on purpose:
//! - no `fields` option: alerts are built from `_source`, as for every other rule type, and
//!   `fields` in an EQL request is refused (HTTP 400) by clusters before 7.13;
//! - no `runtime_mappings`: rules from TOML have no data view to take them from;
//! - no `allow_partial_search_results: true` (Kibana main, for 8.18+ clusters; older ones
//!   refuse the key): a shard failure is the cluster's default answer (an error, or a partial
//!   answer with `shard_failures`), and either way the execution fails and the window is
//!   searched again, as for `_search` (Kibana logs partial answers as warnings);
//! - the filter also has `must_not: [exists kibana.alert.uuid]`, as detectd's other searches:
//!   a rule never alerts on alerts (Kibana drops them after the search).

use serde_json::{json, Value};

use super::{index_path, window_query};

/// `POST` path of an EQL search over `indices`.
pub fn search_path(indices: &[String]) -> String {
    format!("/{}/_eql/search?allow_no_indices=true", index_path(indices))
}

/// The EQL search body: `rule_query` is the rule's filters as `dsl::rule_query` translates
/// them (with a match-all query: Kibana's `getQueryFilter` with `language: "eql"` ignores the
/// query), `time_filter` the window's range (`time_range_filter`).
pub fn search_body(
    query: &str,
    rule_query: &Value,
    time_filter: Value,
    size: usize,
    event_category_field: Option<&str>,
    timestamp_field: Option<&str>,
    tiebreaker_field: Option<&str>,
) -> Value {
    let mut body = json!({
        "size": size,
        "query": query,
        "filter": window_query(rule_query, time_filter, None),
    });
    if let Some(obj) = body.as_object_mut() {
        for (key, v) in [
            ("event_category_field", event_category_field),
            ("tiebreaker_field", tiebreaker_field),
            ("timestamp_field", timestamp_field),
        ] {
            // Kibana leaves out an empty tiebreaker; an empty field name is never useful.
            if let Some(f) = v.filter(|f| !f.is_empty()) {
                obj.insert(key.into(), json!(f));
            }
        }
    }
    body
}
