//! A live Elasticsearch for tests: `DETECTD_ES_URL` (+ `DETECTD_ES_API_KEY` or
//! `DETECTD_ES_USERNAME`/`DETECTD_ES_PASSWORD`, `DETECTD_ES_INSECURE=1`). `Live::from_env`
//! returns `None`, after printing why, when it is not configured.

use std::process::Command;

use serde_json::Value;

pub struct Live {
    pub url: String,
    pub client: reqwest::Client,
    pub auth: Option<(String, String)>,
    pub api_key: Option<String>,
}

impl Live {
    pub fn from_env() -> Option<Live> {
        let Ok(url) = std::env::var("DETECTD_ES_URL") else {
            assert!(
                std::env::var_os("DETECTD_REQUIRE_LIVE").is_none(),
                "DETECTD_REQUIRE_LIVE is set but DETECTD_ES_URL is not: live tests may not skip"
            );
            eprintln!("skipping live Elasticsearch test: DETECTD_ES_URL is not set (scripts/test.sh starts a node)");
            return None;
        };
        let insecure = std::env::var("DETECTD_ES_INSECURE").is_ok_and(|v| v == "1" || v == "true");
        let client = reqwest::Client::builder()
            .danger_accept_invalid_certs(insecure)
            .build()
            .unwrap();
        let auth = match (
            std::env::var("DETECTD_ES_USERNAME"),
            std::env::var("DETECTD_ES_PASSWORD"),
        ) {
            (Ok(u), Ok(p)) => Some((u, p)),
            _ => None,
        };
        Some(Live {
            url: url.trim_end_matches('/').to_string(),
            client,
            auth,
            api_key: std::env::var("DETECTD_ES_API_KEY").ok(),
        })
    }

    pub async fn req(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut r = self.client.request(method, format!("{}{path}", self.url));
        if let Some((u, p)) = &self.auth {
            r = r.basic_auth(u, Some(p));
        }
        if let Some(k) = &self.api_key {
            r = r.header("Authorization", format!("ApiKey {k}"));
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Environment for the detectd binary: the Elasticsearch backend on this cluster, alerts
    /// to the alias `alerts`, state and records in `<alerts>-state` / `<alerts>-executions`.
    pub fn env(&self, cmd: &mut Command, alerts: &str) {
        cmd.env("DETECTD__BACKEND", "elasticsearch")
            .env("DETECTD__ELASTICSEARCH__URLS", &self.url)
            .env(
                "DETECTD__ELASTICSEARCH__STATE_INDEX",
                format!("{alerts}-state"),
            )
            .env(
                "DETECTD__ELASTICSEARCH__EXECUTIONS_INDEX",
                format!("{alerts}-executions"),
            )
            .env("DETECTD__ALERTS__INDEX", alerts);
        if let Some((u, p)) = &self.auth {
            cmd.env("DETECTD__ELASTICSEARCH__USERNAME", u)
                .env("DETECTD__ELASTICSEARCH__PASSWORD", p);
        }
        if let Some(k) = &self.api_key {
            cmd.env("DETECTD__ELASTICSEARCH__API_KEY", k);
        }
        if std::env::var("DETECTD_ES_INSECURE").is_ok_and(|v| v == "1" || v == "true") {
            cmd.env("DETECTD__ELASTICSEARCH__VERIFY_TLS", "false");
        }
    }
}

impl Live {
    /// The same cluster as detectd's Elasticsearch configuration, state and records in
    /// `<prefix>-state` / `<prefix>-executions` (the test removes them).
    pub fn es_config(&self, prefix: &str) -> detectd::config::ElasticsearchConfig {
        detectd::config::ElasticsearchConfig {
            state_index: format!("{prefix}-state"),
            executions_index: format!("{prefix}-executions"),
            urls: vec![self.url.clone()],
            api_key: self.api_key.clone(),
            username: self.auth.as_ref().map(|a| a.0.clone()),
            password: self.auth.as_ref().map(|a| a.1.clone()),
            verify_tls: !std::env::var("DETECTD_ES_INSECURE")
                .is_ok_and(|v| v == "1" || v == "true"),
            ..detectd::config::ElasticsearchConfig::default()
        }
    }
}

/// detectd's configuration for the live cluster and a name unique to this run
/// (`detectd-live-<what>-<pid>-<nanos>`) for the test's indices; `None` (after saying why) when
/// no cluster is configured.
pub fn config(what: &str) -> Option<(detectd::config::ElasticsearchConfig, String)> {
    let live = Live::from_env()?;
    let nanos = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
    let name = format!("detectd-live-{what}-{}-{nanos}", std::process::id());
    Some((live.es_config(&name), name))
}

/// The backend of the live cluster writing alerts through `alias`.
pub fn backend(
    es: &detectd::config::ElasticsearchConfig,
    alias: &str,
) -> detectd::backend::elasticsearch::ElasticsearchBackend {
    detectd::backend::elasticsearch::ElasticsearchBackend::new(
        es,
        &detectd::config::AlertsConfig {
            index: alias.to_string(),
            ..detectd::config::AlertsConfig::default()
        },
    )
    .unwrap()
}

/// Removes what a live test made: its events `index`, the alerts `alias`'s index and template,
/// and the state and executions indices of `es` (whatever the test's outcome).
pub async fn remove_test_indices(
    b: &detectd::backend::elasticsearch::ElasticsearchBackend,
    es: &detectd::config::ElasticsearchConfig,
    index: &str,
    alias: &str,
) {
    for path in [
        format!("/{index}"),
        format!("/{alias}-000001"),
        format!("/_index_template/{alias}"),
        format!("/{}", es.state_index),
        format!("/{}", es.executions_index),
    ] {
        let _ = b
            .send_json(elasticsearch::http::Method::Delete, &path, None)
            .await;
    }
}
