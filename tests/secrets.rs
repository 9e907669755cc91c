//! Credentials never reach the output: `detectd` run with a known password, API key or a
//! password in the URL against a dead cluster and against one that refuses every request must
//! not print the secret (logs, errors, debug logs included). TLS verification is on by default;
//! turning it off is a warning naming the setting. new_terms values reach the cluster as JSON
//! values (terms `include`, `term` queries), never spliced into query text.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use serde_json::json;
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, ResponseTemplate};

const SECRET: &str = "s3cr3t-Pa55-7d1f";
/// Base64 of `keyid:s3cr3t-Pa55-7d1f`; both forms are checked.
const API_KEY: &str = "a2V5aWQ6czNjcjN0LVBhNTUtN2QxZg==";

/// A URL nothing listens on (a port bound then released).
fn dead_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("http://127.0.0.1:{port}")
}

fn config(dir: &Path, url: &str, extra: &str) -> std::path::PathBuf {
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let p = dir.join("config.toml");
    std::fs::write(
        &p,
        format!(
            "rules_dir = {rules:?}\nbackend = \"elasticsearch\"\n[elasticsearch]\nurls = [{url:?}]\n\
             timeout_secs = 2\n{extra}\n",
            rules = rules.display().to_string()
        ),
    )
    .unwrap();
    p
}

/// Runs `detectd ARGS` with `env`; stdout + stderr.
async fn detectd(config: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_detectd"));
    c.arg("--config").arg(config).args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), c.output())
        .await
        .expect("detectd did not stop within 60 s")
        .unwrap();
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn assert_no_secret(output: &str, what: &str) {
    for s in [SECRET, API_KEY] {
        assert!(
            !output.contains(s),
            "{what}: the secret {s} appears in the output:\n{output}"
        );
    }
}

const REPLAY: &[&str] = &[
    "run",
    "--start",
    "2026-11-02T00:00:00Z",
    "--end",
    "2026-11-02T01:00:00Z",
];

/// One way of giving a credential: what it is, the URL, config lines, environment.
type Credential = (
    &'static str,
    String,
    String,
    Vec<(&'static str, &'static str)>,
);

/// Each way of giving a credential: config file extra, environment.
fn credentials(url_host: &str) -> Vec<Credential> {
    let userinfo_url = url_host.replacen("http://", &format!("http://elastic:{SECRET}@"), 1);
    vec![
        (
            "password from DETECTD__ELASTICSEARCH__PASSWORD",
            url_host.to_string(),
            "username = \"elastic\"".to_string(),
            vec![("DETECTD__ELASTICSEARCH__PASSWORD", SECRET)],
        ),
        (
            "api key from DETECTD__ELASTICSEARCH__API_KEY",
            url_host.to_string(),
            String::new(),
            vec![("DETECTD__ELASTICSEARCH__API_KEY", API_KEY)],
        ),
        ("password in the url", userinfo_url, String::new(), vec![]),
    ]
}

#[tokio::test]
async fn secrets_do_not_appear_in_output_with_a_dead_cluster() {
    let dir = tempfile::tempdir().unwrap();
    for (what, url, extra, env) in credentials(&dead_url()) {
        let cfg = config(dir.path(), &url, &extra);
        for args in [REPLAY, &["status"][..]] {
            for log in [&[][..], &[("RUST_LOG", "debug")][..]] {
                let env: Vec<_> = env.iter().chain(log).copied().collect();
                let out = detectd(&cfg, args, &env).await;
                assert!(
                    out.contains("unreachable") || out.contains("error"),
                    "{what} {args:?}: the dead cluster is reported:\n{out}"
                );
                assert_no_secret(&out, &format!("{what} {args:?} {log:?}"));
            }
        }
    }
}

#[tokio::test]
async fn secrets_do_not_appear_in_output_when_the_cluster_refuses() {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "error": {
                "root_cause": [{"type": "security_exception", "reason": "unable to authenticate user [elastic] for REST request [/]"}],
                "type": "security_exception",
                "reason": "unable to authenticate user [elastic] for REST request [/]",
                "header": {"WWW-Authenticate": ["Basic realm=\"security\" charset=\"UTF-8\"", "ApiKey"]}
            },
            "status": 401
        })))
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    for (what, url, extra, env) in credentials(&server.uri()) {
        let cfg = config(dir.path(), &url, &extra);
        for log in [&[][..], &[("RUST_LOG", "debug")][..]] {
            let env: Vec<_> = env.iter().chain(log).copied().collect();
            let out = detectd(&cfg, REPLAY, &env).await;
            assert!(
                out.contains("401"),
                "{what}: the refusal is reported:\n{out}"
            );
            assert_no_secret(&out, &format!("{what} {log:?}"));
        }
    }
    // The credentials did reach the server (so the test sent them at all).
    let sent = server.received_requests().await.unwrap();
    assert!(sent
        .iter()
        .any(|r| r.headers.get("authorization").is_some()));
}

#[test]
fn tls_verification_is_on_by_default() {
    let cfg = detectd::config::Config::default();
    assert!(cfg.elasticsearch.verify_tls);
    let file: detectd::config::Config =
        toml::from_str("[elasticsearch]\nurls = [\"https://es:9200\"]\n").unwrap();
    assert!(file.elasticsearch.verify_tls);
}

#[tokio::test]
async fn verify_tls_off_is_a_warning_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let url = dead_url();
    let off = config(dir.path(), &url, "verify_tls = false");
    let out = detectd(&off, &["status"], &[]).await;
    assert!(
        out.contains("WARN") && out.contains("elasticsearch.verify_tls"),
        "no warning naming elasticsearch.verify_tls:\n{out}"
    );
    let on = config(dir.path(), &url, "");
    let out = detectd(&on, &["status"], &[]).await;
    assert!(
        !out.contains("verify_tls"),
        "a warning with verification on:\n{out}"
    );
}

/// Every string leaf of `v` with its path (`aggs.new_terms.terms.include[0]`).
fn string_leaves(v: &serde_json::Value, path: String, out: &mut Vec<(String, String)>) {
    match v {
        serde_json::Value::String(s) => out.push((path, s.clone())),
        serde_json::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                string_leaves(x, format!("{path}[{i}]"), out);
            }
        }
        serde_json::Value::Object(o) => {
            for (k, x) in o {
                string_leaves(x, format!("{path}.{k}"), out);
            }
        }
        _ => {}
    }
}

#[tokio::test]
async fn new_terms_values_go_into_requests_as_json_values_never_as_query_text() {
    use detectd::backend::{Backend, ExecStats, QuerySpec, TimeField};
    const HOSTILE: &str = "x\" OR 1:1 \\";
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::path_regex("_field_caps$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "indices": ["events-1"],
            "fields": {
                "user.name": {"keyword": {"type": "keyword", "searchable": true, "aggregatable": true}},
                "event.action": {"keyword": {"type": "keyword", "searchable": true, "aggregatable": true}},
                "@timestamp": {"date": {"type": "date", "searchable": true, "aggregatable": true}}
            }
        })))
        .mount(&server)
        .await;
    Mock::given(wiremock::matchers::path("/"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"version": {"number": "7.10.2"}, "tagline": "You Know, for Search"}),
        ))
        .mount(&server)
        .await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "hits": {"hits": []},
            "aggregations": {"new_terms": {"buckets": []}}
        })))
        .mount(&server)
        .await;
    let es = detectd::config::ElasticsearchConfig {
        urls: vec![server.uri()],
        ..Default::default()
    };
    let b = detectd::backend::elasticsearch::ElasticsearchBackend::new(
        &es,
        &detectd::config::AlertsConfig::default(),
    )
    .unwrap();
    let indices = vec!["events".to_string()];
    let query = detectd::kql::parse("event.action: *").unwrap();
    let time = TimeField {
        primary: "@timestamp".into(),
        fallback_to_timestamp: true,
    };
    let q = QuerySpec {
        indices: &indices,
        query: &query,
        filters: &[],
        time: &time,
        from: "2026-11-23T20:04:28Z".parse().unwrap(),
        to: "2026-11-23T21:04:28Z".parse().unwrap(),
    };
    let history = "2026-11-16T20:04:28Z".parse().unwrap();
    let stats = ExecStats::default();
    let one = vec!["user.name".to_string()];
    let two = vec!["user.name".to_string(), "event.action".to_string()];
    b.new_terms(&q, &one, history, &[vec![json!(HOSTILE)]], &stats)
        .await
        .unwrap();
    b.new_terms(
        &q,
        &two,
        history,
        &[vec![json!(HOSTILE), json!("GetUser")]],
        &stats,
    )
    .await
    .unwrap();

    let mut found = Vec::new();
    for r in server.received_requests().await.unwrap() {
        let Ok(body) = serde_json::from_slice::<serde_json::Value>(&r.body) else {
            continue;
        };
        let mut leaves = Vec::new();
        string_leaves(&body, String::new(), &mut leaves);
        for (path, s) in leaves {
            if s.contains("OR 1:1") {
                assert_eq!(s, HOSTILE, "the value was spliced into a string at {path}");
                assert!(
                    !path.contains("query_string"),
                    "the value is query text at {path}"
                );
                assert!(
                    path.contains("include") || path.contains(".term."),
                    "the value at {path} is not a terms include or a term query"
                );
                found.push(path);
            }
        }
    }
    assert!(found.iter().any(|p| p.contains("include")), "{found:?}");
    assert!(found.iter().any(|p| p.contains(".term.")), "{found:?}");
}
