//! The Elasticsearch backend (official `elasticsearch` client): searches with point in time,
//! aggregations, bulk alert writes, rule state and execution records in indices.
//!
//! Every request goes through [`ElasticsearchBackend::call`] (one round trip counted per HTTP
//! request, whole-request 429/503 retried with backoff); bodies come from [`requests`],
//! responses are read with [`responses`]. The client sends plain `application/json`
//! (`Accept` and `Content-Type`), never the 8.x `compatible-with` media types, so the same
//! client talks to 7.10+ and 8.x servers.

mod bulk;
mod eql;
pub mod esql;
pub mod ingest;
mod new_terms;
pub mod requests;
pub mod responses;
mod search;
mod setup;
mod state;
mod threshold;
mod transport;
mod version;
mod writer;

pub use version::{parse_version, ClusterInfo, Engine};
pub use writer::FlushPolicy;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use elasticsearch::auth::Credentials;
use elasticsearch::cert::{Certificate, CertificateValidation};
use elasticsearch::http::transport::{SingleNodeConnectionPool, TransportBuilder};
use elasticsearch::Elasticsearch;
use serde_json::Value;

use crate::backend::{
    AlertDoc, Backend, Cursor, EqlResult, EqlSpec, Error, EsqlSpec, ExecStats, ExecutionRecord,
    NewTerm, Page, QuerySpec, RuleState, TermsPage, ThresholdPage, ThresholdSignal, ThresholdSpec,
    WriteOutcome,
};
use crate::config::{AlertsConfig, ElasticsearchConfig};
use crate::fields::FieldCatalog;
use transport::Transport;

/// Tuples per multi-field new_terms request before halving on `too_many_clauses`.
pub const NEW_TERMS_BATCH: usize = 500;

/// How long `_field_caps` of a pattern set is reused.
pub const FIELD_CAPS_TTL: Duration = Duration::from_secs(300);

/// Alerts per `_bulk` request.
pub const BULK_CHUNK: usize = 1000;

/// How often and how patiently retryable failures (429, 502–504, per-item rejections) are retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub retries: u32,
    /// First backoff; doubled each retry.
    pub base_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            retries: 3,
            base_delay: Duration::from_millis(500),
        }
    }
}

/// `url` without a password in its user info, for logs and errors.
fn redacted_url(url: &url::Url) -> String {
    let mut u = url.clone();
    if u.password().is_some() {
        let _ = u.set_password(Some("REDACTED"));
    }
    u.to_string()
}

/// [`redacted_url`] of a URL that may not parse: the text between `//` and `@` is dropped.
fn redacted_url_text(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => redacted_url(&u),
        Err(_) => match (url.find("//"), url.rfind('@')) {
            (Some(a), Some(b)) if b > a => format!("{}//REDACTED@{}", &url[..a], &url[b + 1..]),
            _ => url.to_string(),
        },
    }
}

/// What is wrong with one rule's sources (or the alerts alias) at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthProblem {
    /// The rule (empty for the alerts alias).
    pub rule_id: String,
    pub rule_name: String,
    pub problem: String,
}

/// A rule as the health check needs it: `(rule_id, name, index patterns, time field)`.
pub type RuleTarget = (String, String, Vec<String>, String);

/// The Elasticsearch backend.
pub struct ElasticsearchBackend {
    transport: Arc<Transport>,
    alerts_alias: String,
    /// `refresh` of alert writes: `false` (no wait) or `wait_for` (`alerts.refresh`).
    alerts_refresh: bool,
    state_index: String,
    executions_index: String,
    catalogs: Mutex<HashMap<String, (Instant, Arc<FieldCatalog>)>>,
    /// Rule state and execution records, written in the background (started on first use).
    writer: writer::Writer,
    /// `GET /`, read once.
    cluster: std::sync::OnceLock<ClusterInfo>,
    /// The cluster refused a `bucket_selector` (no painless): first seen is filtered here.
    no_selector: std::sync::atomic::AtomicBool,
}

impl ElasticsearchBackend {
    /// A client for `es` (first URL; several URLs are not pooled — a load balancer or the
    /// first node serves), writing alerts to `alerts.index`. Does not contact the cluster.
    pub fn new(es: &ElasticsearchConfig, alerts: &AlertsConfig) -> Result<Self, Error> {
        let first = es
            .urls
            .first()
            .ok_or_else(|| Error::Unreachable("elasticsearch.urls is empty".into()))?;
        if es.urls.len() > 1 {
            tracing::warn!(url = %redacted_url_text(first), count = es.urls.len(), "several elasticsearch urls: using the first");
        }
        let url = url::Url::parse(first).map_err(|e| {
            Error::Unreachable(format!(
                "elasticsearch url {}: {e}",
                redacted_url_text(first)
            ))
        })?;
        let mut builder = TransportBuilder::new(SingleNodeConnectionPool::new(url.clone()))
            .timeout(Duration::from_secs(es.timeout_secs.max(1)))
            .disable_proxy();
        if let Some(key) = &es.api_key {
            builder = builder.auth(Credentials::EncodedApiKey(key.clone()));
        } else if let Some(user) = &es.username {
            builder = builder.auth(Credentials::Basic(
                user.clone(),
                es.password.clone().unwrap_or_default(),
            ));
        }
        if !es.verify_tls {
            tracing::warn!(
                setting = "elasticsearch.verify_tls",
                url = %redacted_url(&url),
                "elasticsearch.verify_tls = false: TLS certificates are not verified, so anyone \
                 on the path can read the credentials and alerts; use elasticsearch.ca_file instead"
            );
            builder = builder.cert_validation(CertificateValidation::None);
        } else if let Some(ca) = &es.ca_file {
            let pem = std::fs::read(ca).map_err(|e| Error::Io {
                path: ca.display().to_string(),
                source: e,
            })?;
            let cert = Certificate::from_pem(&pem)
                .map_err(|e| Error::Unreachable(format!("ca file {}: {e}", ca.display())))?;
            builder = builder.cert_validation(CertificateValidation::Full(cert));
        }
        let transport = builder
            .build()
            .map_err(|e| Error::Unreachable(format!("elasticsearch client: {e}")))?;
        Ok(ElasticsearchBackend {
            transport: Arc::new(Transport {
                client: Elasticsearch::new(transport),
                timeout: Duration::from_secs(es.timeout_secs.max(1)),
                retry: RetryPolicy::default(),
            }),
            alerts_alias: alerts.index.clone(),
            alerts_refresh: alerts.refresh,
            state_index: es.state_index.clone(),
            executions_index: es.executions_index.clone(),
            catalogs: Mutex::new(HashMap::new()),
            writer: writer::Writer::default(),
            cluster: std::sync::OnceLock::new(),
            no_selector: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Replaces the retry policy (tests use a short backoff). Call before the first request.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        let mut t = (*self.transport).clone();
        t.retry = retry;
        self.transport = Arc::new(t);
        self
    }

    /// Replaces the background writer's flush thresholds (tests). Call before the first
    /// request.
    pub fn with_flush(mut self, flush: FlushPolicy) -> Self {
        self.writer = writer::Writer::new(flush);
        self
    }

    /// The index holding rule state.
    pub fn state_index(&self) -> &str {
        &self.state_index
    }

    /// The index holding execution records.
    pub fn executions_index(&self) -> &str {
        &self.executions_index
    }
}

#[async_trait]
impl Backend for ElasticsearchBackend {
    async fn search_page(
        &self,
        q: &QuerySpec<'_>,
        size: usize,
        cursor: Option<&Cursor>,
        stats: &ExecStats,
    ) -> Result<Page, Error> {
        self.search_page_pit(q, size, cursor, stats).await
    }

    async fn close_search(&self, cursor: &Cursor, stats: &ExecStats) -> Result<(), Error> {
        self.close_cursor(cursor, stats).await
    }

    async fn terms_page(
        &self,
        q: &QuerySpec<'_>,
        fields: &[String],
        size: usize,
        after: Option<&Value>,
        stats: &ExecStats,
    ) -> Result<TermsPage, Error> {
        self.recent_terms(q, fields, size, after, stats).await
    }

    async fn new_terms(
        &self,
        q: &QuerySpec<'_>,
        fields: &[String],
        history_start: DateTime<Utc>,
        tuples: &[Vec<Value>],
        stats: &ExecStats,
    ) -> Result<Vec<NewTerm>, Error> {
        self.history_new_terms(q, fields, history_start, tuples, stats)
            .await
    }

    async fn threshold_page(
        &self,
        q: &QuerySpec<'_>,
        spec: &ThresholdSpec,
        exclude: &[ThresholdSignal],
        size: usize,
        after: Option<&Value>,
        stats: &ExecStats,
    ) -> Result<ThresholdPage, Error> {
        self.threshold_buckets(q, spec, exclude, size, after, stats)
            .await
    }

    async fn threshold_history(
        &self,
        rule_id: &str,
        since: DateTime<Utc>,
        stats: &ExecStats,
    ) -> Result<Vec<ThresholdSignal>, Error> {
        self.threshold_signals(rule_id, since, stats).await
    }

    async fn eql_search(&self, q: &EqlSpec<'_>, stats: &ExecStats) -> Result<EqlResult, Error> {
        self.eql_window(q, stats).await
    }

    async fn esql_rows(
        &self,
        q: &EsqlSpec<'_>,
        size: usize,
        stats: &ExecStats,
    ) -> Result<Vec<serde_json::Map<String, Value>>, Error> {
        self.esql_query(q, size, stats).await
    }

    async fn esql_sources(
        &self,
        indices: &[String],
        ids: &[Value],
        stats: &ExecStats,
    ) -> Result<Vec<crate::backend::Hit>, Error> {
        self.esql_fetch_sources(indices, ids, stats).await
    }

    async fn write_alerts(
        &self,
        alerts: &[AlertDoc],
        stats: &ExecStats,
    ) -> Result<WriteOutcome, Error> {
        self.bulk_write_alerts(alerts, stats).await
    }

    async fn load_state(&self) -> Result<BTreeMap<String, RuleState>, Error> {
        self.read_states().await
    }

    async fn save_state(&self, rule_id: &str, state: &RuleState) -> Result<(), Error> {
        self.write_state(rule_id, state).await
    }

    async fn record_execution(&self, record: &ExecutionRecord) -> Result<(), Error> {
        self.write_record(record).await
    }

    async fn flush(&self) -> Result<(), Error> {
        self.flush_writes().await
    }
}
