//! `detectd explain` of an ES|QL rule: the `_query` request (and, for a non-aggregating query
//! with `METADATA _id`, the search for the rows' source documents), from the builders of
//! `backend::elasticsearch::esql`.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{time_field_label, Console};
use crate::backend::elasticsearch::{esql, requests};
use crate::backend::EsqlSpec;
use crate::engine::{EsqlParams, ExecRule, Window};

/// Placeholder for the `_id` column of the rows the `_query` request returns.
pub const IDS_PLACEHOLDER: &str = "<<_id values of the rows returned by the ES|QL query>>";

/// The console text of one execution of an ES|QL rule at `at`.
pub(super) fn explain(exec: &ExecRule, p: &EsqlParams, at: DateTime<Utc>) -> String {
    let window = Window::at(exec, at);
    let max = exec.max_signals.max(1);
    let mut out = Console::default();
    let kind = if p.aggregating {
        "aggregating: STATS, one alert per row"
    } else {
        "non-aggregating: one alert per row, per source document with METADATA _id"
    };
    out.comment(&format!(
        "rule {} (esql, {kind}): {}",
        exec.rule_id, exec.name
    ));
    out.comment(&format!(
        "execution at {}: window {} .. {} (inclusive, on {})",
        requests::es_time(at),
        requests::es_time(window.from),
        requests::es_time(window.to),
        time_field_label(&exec.time)
    ));
    out.comment(
        "needs Elasticsearch 8.11 or newer: on an older cluster or OpenSearch nothing is sent and the rule is reported not runnable",
    );
    out.blank();
    out.comment(&format!(
        "esql rule, 1. the query with limit max_signals ({max}) and the window as a filter; a full answer with fewer than max_signals new alerts: sent again with the limit raised by {max}, the rows already seen skipped, up to {}",
        max.saturating_mul(3)
    ));
    let spec = EsqlSpec {
        query: &p.query,
        time: &exec.time,
        from: window.from,
        to: window.to,
    };
    out.request(
        "POST",
        esql::QUERY_PATH,
        Some(&esql::query_body(&spec, max)),
    );
    if !p.aggregating {
        out.blank();
        out.comment(
            "esql rule, 2. rows with an _id column (METADATA _id): their source documents, from the query's FROM indices, the row's columns merged over them",
        );
        let ids = [Value::String(IDS_PLACEHOLDER.to_string())];
        let mut body = esql::source_documents_body(&ids);
        body["size"] = Value::String("<<number of _id values>>".into());
        out.request("POST", &esql::source_documents_path(&p.from), Some(&body));
    }
    out.text
}
