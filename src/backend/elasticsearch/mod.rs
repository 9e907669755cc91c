//! The Elasticsearch backend (official `elasticsearch` client): searches with point in time,
//! aggregations, bulk alert writes, rule state and execution records in indices.
//!
//! Every request goes through [`ElasticsearchBackend::call`] (one round trip counted per HTTP
//! request, whole-request 429/503 retried with backoff); bodies come from [`requests`],
//! responses are read with [`responses`]. The client sends plain `application/json`
//! (`Accept` and `Content-Type`), never the 8.x `compatible-with` media types, so the same
//! client talks to 7.10+ and 8.x servers.

pub mod explain;
pub mod ingest;
pub mod requests;
pub mod responses;

use std::collections::{BTreeMap, HashMap};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use elasticsearch::auth::Credentials;
use elasticsearch::cert::{Certificate, CertificateValidation};
use elasticsearch::http::headers::{HeaderMap, HeaderValue, CONTENT_TYPE};
use elasticsearch::http::transport::{SingleNodeConnectionPool, TransportBuilder};
use elasticsearch::http::Method;
use elasticsearch::Elasticsearch;
use serde_json::Value;

use crate::backend::{
    AlertDoc, Backend, Cursor, Error, ExecStats, ExecutionRecord, Hit, NewTerm, Page, QuerySpec,
    RuleState, TermsPage, WriteOutcome,
};
use crate::cli::{Cli, IngestArgs};
use crate::config::{AlertsConfig, ElasticsearchConfig};
use crate::fields::FieldCatalog;

use responses::{describe_error, error_types, BulkResponse, OpenPit, RawHit, SearchResponse};

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
    client: Elasticsearch,
    alerts_alias: String,
    timeout: Duration,
    retry: RetryPolicy,
    catalogs: Mutex<HashMap<String, (Instant, Arc<FieldCatalog>)>>,
}

struct Reply {
    status: u16,
    body: Value,
}

enum ReqBody {
    Json(Value),
    NdJson(String),
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
            tracing::warn!(url = %first, count = es.urls.len(), "several elasticsearch urls: using the first");
        }
        let url = url::Url::parse(first)
            .map_err(|e| Error::Unreachable(format!("elasticsearch url {first}: {e}")))?;
        let mut builder = TransportBuilder::new(SingleNodeConnectionPool::new(url))
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
            client: Elasticsearch::new(transport),
            alerts_alias: alerts.index.clone(),
            timeout: Duration::from_secs(es.timeout_secs.max(1)),
            retry: RetryPolicy::default(),
            catalogs: Mutex::new(HashMap::new()),
        })
    }

    /// Replaces the retry policy (tests use a short backoff).
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Idempotent start-up setup: the alerts index template, the first alerts index with the
    /// write alias, the state and executions indices.
    pub async fn setup(&self) -> Result<(), Error> {
        let alias = self.alerts_alias.clone();
        let tpl_path = requests::alerts_template_path(&alias);
        let r = self
            .call(
                "install alerts template",
                Method::Put,
                &tpl_path,
                Some(ReqBody::Json(requests::alerts_template_body(&alias))),
                None,
            )
            .await?;
        ok_or_error("install alerts template", r)?;

        let alias_path = format!("/_alias/{}", requests::encode_path_segment(&alias));
        let r = self
            .call("get alerts alias", Method::Get, &alias_path, None, None)
            .await?;
        match r.status {
            200 => {
                let has_writer = r.body.as_object().is_some_and(|m| {
                    m.len() == 1
                        || m.values().any(|ix| {
                            ix.pointer(&format!(
                                "/aliases/{}/is_write_index",
                                alias.replace('~', "~0").replace('/', "~1")
                            ))
                            .and_then(Value::as_bool)
                                == Some(true)
                        })
                });
                if !has_writer {
                    return Err(Error::Request {
                        operation: format!("alerts alias {alias}"),
                        reason: "the alias points to several indices and none is the write index"
                            .into(),
                    });
                }
            }
            404 => {
                let idx_path = format!("/{}", requests::encode_path_segment(&alias));
                let r = self
                    .call("get alerts index", Method::Get, &idx_path, None, None)
                    .await?;
                if r.status == 200 {
                    return Err(Error::Request {
                        operation: format!("alerts alias {alias}"),
                        reason: format!("a concrete index named {alias} exists (auto-created by an earlier write?); delete or reindex it so detectd can create the write alias"),
                    });
                }
                let first = format!(
                    "/{}",
                    requests::encode_path_segment(&requests::alerts_first_index(&alias))
                );
                let r = self
                    .call(
                        "create alerts index",
                        Method::Put,
                        &first,
                        Some(ReqBody::Json(requests::alerts_bootstrap_body(&alias))),
                        None,
                    )
                    .await?;
                if r.status >= 300
                    && !error_types(&r.body)
                        .iter()
                        .any(|t| t == "resource_already_exists_exception")
                {
                    ok_or_error("create alerts index", r)?;
                }
            }
            _ => {
                ok_or_error("get alerts alias", r)?;
            }
        }
        for (index, body) in [
            (requests::STATE_INDEX, requests::state_index_body()),
            (
                requests::EXECUTIONS_INDEX,
                requests::executions_index_body(),
            ),
        ] {
            let path = format!("/{index}");
            let r = self
                .call("get index", Method::Head, &path, None, None)
                .await?;
            if r.status == 404 {
                let op = format!("create index {index}");
                let r = self
                    .call(&op, Method::Put, &path, Some(ReqBody::Json(body)), None)
                    .await?;
                if r.status >= 300
                    && !error_types(&r.body)
                        .iter()
                        .any(|t| t == "resource_already_exists_exception")
                {
                    ok_or_error(&op, r)?;
                }
            }
        }
        Ok(())
    }

    /// Start-up health check: for every rule, do its patterns match an index, is its time
    /// field mapped, may we read it; and can we reach the alerts alias. Never fails; every
    /// problem is one entry.
    pub async fn health_check(&self, rules: &[RuleTarget]) -> Vec<HealthProblem> {
        let mut problems = Vec::new();
        let problem = |id: &str, name: &str, p: String| HealthProblem {
            rule_id: id.to_string(),
            rule_name: name.to_string(),
            problem: p,
        };
        for (id, name, indices, time_field) in rules {
            let path = format!(
                "/{}/_search?allow_no_indices=false&ignore_unavailable=true",
                requests::index_path(indices)
            );
            let op = format!("search {}", indices.join(","));
            match self
                .call(
                    &op,
                    Method::Post,
                    &path,
                    Some(ReqBody::Json(requests::probe_body())),
                    None,
                )
                .await
            {
                Err(e) => {
                    problems.push(problem(id, name, e.to_string()));
                    continue;
                }
                Ok(r) if r.status == 404 => {
                    // allow_no_indices=false fails when any one pattern matches nothing; as
                    // Kibana, only a rule none of whose patterns match is a problem
                    if !self.any_pattern_matches(indices).await {
                        problems.push(problem(
                            id,
                            name,
                            format!("no index matches {}", indices.join(",")),
                        ));
                        continue;
                    }
                }
                Ok(r) if r.status == 401 || r.status == 403 => {
                    problems.push(problem(
                        id,
                        name,
                        format!(
                            "no read privilege on {}: {}",
                            indices.join(","),
                            error_reason(&r.body)
                        ),
                    ));
                    continue;
                }
                Ok(r) if r.status >= 300 => {
                    problems.push(problem(
                        id,
                        name,
                        format!("{op} failed: HTTP {}: {}", r.status, error_reason(&r.body)),
                    ));
                    continue;
                }
                Ok(_) => {}
            }
            match self.catalog(indices, None).await {
                Ok(cat) => {
                    let mapped = cat.get(time_field).is_some_and(|s| {
                        s.es_types.iter().any(|t| t == "date" || t == "date_nanos")
                    });
                    if !mapped {
                        problems.push(problem(
                            id,
                            name,
                            format!(
                                "time field {time_field} is not mapped as a date in {}",
                                indices.join(",")
                            ),
                        ));
                    }
                }
                Err(e) => problems.push(problem(id, name, e.to_string())),
            }
        }
        let path = format!(
            "/{}/_search",
            requests::encode_path_segment(&self.alerts_alias)
        );
        match self
            .call(
                "search alerts alias",
                Method::Post,
                &path,
                Some(ReqBody::Json(requests::probe_body())),
                None,
            )
            .await
        {
            Err(e) => problems.push(problem("", "", e.to_string())),
            Ok(r) if r.status >= 300 => problems.push(problem(
                "",
                "",
                format!(
                    "alerts alias {}: HTTP {}: {}",
                    self.alerts_alias,
                    r.status,
                    error_reason(&r.body)
                ),
            )),
            Ok(_) => {}
        }
        problems
    }

    async fn any_pattern_matches(&self, indices: &[String]) -> bool {
        for pattern in indices {
            let path = format!(
                "/{}/_search?allow_no_indices=false&ignore_unavailable=true",
                requests::index_path(std::slice::from_ref(pattern))
            );
            let body = Some(ReqBody::Json(requests::probe_body()));
            if let Ok(r) = self
                .call("probe index pattern", Method::Post, &path, body, None)
                .await
            {
                if r.status != 404 {
                    return true;
                }
            }
        }
        false
    }

    /// Field types of `indices` from `_field_caps`, cached per pattern set for
    /// [`FIELD_CAPS_TTL`] (mappings change: new indices, new fields); an empty answer (no index
    /// yet) is not cached.
    pub async fn catalog(
        &self,
        indices: &[String],
        stats: Option<&ExecStats>,
    ) -> Result<Arc<FieldCatalog>, Error> {
        let key = indices.join(",");
        let cached = self.catalogs.lock().ok().and_then(|m| m.get(&key).cloned());
        if let Some((at, c)) = cached {
            if at.elapsed() < FIELD_CAPS_TTL {
                return Ok(c);
            }
        }
        let op = format!("field caps {key}");
        let r = self
            .call(
                &op,
                Method::Get,
                &requests::field_caps_path(indices),
                None,
                stats,
            )
            .await?;
        let body = ok_or_error(&op, r)?;
        let cat = FieldCatalog::from_field_caps(&body).map_err(|e| Error::Request {
            operation: op.clone(),
            reason: format!("unreadable field caps: {e}"),
        })?;
        let cat = Arc::new(cat);
        if !cat.is_empty() {
            if let Ok(mut m) = self.catalogs.lock() {
                m.insert(key, (Instant::now(), cat.clone()));
            }
        }
        Ok(cat)
    }

    /// The translated rule query (without the time range).
    async fn rule_query(&self, q: &QuerySpec<'_>, stats: &ExecStats) -> Result<Value, Error> {
        let cat = self.catalog(q.indices, Some(stats)).await?;
        crate::dsl::rule_query(q.query, q.filters, &cat)
            .map_err(|e| Error::Unsupported(e.to_string()))
    }

    /// Sends one JSON request (tests and `detectd ingest`): the status and the parsed body.
    pub async fn send_json(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), Error> {
        let r = self
            .call(
                path,
                method,
                path,
                body.map(|b| ReqBody::Json(b.clone())),
                None,
            )
            .await?;
        Ok((r.status, r.body))
    }

    /// The most recent execution records (newest first), for `detectd status`. A missing
    /// executions index means no records yet.
    pub async fn recent_executions(&self, size: usize) -> Result<Vec<Value>, Error> {
        let path = format!(
            "/{}/_search?ignore_unavailable=true",
            requests::EXECUTIONS_INDEX
        );
        let body = requests::recent_executions_body(size);
        let r = self
            .call(
                "read executions",
                Method::Post,
                &path,
                Some(ReqBody::Json(body)),
                None,
            )
            .await?;
        let parsed: SearchResponse =
            serde_json::from_value(r.body).map_err(|e| Error::Request {
                operation: "read executions".into(),
                reason: e.to_string(),
            })?;
        Ok(parsed.hits.hits.into_iter().map(|h| h.source).collect())
    }

    /// Sends one NDJSON request (`_bulk`): the status and the parsed body.
    pub async fn send_ndjson(&self, path: &str, body: String) -> Result<(u16, Value), Error> {
        let r = self
            .call(path, Method::Post, path, Some(ReqBody::NdJson(body)), None)
            .await?;
        Ok((r.status, r.body))
    }

    /// One HTTP request: counts the round trip, retries whole-request rejections (429,
    /// 502–504) with backoff, maps transport failures to [`Error::Unreachable`].
    async fn call(
        &self,
        op: &str,
        method: Method,
        path: &str,
        body: Option<ReqBody>,
        stats: Option<&ExecStats>,
    ) -> Result<Reply, Error> {
        let mut attempt = 0;
        loop {
            let mut headers = HeaderMap::new();
            let bytes: Option<Vec<u8>> = match &body {
                None => None,
                Some(ReqBody::Json(v)) => Some(v.to_string().into_bytes()),
                Some(ReqBody::NdJson(s)) => {
                    headers.insert(
                        CONTENT_TYPE,
                        HeaderValue::from_static("application/x-ndjson"),
                    );
                    Some(s.clone().into_bytes())
                }
            };
            if let Some(s) = stats {
                s.add_round_trip();
            }
            let sent = self
                .client
                .send(
                    method,
                    path,
                    headers,
                    None::<&()>,
                    bytes,
                    Some(self.timeout),
                )
                .await;
            let resp = match sent {
                Ok(r) => r,
                Err(e) => return Err(Error::Unreachable(format!("{op}: {e}"))),
            };
            let status = resp.status_code().as_u16();
            let text = resp
                .text()
                .await
                .map_err(|e| Error::Unreachable(format!("{op}: reading the response: {e}")))?;
            let body_json = if text.trim().is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).unwrap_or(Value::String(text))
            };
            let retryable = matches!(status, 429 | 502 | 503 | 504)
                && !error_types(&body_json)
                    .iter()
                    .any(|t| t == "too_many_buckets_exception");
            if retryable && attempt < self.retry.retries {
                let delay = self.retry.base_delay * 2u32.saturating_pow(attempt);
                tracing::warn!(operation = op, status, attempt, delay_ms = delay.as_millis() as u64, reason = %error_reason(&body_json), "elasticsearch rejected the request, retrying");
                tokio::time::sleep(delay).await;
                attempt += 1;
                continue;
            }
            return Ok(Reply {
                status,
                body: body_json,
            });
        }
    }

    async fn search(
        &self,
        op: &str,
        path: &str,
        body: Value,
        stats: &ExecStats,
    ) -> Result<SearchResponse, Error> {
        let started = Instant::now();
        let r = self
            .call(
                op,
                Method::Post,
                path,
                Some(ReqBody::Json(body)),
                Some(stats),
            )
            .await;
        stats.add_search(started.elapsed());
        let v = ok_or_error(op, r?)?;
        let resp: SearchResponse = serde_json::from_value(v).map_err(|e| Error::Request {
            operation: op.to_string(),
            reason: format!("unexpected response: {e}"),
        })?;
        if resp.shards.failed > 0 {
            let reasons: Vec<String> = resp
                .shards
                .failures
                .iter()
                .map(|f| f.get("reason").map(describe_error).unwrap_or_default())
                .collect();
            tracing::warn!(operation = op, failed_shards = resp.shards.failed, reasons = ?reasons, "partial results: some shards failed");
        }
        Ok(resp)
    }

    async fn close_pit(&self, pit: &str, stats: &ExecStats) -> Result<(), Error> {
        let r = self
            .call(
                "close point in time",
                Method::Delete,
                "/_pit",
                Some(ReqBody::Json(requests::close_pit_body(pit))),
                Some(stats),
            )
            .await?;
        // 404 = already closed or expired: nothing to release
        if r.status == 404 {
            return Ok(());
        }
        ok_or_error("close point in time", r).map(|_| ())
    }

    async fn bulk_once(
        &self,
        alerts: &[&AlertDoc],
        stats: &ExecStats,
    ) -> Result<Vec<(String, u16, Option<Value>)>, Error> {
        let op = format!("bulk write to {}", self.alerts_alias);
        let started = Instant::now();
        let r = self
            .call(
                &op,
                Method::Post,
                &requests::bulk_path(&self.alerts_alias),
                Some(ReqBody::NdJson(requests::bulk_create_body(alerts))),
                Some(stats),
            )
            .await;
        stats.add_index(started.elapsed());
        let v = ok_or_error(&op, r?)?;
        let resp: BulkResponse = serde_json::from_value(v).map_err(|e| Error::Request {
            operation: op.clone(),
            reason: format!("unexpected response: {e}"),
        })?;
        if resp.items.len() != alerts.len() {
            return Err(Error::Request {
                operation: op,
                reason: format!(
                    "{} items answered for {} sent",
                    resp.items.len(),
                    alerts.len()
                ),
            });
        }
        Ok(resp
            .items
            .into_iter()
            .zip(alerts)
            .map(|(item, a)| match item.into_values().next() {
                Some(i) => (i.id.unwrap_or_else(|| a.id.clone()), i.status, i.error),
                None => (a.id.clone(), 500, None),
            })
            .collect())
    }

    /// One bulk request of at most [`BULK_CHUNK`] alerts, retrying rejected items.
    async fn write_chunk(
        &self,
        alerts: &[AlertDoc],
        stats: &ExecStats,
        outcome: &mut WriteOutcome,
    ) -> Result<(), Error> {
        let mut pending: Vec<&AlertDoc> = alerts.iter().collect();
        let mut attempt = 0;
        while !pending.is_empty() {
            let results = self.bulk_once(&pending, stats).await?;
            let mut retry = Vec::new();
            for ((id, status, error), alert) in results.into_iter().zip(pending) {
                match status {
                    200..=299 => outcome.created.push(id),
                    409 => outcome.duplicates.push(id),
                    429 | 502..=504 if attempt < self.retry.retries => retry.push(alert),
                    _ => {
                        let reason = error
                            .as_ref()
                            .map(describe_error)
                            .unwrap_or_else(|| format!("status {status}"));
                        outcome.failed.push((id, reason));
                    }
                }
            }
            if !retry.is_empty() {
                let delay = self.retry.base_delay * 2u32.saturating_pow(attempt);
                tracing::warn!(
                    items = retry.len(),
                    attempt,
                    "bulk items rejected, retrying"
                );
                tokio::time::sleep(delay).await;
            }
            pending = retry;
            attempt += 1;
        }
        Ok(())
    }

    async fn new_terms_single(
        &self,
        q: &QuerySpec<'_>,
        rq: &Value,
        field: &str,
        history_start: DateTime<Utc>,
        tuples: &[Vec<Value>],
        stats: &ExecStats,
    ) -> Result<Vec<NewTerm>, Error> {
        let values: Vec<Value> = tuples.iter().filter_map(|t| t.first().cloned()).collect();
        if values.is_empty() {
            return Ok(Vec::new());
        }
        let path = search_path(q.indices);
        let op = format!("new terms history {}", q.indices.join(","));
        let query = requests::window_query(
            rq,
            requests::time_range_filter(q.time, history_start, q.to),
            None,
        );
        let body = requests::new_terms_history_body(query, field, &values, q.time, q.from);
        let resp = self.search(&op, &path, body, stats).await?;
        let new_values: Vec<Value> = buckets(resp).into_iter().map(|b| b.key).collect();
        if new_values.is_empty() {
            return Ok(Vec::new());
        }
        let op = format!("new terms first documents {}", q.indices.join(","));
        let query =
            requests::window_query(rq, requests::time_range_filter(q.time, q.from, q.to), None);
        let body = requests::new_terms_first_docs_body(query, field, &new_values, q.time);
        let resp = self.search(&op, &path, body, stats).await?;
        Ok(buckets(resp)
            .into_iter()
            .filter_map(|b| {
                let hit = b.docs?.hits.hits.into_iter().next()?;
                Some(NewTerm {
                    values: vec![b.key],
                    hit: to_hit(hit),
                })
            })
            .collect())
    }

    #[allow(clippy::too_many_arguments)]
    async fn new_terms_batch(
        &self,
        q: &QuerySpec<'_>,
        rq: &Value,
        fields: &[String],
        history_start: DateTime<Utc>,
        batch: &[Vec<Value>],
        stats: &ExecStats,
        out: &mut Vec<NewTerm>,
    ) -> Result<(), Error> {
        let path = search_path(q.indices);
        let op = format!("new terms history {}", q.indices.join(","));
        let query = requests::window_query(
            rq,
            requests::time_range_filter(q.time, history_start, q.to),
            Some(requests::tuples_filter(fields, batch)),
        );
        let mut after: Option<Value> = None;
        let mut found = Vec::new();
        loop {
            let body = requests::new_terms_composite_body(
                query.clone(),
                fields,
                batch.len(),
                q.time,
                q.from,
                after.as_ref(),
            );
            let resp = self.search(&op, &path, body, stats).await?;
            let agg = resp.aggregations.map(|a| a.new_terms);
            let (next, bks) = match agg {
                Some(a) => (a.after_key, a.buckets),
                None => (None, Vec::new()),
            };
            for b in bks {
                let values: Vec<Value> = fields
                    .iter()
                    .map(|f| b.key.get(f).cloned().unwrap_or(Value::Null))
                    .collect();
                if let Some(hit) = b.docs.and_then(|d| d.hits.hits.into_iter().next()) {
                    found.push(NewTerm {
                        values,
                        hit: to_hit(hit),
                    });
                }
            }
            // a page may come back empty with an after_key (bucket_selector runs after the cut)
            match next {
                Some(a) if after.as_ref() != Some(&a) => after = Some(a),
                _ => break,
            }
        }
        out.extend(found);
        Ok(())
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
        let rq = self.rule_query(q, stats).await?;
        let pit = match cursor.and_then(|c| c.pit.clone()) {
            Some(p) => p,
            None => {
                let op = format!("open point in time {}", q.indices.join(","));
                let r = self
                    .call(
                        &op,
                        Method::Post,
                        &requests::open_pit_path(q.indices),
                        None,
                        Some(stats),
                    )
                    .await?;
                let v = ok_or_error(&op, r)?;
                let pit: OpenPit = serde_json::from_value(v).map_err(|e| Error::Request {
                    operation: op,
                    reason: format!("unexpected response: {e}"),
                })?;
                pit.id
            }
        };
        let query =
            requests::window_query(&rq, requests::time_range_filter(q.time, q.from, q.to), None);
        let body = requests::search_page_body(
            query,
            q.time,
            size,
            &pit,
            cursor.map(|c| c.search_after.as_slice()),
        );
        let op = format!("search {}", q.indices.join(","));
        let resp = match self.search(&op, "/_search", body, stats).await {
            Ok(r) => r,
            Err(e) => {
                let _ = self.close_pit(&pit, stats).await;
                return Err(e);
            }
        };
        let pit = resp.pit_id.clone().unwrap_or(pit);
        let hits: Vec<Hit> = resp.hits.hits.into_iter().map(to_hit).collect();
        let more = size > 0 && hits.len() >= size;
        let cursor = match hits.last() {
            Some(last) if more => Some(Cursor {
                pit: Some(pit),
                search_after: last.sort.clone(),
            }),
            _ => {
                self.close_pit(&pit, stats).await?;
                None
            }
        };
        Ok(Page { hits, cursor })
    }

    async fn close_search(&self, cursor: &Cursor, stats: &ExecStats) -> Result<(), Error> {
        match &cursor.pit {
            Some(p) => self.close_pit(p, stats).await,
            None => Ok(()),
        }
    }

    async fn terms_page(
        &self,
        q: &QuerySpec<'_>,
        fields: &[String],
        size: usize,
        after: Option<&Value>,
        stats: &ExecStats,
    ) -> Result<TermsPage, Error> {
        let rq = self.rule_query(q, stats).await?;
        let query =
            requests::window_query(&rq, requests::time_range_filter(q.time, q.from, q.to), None);
        let body = requests::terms_page_body(query, fields, size, after);
        let op = format!("new terms recent terms {}", q.indices.join(","));
        let resp = self
            .search(&op, &search_path(q.indices), body, stats)
            .await?;
        let (after, bks) = match resp.aggregations {
            Some(a) => (a.new_terms.after_key, a.new_terms.buckets),
            None => (None, Vec::new()),
        };
        let tuples = bks
            .into_iter()
            .map(|b| {
                fields
                    .iter()
                    .map(|f| b.key.get(f).cloned().unwrap_or(Value::Null))
                    .collect()
            })
            .collect();
        Ok(TermsPage { tuples, after })
    }

    async fn new_terms(
        &self,
        q: &QuerySpec<'_>,
        fields: &[String],
        history_start: DateTime<Utc>,
        tuples: &[Vec<Value>],
        stats: &ExecStats,
    ) -> Result<Vec<NewTerm>, Error> {
        let rq = self.rule_query(q, stats).await?;
        if fields.len() == 1 {
            return self
                .new_terms_single(q, &rq, &fields[0], history_start, tuples, stats)
                .await;
        }
        let mut out = Vec::new();
        let mut batch_size = NEW_TERMS_BATCH;
        let mut start = 0;
        while start < tuples.len() {
            let end = (start + batch_size).min(tuples.len());
            match self
                .new_terms_batch(
                    q,
                    &rq,
                    fields,
                    history_start,
                    &tuples[start..end],
                    stats,
                    &mut out,
                )
                .await
            {
                Ok(()) => start = end,
                Err(Error::TooManyClauses { operation }) => {
                    if batch_size == 1 {
                        return Err(Error::TooManyClauses { operation });
                    }
                    batch_size /= 2;
                    tracing::warn!(batch_size, "too many clauses: halving the new terms batch");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    async fn write_alerts(
        &self,
        alerts: &[AlertDoc],
        stats: &ExecStats,
    ) -> Result<WriteOutcome, Error> {
        let mut outcome = WriteOutcome::default();
        for chunk in alerts.chunks(BULK_CHUNK) {
            self.write_chunk(chunk, stats, &mut outcome).await?;
        }
        Ok(outcome)
    }

    async fn load_state(&self) -> Result<BTreeMap<String, RuleState>, Error> {
        let op = format!("load state from {}", requests::STATE_INDEX);
        let path = format!(
            "/{}/_search?{}",
            requests::STATE_INDEX,
            requests::INDICES_OPTIONS
        );
        let r = self
            .call(
                &op,
                Method::Post,
                &path,
                Some(ReqBody::Json(requests::load_state_body())),
                None,
            )
            .await?;
        let v = ok_or_error(&op, r)?;
        let resp: SearchResponse = serde_json::from_value(v).map_err(|e| Error::Request {
            operation: op.clone(),
            reason: format!("unexpected response: {e}"),
        })?;
        let mut out = BTreeMap::new();
        for h in resp.hits.hits {
            match serde_json::from_value::<RuleState>(h.source) {
                Ok(s) => {
                    out.insert(h.id, s);
                }
                Err(e) => tracing::warn!(rule = %h.id, error = %e, "unreadable rule state ignored"),
            }
        }
        Ok(out)
    }

    async fn save_state(&self, rule_id: &str, state: &RuleState) -> Result<(), Error> {
        let op = format!("save state of rule {rule_id}");
        let path = format!(
            "/{}/_doc/{}?refresh=wait_for",
            requests::STATE_INDEX,
            requests::encode_path_segment(rule_id)
        );
        let v = serde_json::to_value(state).map_err(|e| Error::Request {
            operation: op.clone(),
            reason: e.to_string(),
        })?;
        let r = self
            .call(
                &op,
                Method::Put,
                &path,
                Some(ReqBody::Json(requests::state_doc(rule_id, &v))),
                None,
            )
            .await?;
        ok_or_error(&op, r).map(|_| ())
    }

    async fn record_execution(&self, record: &ExecutionRecord) -> Result<(), Error> {
        let op = format!("record execution in {}", requests::EXECUTIONS_INDEX);
        let path = format!("/{}/_doc", requests::EXECUTIONS_INDEX);
        let r = self
            .call(
                &op,
                Method::Post,
                &path,
                Some(ReqBody::Json(record.clone())),
                None,
            )
            .await?;
        ok_or_error(&op, r).map(|_| ())
    }
}

fn search_path(indices: &[String]) -> String {
    format!(
        "/{}/_search?{}",
        requests::index_path(indices),
        requests::INDICES_OPTIONS
    )
}

fn buckets(resp: SearchResponse) -> Vec<responses::Bucket> {
    resp.aggregations
        .map(|a| a.new_terms.buckets)
        .unwrap_or_default()
}

fn to_hit(h: RawHit) -> Hit {
    Hit {
        index: h.index,
        id: h.id,
        source: h.source,
        sort: h.sort,
    }
}

fn error_reason(body: &Value) -> String {
    match body.get("error") {
        Some(e @ Value::Object(_)) => describe_error(e),
        Some(Value::String(s)) => s.clone(),
        _ => body.to_string().chars().take(500).collect(),
    }
}

/// The body of a 2xx reply, or the error it carries (`too_many_clauses` is its own variant).
fn ok_or_error(op: &str, r: Reply) -> Result<Value, Error> {
    if r.status < 300 {
        return Ok(r.body);
    }
    if error_types(&r.body).iter().any(|t| t == "too_many_clauses") {
        return Err(Error::TooManyClauses {
            operation: op.to_string(),
        });
    }
    Err(Error::Request {
        operation: op.to_string(),
        reason: format!("HTTP {}: {}", r.status, error_reason(&r.body)),
    })
}

/// `detectd ingest FILES... --index NAME`: raw CloudTrail to ECS into Elasticsearch.
pub fn ingest_command(cli: &Cli, args: &IngestArgs) -> anyhow::Result<ExitCode> {
    let config = cli.load_config()?;
    let backend = ElasticsearchBackend::new(&config.elasticsearch, &config.alerts)?;
    let databases = if args.geoip.is_empty() {
        config.embedded.geoip_databases.clone()
    } else {
        args.geoip.clone()
    };
    let opts = crate::ecs::options_with_geoip(&databases)?;
    let runtime = tokio::runtime::Runtime::new()?;
    let started = Instant::now();
    let totals = runtime.block_on(ingest::ingest(&backend, &args.files, &args.index, opts))?;
    eprintln!(
        "ingested {} of {} documents from {} files into {} in {:.1}s ({} already there, {} records skipped, {} refused)",
        totals.indexed,
        totals.documents,
        totals.files,
        args.index,
        started.elapsed().as_secs_f64(),
        totals.duplicates,
        totals.skipped,
        totals.failed
    );
    // Everything readable was loaded; a skipped record or a refused document still fails the
    // command, as `detectd ecs` does.
    Ok(if totals.failed > 0 || totals.skipped > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
