//! `detectd explain RULE.toml`: the Elasticsearch requests one execution of a rule sends, in
//! the order the backend sends them, as Kibana Dev Tools console text (`METHOD /path` then the
//! JSON body, `# comments` naming each phase).
//!
//! Every path and body comes from [`requests`], the builders the Elasticsearch backend itself uses, so the
//! text is what goes on the wire for the window computed from the execution time. Values that
//! only an earlier response can supply (the point-in-time id, the terms phase 1 returns) are
//! written as `<<...>>` placeholder strings.

mod esql;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::backend::elasticsearch::{requests, NEW_TERMS_BATCH};
use crate::backend::TimeField;
use crate::engine::{ExecRule, ThresholdParams, Window, NEW_TERMS_PAGE_SIZE, THRESHOLD_PAGE_SIZE};
use crate::fields::FieldCatalog;
use crate::rules::Rule;

mod eql;

/// Why a rule's requests cannot be explained.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExplainError {
    /// Only `query`, `new_terms` and `threshold` KQL rules, `eql` and `esql` rules run on
    /// Elasticsearch.
    #[error("rule {rule_id}: {reason}; detectd sends no Elasticsearch requests for it")]
    Unsupported { rule_id: String, reason: String },
    /// The rule's query or filters do not translate (Kibana refuses them too).
    #[error("rule {rule_id}: {reason}")]
    Query { rule_id: String, reason: String },
}

/// Placeholder for the point-in-time id the open request returns.
pub const PIT_PLACEHOLDER: &str = "<<pit id returned by the open point in time request>>";

fn terms_placeholder(field: &str) -> Value {
    Value::String(format!("<<values of {field} returned by phase 1>>"))
}

/// The console text of every request one execution of `rule` at `at` sends (`fields`: the field
/// types `_field_caps` would report).
pub fn explain_rule(
    rule: &Rule,
    at: DateTime<Utc>,
    fields: &FieldCatalog,
) -> Result<String, ExplainError> {
    let exec = ExecRule::from_rule(rule).map_err(|reason| ExplainError::Unsupported {
        rule_id: rule.rule_id.clone(),
        reason,
    })?;
    if let Some(p) = &exec.esql {
        return Ok(esql::explain(&exec, p, at));
    }
    let window = Window::at(&exec, at);
    let rq = crate::dsl::rule_query(&exec.query, &exec.filters, fields).map_err(|e| {
        ExplainError::Query {
            rule_id: rule.rule_id.clone(),
            reason: e.to_string(),
        }
    })?;
    let mut out = Console::default();
    let kind = if exec.eql.is_some() {
        "eql"
    } else if exec.new_terms.is_some() {
        "new_terms"
    } else if exec.threshold.is_some() {
        "threshold"
    } else {
        "query"
    };
    out.comment(&format!("rule {} ({kind}): {}", exec.rule_id, exec.name));
    out.comment(&format!(
        "execution at {}: window {} .. {} (inclusive, on {})",
        requests::es_time(at),
        requests::es_time(window.from),
        requests::es_time(window.to),
        time_field_label(&exec.time)
    ));
    out.blank();
    out.comment("field types of the rule's indices (cached by the backend for a few minutes)");
    out.request("GET", &requests::field_caps_path(&exec.indices), None);
    match &exec.new_terms {
        _ if exec.eql.is_some() => {
            if let Some(e) = &exec.eql {
                eql::explain_eql(&mut out, &exec, e, &rq, window);
            }
        }
        None if exec.threshold.is_some() => {
            if let Some(th) = &exec.threshold {
                explain_threshold(&mut out, &exec, th, &rq, window);
            }
        }
        None => explain_query(&mut out, &exec, &rq, window),
        Some(nt) => {
            let history_start = nt.history_window_start.resolve(window.to);
            explain_new_terms(&mut out, &exec, &nt.fields, &rq, window, history_start);
        }
    }
    Ok(out.text)
}

fn search_path(indices: &[String]) -> String {
    format!(
        "/{}/_search?{}",
        requests::index_path(indices),
        requests::INDICES_OPTIONS
    )
}

fn time_field_label(t: &TimeField) -> String {
    if t.primary == requests::TIMESTAMP || !t.fallback_to_timestamp {
        t.primary.clone()
    } else {
        format!("{}, else {}", t.primary, requests::TIMESTAMP)
    }
}

fn explain_query(out: &mut Console, exec: &ExecRule, rq: &Value, window: Window) {
    let page_size = exec.max_signals.clamp(1, 100);
    let query = requests::window_query(
        rq,
        requests::time_range_filter(&exec.time, window.from, window.to),
        None,
    );
    out.blank();
    out.comment(
        "no index matching the patterns (field caps lists none): a warning, no search is sent",
    );
    out.comment(&format!(
        "query rule, 1. first page of events, oldest first ({page_size} = min(max_signals, 100) per page), a plain search; fewer hits than that: done"
    ));
    let first = requests::search_page_body(query.clone(), &exec.time, page_size, None, None);
    out.request("POST", &search_path(&exec.indices), Some(&first));
    out.blank();
    out.comment("query rule, a full first page: 2. open a point in time over the rule's indices");
    out.request("POST", &requests::open_pit_path(&exec.indices), None);
    out.blank();
    out.comment("query rule, 3. the pages from the start in the point in time");
    out.comment(
        "next pages: the same body with \"search_after\": the last hit's \"sort\" values, and the pit id of the previous response",
    );
    let body =
        requests::search_page_body(query, &exec.time, page_size, Some(PIT_PLACEHOLDER), None);
    out.request("POST", "/_search", Some(&body));
    out.blank();
    out.comment("query rule, 4. close the point in time after the last page (or on a failure)");
    out.request(
        "DELETE",
        "/_pit",
        Some(&requests::close_pit_body(PIT_PLACEHOLDER)),
    );
}

fn explain_threshold(
    out: &mut Console,
    exec: &ExecRule,
    th: &ThresholdParams,
    rq: &Value,
    window: Window,
) {
    let alias = crate::config::AlertsConfig::default().index;
    out.blank();
    out.comment(&format!(
        "threshold rule, 1. signal history: make the alerts written so far searchable ({alias} = the default alerts.index)"
    ));
    out.request("POST", &requests::refresh_path(&alias), None);
    out.blank();
    out.comment("threshold rule, 2. the rule's threshold alerts whose last event is at or after the window start");
    out.request(
        "POST",
        &requests::alerts_search_path(&alias),
        Some(&requests::threshold_history_body(
            &exec.rule_id,
            window.from,
        )),
    );
    out.blank();
    let fields = if th.fields.is_empty() {
        "one bucket for every matching event".to_string()
    } else {
        format!(
            "buckets of {} ({THRESHOLD_PAGE_SIZE} per composite page, next pages with \"after\": the previous \"after_key\")",
            th.fields.join(", ")
        )
    };
    let mut cond = format!("count >= {}", th.value);
    for (f, v) in &th.cardinality {
        cond.push_str(&format!(", distinct {f} >= {v}"));
    }
    out.comment(&format!(
        "threshold rule, 3. {fields}; detectd alerts on those with {cond} (one alert per bucket, up to max_signals)"
    ));
    out.comment(
        "with a history, each alerted bucket's events (its terms, time at or before its last event) are left out: the last filter",
    );
    out.comment(
        "(shown for one history entry, its values as placeholders and the window start standing for its last event)",
    );
    let history = vec![crate::backend::ThresholdSignal {
        terms: th
            .fields
            .iter()
            .map(|f| {
                (
                    f.clone(),
                    Value::String(format!("<<{f} value of an alerted bucket>>")),
                )
            })
            .collect(),
        last: window.from,
    }];
    let query = requests::window_query(
        rq,
        requests::time_range_filter(&exec.time, window.from, window.to),
        requests::threshold_exclusion_filter(&exec.time, &history),
    );
    let cardinality: Vec<String> = th.cardinality.iter().map(|(f, _)| f.clone()).collect();
    let body = requests::threshold_body(
        query,
        &th.fields,
        &cardinality,
        &exec.time,
        THRESHOLD_PAGE_SIZE,
        None,
    );
    out.request("POST", &search_path(&exec.indices), Some(&body));
}

fn explain_new_terms(
    out: &mut Console,
    exec: &ExecRule,
    fields: &[String],
    rq: &Value,
    window: Window,
    history_start: DateTime<Utc>,
) {
    let path = search_path(&exec.indices);
    let in_window = requests::window_query(
        rq,
        requests::time_range_filter(&exec.time, window.from, window.to),
        None,
    );
    out.blank();
    out.comment(&format!(
        "new_terms, phase 1: distinct values of {} in the window ({NEW_TERMS_PAGE_SIZE} per composite page)",
        fields.join(", ")
    ));
    out.comment(
        "next pages: the same body with \"after\": the previous response's \"after_key\"; phases 2 and 3 run for each page",
    );
    let body = requests::terms_page_body(in_window.clone(), fields, NEW_TERMS_PAGE_SIZE, None);
    out.request("POST", &path, Some(&body));
    out.comment(&format!(
        "history window: {} .. {}",
        requests::es_time(history_start),
        requests::es_time(window.to)
    ));
    let in_history = |extra: Option<Value>| {
        requests::window_query(
            rq,
            requests::time_range_filter(&exec.time, history_start, window.to),
            extra,
        )
    };
    if let [field] = fields {
        let values = [terms_placeholder(field)];
        out.blank();
        out.comment(
            "new_terms, phase 2: which phase 1 values were first seen inside the window (over the history window)",
        );
        out.comment(
            "placeholder: \"include\" lists every value of the phase 1 page and \"size\" is their number",
        );
        let body = requests::new_terms_history_body(
            in_history(None),
            field,
            &values,
            &exec.time,
            window.from,
            true,
        );
        out.request("POST", &path, Some(&body));
        out.blank();
        out.comment("new_terms, phase 3: the first document of each new value in the window");
        out.comment(
            "placeholder: \"include\" lists the keys phase 2 returned and \"size\" is their number",
        );
        let values = [Value::String(format!(
            "<<values of {field} returned by phase 2>>"
        ))];
        let body = requests::new_terms_first_docs_body(in_window, field, &values, &exec.time);
        out.request("POST", &path, Some(&body));
    } else {
        let tuple: Vec<Value> = fields.iter().map(|f| terms_placeholder(f)).collect();
        out.blank();
        out.comment(&format!(
            "new_terms, phases 2 and 3 together: per batch of up to {NEW_TERMS_BATCH} phase 1 tuples, the tuples first seen inside the window with their first document"
        ));
        out.comment(
            "placeholder: \"should\" has one bool.filter of terms per tuple of the batch and \"size\" is the batch length",
        );
        out.comment(
            "next pages: the same body with \"after\": the previous response's \"after_key\"",
        );
        let query = in_history(Some(requests::tuples_filter(fields, &[tuple])));
        let body = requests::new_terms_composite_body(
            query,
            fields,
            1,
            &exec.time,
            window.from,
            None,
            true,
        );
        out.request("POST", &path, Some(&body));
    }
}

/// Kibana Dev Tools console text being built.
#[derive(Default)]
struct Console {
    text: String,
}

impl Console {
    fn comment(&mut self, line: &str) {
        self.text.push_str("# ");
        self.text.push_str(line);
        self.text.push('\n');
    }

    fn blank(&mut self) {
        self.text.push('\n');
    }

    fn request(&mut self, method: &str, path: &str, body: Option<&Value>) {
        self.text.push_str(method);
        self.text.push(' ');
        self.text.push_str(path);
        self.text.push('\n');
        if let Some(b) = body {
            // serializing a `Value` cannot fail
            let json = serde_json::to_string_pretty(b).unwrap_or_default();
            self.text.push_str(&json);
            self.text.push('\n');
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn load(text: &str) -> Rule {
        crate::rules::load_str(text, std::path::Path::new("t.toml"))
            .unwrap()
            .rule
    }

    /// Every JSON body in the console text parses, and each request line precedes it.
    fn bodies(text: &str) -> Vec<(String, Option<Value>)> {
        let mut out = Vec::new();
        let mut lines = text.lines().peekable();
        while let Some(l) = lines.next() {
            if l.starts_with('#') || l.is_empty() {
                continue;
            }
            let mut body = String::new();
            while let Some(n) = lines.peek() {
                if n.is_empty() || n.starts_with('#') {
                    break;
                }
                body.push_str(lines.next().unwrap());
                body.push('\n');
            }
            let v = (!body.is_empty()).then(|| serde_json::from_str(&body).unwrap());
            out.push((l.to_string(), v));
        }
        out
    }

    const RULE: &str = r#"
[metadata]
creation_date = "2024/01/01"
maturity = "production"
updated_date = "2024/01/01"

[rule]
author = ["t"]
description = "d"
from = "now-6m"
index = ["logs-aws.cloudtrail-*"]
language = "kuery"
license = "Elastic License v2"
name = "n"
risk_score = 21
rule_id = "r1"
severity = "low"
type = "TYPE"
query = 'event.action: "CreateDocument"'
EXTRA
"#;

    #[test]
    fn query_rule_searches_then_pages_in_a_pit_when_the_first_page_is_full() {
        let rule = load(&RULE.replace("TYPE", "query").replace("EXTRA", ""));
        let at = crate::time::parse_absolute("2024-05-01T12:00:00Z").unwrap();
        let text = explain_rule(&rule, at, &FieldCatalog::builtin()).unwrap();
        let reqs = bodies(&text);
        let lines: Vec<&str> = reqs.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(
            lines,
            [
                "GET /logs-aws.cloudtrail-*/_field_caps?fields=*&ignore_unavailable=true&allow_no_indices=true",
                "POST /logs-aws.cloudtrail-*/_search?ignore_unavailable=true&allow_no_indices=true",
                "POST /logs-aws.cloudtrail-*/_pit?keep_alive=5m",
                "POST /_search",
                "DELETE /_pit"
            ]
        );
        let first = reqs[1].1.as_ref().unwrap();
        assert!(first.get("pit").is_none());
        assert_eq!(first["query"], reqs[3].1.as_ref().unwrap()["query"]);
        let search = reqs[3].1.as_ref().unwrap();
        let range = &search["query"]["bool"]["filter"][0]["range"]["@timestamp"];
        assert_eq!(range["gte"], "2024-05-01T11:54:00.000Z");
        assert_eq!(range["lte"], "2024-05-01T12:00:00.000Z");
        assert_eq!(search["pit"]["id"], PIT_PLACEHOLDER);
    }

    #[test]
    fn multi_field_new_terms_uses_the_batched_composite() {
        let extra = r#"
[rule.new_terms]
field = "new_terms_fields"
value = ["host.name", "user.name"]
[[rule.new_terms.history_window_start]]
field = "history_window_start"
value = "now-7d"
"#;
        let rule = load(&RULE.replace("TYPE", "new_terms").replace("EXTRA", extra));
        let at = crate::time::parse_absolute("2024-05-01T12:00:00Z").unwrap();
        let text = explain_rule(&rule, at, &FieldCatalog::builtin()).unwrap();
        let reqs = bodies(&text);
        assert_eq!(reqs.len(), 3, "{text}");
        let batch = reqs[2].1.as_ref().unwrap();
        let comp = &batch["aggs"]["new_terms"]["composite"];
        assert_eq!(comp["sources"].as_array().unwrap().len(), 2);
        let range = &batch["query"]["bool"]["filter"][0]["range"]["@timestamp"];
        assert_eq!(range["gte"], "2024-04-24T12:00:00.000Z");
    }

    #[test]
    fn eql_rules_explain_their_one_eql_search() {
        let rule = load(
            &RULE
                .replace("TYPE", "eql")
                .replace("kuery", "eql")
                .replace("'event.action: \"CreateDocument\"'", "'any where true'")
                .replace(
                    "EXTRA",
                    "tiebreaker_field = \"event.sequence\"\nmax_signals = 7",
                ),
        );
        let text = explain_rule(&rule, Utc::now(), &FieldCatalog::builtin()).unwrap();
        let reqs = bodies(&text);
        assert_eq!(reqs.len(), 2, "field caps, then the eql search: {text}");
        assert_eq!(
            reqs[1].0,
            "POST /logs-aws.cloudtrail-*/_eql/search?allow_no_indices=true"
        );
        let body = reqs[1].1.as_ref().unwrap();
        assert_eq!(body["query"], "any where true");
        assert_eq!(body["size"], 7);
        assert_eq!(body["tiebreaker_field"], "event.sequence");
        assert!(body.get("event_category_field").is_none());
    }
}
