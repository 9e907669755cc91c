//! Alert documents: Kibana alerts-as-data fields (semantics.md §6) and deterministic ids (§4).
//!
//! An alert is the source event merged in (with `event.kind: signal`), plus `kibana.alert.*`
//! keys written flat (dotted), as Kibana writes them. Ids are a SHA-256 over length-prefixed
//! parts, so the same event and rule always give the same id on both backends, across restarts
//! and overlapping windows.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

mod sequence;
pub use sequence::{
    build_sequence_alerts, building_block_id, sequence_alert_id, SequenceEvent, BUILDING_BLOCK_TYPE,
};

/// Deterministic alert id: `sha256_hex` over the source index, the source `_id`, the rule id
/// and (new_terms) the new-term values, each prefixed by its length so no two inputs collide.
pub fn alert_id(index: &str, source_id: &str, rule_id: &str, new_terms: &[Value]) -> String {
    let mut h = Sha256::new();
    let mut part = |s: &str| {
        h.update((s.len() as u64).to_be_bytes());
        h.update(s.as_bytes());
    };
    part(index);
    part(source_id);
    part(rule_id);
    for v in new_terms {
        match v {
            Value::String(s) => part(s),
            other => part(&other.to_string()),
        }
    }
    hex::encode(h.finalize())
}

/// Deterministic threshold alert id. Kibana's `calculateThresholdSignalUuid` is a uuid v5 of
/// rule id + the execution's `startedAt` + threshold fields + the sorted term values, so a
/// window run again after a crash alerts again under a new id; here `sha256_hex` over rule id,
/// the bucket's first event time (epoch millis, `threshold_result.from`), the fields and the
/// term values in field order, length-prefixed: the same bucket gives the same id on both
/// backends and on a re-run (a duplicate, not a second alert).
pub fn threshold_alert_id(
    rule_id: &str,
    fields: &[String],
    terms: &[Value],
    from_ms: i64,
) -> String {
    let mut h = Sha256::new();
    let mut part = |s: &str| {
        h.update((s.len() as u64).to_be_bytes());
        h.update(s.as_bytes());
    };
    part("threshold");
    part(rule_id);
    part(&from_ms.to_string());
    part(&fields.join(","));
    for v in terms {
        match v {
            Value::String(s) => part(s),
            other => part(&other.to_string()),
        }
    }
    hex::encode(h.finalize())
}

/// A threshold bucket as an alert needs it.
#[derive(Debug, Clone)]
pub struct ThresholdResult<'a> {
    pub fields: &'a [String],
    pub terms: &'a [Value],
    pub count: u64,
    /// (field, distinct count) per cardinality condition.
    pub cardinality: Vec<(&'a str, u64)>,
    /// The bucket's first event (`threshold_result.from`).
    pub first: DateTime<Utc>,
    /// The bucket's last event (`kibana.alert.original_time`, the signal history's time).
    pub last: DateTime<Utc>,
}

/// Builds a threshold alert, as Kibana's `bulk_create_threshold_signals` does: no source
/// event merged in, the threshold fields set to the bucket's values,
/// `kibana.alert.threshold_result` = `{terms: [{field, value}], count, cardinality, from}`,
/// `kibana.alert.original_time` = the bucket's last event (Kibana's fake source `@timestamp`,
/// `max_timestamp`). `from` is the bucket's first event; Kibana writes the window start there,
/// or the terms' previous last-signal time when they have history.
pub fn build_threshold_alert(
    ctx: &AlertContext<'_>,
    id: &str,
    indices: &[String],
    result: &ThresholdResult<'_>,
) -> Value {
    let ms = |t: DateTime<Utc>| Value::String(t.to_rfc3339_opts(SecondsFormat::Millis, true));
    let mut doc = Map::new();
    for (f, v) in result.fields.iter().zip(result.terms) {
        set_path(&mut doc, f, v.clone());
    }
    doc.insert("@timestamp".into(), ms(ctx.now));
    set_path(&mut doc, "event.kind", Value::String("signal".into()));
    let terms: Vec<Value> = result
        .fields
        .iter()
        .zip(result.terms)
        .map(|(f, v)| serde_json::json!({"field": f, "value": v}))
        .collect();
    let mut tr = serde_json::json!({
        "terms": terms,
        "count": result.count,
        "from": ms(result.first),
    });
    if !result.cardinality.is_empty() {
        tr["cardinality"] = Value::Array(
            result
                .cardinality
                .iter()
                .map(|(f, n)| serde_json::json!({"field": f, "value": n}))
                .collect(),
        );
    }
    let mut put = |k: &str, v: Value| {
        doc.insert(k.to_string(), v);
    };
    put("kibana.alert.threshold_result", tr);
    put("kibana.alert.original_time", ms(result.last));
    put("kibana.alert.uuid", Value::String(id.to_string()));
    put("kibana.alert.status", "active".into());
    put("kibana.alert.workflow_status", "open".into());
    put("kibana.alert.depth", 1.into());
    put(
        "kibana.alert.ancestors",
        serde_json::json!([{ "id": id, "index": indices.join(","), "type": "event", "depth": 0 }]),
    );
    let by: Vec<String> = result
        .fields
        .iter()
        .zip(result.terms)
        .map(|(f, v)| match v {
            Value::String(s) => format!("{f}={s}"),
            other => format!("{f}={other}"),
        })
        .collect();
    let mut reason = format!("{} events", result.count);
    if !by.is_empty() {
        reason.push_str(&format!(" with {}", by.join(", ")));
    }
    reason.push_str(&format!(
        " created {} alert {}.",
        ctx.severity, ctx.rule_name
    ));
    put("kibana.alert.reason", Value::String(reason));
    put(
        "kibana.alert.severity",
        Value::String(ctx.severity.to_string()),
    );
    put("kibana.alert.risk_score", serde_json::json!(ctx.risk_score));
    for (k, v) in ctx.rule_fields {
        put(&format!("kibana.alert.rule.{k}"), v.clone());
    }
    put(
        "kibana.alert.rule.execution.uuid",
        Value::String(ctx.execution_uuid.to_string()),
    );
    put("kibana.space_ids", serde_json::json!(["default"]));
    Value::Object(doc)
}

/// Sets a dotted path in an object, creating objects on the way (a non-object in the way is
/// replaced).
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

/// The rule-level facts every alert of one execution carries.
#[derive(Debug, Clone)]
pub struct AlertContext<'a> {
    /// `kibana.alert.rule.*` fields (without the prefix), e.g. `name`, `rule_id`, `severity`.
    pub rule_fields: &'a Map<String, Value>,
    pub rule_id: &'a str,
    pub rule_name: &'a str,
    pub severity: &'a str,
    pub risk_score: f64,
    /// The execution's uuid (`kibana.alert.rule.execution.uuid`).
    pub execution_uuid: &'a str,
    /// Alert creation time (`@timestamp` of the alert).
    pub now: DateTime<Utc>,
}

/// True when `doc` is itself an alert (it has `kibana.alert.*` fields): rules never alert on
/// alerts.
pub fn is_alert(doc: &Value) -> bool {
    let Some(obj) = doc.as_object() else {
        return false;
    };
    obj.keys().any(|k| k.starts_with("kibana.alert."))
        || obj
            .get("kibana")
            .and_then(|k| k.get("alert"))
            .is_some_and(|a| !a.is_null())
}

/// Builds the alert document for one source hit.
pub fn build_alert(
    ctx: &AlertContext<'_>,
    id: &str,
    index: &str,
    source_id: &str,
    source: &Value,
    new_terms: Option<&[Value]>,
) -> Value {
    let mut doc = match source {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    let original_time = doc.get("@timestamp").cloned();
    // event.* of the source, kept under kibana.alert.original_event.*
    let original_event = doc.get("event").and_then(Value::as_object).cloned();
    let event = doc
        .entry("event")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(ev) = event {
        ev.insert("kind".into(), Value::String("signal".into()));
    } else {
        *event = serde_json::json!({ "kind": "signal" });
    }
    doc.insert(
        "@timestamp".into(),
        Value::String(ctx.now.to_rfc3339_opts(SecondsFormat::Millis, true)),
    );
    let mut put = |k: &str, v: Value| {
        doc.insert(k.to_string(), v);
    };
    if let Some(ev) = original_event {
        for (k, v) in ev {
            put(&format!("kibana.alert.original_event.{k}"), v);
        }
    }
    if let Some(t) = original_time {
        put("kibana.alert.original_time", t);
    }
    put("kibana.alert.uuid", Value::String(id.to_string()));
    put("kibana.alert.status", "active".into());
    put("kibana.alert.workflow_status", "open".into());
    put("kibana.alert.depth", 1.into());
    put(
        "kibana.alert.ancestors",
        serde_json::json!([{ "id": source_id, "index": index, "type": "event", "depth": 0 }]),
    );
    put("kibana.alert.reason", Value::String(reason(ctx, source)));
    put(
        "kibana.alert.severity",
        Value::String(ctx.severity.to_string()),
    );
    put("kibana.alert.risk_score", serde_json::json!(ctx.risk_score));
    if let Some(terms) = new_terms {
        put("kibana.alert.new_terms", Value::Array(terms.to_vec()));
    }
    for (k, v) in ctx.rule_fields {
        put(&format!("kibana.alert.rule.{k}"), v.clone());
    }
    put(
        "kibana.alert.rule.execution.uuid",
        Value::String(ctx.execution_uuid.to_string()),
    );
    put("kibana.space_ids", serde_json::json!(["default"]));
    Value::Object(doc)
}

fn lookup<'v>(doc: &'v Value, path: &str) -> Option<&'v str> {
    let mut cur = doc;
    for seg in path.split('.') {
        cur = cur.get(seg)?;
    }
    cur.as_str()
}

/// `kibana.alert.reason`: a sentence naming the event action, user, source and rule, in the
/// spirit of Kibana's `buildReasonMessage`.
fn reason(ctx: &AlertContext<'_>, source: &Value) -> String {
    let mut s = String::from("event");
    if let Some(a) = lookup(source, "event.action") {
        s.push_str(&format!(" with action {a}"));
    }
    if let Some(u) = lookup(source, "user.name") {
        s.push_str(&format!(" by {u}"));
    }
    if let Some(ip) = lookup(source, "source.ip").or_else(|| lookup(source, "source.address")) {
        s.push_str(&format!(" from {ip}"));
    }
    if let Some(acct) = lookup(source, "cloud.account.id") {
        s.push_str(&format!(" in account {acct}"));
    }
    s.push_str(&format!(
        " created {} alert {}.",
        ctx.severity, ctx.rule_name
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_are_deterministic_and_length_prefixed() {
        let a = alert_id("idx", "doc1", "rule", &[]);
        assert_eq!(a, alert_id("idx", "doc1", "rule", &[]));
        assert_eq!(a.len(), 64);
        // moving a character between parts must change the id
        assert_ne!(
            alert_id("idx", "doc1", "rule", &[]),
            alert_id("idxd", "oc1", "rule", &[])
        );
        assert_ne!(a, alert_id("idx", "doc1", "rule", &[json!("x")]));
        assert_ne!(
            alert_id("i", "d", "r", &[json!("ab"), json!("c")]),
            alert_id("i", "d", "r", &[json!("a"), json!("bc")])
        );
    }

    #[test]
    fn alert_document_has_kibana_fields() {
        let rule_fields: Map<String, Value> =
            serde_json::from_value(json!({"name": "R", "rule_id": "rid", "type": "query"}))
                .unwrap();
        let ctx = AlertContext {
            rule_fields: &rule_fields,
            rule_id: "rid",
            rule_name: "R",
            severity: "high",
            risk_score: 73.0,
            execution_uuid: "exec-1",
            now: DateTime::parse_from_rfc3339("2024-05-01T00:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
        };
        let src = json!({"@timestamp": "2024-04-30T23:59:00Z", "event": {"action": "StopLogging", "kind": "event"}, "user": {"name": "bob"}});
        let doc = build_alert(&ctx, "abc", "logs-x", "doc1", &src, Some(&[json!("arn:x")]));
        assert_eq!(doc["event"]["kind"], "signal");
        assert_eq!(doc["kibana.alert.original_event.kind"], "event");
        assert_eq!(doc["kibana.alert.original_event.action"], "StopLogging");
        assert_eq!(doc["kibana.alert.original_time"], "2024-04-30T23:59:00Z");
        assert_eq!(doc["@timestamp"], "2024-05-01T00:00:00.000Z");
        assert_eq!(doc["kibana.alert.uuid"], "abc");
        assert_eq!(doc["kibana.alert.rule.name"], "R");
        assert_eq!(doc["kibana.alert.rule.execution.uuid"], "exec-1");
        assert_eq!(doc["kibana.alert.ancestors"][0]["id"], "doc1");
        assert_eq!(doc["kibana.alert.new_terms"], json!(["arn:x"]));
        assert_eq!(doc["kibana.alert.workflow_status"], "open");
        assert!(doc["kibana.alert.reason"]
            .as_str()
            .unwrap()
            .contains("StopLogging by bob"));
        assert!(is_alert(&doc));
        assert!(!is_alert(&src));
    }

    #[test]
    fn threshold_alert_carries_the_result_and_a_bucket_id() {
        let rule_fields: Map<String, Value> =
            serde_json::from_value(json!({"name": "R", "rule_id": "rid", "type": "threshold"}))
                .unwrap();
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let ctx = AlertContext {
            rule_fields: &rule_fields,
            rule_id: "rid",
            rule_name: "R",
            severity: "medium",
            risk_score: 47.0,
            execution_uuid: "exec-1",
            now: t("2024-05-01T00:00:00Z"),
        };
        let fields = vec!["user.name".to_string()];
        let terms = vec![json!("alice")];
        let id = threshold_alert_id("rid", &fields, &terms, 1_000);
        assert_eq!(id, threshold_alert_id("rid", &fields, &terms, 1_000));
        assert_ne!(id, threshold_alert_id("rid", &fields, &terms, 1_001));
        assert_ne!(
            id,
            threshold_alert_id("rid", &fields, &[json!("bob")], 1_000)
        );
        let result = ThresholdResult {
            fields: &fields,
            terms: &terms,
            count: 3,
            cardinality: vec![("source.ip", 2)],
            first: t("2024-04-30T23:50:00Z"),
            last: t("2024-04-30T23:55:00Z"),
        };
        let doc = build_threshold_alert(&ctx, &id, &["logs-*".to_string()], &result);
        assert_eq!(doc["user"]["name"], "alice");
        assert_eq!(doc["event"]["kind"], "signal");
        assert_eq!(
            doc["kibana.alert.threshold_result"],
            json!({"terms": [{"field": "user.name", "value": "alice"}], "count": 3,
                "from": "2024-04-30T23:50:00.000Z",
                "cardinality": [{"field": "source.ip", "value": 2}]})
        );
        assert_eq!(
            doc["kibana.alert.original_time"],
            "2024-04-30T23:55:00.000Z"
        );
        assert_eq!(doc["kibana.alert.rule.type"], "threshold");
        assert!(is_alert(&doc));
    }
}
