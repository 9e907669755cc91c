//! Rule state and execution records in their indices (names from `elasticsearch.state_index`
//! and `elasticsearch.executions_index`). Writes go through the background [`super::writer`];
//! reads first flush it and refresh the index, so they see every write made so far.

use std::collections::BTreeMap;

use elasticsearch::http::Method;
use serde_json::Value;

use super::responses::SearchResponse;
use super::transport::{ok_or_error, ReqBody};
use super::writer::Pending;
use super::{requests, ElasticsearchBackend};
use crate::backend::{Error, ExecutionRecord, RuleState};

impl ElasticsearchBackend {
    /// The most recent execution records (newest first), for `detectd status`. A missing
    /// executions index means no records yet.
    pub async fn recent_executions(&self, size: usize) -> Result<Vec<Value>, Error> {
        self.refresh_for_read(&self.executions_index).await?;
        let path = format!("/{}/_search?ignore_unavailable=true", self.executions_index);
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

    /// Writes what the background writer holds (shutdown; before reading state back).
    pub async fn flush_writes(&self) -> Result<(), Error> {
        self.writer.flush().await
    }

    /// Flushes our own pending writes, then refreshes `index` so a search sees them (a missing
    /// index is fine: nothing was written yet).
    async fn refresh_for_read(&self, index: &str) -> Result<(), Error> {
        if let Err(e) = self.flush_writes().await {
            tracing::warn!(error = %e, "pending state writes could not be flushed before reading");
        }
        let op = format!("refresh {index}");
        let r = self
            .call(
                &op,
                Method::Post,
                &requests::refresh_path(index),
                None,
                None,
            )
            .await?;
        if r.status == 404 {
            return Ok(());
        }
        ok_or_error(&op, r).map(|_| ())
    }

    pub(super) async fn read_states(&self) -> Result<BTreeMap<String, RuleState>, Error> {
        self.refresh_for_read(&self.state_index).await?;
        let op = format!("load state from {}", self.state_index);
        let path = format!(
            "/{}/_search?{}",
            self.state_index,
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

    /// Hands the state to the background writer (its alerts are already acknowledged).
    pub(super) async fn write_state(&self, rule_id: &str, state: &RuleState) -> Result<(), Error> {
        let v = serde_json::to_value(state).map_err(|e| Error::Request {
            operation: format!("save state of rule {rule_id}"),
            reason: e.to_string(),
        })?;
        self.writer.put(
            &self.transport,
            Pending {
                index: self.state_index.clone(),
                id: rule_id.to_string(),
                replaces: true,
                doc: requests::state_doc(rule_id, &v),
            },
        )
    }

    /// Hands the record to the background writer; its id is a hash of its content, so a
    /// request retried after a lost answer does not store it twice.
    pub(super) async fn write_record(&self, record: &ExecutionRecord) -> Result<(), Error> {
        use sha2::{Digest, Sha256};
        let text = record.to_string();
        let id = hex::encode(&Sha256::digest(text.as_bytes())[..16]);
        self.writer.put(
            &self.transport,
            Pending {
                index: self.executions_index.clone(),
                id,
                replaces: false,
                doc: record.clone(),
            },
        )
    }
}
