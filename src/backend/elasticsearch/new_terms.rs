//! new_terms phases on Elasticsearch: recent terms by composite aggregation, then the history
//! check (first seen after `from`) and the first document of each new term.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::responses::SearchResponse;
use super::search::{search_path, to_hit};
use super::{requests, responses, ElasticsearchBackend, NEW_TERMS_BATCH};
use crate::backend::{Error, ExecStats, NewTerm, QuerySpec, TermsPage};

impl ElasticsearchBackend {
    /// Sends a first-seen search built by `build(selector)`: with Kibana's `bucket_selector`
    /// unless the cluster refused one before (no painless: scripting disabled, or a node
    /// without the module); a refusal switches to filtering the buckets here, for good.
    async fn with_selector(
        &self,
        op: &str,
        stats: &ExecStats,
        build: impl Fn(bool) -> (String, Value),
    ) -> Result<SearchResponse, Error> {
        use std::sync::atomic::Ordering;
        if !self.no_selector.load(Ordering::Relaxed) {
            let (path, body) = build(true);
            match self.search(op, &path, body, stats).await {
                Err(Error::Rejected { reason, .. })
                    if ["bucket_selector", "painless", "script"]
                        .iter()
                        .any(|w| reason.contains(w)) =>
                {
                    tracing::warn!(reason, "the cluster runs no bucket_selector script: first seen is filtered by detectd");
                    self.no_selector.store(true, Ordering::Relaxed);
                }
                other => return other,
            }
        }
        let (path, body) = build(false);
        self.search(op, &path, body, stats).await
    }

    pub(super) async fn new_terms_single(
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
        let resp = self
            .with_selector(&op, stats, |selector| {
                let body = requests::new_terms_history_body(
                    query.clone(),
                    field,
                    &values,
                    q.time,
                    q.from,
                    selector,
                );
                (path.clone(), body)
            })
            .await?;
        let from = q.from.timestamp_millis() as f64;
        let new_values: Vec<Value> = buckets(resp)
            .into_iter()
            .filter(|b| b.first_seen_millis().is_some_and(|t| t > from))
            .map(|b| b.key)
            .collect();
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
    pub(super) async fn new_terms_batch(
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
        let from = q.from.timestamp_millis() as f64;
        loop {
            let resp = self
                .with_selector(&op, stats, |selector| {
                    let body = requests::new_terms_composite_body(
                        query.clone(),
                        fields,
                        batch.len(),
                        q.time,
                        q.from,
                        after.as_ref(),
                        selector,
                    );
                    (path.clone(), body)
                })
                .await?;
            let agg = resp.aggregations.map(|a| a.new_terms);
            let (next, bks) = match agg {
                Some(a) => (a.after_key, a.buckets),
                None => (None, Vec::new()),
            };
            for b in bks {
                if !b.first_seen_millis().is_some_and(|t| t > from) {
                    continue; // what the bucket_selector drops (it already did, if it ran)
                }
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

    pub(super) async fn recent_terms(
        &self,
        q: &QuerySpec<'_>,
        fields: &[String],
        size: usize,
        after: Option<&Value>,
        stats: &ExecStats,
    ) -> Result<TermsPage, Error> {
        let Some(rq) = self.rule_query(q, stats).await? else {
            return Ok(TermsPage::default());
        };
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

    pub(super) async fn history_new_terms(
        &self,
        q: &QuerySpec<'_>,
        fields: &[String],
        history_start: DateTime<Utc>,
        tuples: &[Vec<Value>],
        stats: &ExecStats,
    ) -> Result<Vec<NewTerm>, Error> {
        let Some(rq) = self.rule_query(q, stats).await? else {
            return Ok(Vec::new());
        };
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
}

pub(super) fn buckets(resp: SearchResponse) -> Vec<responses::Bucket> {
    resp.aggregations
        .map(|a| a.new_terms.buckets)
        .unwrap_or_default()
}
