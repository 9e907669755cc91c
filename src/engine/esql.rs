//! ES|QL rules: one `_query` per page, the window as a filter, one alert per row.
//!
//! Follows Kibana's ES|QL executor (security_solution `rule_types/esql/esql.ts`, elastic/kibana
//! commit 012f5d98: the limit-raising loop before Kibana 9 paged by excluding alerted ids, with
//! `utils/generate_alert_id.ts`, `fetch_source_documents.ts` and
//! `utils/merge_esql_result_in_source.ts` of the same era):
//! - ES|QL has no paging: the query is sent with `| limit max_signals`; while the answer is full
//!   and fewer than `max_signals` alerts were created (duplicates do not count), it is sent
//!   again with the limit raised by `max_signals`, the rows already seen skipped, up to
//!   3 × `max_signals` (Kibana's `ESQL_PAGE_SIZE_CIRCUIT_BREAKER`);
//! - a query is aggregating when one of its commands is `STATS` (Kibana's
//!   `computeIsESQLQueryAggregating`);
//! - non-aggregating rows with an `_id` column (`FROM ... METADATA _id`) are source documents:
//!   the documents are read by id from the query's `FROM` indices, the row's columns merged
//!   over them, and the alert id is the query rule's (index, `_id`, rule), so the same event
//!   gives the same alert in every window;
//! - other rows (aggregations, or no `_id`) alert as they are, one alert per row.
//!
//! Where this differs from Kibana, and why:
//! - the id of a row without a source document is `sha256` over the rule id, the window, the
//!   query and the row's values, where Kibana hashes the row's position in the answer instead
//!   of its values: a `STATS` answer without `SORT` has no stable order, so a window run again
//!   (a retry after a crash) would give other ids to the same rows; identical rows of one answer
//!   give one alert;
//! - merged columns are written as nested objects (`user.name` → `{"user": {"name": ..}}`,
//!   after removing the field from the source in either form) where Kibana writes dotted keys:
//!   Elasticsearch indexes both the same, and the alert's `event.kind`, `original_event` and
//!   reason read one form;
//! - more rows than 3 × `max_signals` with the cap not reached: Kibana stops silently, detectd
//!   adds a warning to the execution.

use serde_json::{Map, Value};

use super::{ExecRule, Sink, Window};
use crate::alerts::{alert_id, build_alert, is_alert};
use crate::backend::{AlertDoc, Backend, Error, EsqlSpec, ExecStats};

/// What an ES|QL rule runs, read once from its query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EsqlParams {
    /// The query as written in the rule.
    pub query: String,
    /// One of its commands is `STATS`: rows are aggregates, never source documents.
    pub aggregating: bool,
    /// The index patterns of its `FROM` command (where source documents are read by id).
    pub from: Vec<String>,
}

impl EsqlParams {
    pub fn new(query: &str) -> EsqlParams {
        EsqlParams {
            query: query.to_string(),
            aggregating: is_aggregating(query),
            from: from_indices(query),
        }
    }
}

/// The query's commands (the text between top-level pipes), comments removed, quoted strings
/// (`"..."` with `\` escapes, `"""..."""`) kept whole.
fn commands(query: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut rest = query;
    while let Some(c) = rest.chars().next() {
        let taken = if let Some(body) = rest.strip_prefix("\"\"\"") {
            3 + body.find("\"\"\"").map_or(body.len(), |e| e + 3)
        } else if let Some(body) = rest.strip_prefix('"') {
            let mut escaped = false;
            let end = body.char_indices().find_map(|(i, ch)| {
                let closes = ch == '"' && !escaped;
                escaped = ch == '\\' && !escaped;
                closes.then_some(i + 1)
            });
            1 + end.unwrap_or(body.len())
        } else if rest.starts_with("//") {
            let skip = rest.find('\n').unwrap_or(rest.len());
            rest = &rest[skip..];
            continue;
        } else if let Some(body) = rest.strip_prefix("/*") {
            let skip = 2 + body.find("*/").map_or(body.len(), |e| e + 2);
            rest = &rest[skip..];
            continue;
        } else if c == '|' {
            out.push(std::mem::take(&mut cur));
            rest = &rest[1..];
            continue;
        } else {
            c.len_utf8()
        };
        cur.push_str(&rest[..taken]);
        rest = &rest[taken..];
    }
    out.push(cur);
    out
}

/// Kibana's `computeIsESQLQueryAggregating`: one of the query's commands is `STATS`.
pub fn is_aggregating(query: &str) -> bool {
    commands(query).iter().any(|c| {
        c.split_whitespace()
            .next()
            .is_some_and(|w| w.eq_ignore_ascii_case("stats"))
    })
}

/// The index patterns of the query's `FROM` command (Kibana's `getIndexListFromEsqlQuery`):
/// `FROM a, b METADATA _id` (or 8.11's `[METADATA _id]`) → `[a, b]`.
pub fn from_indices(query: &str) -> Vec<String> {
    let Some(first) = commands(query).into_iter().next() else {
        return Vec::new();
    };
    let mut words = first.trim_start().splitn(2, char::is_whitespace);
    if !words.next().is_some_and(|w| w.eq_ignore_ascii_case("from")) {
        return Vec::new();
    }
    let rest = words.next().unwrap_or("");
    let mut end = rest.find('[').unwrap_or(rest.len());
    let lower = rest.to_ascii_lowercase();
    let mut from = 0;
    while let Some(p) = lower[from..].find("metadata") {
        let at = from + p;
        let before_ok = at == 0 || lower.as_bytes()[at - 1].is_ascii_whitespace();
        let after_ok = lower
            .as_bytes()
            .get(at + 8)
            .is_none_or(|c| c.is_ascii_whitespace());
        if before_ok && after_ok {
            end = end.min(at);
            break;
        }
        from = at + 8;
    }
    rest[..end]
        .split(',')
        .map(|s| s.trim().trim_matches('"').trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The alert id of a row that is not a source document: `sha256_hex` over `esql`, the rule id,
/// the window (epoch millis), the query and the row (column names and values, in answer order),
/// each length-prefixed.
pub fn row_alert_id(
    rule_id: &str,
    window: Window,
    query: &str,
    row: &Map<String, Value>,
) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    let mut part = |s: &str| {
        h.update((s.len() as u64).to_be_bytes());
        h.update(s.as_bytes());
    };
    part("esql");
    part(rule_id);
    part(&window.from.timestamp_millis().to_string());
    part(&window.to.timestamp_millis().to_string());
    part(query);
    for (k, v) in row {
        part(k);
        part(&v.to_string());
    }
    hex::encode(h.finalize())
}

/// The row's columns over the source document (Kibana's `mergeEsqlResultInSource`): a field the
/// row has replaces the source's, wherever the source holds it (dotted key or nested).
pub fn merge_row(source: Option<&Value>, row: &Map<String, Value>) -> Value {
    let mut doc = match source {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    for (k, v) in row {
        remove_path(&mut doc, k);
        set_path(&mut doc, k, v.clone());
    }
    Value::Object(doc)
}

fn remove_path(doc: &mut Map<String, Value>, path: &str) {
    doc.remove(path);
    for (i, _) in path.match_indices('.') {
        let (head, tail) = (&path[..i], &path[i + 1..]);
        if let Some(Value::Object(child)) = doc.get_mut(head) {
            remove_path(child, tail);
        }
    }
}

fn set_path(doc: &mut Map<String, Value>, path: &str, v: Value) {
    match path.split_once('.') {
        None => {
            doc.insert(path.to_string(), v);
        }
        Some((head, rest)) => {
            let child = doc.entry(head).or_insert_with(|| Value::Object(Map::new()));
            if !child.is_object() {
                *child = Value::Object(Map::new());
            }
            if let Value::Object(m) = child {
                set_path(m, rest, v);
            }
        }
    }
}

/// The metadata columns of a row (`_id`, `_index`, `_version`): not merged into the alert.
const METADATA: [&str; 3] = ["_id", "_index", "_version"];

/// Runs an ES|QL rule's window (a rule without [`EsqlParams`] has nothing to run).
pub(super) async fn run_esql(
    rule: &ExecRule,
    window: Window,
    backend: &dyn Backend,
    stats: &ExecStats,
    sink: &mut Sink<'_>,
    hits: &mut u64,
) -> Result<(), Error> {
    let Some(p) = &rule.esql else {
        return Ok(());
    };
    let spec = EsqlSpec {
        query: &p.query,
        time: &rule.time,
        from: window.from,
        to: window.to,
    };
    let max = rule.max_signals.max(1);
    let breaker = max.saturating_mul(3);
    let mut size = max;
    loop {
        let rows = backend.esql_rows(&spec, size, stats).await?;
        let fresh = rows.get(size - max..).unwrap_or(&[]);
        *hits += fresh.len() as u64;
        let candidates = alerts_of(rule, p, window, fresh, backend, stats, sink).await?;
        let more = rows.len() >= size;
        if sink.write(&candidates, more).await? || !more {
            return Ok(());
        }
        size += max;
        if size > breaker {
            stats.add_warning(format!(
                "ES|QL: the window has more than {breaker} rows (3 × max_signals) and fewer than max_signals new alerts; the rows after the first {breaker} were not read"
            ));
            return Ok(());
        }
    }
}

/// The alerts of a batch of rows, in row order, one per id.
async fn alerts_of(
    rule: &ExecRule,
    p: &EsqlParams,
    window: Window,
    rows: &[Map<String, Value>],
    backend: &dyn Backend,
    stats: &ExecStats,
    sink: &Sink<'_>,
) -> Result<Vec<AlertDoc>, Error> {
    let ids: Vec<Value> = if p.aggregating {
        Vec::new()
    } else {
        let mut ids: Vec<Value> = rows.iter().filter_map(|r| r.get("_id").cloned()).collect();
        ids.dedup();
        ids
    };
    let sources = if ids.is_empty() {
        Vec::new()
    } else {
        backend.esql_sources(&p.from, &ids, stats).await?
    };
    let mut out: Vec<AlertDoc> = Vec::with_capacity(rows.len());
    for row in rows {
        let columns: Map<String, Value> = row
            .iter()
            .filter(|(k, _)| !METADATA.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let doc_id = match row.get("_id") {
            Some(Value::String(s)) if !p.aggregating => Some(s.as_str()),
            _ => None,
        };
        let row_index = row.get("_index").and_then(Value::as_str);
        let (id, index, source_id, merged) = match doc_id {
            Some(did) => {
                let source = sources
                    .iter()
                    .find(|h| h.id == did && row_index.is_none_or(|i| i == h.index));
                let index = row_index
                    .map(str::to_string)
                    .or_else(|| source.map(|h| h.index.clone()))
                    .unwrap_or_default();
                let id = alert_id(&index, did, &rule.rule_id, &[]);
                let merged = merge_row(source.map(|h| &h.source), &columns);
                (id, index, did.to_string(), merged)
            }
            None => {
                let id = row_alert_id(&rule.rule_id, window, &p.query, row);
                (id, String::new(), String::new(), merge_row(None, &columns))
            }
        };
        if is_alert(&merged) || out.iter().any(|a| a.id == id) {
            continue;
        }
        let doc = build_alert(sink.ctx, &id, &index, &source_id, &merged, None);
        out.push(AlertDoc { id, doc });
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stats_makes_a_query_aggregating_wherever_it_stands() {
        assert!(is_aggregating(
            "from logs-* | stats c = count(*) by user.name | where c > 5"
        ));
        assert!(is_aggregating("FROM logs-*\n| STATS count(*)"));
        assert!(!is_aggregating(
            "from logs-* metadata _id | where event.action == \"a | stats b\""
        ));
        assert!(!is_aggregating(
            "from logs-* // | stats in a comment\n| keep user.name"
        ));
        assert!(!is_aggregating("from stats-* | keep stats"));
        assert!(!is_aggregating(
            "from x | where a == \"é\\\"| stats\" /* | stats */ | keep a"
        ));
        assert!(!is_aggregating(
            "from x | where a == \"\"\"| stats \"quoted\" \"\"\" | keep a"
        ));
        assert!(is_aggregating(
            "from x | where a == \"\\\\\" | stats count(*)"
        ));
    }

    #[test]
    fn from_lists_the_index_patterns_before_metadata() {
        assert_eq!(
            from_indices("from logs-aws.cloudtrail-* metadata _id, _version, _index\n| where x"),
            vec!["logs-aws.cloudtrail-*"]
        );
        assert_eq!(
            from_indices("FROM a, \"b*\" [METADATA _id] | keep x"),
            vec!["a", "b*"]
        );
        assert_eq!(
            from_indices("from metadata-logs | keep x"),
            vec!["metadata-logs"]
        );
        assert_eq!(from_indices("row a = 1"), Vec::<String>::new());
    }

    #[test]
    fn row_columns_replace_source_fields_in_either_form() {
        let source = json!({"user": {"name": "old", "id": "1"}, "event.action": "X", "keep": 1});
        let row = json!({"user.name": "new", "event.action": "Y", "n": 2});
        let merged = merge_row(Some(&source), row.as_object().unwrap());
        assert_eq!(
            merged,
            json!({"user": {"id": "1", "name": "new"}, "keep": 1, "event": {"action": "Y"}, "n": 2})
        );
    }

    #[test]
    fn row_ids_depend_on_values_window_and_rule_not_on_position() {
        let t = |s: &str| s.parse::<chrono::DateTime<chrono::Utc>>().unwrap();
        let w = Window {
            from: t("2024-01-01T00:00:00Z"),
            to: t("2024-01-01T00:06:00Z"),
        };
        let a = json!({"user.name": "a", "c": 3});
        let b = json!({"user.name": "b", "c": 3});
        let id = |r: &Value, w| row_alert_id("r1", w, "q", r.as_object().unwrap());
        assert_eq!(id(&a, w), id(&a, w));
        assert_ne!(id(&a, w), id(&b, w));
        let later = Window {
            from: t("2024-01-01T00:05:00Z"),
            to: t("2024-01-01T00:11:00Z"),
        };
        assert_ne!(id(&a, w), id(&a, later));
        assert_ne!(
            id(&a, w),
            row_alert_id("r2", w, "q", a.as_object().unwrap())
        );
    }
}
