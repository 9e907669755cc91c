//! ES|QL rules on Elasticsearch 8.11 and newer: the `_query` request with the window as a DSL
//! `filter`, its tabular answer read into rows, and the source documents of the rows of a
//! `METADATA _id` query.
//!
//! Follows Kibana's ES|QL rule executor (security_solution
//! `server/lib/detection_engine/rule_types/esql/`): `build_esql_search_request.ts` (the body:
//! `${query} | limit ${size}` and `filter.bool.filter: [time range, query filter]`, as of
//! elastic/kibana b407077; the 8.x versions asked for `size + 1` rows, which only read one row
//! twice), `utils/row_to_document.ts` (null cells left out), `fetch_source_documents.ts` (an
//! `ids` search over the query's `FROM` indices). Differences, each for a reason:
//! - the synchronous `POST /_query` of 8.11+, as Kibana 8.x sent it (`esql_request.ts`), not
//!   the `_query/async` of later Kibana (8.13+ only); no `wait_for_completion_timeout`;
//! - no `drop_null_columns=true` query parameter: 8.11 and 8.12 refuse it (it came in 8.13),
//!   and rows leave null cells out anyway, so the rows are the same;
//! - the source-documents search asks for `_source` only (Kibana adds `fields: ["*"]`, which
//!   detectd's alerts do not use).
//!
//! Every path and body here is a pure function (golden-tested, and printed by `detectd explain`).

use elasticsearch::http::Method;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::responses::SearchResponse;
use super::search::{search_path, to_hit};
use super::transport::{ok_or_error, ReqBody};
use super::version::{ClusterInfo, Engine};
use super::{requests, ElasticsearchBackend};
use crate::backend::{Error, EsqlSpec, ExecStats, Hit};

/// The ES|QL endpoint.
pub const QUERY_PATH: &str = "/_query";

/// The first Elasticsearch version with `POST /_query` (ES|QL, technical preview in 8.11).
pub const MIN_VERSION: (u32, u32, u32) = (8, 11, 0);

/// Why this cluster cannot run ES|QL rules (`None`: it can). No `_query` is sent to such a
/// cluster: the rule is reported once as not runnable there.
pub fn refusal(info: &ClusterInfo) -> Option<String> {
    let runs = info.engine == Engine::Elasticsearch && info.version >= MIN_VERSION;
    (!runs).then(|| {
        format!(
            "ES|QL needs Elasticsearch 8.11 or newer; this cluster is {} {}",
            info.name(),
            info.number
        )
    })
}

/// The query sent: the rule's query with Kibana's `| limit <size>` appended as written
/// (`${query} | limit ${size}`).
pub fn query_text(query: &str, size: usize) -> String {
    format!("{query} | limit {size}")
}

/// The `_query` body: the query with its limit, and the window (plus Kibana's empty
/// `getQueryFilter` bool of an ES|QL rule without exceptions) as `filter.bool.filter`.
pub fn query_body(q: &EsqlSpec<'_>, size: usize) -> Value {
    json!({
        "query": query_text(q.query, size),
        "filter": {"bool": {"filter": [
            requests::time_range_filter(q.time, q.from, q.to),
            {"bool": {"must": [], "filter": [], "should": [], "must_not": []}}
        ]}}
    })
}

/// The search for the source documents of `ids` (the `_id` column of a non-aggregating
/// query's rows) over `indices` (the query's `FROM` list).
pub fn source_documents_body(ids: &[Value]) -> Value {
    json!({
        "query": {"bool": {"filter": {"ids": {"values": ids}}}},
        "_source": true,
        "size": ids.len()
    })
}

/// Its path: the `FROM` indices, missing ones ignored (Kibana: `ignore_unavailable: true`).
pub fn source_documents_path(indices: &[String]) -> String {
    search_path(indices)
}

/// A `_query` answer (only what detectd reads).
#[derive(Debug, Default, Deserialize)]
pub struct QueryResponse {
    #[serde(default)]
    pub columns: Vec<Column>,
    #[serde(default)]
    pub values: Vec<Vec<Value>>,
    /// 8.19/9.x: some shards or clusters failed and the answer lacks their rows.
    #[serde(default)]
    pub is_partial: bool,
}

/// One column of a `_query` answer.
#[derive(Debug, Deserialize)]
pub struct Column {
    pub name: String,
    #[serde(default, rename = "type")]
    pub kind: String,
}

impl QueryResponse {
    /// The rows as column → value, in answer order, null cells left out (Kibana's
    /// `rowToDocument`: ES|QL answers null for every mapped field a document lacks).
    pub fn rows(&self) -> Vec<Map<String, Value>> {
        self.values
            .iter()
            .map(|row| {
                self.columns
                    .iter()
                    .zip(row)
                    .filter(|(_, v)| !v.is_null())
                    .map(|(c, v)| (c.name.clone(), v.clone()))
                    .collect()
            })
            .collect()
    }
}

impl ElasticsearchBackend {
    pub(super) async fn esql_query(
        &self,
        q: &EsqlSpec<'_>,
        size: usize,
        stats: &ExecStats,
    ) -> Result<Vec<Map<String, Value>>, Error> {
        let op = "ES|QL query";
        // A cluster that does not answer `GET /` (no `monitor` privilege) is asked anyway: its
        // answer says whether it has `_query`.
        match self.cluster_info().await {
            Ok(info) => {
                if let Some(why) = refusal(&info) {
                    return Err(Error::Rejected {
                        operation: op.into(),
                        reason: why,
                    });
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "cluster version unknown, sending the ES|QL query")
            }
        }
        let started = std::time::Instant::now();
        let r = self
            .call(
                op,
                Method::Post,
                QUERY_PATH,
                Some(ReqBody::Json(query_body(q, size))),
                Some(stats),
            )
            .await;
        stats.add_search(started.elapsed());
        let r = r?;
        // 405: `_query` is taken for an index name (`PUT /{index}`): no ES|QL on this node
        // (an Elasticsearch built without the x-pack-esql module), for good.
        if r.status == 405 {
            return Err(Error::Rejected {
                operation: op.into(),
                reason: format!(
                    "this cluster has no ES|QL endpoint (POST {QUERY_PATH}: HTTP 405: {})",
                    super::transport::error_reason(&r.body)
                ),
            });
        }
        // An unknown index or column (`verification_exception`) depends on the data, which may
        // come later: the execution fails and the next one asks again, as Kibana's does. Any
        // other 400 (a syntax error, no `_query` handler) is the rule's for good.
        if r.status == 400
            && super::responses::error_types(&r.body)
                .iter()
                .any(|t| t == "verification_exception")
        {
            return Err(Error::Request {
                operation: op.into(),
                reason: format!("HTTP 400: {}", super::transport::error_reason(&r.body)),
            });
        }
        let v = ok_or_error(op, r)?;
        let resp: QueryResponse = serde_json::from_value(v).map_err(|e| Error::Request {
            operation: op.into(),
            reason: format!("unexpected response: {e}"),
        })?;
        if resp.is_partial {
            tracing::warn!(operation = op, "partial results: some shards failed");
            stats
                .incomplete
                .store(true, std::sync::atomic::Ordering::Relaxed);
            stats.add_warning("partial results: the ES|QL answer is partial (is_partial: true)");
        }
        Ok(resp.rows())
    }

    pub(super) async fn esql_fetch_sources(
        &self,
        indices: &[String],
        ids: &[Value],
        stats: &ExecStats,
    ) -> Result<Vec<Hit>, Error> {
        if ids.is_empty() || indices.is_empty() {
            return Ok(Vec::new());
        }
        let op = format!("ES|QL source documents {}", indices.join(","));
        let resp: SearchResponse = self
            .search(
                &op,
                &source_documents_path(indices),
                source_documents_body(ids),
                stats,
            )
            .await?;
        Ok(resp.hits.hits.into_iter().map(to_hit).collect())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn es_before_8_11_and_opensearch_are_refused_with_their_version() {
        let info = |v: Value| ClusterInfo::from_root(&json!({ "version": v })).unwrap();
        assert_eq!(refusal(&info(json!({"number": "8.11.0"}))), None);
        assert_eq!(refusal(&info(json!({"number": "9.5.3"}))), None);
        assert_eq!(
            refusal(&info(json!({"number": "8.10.4"}))).unwrap(),
            "ES|QL needs Elasticsearch 8.11 or newer; this cluster is Elasticsearch 8.10.4"
        );
        assert_eq!(
            refusal(&info(
                json!({"number": "2.19.6", "distribution": "opensearch"})
            ))
            .unwrap(),
            "ES|QL needs Elasticsearch 8.11 or newer; this cluster is OpenSearch 2.19.6"
        );
    }

    #[test]
    fn rows_leave_null_cells_out_in_column_order() {
        let r: QueryResponse = serde_json::from_value(json!({
            "columns": [{"name": "user.name", "type": "keyword"}, {"name": "n", "type": "long"}, {"name": "x", "type": "keyword"}],
            "values": [["a", 3, null], [null, 1, ["p", "q"]]]
        }))
        .unwrap();
        let rows = r.rows();
        assert_eq!(
            Value::Object(rows[0].clone()),
            json!({"user.name": "a", "n": 3})
        );
        assert_eq!(
            Value::Object(rows[1].clone()),
            json!({"n": 1, "x": ["p", "q"]})
        );
    }
}
