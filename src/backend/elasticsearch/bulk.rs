//! Alerts through `_bulk` `create` with their deterministic ids: 409 = already written,
//! rejected items (429, 502–504) retried with backoff.

use std::time::Instant;

use elasticsearch::http::Method;
use serde_json::Value;

use super::responses::{describe_error, BulkResponse};
use super::transport::{ok_or_error, ReqBody};
use super::{requests, ElasticsearchBackend, BULK_CHUNK};
use crate::backend::{AlertDoc, Error, ExecStats, WriteOutcome};

impl ElasticsearchBackend {
    pub(super) async fn bulk_once(
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
                &requests::bulk_path(&self.alerts_alias, self.alerts_refresh),
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
    pub(super) async fn write_chunk(
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
                    429 | 502..=504 if attempt < self.transport.retry.retries => retry.push(alert),
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
                let delay = self.transport.retry.base_delay * 2u32.saturating_pow(attempt);
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

    pub(super) async fn bulk_write_alerts(
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
}
