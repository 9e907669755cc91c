//! EQL rules, as Kibana's EQL executor (detection_engine/rule_types/eql/eql.ts, Kibana 8.15):
//! one `_eql/search` of the window with `size = max_signals`; every event of a single-event
//! query is one alert (the query rule's alert and id), every sequence is its building-block
//! alerts plus the shell alert (`crate::alerts::build_sequence_alerts`), written together so a
//! sequence is never split by the cap. The cap warning is Kibana's: the answer's
//! `hits.total.value` reached `max_signals`. Alerts that already exist (an overlapping window)
//! are duplicates, as for every type. Only the Elasticsearch backend evaluates EQL; the others
//! answer `Error::Unsupported` and the rule is never scheduled there (`Support`).

use crate::alerts::{build_sequence_alerts, is_alert, SequenceEvent};
use crate::backend::{AlertDoc, Backend, EqlSpec, Error, ExecStats};

use super::{ExecRule, Sink, Window};

/// The parameters of an EQL rule (`type = "eql"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EqlParams {
    /// The EQL query as written.
    pub query: String,
    /// `event_category_override` → `event_category_field`.
    pub event_category_field: Option<String>,
    /// `timestamp_field` (EQL's ordering field; the window's range stays on the rule's time
    /// field(s), `timestamp_override` included).
    pub timestamp_field: Option<String>,
    /// `tiebreaker_field`.
    pub tiebreaker_field: Option<String>,
}

/// The search of `rule`'s window (what the backend sends, what `explain` prints).
pub fn eql_spec<'a>(rule: &'a ExecRule, eql: &'a EqlParams, window: Window) -> EqlSpec<'a> {
    EqlSpec {
        indices: &rule.indices,
        query: &eql.query,
        filters: &rule.filters,
        time: &rule.time,
        from: window.from,
        to: window.to,
        size: rule.max_signals,
        event_category_field: eql.event_category_field.as_deref(),
        timestamp_field: eql.timestamp_field.as_deref(),
        tiebreaker_field: eql.tiebreaker_field.as_deref(),
    }
}

pub(super) async fn run_eql(
    rule: &ExecRule,
    eql: &EqlParams,
    window: Window,
    backend: &dyn Backend,
    stats: &ExecStats,
    sink: &mut Sink<'_>,
    hits: &mut u64,
) -> Result<(), Error> {
    let result = backend
        .eql_search(&eql_spec(rule, eql, window), stats)
        .await?;
    *hits += result.events.len() as u64;
    *hits += result
        .sequences
        .iter()
        .map(|s| s.events.len() as u64)
        .sum::<u64>();
    let events = super::query_alerts(&result.events, &rule.rule_id, sink.ctx);
    sink.write(&events, false).await?;
    for seq in &result.sequences {
        // Kibana drops a sequence built on this rule's own alerts; detectd never alerts on an
        // alert.
        if seq.events.is_empty() || seq.events.iter().any(|h| is_alert(&h.source)) {
            continue;
        }
        let parts: Vec<SequenceEvent<'_>> = seq
            .events
            .iter()
            .map(|h| SequenceEvent {
                index: &h.index,
                id: &h.id,
                source: &h.source,
            })
            .collect();
        let group: Vec<AlertDoc> = build_sequence_alerts(sink.ctx, &parts)
            .into_iter()
            .map(|(id, doc)| AlertDoc { id, doc })
            .collect();
        let out = sink.backend.write_alerts(&group, sink.stats).await?;
        sink.created.extend(out.created);
        sink.duplicates.extend(out.duplicates);
        sink.failed.extend(out.failed);
    }
    if rule.max_signals > 0 && result.total >= rule.max_signals as u64 {
        sink.capped = true;
    }
    tracing::debug!(
        rule = %rule.rule_id,
        events = result.events.len(),
        sequences = result.sequences.len(),
        total = result.total,
        "eql search answered"
    );
    Ok(())
}
