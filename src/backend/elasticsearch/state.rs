//! Rule state and execution records in their indices.

use std::collections::BTreeMap;

use elasticsearch::http::Method;
use serde_json::Value;

use super::responses::SearchResponse;
use super::transport::{ok_or_error, ReqBody};
use super::{requests, ElasticsearchBackend};
use crate::backend::{Error, ExecutionRecord, RuleState};

impl ElasticsearchBackend {
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

    pub(super) async fn read_states(&self) -> Result<BTreeMap<String, RuleState>, Error> {
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

    pub(super) async fn write_state(&self, rule_id: &str, state: &RuleState) -> Result<(), Error> {
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

    pub(super) async fn write_record(&self, record: &ExecutionRecord) -> Result<(), Error> {
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
