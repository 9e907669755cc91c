//! Threshold rules on Elasticsearch: buckets of the window by composite aggregation (or one
//! `filter` bucket without fields) with first/last time and distinct counts, and the signal
//! history read back from the rule's threshold alerts.

use chrono::{DateTime, Utc};
use elasticsearch::http::Method;
use serde_json::Value;

use super::responses::SearchResponse;
use super::search::search_path;
use super::transport::ok_or_error;
use super::{requests, ElasticsearchBackend};
use crate::backend::{
    Error, ExecStats, QuerySpec, ThresholdBucket, ThresholdPage, ThresholdSignal, ThresholdSpec,
};

impl ElasticsearchBackend {
    pub(super) async fn threshold_buckets(
        &self,
        q: &QuerySpec<'_>,
        spec: &ThresholdSpec,
        exclude: &[ThresholdSignal],
        size: usize,
        after: Option<&Value>,
        stats: &ExecStats,
    ) -> Result<ThresholdPage, Error> {
        let Some(rq) = self.rule_query(q, stats).await? else {
            return Ok(ThresholdPage::default());
        };
        let query = requests::window_query(
            &rq,
            requests::time_range_filter(q.time, q.from, q.to),
            requests::threshold_exclusion_filter(q.time, exclude),
        );
        let body =
            requests::threshold_body(query, &spec.fields, &spec.cardinality, q.time, size, after);
        let op = format!("threshold buckets {}", q.indices.join(","));
        let resp = self
            .search(&op, &search_path(q.indices), body, stats)
            .await?;
        let Some(agg) = resp.aggregations.map(|a| a.new_terms) else {
            return Ok(ThresholdPage::default());
        };
        let cards = |s: &super::responses::ThresholdStats| -> Vec<u64> {
            (0..spec.cardinality.len())
                .map(|i| s.count_of(&requests::threshold_cardinality_agg(i)))
                .collect()
        };
        if spec.fields.is_empty() {
            let s = &agg.single;
            let buckets = match s.times(agg.fallback.as_ref()) {
                Some((first_ms, last_ms)) if s.doc_count > 0 => vec![ThresholdBucket {
                    terms: Vec::new(),
                    count: s.doc_count,
                    cardinality: cards(s),
                    first_ms,
                    last_ms,
                }],
                _ => Vec::new(),
            };
            return Ok(ThresholdPage {
                buckets,
                after: None,
            });
        }
        let buckets = agg
            .buckets
            .iter()
            .filter_map(|b| {
                let (first_ms, last_ms) = b.stats.times(b.fallback.as_ref())?;
                Some(ThresholdBucket {
                    terms: spec
                        .fields
                        .iter()
                        .map(|f| b.key.get(f).cloned().unwrap_or(Value::Null))
                        .collect(),
                    count: b.stats.doc_count,
                    cardinality: cards(&b.stats),
                    first_ms,
                    last_ms,
                })
            })
            .collect();
        let after = if agg.buckets.is_empty() {
            None
        } else {
            agg.after_key
        };
        Ok(ThresholdPage { buckets, after })
    }

    pub(super) async fn threshold_signals(
        &self,
        rule_id: &str,
        since: DateTime<Utc>,
        stats: &ExecStats,
    ) -> Result<Vec<ThresholdSignal>, Error> {
        // The previous execution's alerts were written without a refresh: make them visible.
        let op = format!("refresh {}", self.alerts_alias);
        let r = self
            .call(
                &op,
                Method::Post,
                &requests::refresh_path(&self.alerts_alias),
                None,
                Some(stats),
            )
            .await?;
        if r.status == 404 {
            return Ok(Vec::new());
        }
        ok_or_error(&op, r)?;
        let op = format!("threshold signal history {}", self.alerts_alias);
        let resp: SearchResponse = self
            .search(
                &op,
                &requests::alerts_search_path(&self.alerts_alias),
                requests::threshold_history_body(rule_id, since),
                stats,
            )
            .await?;
        Ok(resp
            .hits
            .hits
            .iter()
            .filter_map(|h| crate::backend::threshold_signal(&h.source))
            .collect())
    }
}
