//! Live tests against a real Elasticsearch (7.10+ or 8.x): set `DETECTD_ES_URL` (and optionally
//! `DETECTD_ES_API_KEY` or `DETECTD_ES_USERNAME`/`DETECTD_ES_PASSWORD`,
//! `DETECTD_ES_INSECURE=1` for a self-signed test cluster). Skipped, saying why, when unset.
//! Each run uses uniquely named indices and removes them at the end.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::Ordering;

use chrono::{Duration, Utc};
use detectd::backend::elasticsearch::ElasticsearchBackend;
use detectd::backend::{AlertDoc, Backend, ExecStats, QuerySpec, RuleState, TimeField};
use detectd::kql::{Ast, Field, LiteralKind, Part, Value as KqlValue};
use elasticsearch::http::Method;
use serde_json::{json, Value};

fn is(field: &str, value: &str) -> Ast {
    Ast::Is {
        field: Some(Field {
            name: field.to_string(),
            wildcard: false,
        }),
        value: KqlValue {
            parts: vec![Part::Text(value.to_string())],
            quoted: true,
            kind: LiteralKind::String,
        },
    }
}

#[tokio::test]
async fn live_search_terms_new_terms_alerts_and_state() {
    let Some((es, name)) = common::live::config("es") else {
        return;
    };
    let alias = format!("{name}-alerts");
    let b = common::live::backend(&es, &alias);
    let result = run(&b, &name, &alias).await;
    // clean up whatever happened
    common::live::remove_test_indices(&b, &es, &name, &alias).await;
    result.unwrap();
}

async fn run(b: &ElasticsearchBackend, index: &str, alias: &str) -> Result<(), String> {
    let mapping = json!({"mappings": {"properties": {
        "@timestamp": {"type": "date"},
        "event": {"properties": {"action": {"type": "keyword"}}},
        "user": {"properties": {"name": {"type": "keyword"}}},
        "cloud": {"properties": {"account": {"properties": {"id": {"type": "keyword"}}}}}
    }}});
    let (status, body) = b
        .send_json(Method::Put, &format!("/{index}"), Some(&mapping))
        .await
        .map_err(|e| e.to_string())?;
    assert!(status < 300, "create index: {status} {body}");
    let now = Utc::now();
    let ts = |mins: i64| (now - Duration::minutes(mins)).to_rfc3339();
    let docs = [
        json!({"@timestamp": ts(2 * 24 * 60), "event": {"action": "CreateDocument"}, "user": {"name": "alice"}, "cloud": {"account": {"id": "A"}}}),
        json!({"@timestamp": ts(10), "event": {"action": "CreateDocument"}, "user": {"name": "alice"}, "cloud": {"account": {"id": "A"}}}),
        json!({"@timestamp": ts(15), "event": {"action": "CreateDocument"}, "user": {"name": "carol"}, "cloud": {"account": {"id": "A"}}}),
        json!({"@timestamp": ts(5), "event": {"action": "CreateDocument"}, "user": {"name": ["dave", "dave2"]}, "cloud": {"account": {"id": "B"}}}),
        json!({"@timestamp": ts(3), "event": {"action": "CreateDocument"}, "user": {"name": "alice"}, "cloud": {"account": {"id": "A"}}, "kibana": {"alert": {"uuid": "x"}}}),
        json!({"@timestamp": ts(4), "event": {"action": "Other"}, "user": {"name": "zed"}, "cloud": {"account": {"id": "A"}}}),
    ];
    let mut bulk = String::new();
    for d in &docs {
        bulk.push_str("{\"index\":{}}\n");
        bulk.push_str(&d.to_string());
        bulk.push('\n');
    }
    let (status, body) = b
        .send_ndjson(&format!("/{index}/_bulk?refresh=true"), bulk)
        .await
        .map_err(|e| e.to_string())?;
    assert!(
        status < 300 && body["errors"] == json!(false),
        "bulk: {status} {body}"
    );

    let indices = vec![index.to_string()];
    let query = is("event.action", "CreateDocument");
    let time = TimeField {
        primary: "@timestamp".into(),
        fallback_to_timestamp: true,
    };
    let q = QuerySpec {
        indices: &indices,
        query: &query,
        filters: &[],
        time: &time,
        from: now - Duration::hours(1),
        to: now,
    };
    let stats = ExecStats::default();

    // search_page: 3 events (the alert-like document is excluded), oldest first, 2 per page
    let mut hits = Vec::new();
    let mut cursor = None;
    loop {
        let page = b
            .search_page(&q, 2, cursor.as_ref(), &stats)
            .await
            .map_err(|e| e.to_string())?;
        hits.extend(page.hits);
        match page.cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let users: Vec<Value> = hits
        .iter()
        .map(|h| h.source["user"]["name"].clone())
        .collect();
    assert_eq!(
        users,
        vec![json!("carol"), json!("alice"), json!(["dave", "dave2"])]
    );

    // terms_page: arrays explode
    let field = vec!["user.name".to_string()];
    let page = b
        .terms_page(&q, &field, 10, None, &stats)
        .await
        .map_err(|e| e.to_string())?;
    let mut tuples = page.tuples.clone();
    let mut after = page.after;
    while let Some(a) = after {
        let p = b
            .terms_page(&q, &field, 10, Some(&a), &stats)
            .await
            .map_err(|e| e.to_string())?;
        tuples.extend(p.tuples);
        after = p.after;
    }
    assert_eq!(
        tuples,
        vec![
            vec![json!("alice")],
            vec![json!("carol")],
            vec![json!("dave")],
            vec![json!("dave2")]
        ]
    );

    // new_terms, single field: alice was seen 2 days ago
    let history = now - Duration::days(7);
    let new = b
        .new_terms(&q, &field, history, &tuples, &stats)
        .await
        .map_err(|e| e.to_string())?;
    let mut got: Vec<String> = new
        .iter()
        .map(|n| n.values[0].as_str().unwrap_or_default().to_string())
        .collect();
    got.sort();
    assert_eq!(got, vec!["carol", "dave", "dave2"]);
    let dave_doc = new
        .iter()
        .find(|n| n.values[0] == "dave")
        .unwrap()
        .hit
        .id
        .clone();
    assert_eq!(
        new.iter().find(|n| n.values[0] == "dave2").unwrap().hit.id,
        dave_doc
    );

    // new_terms, two fields
    let fields = vec!["cloud.account.id".to_string(), "user.name".to_string()];
    let pairs: Vec<Vec<Value>> = [
        ("A", "alice"),
        ("A", "carol"),
        ("B", "dave"),
        ("B", "dave2"),
    ]
    .iter()
    .map(|(a, u)| vec![json!(a), json!(u)])
    .collect();
    let new = b
        .new_terms(&q, &fields, history, &pairs, &stats)
        .await
        .map_err(|e| e.to_string())?;
    assert_eq!(
        new.len(),
        3,
        "{:?}",
        new.iter().map(|n| &n.values).collect::<Vec<_>>()
    );
    assert!(stats.round_trips.load(Ordering::Relaxed) > 0);

    // alerts: setup, write, write again (duplicates)
    b.setup().await.map_err(|e| e.to_string())?;
    b.setup().await.map_err(|e| e.to_string())?;
    let alerts: Vec<AlertDoc> = hits
        .iter()
        .map(|h| AlertDoc { id: format!("{index}-{}", h.id), doc: json!({"@timestamp": now.to_rfc3339(), "kibana": {"alert": {"uuid": format!("{index}-{}", h.id)}}}) })
        .collect();
    let out = b
        .write_alerts(&alerts, &stats)
        .await
        .map_err(|e| e.to_string())?;
    assert_eq!(out.created.len(), 3, "{out:?}");
    let out = b
        .write_alerts(&alerts, &stats)
        .await
        .map_err(|e| e.to_string())?;
    assert_eq!(out.duplicates.len(), 3, "{out:?}");
    let problems = b
        .health_check(&[(
            "live-rule".into(),
            "live".into(),
            indices.clone(),
            "@timestamp".into(),
        )])
        .await;
    assert!(problems.is_empty(), "{problems:?}");
    let _ = alias;

    // state
    let state = RuleState {
        last_start: Some(now),
        covered_until: Some(now),
        status: Some("succeeded".into()),
        gaps: vec![],
    };
    b.save_state("live-rule", &state)
        .await
        .map_err(|e| e.to_string())?;
    let loaded = b.load_state().await.map_err(|e| e.to_string())?;
    assert_eq!(
        loaded.get("live-rule").map(|s| s.status.clone()),
        Some(state.status.clone())
    );
    Ok(())
}
