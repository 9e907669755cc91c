//! Building what the scheduler needs from the texts of rule files, config overrides and the
//! command line: [`ScheduledRule`] from interval / cron / date-math strings, and the clock of
//! `detectd run [--start T [--end T]]`.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::clock::{Clock, RealClock, SimClock};
use super::plan::ScheduledRule;
use super::runner::SchedulerError;
use crate::time::{parse_datemath, parse_interval};

/// Parses a cron expression: 5 fields as in crontab (minute first), or the `cron` crate's 6–7
/// fields (seconds first, optional year).
pub fn parse_cron(expr: &str) -> Result<cron::Schedule, String> {
    let fields = expr.split_whitespace().count();
    let full = if fields == 5 {
        format!("0 {}", expr.trim())
    } else {
        expr.trim().to_string()
    };
    full.parse::<cron::Schedule>()
        .map_err(|e| format!("invalid cron `{expr}`: {e}"))
}

impl ScheduledRule {
    /// A rule from the texts of its file and overrides (`interval` `5m`, optional `cron`,
    /// `from`/`to` date math).
    pub fn from_texts(
        rule_id: &str,
        name: &str,
        interval: &str,
        cron: Option<&str>,
        from: &str,
        to: &str,
        enabled: bool,
    ) -> Result<ScheduledRule, SchedulerError> {
        let invalid = |reason: String| SchedulerError::InvalidRule {
            rule_id: rule_id.to_string(),
            reason,
        };
        Ok(ScheduledRule {
            rule_id: rule_id.to_string(),
            name: name.to_string(),
            interval: parse_interval(interval).map_err(|e| invalid(e.to_string()))?,
            cron: cron.map(parse_cron).transpose().map_err(invalid)?,
            from: parse_datemath(from).map_err(|e| invalid(e.to_string()))?,
            to: parse_datemath(to).map_err(|e| invalid(e.to_string()))?,
            enabled,
        })
    }
}

/// The clock of `detectd run` and where a replay ends (`None`: run until shutdown).
pub struct RunClock {
    pub clock: Arc<dyn Clock>,
    pub end: Option<DateTime<Utc>>,
}

/// The clock and replay end for `detectd run`: real time without `start`; otherwise a
/// simulated clock from `start` (RFC 3339 or date math, resolved at `now`) that stops at `end`,
/// or without `end` turns real once it has caught up with the present.
pub fn clock_for_run(
    start: Option<&str>,
    end: Option<&str>,
    now: DateTime<Utc>,
) -> Result<RunClock, SchedulerError> {
    let resolve = |arg: &'static str, s: &str| {
        parse_datemath(s)
            .map(|d| d.resolve(now))
            .map_err(|source| SchedulerError::InvalidTime { arg, source })
    };
    let Some(start) = start else {
        return Ok(RunClock {
            clock: Arc::new(RealClock),
            end: None,
        });
    };
    let start = resolve("--start", start)?;
    match end {
        Some(end) => {
            let end = resolve("--end", end)?;
            if end <= start {
                return Err(SchedulerError::EndBeforeStart { start, end });
            }
            Ok(RunClock {
                clock: Arc::new(SimClock::new(start)),
                end: Some(end),
            })
        }
        None => Ok(RunClock {
            clock: Arc::new(SimClock::catching_up(start)),
            end: None,
        }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::time::parse_absolute;

    #[test]
    fn rules_from_texts_and_cron_with_five_fields() {
        let r =
            ScheduledRule::from_texts("id", "n", "5m", Some("*/10 * * * *"), "now-6m", "now", true)
                .unwrap();
        assert_eq!(r.interval, chrono::Duration::minutes(5));
        let t = parse_absolute("2024-05-01T10:01:00Z").unwrap();
        assert_eq!(
            super::super::plan::next_due(&r, t),
            parse_absolute("2024-05-01T10:10:00Z")
        );
        let bad = ScheduledRule::from_texts("id", "n", "5x", None, "now-6m", "now", true);
        assert!(bad.unwrap_err().to_string().contains("id"));
        assert!(
            ScheduledRule::from_texts("id", "n", "5m", Some("nope"), "now", "now", true).is_err()
        );
    }

    #[test]
    fn run_clock_from_arguments() {
        let now = parse_absolute("2024-05-01T10:00:00Z").unwrap();
        let RunClock { clock: c, end } = clock_for_run(Some("now-1h"), Some("now"), now).unwrap();
        assert_eq!(c.now(), parse_absolute("2024-05-01T09:00:00Z").unwrap());
        assert_eq!(end, Some(now));
        assert!(c.is_simulated());
        let RunClock { clock: c, end } = clock_for_run(None, None, now).unwrap();
        assert!(!c.is_simulated());
        assert_eq!(end, None);
        assert!(clock_for_run(Some("now"), Some("now-1h"), now).is_err());
        assert!(clock_for_run(Some("yesterday"), None, now).is_err());
    }
}
