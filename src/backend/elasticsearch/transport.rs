//! The HTTP call every request goes through: one round trip counted per request, whole-request
//! 429/502–504 retried with exponential backoff (at least the server's `Retry-After`), transport failures mapped to
//! [`Error::Unreachable`], error bodies read into [`Error::Request`] naming the operation.

use elasticsearch::http::headers::{HeaderMap, HeaderValue, CONTENT_TYPE};
use elasticsearch::http::Method;
use serde_json::Value;

use std::time::Duration;

use elasticsearch::Elasticsearch;

use super::responses::{describe_error, error_types};
use super::{ElasticsearchBackend, RetryPolicy};
use crate::backend::{Error, ExecStats};

/// The client and how patiently it retries: shared by the backend and its background writer.
#[derive(Clone)]
pub(super) struct Transport {
    pub(super) client: Elasticsearch,
    pub(super) timeout: Duration,
    pub(super) retry: RetryPolicy,
}

/// A reply: status and parsed body (a non-JSON body as a string).
pub(super) struct Reply {
    pub(super) status: u16,
    pub(super) body: Value,
}

/// A request body.
pub(super) enum ReqBody {
    Json(Value),
    NdJson(String),
}

impl ElasticsearchBackend {
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

    /// Sends one NDJSON request (`_bulk`): the status and the parsed body.
    pub async fn send_ndjson(&self, path: &str, body: String) -> Result<(u16, Value), Error> {
        let r = self
            .call(path, Method::Post, path, Some(ReqBody::NdJson(body)), None)
            .await?;
        Ok((r.status, r.body))
    }

    /// One HTTP request through [`Transport::call`].
    pub(super) async fn call(
        &self,
        op: &str,
        method: Method,
        path: &str,
        body: Option<ReqBody>,
        stats: Option<&ExecStats>,
    ) -> Result<Reply, Error> {
        self.transport.call(op, method, path, body, stats).await
    }
}

impl Transport {
    /// One HTTP request: counts the round trip, retries whole-request rejections (429,
    /// 502–504) with backoff (at least the reply's `Retry-After`, at most a minute), maps transport failures to [`Error::Unreachable`].
    pub(super) async fn call(
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
            let retry_after = retry_after(resp.headers());
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
                let backoff = self.retry.base_delay * 2u32.saturating_pow(attempt);
                // The server's `Retry-After` (seconds) is honoured, bounded so one reply cannot
                // park an execution past its timeout.
                let delay = retry_after.map_or(backoff, |ra| ra.min(MAX_RETRY_AFTER).max(backoff));
                tracing::warn!(operation = op, status, attempt, delay_ms = delay.as_millis() as u64, retry_after_s = retry_after.map(|d| d.as_secs()), reason = %error_reason(&body_json), "elasticsearch rejected the request, retrying");
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
}

/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// A `Retry-After` header in seconds (the HTTP-date form is ignored: Elasticsearch and the
/// proxies in front of it send seconds).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get("retry-after")?.to_str().ok()?.trim();
    v.parse::<u64>().ok().map(Duration::from_secs)
}

pub(super) fn error_reason(body: &Value) -> String {
    match body.get("error") {
        Some(e @ Value::Object(_)) => describe_error(e),
        Some(Value::String(s)) => s.clone(),
        _ => body.to_string().chars().take(500).collect(),
    }
}

/// The body of a 2xx reply, or the error it carries (`too_many_clauses` is its own variant).
pub(super) fn ok_or_error(op: &str, r: Reply) -> Result<Value, Error> {
    if r.status < 300 {
        return Ok(r.body);
    }
    let types = error_types(&r.body);
    if types.iter().any(|t| t == "too_many_clauses") {
        return Err(Error::TooManyClauses {
            operation: op.to_string(),
        });
    }
    // A 400 is the request itself (a query this cluster cannot run): permanent. Resource
    // limits that come as 400 on some versions stay ordinary errors.
    if r.status == 400 && !types.iter().any(|t| t.starts_with("too_many_")) {
        return Err(Error::Rejected {
            operation: op.to_string(),
            reason: format!("HTTP 400: {}", error_reason(&r.body)),
        });
    }
    Err(Error::Request {
        operation: op.to_string(),
        reason: format!("HTTP {}: {}", r.status, error_reason(&r.body)),
    })
}
