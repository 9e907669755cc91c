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
        Ok(self.sources(indices, stats).await?.0)
    }

    /// [`Self::catalog`], and whether the patterns matched any index (the `indices` of the
    /// `_field_caps` answer, as Kibana's check before a rule searches).
    pub(super) async fn sources(
        &self,
        indices: &[String],
        stats: Option<&ExecStats>,
    ) -> Result<(Arc<FieldCatalog>, bool), Error> {
        let key = indices.join(",");
        let cached = self.catalogs.lock().ok().and_then(|m| m.get(&key).cloned());
        if let Some((at, c)) = cached {
            if at.elapsed() < FIELD_CAPS_TTL {
                return Ok((c, true));
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
        // Clusters that do not list `indices` (none we know of) count as matching.
        let matched = body
            .get("indices")
            .and_then(Value::as_array)
            .is_none_or(|a| !a.is_empty());
        let cat = FieldCatalog::from_field_caps(&body).map_err(|e| Error::Request {
            operation: op.clone(),
            reason: format!("unreadable field caps: {e}"),
        })?;
        let cat = Arc::new(cat);
        if matched && !cat.is_empty() {
            if let Ok(mut m) = self.catalogs.lock() {
                m.insert(key, (Instant::now(), cat.clone()));
            }
        }
        Ok((cat, matched))
    }

    /// The translated rule query (without the time range).
    /// `None` when the patterns match no index (the warning is added to `stats`).
    pub(super) async fn rule_query(
        &self,
        q: &QuerySpec<'_>,
        stats: &ExecStats,
    ) -> Result<Option<Value>, Error> {
        let (cat, matched) = self.sources(q.indices, Some(stats)).await?;
        if !matched {
            stats.add_warning(crate::backend::no_index_warning(q.indices));
            return Ok(None);
        }
        crate::dsl::rule_query(q.query, q.filters, &cat)
            .map(Some)
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
            // On the execution record too: events on the failed shards were not seen, so the
            // execution fails (as Kibana's does) and the window is searched again.
            stats
                .incomplete
                .store(true, std::sync::atomic::Ordering::Relaxed);
            stats.add_warning(format!(
                "partial results: {} shard(s) failed: {}",
                resp.shards.failed,
                reasons.join("; ")
            ));
        }
        Ok(resp)
    }

    pub(super) async fn close_pit(&self, pit: &str, stats: &ExecStats) -> Result<(), Error> {
        let (path, body) = if self.is_opensearch().await {
            (
                requests::OPENSEARCH_PIT_PATH,
                requests::opensearch_close_pit_body(pit),
            )
        } else {
            ("/_pit", requests::close_pit_body(pit))
        };
        let r = self
            .call(
                "close point in time",
                Method::Delete,
                path,
                Some(ReqBody::Json(body)),
                Some(stats),
            )
            .await?;
        // 404 = already closed or expired: nothing to release
        if r.status == 404 {
            return Ok(());
        }
        ok_or_error("close point in time", r).map(|_| ())
    }

    /// A page of a query rule's hits. The first page is a plain search: most windows hold no
    /// hits, and a point in time (two more round trips) is only worth opening when the first
    /// page comes back full; then the pages run in a point in time from the start (the plain
    /// page is not reused: its sort values carry no tie-breaker to continue from). Patterns
    /// that match no index are a warning and no search (Kibana's behaviour; opening a point in
    /// time on them is an HTTP 500 on 7.10).
    pub(super) async fn search_page_pit(
        &self,
        q: &QuerySpec<'_>,
        size: usize,
        cursor: Option<&Cursor>,
        stats: &ExecStats,
    ) -> Result<Page, Error> {
        let Some(rq) = self.rule_query(q, stats).await? else {
            return Ok(Page::default());
        };
        let query =
            requests::window_query(&rq, requests::time_range_filter(q.time, q.from, q.to), None);
        let op = format!("search {}", q.indices.join(","));
        if cursor.is_none() {
            let body = requests::search_page_body(query.clone(), q.time, size, None, None);
            let resp = self
                .search(&op, &search_path(q.indices), body, stats)
                .await?;
            if size == 0 || resp.hits.hits.len() < size {
                let hits = resp.hits.hits.into_iter().map(to_hit).collect();
                return Ok(Page { hits, cursor: None });
            }
        }
        let pit = match cursor.and_then(|c| c.pit.clone()) {
            Some(p) => p,
            None => self.open_pit(q.indices, stats).await?,
        };
        let body = requests::search_page_body(
            query,
            q.time,
            size,
            Some(&pit),
            cursor.map(|c| c.search_after.as_slice()),
        );
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

    async fn open_pit(&self, indices: &[String], stats: &ExecStats) -> Result<String, Error> {
        let op = format!("open point in time {}", indices.join(","));
        let r = self
            .call(
                &op,
                Method::Post,
                &if self.is_opensearch().await {
                    requests::opensearch_open_pit_path(indices)
                } else {
                    requests::open_pit_path(indices)
                },
                None,
                Some(stats),
            )
            .await?;
        let v = ok_or_error(&op, r)?;
        let pit: OpenPit = serde_json::from_value(v).map_err(|e| Error::Request {
            operation: op,
            reason: format!("unexpected response: {e}"),
        })?;
        Ok(pit.id)
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
