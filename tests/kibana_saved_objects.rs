//! The Kibana saved objects file: valid NDJSON whose objects reference each other correctly and
//! whose visualisations use fields detectd actually writes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};

use serde_json::Value;

fn objects() -> Vec<Value> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/kibana/saved_objects.ndjson"
    ))
    .unwrap();
    text.lines()
        .enumerate()
        .map(|(n, l)| serde_json::from_str(l).unwrap_or_else(|e| panic!("line {}: {e}", n + 1)))
        .collect()
}

fn embedded_json(v: &Value, key: &str) -> Value {
    serde_json::from_str(
        v[key]
            .as_str()
            .unwrap_or_else(|| panic!("{key} is a string")),
    )
    .unwrap()
}

#[test]
fn every_reference_resolves_to_an_object_in_the_file() {
    let objs = objects();
    let ids: HashSet<(String, String)> = objs
        .iter()
        .map(|o| {
            (
                o["type"].as_str().unwrap().to_string(),
                o["id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(ids.len(), objs.len(), "ids are unique per type");
    for o in &objs {
        let attrs = &o["attributes"];
        assert!(attrs["title"].is_string(), "{} has a title", o["id"]);
        let refs: HashMap<String, (String, String)> = o["references"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let key = (
                    r["type"].as_str().unwrap().to_string(),
                    r["id"].as_str().unwrap().to_string(),
                );
                assert!(
                    ids.contains(&key),
                    "{} references missing {:?}",
                    o["id"],
                    key
                );
                (r["name"].as_str().unwrap().to_string(), key)
            })
            .collect();
        if let Some(meta) = attrs.get("kibanaSavedObjectMeta") {
            let source = embedded_json(meta, "searchSourceJSON");
            if let Some(name) = source.get("indexRefName").and_then(Value::as_str) {
                let (t, _) = refs
                    .get(name)
                    .unwrap_or_else(|| panic!("{}: {name} not in references", o["id"]));
                assert_eq!(t, "index-pattern");
            }
        }
        if o["type"] == "dashboard" {
            let panels = embedded_json(attrs, "panelsJSON");
            let panels = panels.as_array().unwrap();
            assert_eq!(panels.len(), refs.len());
            for p in panels {
                let name = p["panelRefName"].as_str().unwrap();
                let (t, _) = refs
                    .get(name)
                    .unwrap_or_else(|| panic!("panel {name} not in references"));
                assert_eq!(p["type"].as_str().unwrap(), t);
            }
        }
    }
}

#[test]
fn alert_visualisations_use_fields_detectd_writes() {
    // An alert built by detectd from a CloudTrail-like event.
    let rule_fields: serde_json::Map<String, Value> =
        serde_json::from_value(serde_json::json!({"name": "R", "rule_id": "r"})).unwrap();
    let ctx = detectd::alerts::AlertContext {
        rule_fields: &rule_fields,
        rule_id: "r",
        rule_name: "R",
        severity: "low",
        risk_score: 21.0,
        execution_uuid: "e",
        now: chrono::Utc::now(),
    };
    let src = serde_json::json!({"@timestamp": "2024-01-01T00:00:00Z", "user": {"name": "u"},
        "source": {"address": "1.2.3.4"}, "event": {"action": "A"}, "cloud": {"account": {"id": "1"}}});
    let alert = detectd::alerts::build_alert(&ctx, "id", "i", "d", &src, None);
    let has = |f: &str| {
        let mut out = Vec::new();
        detectd::fields::values_at(&alert, f, &mut out);
        !out.is_empty()
    };
    for o in objects() {
        if o["type"] != "visualization" || o["references"][0]["id"] != "detectd-alerts" {
            continue;
        }
        let vis = embedded_json(&o["attributes"], "visState");
        for agg in vis["aggs"].as_array().unwrap() {
            if let Some(f) = agg["params"]["field"].as_str() {
                assert!(has(f), "{}: field {f} is not in detectd's alerts", o["id"]);
            }
        }
    }
}
