//! `detectd explain` of an EQL rule: the one `_eql/search` request of the window.

use serde_json::Value;

use super::Console;
use crate::backend::elasticsearch::requests;
use crate::engine::{eql_spec, EqlParams, ExecRule, Window};

pub(super) fn explain_eql(
    out: &mut Console,
    exec: &ExecRule,
    eql: &EqlParams,
    rq: &Value,
    window: Window,
) {
    let q = eql_spec(exec, eql, window);
    out.blank();
    out.comment(
        "no index matching the patterns (field caps lists none): a warning, no search is sent",
    );
    out.comment(&format!(
        "eql rule: one search of the window, size = max_signals ({}); events: one alert each; sequences: one building-block alert per event and a shell alert",
        q.size
    ));
    let body = requests::eql::search_body(
        q.query,
        rq,
        requests::time_range_filter(q.time, q.from, q.to),
        q.size,
        q.event_category_field,
        q.timestamp_field,
        q.tiebreaker_field,
    );
    out.request("POST", &requests::eql::search_path(q.indices), Some(&body));
}
