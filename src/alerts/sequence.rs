//! EQL sequence alerts, as Kibana's `buildAlertGroupFromSequence`
//! (detection_engine/rule_types/eql/build_alert_group_from_sequence.ts, Kibana 8.15): one
//! building-block alert per event of the sequence (`kibana.alert.building_block_type:
//! "default"`, `kibana.alert.group.id` = the shell's id, `kibana.alert.group.index` = the
//! event's position) and one shell alert that ties them together (the fields every event
//! shares, ancestors = each event and each building block, depth 2).
//!
//! Ids are deterministic: Kibana hashes the events' ids and indices with the rule id (plus the
//! position for a building block); detectd does the same with length-prefixed parts, so a
//! sequence found again in an overlapping window gives the same N+1 ids (duplicates). Where
//! detectd differs: the shell's `kibana.alert.original_time` is the first event's time (Kibana
//! takes the first building block's `@timestamp`, i.e. the alert creation time).

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::{build_alert, AlertContext};

/// `kibana.alert.building_block_type` of a sequence's building blocks.
pub const BUILDING_BLOCK_TYPE: &str = "default";

/// One event of a sequence: its index, id and source.
#[derive(Debug, Clone, Copy)]
pub struct SequenceEvent<'a> {
    pub index: &'a str,
    pub id: &'a str,
    pub source: &'a Value,
}

fn sequence_hash(
    kind: &str,
    rule_id: &str,
    events: &[SequenceEvent<'_>],
    pos: Option<usize>,
) -> String {
    let mut h = Sha256::new();
    let mut part = |s: &str| {
        h.update((s.len() as u64).to_be_bytes());
        h.update(s.as_bytes());
    };
    part(kind);
    part(rule_id);
    for e in events {
        part(e.index);
        part(e.id);
    }
    if let Some(p) = pos {
        part(&p.to_string());
    }
    hex::encode(h.finalize())
}

/// Id of the building block of the event at `pos`: depends on every event of the sequence, so
/// an event in two sequences gets one building block in each.
pub fn building_block_id(rule_id: &str, events: &[SequenceEvent<'_>], pos: usize) -> String {
    sequence_hash("eql-building-block", rule_id, events, Some(pos))
}

/// Id of the shell alert of a sequence (its `kibana.alert.group.id`).
pub fn sequence_alert_id(rule_id: &str, events: &[SequenceEvent<'_>]) -> String {
    sequence_hash("eql-sequence", rule_id, events, None)
}

/// The N+1 alerts of one sequence, `(id, document)`: the building blocks in sequence order,
/// then the shell. Empty for an empty sequence.
pub fn build_sequence_alerts(
    ctx: &AlertContext<'_>,
    events: &[SequenceEvent<'_>],
) -> Vec<(String, Value)> {
    let Some(first) = events.first() else {
        return Vec::new();
    };
    let group_id = sequence_alert_id(ctx.rule_id, events);
    let mut out: Vec<(String, Value)> = Vec::with_capacity(events.len() + 1);
    let mut ancestors = Vec::new();
    for (i, e) in events.iter().enumerate() {
        let id = building_block_id(ctx.rule_id, events, i);
        let mut doc = build_alert(ctx, &id, e.index, e.id, e.source, None);
        if let Value::Object(m) = &mut doc {
            m.insert(
                "kibana.alert.building_block_type".into(),
                BUILDING_BLOCK_TYPE.into(),
            );
            m.insert(
                "kibana.alert.group.id".into(),
                Value::String(group_id.clone()),
            );
            m.insert("kibana.alert.group.index".into(), json!(i));
        }
        ancestors.push(json!({"id": e.id, "index": e.index, "type": "event", "depth": 0}));
        // Kibana's building blocks have no index yet when the shell is built (`_index: ''`).
        ancestors.push(
            json!({"id": id, "index": "", "type": "signal", "depth": 1, "rule": ctx.rule_id}),
        );
        out.push((id, doc));
    }
    // The shell: what every building block has in common, then its own alert fields.
    let mut shell = out
        .iter()
        .map(|(_, d)| d.clone())
        .reduce(|a, b| intersection(&a, &b).unwrap_or(Value::Object(Map::new())))
        .and_then(|v| match v {
            Value::Object(m) => Some(m),
            _ => None,
        })
        .unwrap_or_default();
    for k in [
        "kibana.alert.building_block_type",
        "kibana.alert.group.index",
        "kibana.alert.original_time",
    ] {
        shell.remove(k);
    }
    let merged = Value::Object(shell.clone());
    let mut put = |k: &str, v: Value| {
        shell.insert(k.to_string(), v);
    };
    if let Some(t) = first.source.get("@timestamp") {
        put("kibana.alert.original_time", t.clone());
    }
    put(
        "@timestamp",
        json!(ctx.now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
    );
    put("kibana.alert.uuid", Value::String(group_id.clone()));
    put("kibana.alert.group.id", Value::String(group_id.clone()));
    put("kibana.alert.status", "active".into());
    put("kibana.alert.workflow_status", "open".into());
    put("kibana.alert.depth", 2.into());
    put("kibana.alert.ancestors", Value::Array(ancestors));
    put(
        "kibana.alert.reason",
        Value::String(super::reason(ctx, &merged)),
    );
    put(
        "kibana.alert.severity",
        Value::String(ctx.severity.to_string()),
    );
    put("kibana.alert.risk_score", json!(ctx.risk_score));
    for (k, v) in ctx.rule_fields {
        put(&format!("kibana.alert.rule.{k}"), v.clone());
    }
    put(
        "kibana.alert.rule.execution.uuid",
        Value::String(ctx.execution_uuid.to_string()),
    );
    put("kibana.space_ids", json!(["default"]));
    set_kind_signal(&mut shell);
    out.push((group_id, Value::Object(shell)));
    out
}

fn set_kind_signal(doc: &mut Map<String, Value>) {
    let event = doc
        .entry("event")
        .or_insert_with(|| Value::Object(Map::new()));
    match event {
        Value::Object(ev) => {
            ev.insert("kind".into(), "signal".into());
        }
        other => *other = json!({"kind": "signal"}),
    }
}

/// Kibana's `objectPairIntersection`: the keys both objects have, objects intersected
/// recursively, equal values kept, arrays intersected (a scalar against an array as a
/// one-element array); `None` when nothing is left.
fn intersection(a: &Value, b: &Value) -> Option<Value> {
    let (Value::Object(a), Value::Object(b)) = (a, b) else {
        return None;
    };
    let mut out = Map::new();
    for (k, av) in a {
        let Some(bv) = b.get(k) else { continue };
        let v = match (av, bv) {
            (Value::Object(_), Value::Object(_)) => intersection(av, bv),
            _ if av == bv => Some(av.clone()),
            (Value::Array(x), Value::Array(y)) => Some(array_intersection(x, y)),
            (Value::Array(x), y) => Some(array_intersection(x, std::slice::from_ref(y))),
            (x, Value::Array(y)) => Some(array_intersection(std::slice::from_ref(x), y)),
            _ => None,
        };
        if let Some(v) = v {
            out.insert(k.clone(), v);
        }
    }
    (!out.is_empty()).then_some(Value::Object(out))
}

/// lodash `intersection`: the distinct values of `a` (in order) that `b` has. lodash compares
/// objects and arrays by reference, so two documents' objects never intersect: left out here.
fn array_intersection(a: &[Value], b: &[Value]) -> Value {
    let mut out: Vec<Value> = Vec::new();
    for v in a {
        if v.is_object() || v.is_array() {
            continue;
        }
        if b.contains(v) && !out.contains(v) {
            out.push(v.clone());
        }
    }
    Value::Array(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};

    fn ctx<'a>(fields: &'a Map<String, Value>) -> AlertContext<'a> {
        AlertContext {
            rule_fields: fields,
            rule_id: "rid",
            rule_name: "Seq",
            severity: "high",
            risk_score: 73.0,
            execution_uuid: "exec",
            now: "2026-11-23T21:05:00Z".parse::<DateTime<Utc>>().unwrap(),
        }
    }

    #[test]
    fn a_sequence_gives_building_blocks_and_a_shell_with_one_group_id() {
        let fields: Map<String, Value> =
            serde_json::from_value(json!({"type": "eql", "rule_id": "rid"})).unwrap();
        let a = json!({"@timestamp": "2026-11-23T20:15:28Z", "user": {"name": "mallory"},
            "event": {"action": "ConsoleLogin", "category": ["authentication"], "kind": "event"},
            "related": {"user": ["mallory", "x"]}});
        let b = json!({"@timestamp": "2026-11-23T20:20:28Z", "user": {"name": "mallory"},
            "event": {"action": "StopLogging", "kind": "event"}, "related": {"user": ["mallory"]}});
        let events = [
            SequenceEvent {
                index: "i1",
                id: "e1",
                source: &a,
            },
            SequenceEvent {
                index: "i1",
                id: "e2",
                source: &b,
            },
        ];
        let alerts = build_sequence_alerts(&ctx(&fields), &events);
        assert_eq!(alerts.len(), 3);
        let shell_id = &alerts[2].0;
        assert_eq!(shell_id, &sequence_alert_id("rid", &events));
        for (i, (id, doc)) in alerts[..2].iter().enumerate() {
            assert_eq!(id, &building_block_id("rid", &events, i));
            assert_eq!(doc["kibana.alert.uuid"], json!(id));
            assert_eq!(doc["kibana.alert.building_block_type"], "default");
            assert_eq!(doc["kibana.alert.group.id"], json!(shell_id));
            assert_eq!(doc["kibana.alert.group.index"], json!(i));
            assert_eq!(doc["kibana.alert.depth"], 1);
        }
        let shell = &alerts[2].1;
        assert_eq!(shell["kibana.alert.uuid"], json!(shell_id));
        assert_eq!(shell["kibana.alert.group.id"], json!(shell_id));
        assert!(shell.get("kibana.alert.building_block_type").is_none());
        assert!(shell.get("kibana.alert.group.index").is_none());
        assert_eq!(shell["kibana.alert.depth"], 2);
        assert_eq!(shell["kibana.alert.ancestors"].as_array().unwrap().len(), 4);
        assert_eq!(shell["kibana.alert.original_time"], "2026-11-23T20:15:28Z");
        assert_eq!(shell["user"]["name"], "mallory", "shared fields kept");
        assert_eq!(
            shell["related"]["user"],
            json!(["mallory"]),
            "arrays intersected"
        );
        assert!(
            shell["event"].get("action").is_none(),
            "differing fields dropped"
        );
        assert_eq!(shell["event"]["kind"], "signal");
        assert_eq!(shell["kibana.alert.rule.type"], "eql");
        assert!(shell["kibana.alert.reason"]
            .as_str()
            .unwrap()
            .contains("by mallory"));
        // deterministic and order-sensitive
        assert_eq!(
            build_sequence_alerts(&ctx(&fields), &events)[2].0,
            *shell_id
        );
        let swapped = [events[1], events[0]];
        assert_ne!(sequence_alert_id("rid", &swapped), *shell_id);
        assert_ne!(
            building_block_id("rid", &events, 0),
            building_block_id("rid", &events, 1)
        );
    }

    #[test]
    fn an_empty_sequence_gives_no_alert() {
        let fields = Map::new();
        assert!(build_sequence_alerts(&ctx(&fields), &[]).is_empty());
    }
}
