//! Query rules' searches: field types from `_field_caps` (cached per pattern set), the rule
//! query, pages of hits through a point in time.

use std::time::Instant;

use elasticsearch::http::Method;
use serde_json::Value;

use super::responses::{describe_error, OpenPit, RawHit, SearchResponse};
use super::transport::{ok_or_error, ReqBody};
use super::{requests, ElasticsearchBackend, FIELD_CAPS_TTL};
use crate::backend::{Cursor, Error, ExecStats, Hit, Page, QuerySpec};
use crate::fields::FieldCatalog;
use std::sync::Arc;

impl ElasticsearchBackend {
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
    pub(super) async fn rule_query(
        &self,
        q: &QuerySpec<'_>,
        stats: &ExecStats,
    ) -> Result<Value, Error> {
        let cat = self.catalog(q.indices, Some(stats)).await?;
        crate::dsl::rule_query(q.query, q.filters, &cat)
            .map_err(|e| Error::Unsupported(e.to_string()))
    }

    pub(super) async fn search(
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

    pub(super) async fn close_pit(&self, pit: &str, stats: &ExecStats) -> Result<(), Error> {
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

    pub(super) async fn search_page_pit(
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

    pub(super) async fn close_cursor(
        &self,
        cursor: &Cursor,
        stats: &ExecStats,
    ) -> Result<(), Error> {
        match &cursor.pit {
            Some(p) => self.close_pit(p, stats).await,
            None => Ok(()),
        }
    }
}

pub(super) fn search_path(indices: &[String]) -> String {
    format!(
        "/{}/_search?{}",
        requests::index_path(indices),
        requests::INDICES_OPTIONS
    )
}

pub(super) fn to_hit(h: RawHit) -> Hit {
    Hit {
        index: h.index,
        id: h.id,
        source: h.source,
        sort: h.sort,
    }
}
