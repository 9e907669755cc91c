//! ES|QL rules live, end to end through the engine, against `DETECTD_ES_URL`: the two rules of
//! `tests/esql_rules/` (one `METADATA _id`, one aggregating) over events written to a fresh
//! index, then the same window again (duplicates only).
//!
//! What the cluster is decides what is asserted:
//! - OpenSearch, or Elasticsearch before 8.11: the rule is refused before any `_query` with
//!   "ES|QL needs Elasticsearch 8.11 or newer; this cluster is ..." and retired;
//! - Elasticsearch 8.11+ whose `POST /_query` has no handler (scripts/search-node.sh without
//!   `DETECTD_ES_ESQL=1`: the x-pack-esql modules are not loaded, see
//!   scripts/search-node/NOTES.md): skipped, saying so, unless `DETECTD_REQUIRE_ESQL=1`;
//! - otherwise the rules run and their alerts are checked.
//!
//! Each run uses uniquely named indices (the rules' `FROM` is pointed at them) and removes them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use chrono::{DateTime, Duration, Utc};
use detectd::backend::elasticsearch::{ElasticsearchBackend, Engine};
use detectd::engine::{execute, ExecRule, Status, Window};
use elasticsearch::http::Method;
use serde_json::{json, Value};

/// A rule of `tests/esql_rules/` with its `FROM` pointed at `index`.
fn esql_rule(file: &str, index: &str) -> ExecRule {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/esql_rules")
        .join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("from logs-aws.cloudtrail-*", &format!("from {index}"));
    let rule = detectd::rules::load_str(&text, &path).unwrap().rule;
    ExecRule::from_rule(&rule).unwrap()
}

#[tokio::test]
async fn live_esql_rules_end_to_end() {
    let Some((es, name)) = common::live::config("esql") else {
        return;
    };
    let alias = format!("{name}-alerts");
    let b = common::live::backend(&es, &alias);
    let result = run(&b, &name, &alias).await;
    common::live::remove_test_indices(&b, &es, &name, &alias).await;
    result.unwrap();
}

async fn run(b: &ElasticsearchBackend, index: &str, alias: &str) -> Result<(), String> {
    let info = b.cluster_info().await.map_err(|e| e.to_string())?;
    let now = Utc::now();
    let window = Window {
        from: now - Duration::minutes(6),
        to: now,
    };
    let stopped = esql_rule("cloudtrail_logging_stopped_esql.toml", index);
    let old = info.engine == Engine::OpenSearch || info.version < (8, 11, 0);
    if old {
        let res = execute(&stopped, window, b, "exec-live-esql", now).await;
        let msg = res.message.clone().unwrap_or_default();
        assert_eq!(res.status, Status::Failed, "{res:?}");
        assert!(res.not_runnable, "the rule is retired: {res:?}");
        let want = format!(
            "ES|QL needs Elasticsearch 8.11 or newer; this cluster is {} {}",
            info.name(),
            info.number
        );
        assert!(msg.contains(&want), "{msg}");
        assert_eq!(res.round_trips, 0, "no _query sent");
        eprintln!(
            "{} {}: ES|QL rule retired as expected: {msg}",
            info.name(),
            info.number
        );
        return Ok(());
    }
    // Does this node have ES|QL at all?
    let (status, body) = b
        .send_json(
            Method::Post,
            "/_query",
            Some(&json!({"query": "row a = 1"})),
        )
        .await
        .map_err(|e| e.to_string())?;
    if status >= 300 {
        let why = format!(
            "{} {} answers POST /_query with HTTP {status} {}: the node has no ES|QL (scripts/search-node.sh starts it with DETECTD_ES_ESQL=1, see scripts/search-node/NOTES.md)",
            info.name(),
            info.number,
            body.to_string().chars().take(200).collect::<String>()
        );
        assert!(
            std::env::var_os("DETECTD_REQUIRE_ESQL").is_none(),
            "DETECTD_REQUIRE_ESQL is set: {why}"
        );
        eprintln!("skipping live ES|QL test: {why}");
        return Ok(());
    }
    b.setup().await.map_err(|e| e.to_string())?;

    let mapping = json!({"settings": {"number_of_replicas": 0}, "mappings": {"properties": {
        "@timestamp": {"type": "date"},
        "event": {"properties": {
            "action": {"type": "keyword"}, "provider": {"type": "keyword"},
            "outcome": {"type": "keyword"}, "ingested": {"type": "date"}}},
        "user": {"properties": {"name": {"type": "keyword"}}},
        "source": {"properties": {"ip": {"type": "ip"}}},
        "cloud": {"properties": {"account": {"properties": {"id": {"type": "keyword"}}}}},
        "aws": {"properties": {"cloudtrail": {"properties": {"event_category": {"type": "keyword"}}}}}
    }}});
    let (status, body) = b
        .send_json(Method::Put, &format!("/{index}"), Some(&mapping))
        .await
        .map_err(|e| e.to_string())?;
    assert!(status < 300, "create index: {status} {body}");
    let ts = |mins: i64| (now - Duration::minutes(mins)).to_rfc3339();
    let ev = |id: &str, mins: i64, provider: &str, action: &str, user: &str, outcome: &str| {
        (
            id.to_string(),
            json!({"@timestamp": ts(mins), "event": {"provider": provider, "action": action,
                "outcome": outcome, "ingested": ts(mins)},
                "user": {"name": user}, "source": {"ip": "203.0.113.7"},
                "cloud": {"account": {"id": "123456789012"}},
                "aws": {"cloudtrail": {"event_category": "Management"}}}),
        )
    };
    let ct = "cloudtrail.amazonaws.com";
    let iam = "iam.amazonaws.com";
    let docs = [
        ev("stop-1", 3, ct, "StopLogging", "alice", "success"),
        ev("del-1", 2, ct, "DeleteTrail", "mallory", "success"),
        ev("stop-failed", 2, ct, "StopLogging", "alice", "failure"),
        ev("stop-old", 60, ct, "StopLogging", "alice", "success"),
        ev("start-1", 1, ct, "StartLogging", "alice", "success"),
        ev("iam-1", 4, iam, "ListUsers", "bob", "success"),
        ev("iam-2", 4, iam, "ListRoles", "bob", "success"),
        ev("iam-3", 3, iam, "ListPolicies", "bob", "success"),
        ev("iam-4", 3, iam, "ListUsers", "bob", "success"),
        ev("iam-5", 2, iam, "ListUsers", "carol", "success"),
        ev("iam-6", 2, iam, "ListRoles", "carol", "success"),
        ev("iam-old", 90, iam, "ListGroups", "carol", "success"),
    ];
    let mut bulk = String::new();
    for (id, d) in &docs {
        bulk.push_str(&json!({"index": {"_id": id}}).to_string());
        bulk.push('\n');
        bulk.push_str(&d.to_string());
        bulk.push('\n');
    }
    let (status, body) = b
        .send_ndjson(&format!("/{index}/_bulk?refresh=true"), bulk)
        .await
        .map_err(|e| e.to_string())?;
    assert!(
        status < 300 && body["errors"] == false,
        "bulk: {status} {body}"
    );

    // METADATA _id: one alert per matching event in the window, from its source document.
    let res = execute(&stopped, window, b, "exec-live-esql-1", now).await;
    assert_eq!(res.status, Status::Succeeded, "{res:?}");
    assert_eq!((res.hits, res.alerts_created), (2, 2), "{res:?}");
    let stop_id = detectd::alerts::alert_id(index, "stop-1", &stopped.rule_id, &[]);
    let del_id = detectd::alerts::alert_id(index, "del-1", &stopped.rule_id, &[]);
    let mut created = res.created_ids.clone();
    created.sort();
    let mut want = vec![stop_id.clone(), del_id];
    want.sort();
    assert_eq!(created, want);
    let again = execute(&stopped, window, b, "exec-live-esql-2", now).await;
    assert_eq!(
        (again.alerts_created, again.duplicates),
        (0, 2),
        "{again:?}"
    );

    // Aggregating: one row per identity with 3+ distinct List* calls: bob.
    let burst = esql_rule("iam_discovery_burst_esql.toml", index);
    let res = execute(&burst, window, b, "exec-live-esql-3", now).await;
    assert_eq!(res.status, Status::Succeeded, "{res:?}");
    assert_eq!((res.hits, res.alerts_created), (1, 1), "{res:?}");
    let again = execute(&burst, window, b, "exec-live-esql-4", now).await;
    assert_eq!(
        (again.alerts_created, again.duplicates),
        (0, 1),
        "{again:?}"
    );

    // The alerts as stored.
    let (status, _) = b
        .send_json(Method::Post, &format!("/{alias}/_refresh"), None)
        .await
        .map_err(|e| e.to_string())?;
    assert!(status < 300);
    let (status, body) = b
        .send_json(
            Method::Post,
            &format!("/{alias}/_search"),
            Some(&json!({"size": 10, "query": {"match_all": {}}})),
        )
        .await
        .map_err(|e| e.to_string())?;
    assert!(status < 300, "{body}");
    let hits: Vec<Value> = body["hits"]["hits"].as_array().unwrap().clone();
    assert_eq!(hits.len(), 3, "{body}");
    let by_id = |id: &str| {
        hits.iter()
            .find(|h| h["_id"] == id)
            .map(|h| h["_source"].clone())
            .unwrap_or_else(|| panic!("alert {id} missing: {body}"))
    };
    let stop = by_id(&stop_id);
    assert_eq!(stop["event"]["action"], "StopLogging");
    assert_eq!(stop["event"]["kind"], "signal");
    assert_eq!(
        stop["aws"]["cloudtrail"]["event_category"], "Management",
        "a field the query does not keep comes from the source document"
    );
    assert_eq!(stop["kibana.alert.ancestors"][0]["id"], "stop-1");
    assert_eq!(stop["kibana.alert.rule.type"], "esql");
    let t: DateTime<Utc> = stop["kibana.alert.original_time"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(t >= window.from && t <= window.to);
    let bob = hits
        .iter()
        .map(|h| &h["_source"])
        .find(|s| s["kibana.alert.rule.rule_id"] == burst.rule_id.as_str())
        .unwrap();
    assert_eq!(bob["user"]["name"], "bob");
    assert_eq!(bob["Esql"]["event_count"], 4);
    assert_eq!(bob["Esql"]["event_action_count_distinct"], 3);
    eprintln!(
        "{} {}: ES|QL rules ran live, 3 alerts",
        info.name(),
        info.number
    );
    Ok(())
}
