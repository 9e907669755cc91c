//! Every request body and path the Elasticsearch backend sends, built in one place so each
//! Elasticsearch field name is spelled once. Pure functions: JSON in, JSON (or NDJSON) out,
//! which is what the golden tests in `tests/es_backend.rs` pin down.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};

use crate::backend::{AlertDoc, TimeField};

pub mod eql;

/// The field whose presence marks a document as an alert (never alerted on again).
pub const ALERT_MARKER_FIELD: &str = "kibana.alert.uuid";
/// `@timestamp`, the fallback time field of a `timestamp_override`.
pub const TIMESTAMP: &str = "@timestamp";
/// How long a point in time stays open between two pages (the engine writes a page's alerts
/// before asking for the next one, which with bulk retries can take more than a minute).
pub const PIT_KEEP_ALIVE: &str = "5m";
/// Path of the composable template of the alerts indices behind `alias` (named after the
/// alias, so two detectd instances with different aliases do not overwrite each other's).
pub fn alerts_template_path(alias: &str) -> String {
    format!("/_index_template/{}", encode_path_segment(alias))
}
/// Name of the aggregation every aggregation request uses.
pub const AGG_NAME: &str = "new_terms";
/// Query string for plain searches: missing indices and patterns matching nothing are empty
/// results, as Kibana sends them.
pub const INDICES_OPTIONS: &str = "ignore_unavailable=true&allow_no_indices=true";

/// Comma-joined index patterns as they go into a path (`*` and `,` unencoded).
pub fn index_path(indices: &[String]) -> String {
    indices
        .iter()
        .map(|i| encode_path_segment(i))
        .collect::<Vec<_>>()
        .join(",")
}

/// Percent-encodes what cannot appear in a path segment; keeps `*` (index patterns).
pub fn encode_path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// An instant as Elasticsearch's `strict_date_optional_time` with milliseconds.
pub fn es_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn range(field: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> Value {
    json!({"range": {field: {"gte": es_time(from), "lte": es_time(to), "format": "strict_date_optional_time"}}})
}

/// The inclusive time-range filter of semantics §2. With an override and the fallback on, the
/// shape Kibana's `buildTimeRangeFilter` uses: override in range, or override missing and
/// `@timestamp` in range.
pub fn time_range_filter(time: &TimeField, from: DateTime<Utc>, to: DateTime<Utc>) -> Value {
    if time.primary == TIMESTAMP || !time.fallback_to_timestamp {
        return range(&time.primary, from, to);
    }
    json!({"bool": {
        "should": [
            range(&time.primary, from, to),
            {"bool": {"filter": [
                range(TIMESTAMP, from, to),
                {"bool": {"must_not": {"exists": {"field": time.primary}}}}
            ]}}
        ],
        "minimum_should_match": 1
    }})
}

/// Sort oldest first: the primary field, then `@timestamp` when overridden, both with
/// `unmapped_type: date` so an index lacking one does not fail.
pub fn time_sort(time: &TimeField) -> Value {
    let mut sort = vec![json!({time.primary.as_str(): {"order": "asc", "unmapped_type": "date"}})];
    if time.primary != TIMESTAMP && time.fallback_to_timestamp {
        sort.push(json!({TIMESTAMP: {"order": "asc", "unmapped_type": "date"}}));
    }
    Value::Array(sort)
}

/// The full query of a window: time range + the rule's translated query, alerts excluded.
pub fn window_query(rule_query: &Value, time_filter: Value, extra: Option<Value>) -> Value {
    let mut filter = vec![time_filter, rule_query.clone()];
    if let Some(e) = extra {
        filter.push(e);
    }
    json!({"bool": {
        "filter": filter,
        "must_not": [{"exists": {"field": ALERT_MARKER_FIELD}}]
    }})
}

/// `POST <indices>/_pit?keep_alive=..` path (7.10: no indices options on a PIT search, but
/// they are allowed when opening).
pub fn open_pit_path(indices: &[String]) -> String {
    format!("/{}/_pit?keep_alive={PIT_KEEP_ALIVE}", index_path(indices))
}

/// `DELETE /_pit` body.
pub fn close_pit_body(pit: &str) -> Value {
    json!({"id": pit})
}

/// OpenSearch's point in time: `POST /<indices>/_search/point_in_time` (answer `pit_id`).
pub fn opensearch_open_pit_path(indices: &[String]) -> String {
    format!(
        "/{}/_search/point_in_time?keep_alive={PIT_KEEP_ALIVE}",
        index_path(indices)
    )
}

/// OpenSearch's `DELETE /_search/point_in_time` path.
pub const OPENSEARCH_PIT_PATH: &str = "/_search/point_in_time";

/// OpenSearch's close body: a list of ids.
pub fn opensearch_close_pit_body(pit: &str) -> Value {
    json!({"pit_id": [pit]})
}

/// One page of a query rule's hits, oldest first: in a point in time (`POST /_search`, no
/// index in the path) or, for the first page, a plain search (`POST /<patterns>/_search`).
pub fn search_page_body(
    query: Value,
    time: &TimeField,
    size: usize,
    pit: Option<&str>,
    search_after: Option<&[Value]>,
) -> Value {
    let mut body = json!({
        "size": size,
        "track_total_hits": false,
        "query": query,
        "sort": time_sort(time),
    });
    if let Some(obj) = body.as_object_mut() {
        if let Some(pit) = pit {
            obj.insert(
                "pit".into(),
                json!({"id": pit, "keep_alive": PIT_KEEP_ALIVE}),
            );
        }
        if let Some(sa) = search_after {
            obj.insert("search_after".into(), Value::Array(sa.to_vec()));
        }
    }
    body
}

fn composite_sources(fields: &[String]) -> Value {
    Value::Array(
        fields
            .iter()
            .map(|f| json!({f.as_str(): {"terms": {"field": f}}}))
            .collect(),
    )
}

/// new_terms phase 1: distinct tuples in the window, one composite page.
pub fn terms_page_body(
    query: Value,
    fields: &[String],
    size: usize,
    after: Option<&Value>,
) -> Value {
    let mut composite = json!({"size": size, "sources": composite_sources(fields)});
    if let (Some(a), Some(obj)) = (after, composite.as_object_mut()) {
        obj.insert("after".into(), a.clone());
    }
    json!({"size": 0, "track_total_hits": false, "query": query, "aggs": {AGG_NAME: {"composite": composite}}})
}

fn first_seen_aggs(time: &TimeField, from: DateTime<Utc>, selector: bool) -> Map<String, Value> {
    let mut aggs = Map::new();
    if time.primary == TIMESTAMP || !time.fallback_to_timestamp {
        aggs.insert("first_seen".into(), json!({"min": {"field": time.primary}}));
        if !selector {
            return aggs;
        }
        aggs.insert(
            "filtering_agg".into(),
            json!({"bucket_selector": {
                "buckets_path": {"first_seen_value": "first_seen"},
                "script": {
                    "params": {"start_time": from.timestamp_millis()},
                    "source": "params.first_seen_value > params.start_time"
                }
            }}),
        );
        return aggs;
    }
    // Kibana's first-seen with an override is `min(kibana.combined_timestamp)`, a runtime field
    // (the override where a document has it, else `@timestamp`). The same value without
    // runtime fields (7.10 refuses `runtime_mappings`; OpenSearch has none): the smaller of
    // `min(override)` and `min(@timestamp)` over documents missing the override. An empty `min`
    // is NaN inside the selector script (es-fixtures 159-162). One shape for every cluster, and
    // no script per document.
    aggs.insert(
        "ingested_min".into(),
        json!({"min": {"field": time.primary}}),
    );
    aggs.insert(
        "fallback".into(),
        json!({
            "filter": {"bool": {"must_not": [{"exists": {"field": time.primary}}]}},
            "aggs": {"min": {"min": {"field": TIMESTAMP}}}
        }),
    );
    if !selector {
        return aggs;
    }
    aggs.insert(
        "filtering_agg".into(),
        json!({"bucket_selector": {
            "buckets_path": {"ingested": "ingested_min", "fallback": "fallback>min"},
            "script": {
                "params": {"start_time": from.timestamp_millis()},
                "source": "double a = params.ingested; double b = params.fallback; double first = Double.isNaN(a) ? b : (Double.isNaN(b) ? a : Math.min(a, b)); return first > params.start_time;"
            }
        }}),
    );
    aggs
}

fn top_hit_agg(time: &TimeField) -> Value {
    json!({"top_hits": {"size": 1, "sort": time_sort(time)}})
}

/// new_terms phase 2, single field: which of `values` were first seen after `from` (with
/// `selector`, Kibana's `bucket_selector` keeps only those; without it, for clusters without
/// painless, every bucket comes back with its first-seen aggregations to filter).
pub fn new_terms_history_body(
    query: Value,
    field: &str,
    values: &[Value],
    time: &TimeField,
    from: DateTime<Utc>,
    selector: bool,
) -> Value {
    json!({"size": 0, "track_total_hits": false, "query": query, "aggs": {AGG_NAME: {
        "terms": {"field": field, "size": values.len(), "include": values},
        "aggs": first_seen_aggs(time, from, selector)
    }}})
}

/// new_terms phase 3, single field: the first document of each new term in the window.
pub fn new_terms_first_docs_body(
    query: Value,
    field: &str,
    values: &[Value],
    time: &TimeField,
) -> Value {
    json!({"size": 0, "track_total_hits": false, "query": query, "aggs": {AGG_NAME: {
        "terms": {"field": field, "size": values.len(), "include": values},
        "aggs": {"docs": top_hit_agg(time)}
    }}})
}

/// The filter selecting documents having one of `tuples` (several fields):
/// `bool.should[bool.filter[term f1:v1, term f2:v2 ...]]`.
pub fn tuples_filter(fields: &[String], tuples: &[Vec<Value>]) -> Value {
    let should: Vec<Value> = tuples
        .iter()
        .map(|t| {
            let terms: Vec<Value> = fields
                .iter()
                .zip(t)
                .map(|(f, v)| json!({"term": {f.as_str(): v}}))
                .collect();
            json!({"bool": {"filter": terms}})
        })
        .collect();
    json!({"bool": {"should": should, "minimum_should_match": 1}})
}

/// new_terms phases 2 and 3 together, several fields: one composite page over the history
/// window restricted to a batch of tuples, keeping tuples first seen after `from`, with the
/// first document of each.
pub fn new_terms_composite_body(
    query: Value,
    fields: &[String],
    batch_len: usize,
    time: &TimeField,
    from: DateTime<Utc>,
    after: Option<&Value>,
    selector: bool,
) -> Value {
    let mut aggs = first_seen_aggs(time, from, selector);
    aggs.insert("docs".into(), top_hit_agg(time));
    let mut composite = json!({"size": batch_len, "sources": composite_sources(fields)});
    if let (Some(a), Some(obj)) = (after, composite.as_object_mut()) {
        obj.insert("after".into(), a.clone());
    }
    json!({"size": 0, "track_total_hits": false, "query": query, "aggs": {AGG_NAME: {
        "composite": composite,
        "aggs": aggs
    }}})
}

/// Name of a threshold bucket's distinct count of its `i`-th cardinality field.
pub fn threshold_cardinality_agg(i: usize) -> String {
    format!("cardinality_{i}")
}

/// The per-bucket aggregations of a threshold rule: first and last event time (with a
/// `timestamp_override` and the fallback on, Kibana's combined timestamp as two parts: the
/// override's min/max, and min/max of `@timestamp` over documents missing it — no runtime
/// field, so one request works on 7.10, 8.x and OpenSearch), and one `cardinality` per
/// cardinality field.
fn threshold_aggs(cardinality: &[String], time: &TimeField) -> Map<String, Value> {
    let mut aggs = Map::new();
    aggs.insert("min_time".into(), json!({"min": {"field": time.primary}}));
    aggs.insert("max_time".into(), json!({"max": {"field": time.primary}}));
    if time.primary != TIMESTAMP && time.fallback_to_timestamp {
        aggs.insert(
            "fallback".into(),
            json!({
                "filter": {"bool": {"must_not": [{"exists": {"field": time.primary}}]}},
                "aggs": {"min": {"min": {"field": TIMESTAMP}}, "max": {"max": {"field": TIMESTAMP}}}
            }),
        );
    }
    for (i, f) in cardinality.iter().enumerate() {
        aggs.insert(
            threshold_cardinality_agg(i),
            json!({"cardinality": {"field": f}}),
        );
    }
    aggs
}

/// Threshold rule: one page of buckets over the window. With fields, a composite aggregation
/// with one `terms` source per field (ordered by the terms, as Kibana's); without, one
/// `filter` bucket holding every matching document. Every bucket comes back: the count and
/// cardinality conditions are applied by detectd (Kibana's `bucket_selector`s need painless,
/// which not every cluster runs).
pub fn threshold_body(
    query: Value,
    fields: &[String],
    cardinality: &[String],
    time: &TimeField,
    size: usize,
    after: Option<&Value>,
) -> Value {
    let aggs = threshold_aggs(cardinality, time);
    if fields.is_empty() {
        return json!({"size": 0, "track_total_hits": false, "query": query, "aggs": {AGG_NAME: {
            "filter": {"match_all": {}},
            "aggs": aggs
        }}});
    }
    let mut composite = json!({"size": size, "sources": composite_sources(fields)});
    if let (Some(a), Some(obj)) = (after, composite.as_object_mut()) {
        obj.insert("after".into(), a.clone());
    }
    json!({"size": 0, "track_total_hits": false, "query": query, "aggs": {AGG_NAME: {
        "composite": composite,
        "aggs": aggs
    }}})
}

/// Kibana's `getThresholdBucketFilters`: documents of an already alerted bucket (its terms,
/// primary time at or before the bucket's last event) are not counted again. `None` without
/// history.
pub fn threshold_exclusion_filter(
    time: &TimeField,
    history: &[crate::backend::ThresholdSignal],
) -> Option<Value> {
    if history.is_empty() {
        return None;
    }
    let filters: Vec<Value> = history
        .iter()
        .map(|h| {
            let mut f = vec![json!({"range": {time.primary.as_str(): {"lte": es_time(h.last)}}})];
            for (field, v) in &h.terms {
                f.push(json!({"term": {field.as_str(): v}}));
            }
            json!({"bool": {"filter": f}})
        })
        .collect();
    Some(json!({"bool": {"must_not": filters}}))
}

/// Threshold signal history: `rule_id`'s threshold alerts whose last event is at or after
/// `since` (`POST /<alias>/_search`, after a `_refresh` so the previous execution's alerts
/// are seen).
pub fn threshold_history_body(rule_id: &str, since: DateTime<Utc>) -> Value {
    json!({"size": 10000, "track_total_hits": false, "query": {"bool": {"filter": [
        {"term": {"kibana.alert.rule.rule_id": rule_id}},
        {"exists": {"field": "kibana.alert.threshold_result.count"}},
        {"range": {"kibana.alert.original_time": {"gte": es_time(since), "format": "strict_date_optional_time"}}}
    ]}}})
}

/// `POST /<alias>/_search` of the alerts (missing alias = no alerts).
pub fn alerts_search_path(alias: &str) -> String {
    format!("/{}/_search?{INDICES_OPTIONS}", encode_path_segment(alias))
}

/// `_bulk` NDJSON of `create` actions with the alerts' deterministic ids (every line,
/// including the last, ends with `\n`).
pub fn bulk_create_body(alerts: &[&AlertDoc]) -> String {
    let mut out = String::new();
    for a in alerts {
        out.push_str(&json!({"create": {"_id": a.id}}).to_string());
        out.push('\n');
        out.push_str(&a.doc.to_string());
        out.push('\n');
    }
    out
}

/// `POST <alias>/_bulk`. Without `refresh` the write returns once the alerts are durable
/// (~5 ms); `refresh=wait_for` (`alerts.refresh = true`, as Kibana's rule data client does)
/// also waits until they are searchable, up to the 1 s refresh interval. Duplicate detection
/// needs no refresh: `create` conflicts are checked in real time (es-fixtures 164-165, 181).
pub fn bulk_path(alias: &str, refresh: bool) -> String {
    let refresh = if refresh { "?refresh=wait_for" } else { "" };
    format!("/{}/_bulk{refresh}", encode_path_segment(alias))
}

/// The alerts index template: Kibana alert fields mapped, source fields dynamic.
pub fn alerts_template_body(alias: &str) -> Value {
    let kw = json!({"type": "keyword"});
    let date = json!({"type": "date"});
    let ancestors =
        json!({"properties": {"id": kw, "index": kw, "type": kw, "depth": {"type": "long"}}});
    let original_event =
        json!({"dynamic": true, "properties": {"ingested": date, "created": date}});
    // Term values as keyword whatever their JSON type (one rule's numbers, another's strings).
    let threshold_result = json!({"properties": {
        "terms": {"properties": {"field": kw, "value": kw}},
        "cardinality": {"properties": {"field": kw, "value": {"type": "long"}}},
        "count": {"type": "long"}, "from": date
    }});
    let rule = json!({"properties": {
        "uuid": kw, "rule_id": kw, "name": kw, "type": kw, "rule_type_id": kw,
        "consumer": kw, "producer": kw, "severity": kw,
        "risk_score": {"type": "float"}, "version": kw, "from": kw, "to": kw,
        "interval": kw, "max_signals": {"type": "long"}, "indices": kw, "tags": kw,
        "timestamp_override": kw, "description": {"type": "text"},
        "execution": {"properties": {"uuid": kw}}
    }});
    json!({
        "index_patterns": [format!("{alias}-*")],
        "priority": 200,
        "template": {
            "settings": {"index": {"number_of_shards": 1, "auto_expand_replicas": "0-1"}},
            "mappings": {
                "dynamic": true,
                "dynamic_templates": [{"strings_as_keyword": {
                    "match_mapping_type": "string",
                    "mapping": {"type": "keyword", "ignore_above": 8191}
                }}],
                "properties": {
                    "@timestamp": date,
                    "event": {"properties": {"kind": kw, "action": kw, "ingested": date}},
                    "kibana": {"properties": {
                        "space_ids": kw,
                        "alert": {"properties": {
                            "uuid": kw, "status": kw, "workflow_status": kw, "severity": kw,
                            "risk_score": {"type": "float"}, "depth": {"type": "long"},
                            "original_time": date, "reason": {"type": "text"}, "new_terms": kw,
                            "threshold_result": threshold_result,
                            "ancestors": ancestors, "original_event": original_event, "rule": rule
                        }}
                    }}
                }
            }
        }
    })
}

/// Creates the first alerts index with the write alias (`<alias>-000001`).
pub fn alerts_bootstrap_body(alias: &str) -> Value {
    json!({"aliases": {alias: {"is_write_index": true}}})
}

/// The first concrete alerts index behind the alias.
pub fn alerts_first_index(alias: &str) -> String {
    format!("{alias}-000001")
}

/// Mappings of the state index (one document per rule).
pub fn state_index_body() -> Value {
    json!({"settings": {"index": {"number_of_shards": 1, "auto_expand_replicas": "0-1"}},
        "mappings": {"dynamic": false, "properties": {
        "rule_id": {"type": "keyword"},
        "last_start": {"type": "date"},
        "covered_until": {"type": "date"},
        "status": {"type": "keyword"}
    }}})
}

/// The newest execution records first.
pub fn recent_executions_body(size: usize) -> Value {
    json!({ "size": size, "sort": [{ "@timestamp": { "order": "desc", "unmapped_type": "date" } }] })
}

/// Mappings of the executions index (plain index, dynamic for the record's fields).
pub fn executions_index_body() -> Value {
    json!({"settings": {"index": {"number_of_shards": 1, "auto_expand_replicas": "0-1"}},
        "mappings": {"dynamic": true, "properties": {
        "@timestamp": {"type": "date"},
        "rule_id": {"type": "keyword"},
        "status": {"type": "keyword"}
    }}})
}

/// The state document of one rule.
pub fn state_doc(rule_id: &str, state: &Value) -> Value {
    let mut doc = state.clone();
    if let Some(obj) = doc.as_object_mut() {
        obj.insert("rule_id".into(), Value::String(rule_id.to_string()));
    }
    doc
}

/// Reads every state document (there is one per rule, far fewer than 10,000).
/// `POST <index>/_refresh`: makes every write so far searchable (before reading state back).
pub fn refresh_path(index: &str) -> String {
    format!("/{}/_refresh", encode_path_segment(index))
}

/// `POST /_bulk` body of `index` operations: `(index, id, source)` each.
pub fn bulk_index_body<'a>(docs: impl Iterator<Item = (&'a str, &'a str, &'a Value)>) -> String {
    let mut body = String::new();
    for (index, id, doc) in docs {
        body.push_str(&json!({"index": {"_index": index, "_id": id}}).to_string());
        body.push('\n');
        body.push_str(&doc.to_string());
        body.push('\n');
    }
    body
}

pub fn load_state_body() -> Value {
    json!({"size": 10000, "query": {"match_all": {}}})
}

/// A size-0 search: does anything match these patterns, can we read it.
pub fn probe_body() -> Value {
    json!({"size": 0, "track_total_hits": false, "query": {"match_all": {}}})
}

/// `_field_caps` of every field of the patterns.
pub fn field_caps_path(indices: &[String]) -> String {
    format!(
        "/{}/_field_caps?fields=*&{INDICES_OPTIONS}",
        index_path(indices)
    )
}

/// `_bulk` NDJSON of `create` actions for (id, compact JSON document) pairs (ingest; data
/// streams accept only `create`, and a second ingest of the same document answers 409).
pub fn bulk_ingest_body(docs: &[&(String, String)]) -> String {
    let mut out = String::with_capacity(docs.iter().map(|(i, d)| i.len() + d.len() + 24).sum());
    for (id, doc) in docs {
        out.push_str("{\"create\":{\"_id\":");
        out.push_str(&Value::String(id.clone()).to_string());
        out.push_str("}}\n");
        out.push_str(doc);
        out.push('\n');
    }
    out
}

/// The index template `detectd ingest` installs for `index`: name and body. A data stream
/// name (`logs-<dataset>-<namespace>`) gets a data-stream template on `logs-<dataset>-*`;
/// anything else a template on exactly that name. Mappings: the aws integration's main
/// CloudTrail fields (keyword, `ignore_above: 8191` strings, `flattened` objects, `ip`, dates),
/// other strings keyword as ECS maps them.
/// Field types a cluster may lack, and what [`cloudtrail_template`] maps instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MappingTypes {
    /// `flattened` (Elasticsearch), `flat_object` (OpenSearch), or `object` (a node without
    /// either: the leaves become keywords through the dynamic template).
    pub flattened: &'static str,
    /// `constant_keyword`, or `keyword` where the cluster lacks it.
    pub constant_keyword: &'static str,
}

impl Default for MappingTypes {
    fn default() -> Self {
        MappingTypes {
            flattened: "flattened",
            constant_keyword: "constant_keyword",
        }
    }
}

pub fn cloudtrail_template(index: &str) -> (String, Value) {
    cloudtrail_template_with(index, MappingTypes::default())
}

/// [`cloudtrail_template`] with the field types the cluster has.
pub fn cloudtrail_template_with(index: &str, types: MappingTypes) -> (String, Value) {
    let data_stream = index.starts_with("logs-") && index.matches('-').count() >= 2;
    let (name, pattern) = match index.rsplit_once('-') {
        Some((prefix, _)) if data_stream => (prefix.to_string(), format!("{prefix}-*")),
        _ => (format!("detectd-ingest-{index}"), index.to_string()),
    };
    let kw = json!({"type": "keyword"});
    let long_kw = json!({"type": "keyword", "ignore_above": 8191});
    let flat = json!({"type": types.flattened});
    let date = json!({"type": "date"});
    let ck = json!({"type": types.constant_keyword});
    let cloudtrail = json!({"properties": {
        "user_identity": {"properties": {"arn": kw, "type": kw, "access_key_id": kw, "invoked_by": kw,
            "session_context": {"properties": {"creation_date": date, "mfa_authenticated": kw}}}},
        "resources": {"properties": {"arn": kw, "type": kw, "account_id": kw}},
        "request_parameters": long_kw, "response_elements": long_kw,
        "additional_eventdata": long_kw, "service_event_details": long_kw,
        "flattened": {"properties": {"request_parameters": flat, "response_elements": flat,
            "additional_eventdata": flat, "service_event_details": flat}},
        "read_only": {"type": "boolean"},
        "console_login": {"properties": {"additional_eventdata": {"properties": {
            "mfa_used": {"type": "boolean"}, "mobile_version": {"type": "boolean"}, "login_to": kw}}}}
    }});
    let mappings = json!({
        "dynamic": true,
        "dynamic_templates": [{"strings_as_keyword": {
            "match_mapping_type": "string", "mapping": {"type": "keyword", "ignore_above": 1024}}}],
        "properties": {
            "@timestamp": date,
            "message": {"type": "text"},
            "data_stream": {"properties": {"type": ck, "dataset": ck, "namespace": ck}},
            "event": {"properties": {"ingested": date, "created": date, "dataset": ck, "module": ck,
                "original": {"type": "keyword", "index": false, "doc_values": false}}},
            "source": {"properties": {"ip": {"type": "ip"}, "address": kw,
                "geo": {"properties": {"location": {"type": "geo_point"}}}}},
            "aws": {"properties": {"cloudtrail": cloudtrail}}
        }
    });
    let mut body = json!({
        "index_patterns": [pattern],
        "priority": 200,
        "template": {"settings": {"index": {"number_of_shards": 1, "auto_expand_replicas": "0-1"}}, "mappings": mappings}
    });
    if let Some(o) = body.as_object_mut() {
        if data_stream {
            o.insert("data_stream".into(), json!({}));
        }
    }
    (name, body)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn tf(primary: &str, fallback: bool) -> TimeField {
        TimeField {
            primary: primary.to_string(),
            fallback_to_timestamp: fallback,
        }
    }

    #[test]
    fn path_segments_keep_patterns_and_escape_the_rest() {
        assert_eq!(
            encode_path_segment("logs-aws.cloudtrail-*"),
            "logs-aws.cloudtrail-*"
        );
        // a remote cluster prefix must not look like a URL scheme to `Url::join`
        assert_eq!(encode_path_segment("remote:logs-*"), "remote%3Alogs-*");
        assert_eq!(encode_path_segment("a/b c"), "a%2Fb%20c");
        assert_eq!(index_path(&["a-*".to_string(), "b".to_string()]), "a-*,b");
    }

    #[test]
    fn override_fallback_only_when_enabled_and_not_timestamp() {
        let from = "2026-11-23T20:04:28Z".parse().unwrap();
        let to = "2026-11-23T21:04:28Z".parse().unwrap();
        let plain = time_range_filter(&tf("event.ingested", false), from, to);
        assert!(plain["range"]["event.ingested"]["gte"] == "2026-11-23T20:04:28.000Z");
        assert_eq!(
            time_sort(&tf("event.ingested", false))
                .as_array()
                .unwrap()
                .len(),
            1
        );
        let ts = time_range_filter(&tf("@timestamp", true), from, to);
        assert!(ts.get("range").is_some());
        let fb = time_range_filter(&tf("event.ingested", true), from, to);
        assert_eq!(fb["bool"]["minimum_should_match"], 1);
        assert_eq!(
            fb["bool"]["should"][1]["bool"]["filter"][1]["bool"]["must_not"]["exists"]["field"],
            "event.ingested"
        );
        assert_eq!(
            time_sort(&tf("event.ingested", true))
                .as_array()
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn ingest_template_is_a_data_stream_only_for_data_stream_names() {
        let (name, body) = cloudtrail_template("logs-aws.cloudtrail-default");
        assert_eq!(name, "logs-aws.cloudtrail");
        assert_eq!(body["index_patterns"][0], "logs-aws.cloudtrail-*");
        assert!(body.get("data_stream").is_some());
        let (name, body) = cloudtrail_template("cloudtrail");
        assert_eq!(name, "detectd-ingest-cloudtrail");
        assert_eq!(body["index_patterns"][0], "cloudtrail");
        assert!(body.get("data_stream").is_none());
    }

    #[test]
    fn bulk_bodies_end_every_line_with_a_newline() {
        let a = AlertDoc {
            id: "x".into(),
            doc: json!({"a": 1}),
        };
        assert_eq!(
            bulk_create_body(&[&a]),
            "{\"create\":{\"_id\":\"x\"}}\n{\"a\":1}\n"
        );
        assert_eq!(
            bulk_ingest_body(&[&("i\"d".to_string(), "{\"b\":2}".to_string())]),
            "{\"create\":{\"_id\":\"i\\\"d\"}}\n{\"b\":2}\n"
        );
    }
}
