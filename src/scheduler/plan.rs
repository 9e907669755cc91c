//! Pure scheduling arithmetic: when a rule is due (interval grid with a per-rule spread
//! offset, or cron), and which windows one execution covers given the rule's persisted
//! `covered_until` (normal window, backfill windows after downtime, gap beyond `max_backfill`).
//!
//! Nothing here does I/O or reads a clock, so every rule of §2 of the semantics is tested
//! directly on instants.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::backend::GapRange;
use crate::time::DateMath;

/// A rule as the scheduler sees it (built by the coordinator from `Rule` + config overrides).
#[derive(Debug, Clone)]
pub struct ScheduledRule {
    pub rule_id: String,
    pub name: String,
    /// Time between executions (also the schedule when `cron` is `None`).
    pub interval: Duration,
    /// A cron schedule (seconds field first, `cron` crate syntax); replaces `interval` for timing.
    pub cron: Option<cron::Schedule>,
    /// Window start, date math resolved at the execution's actual start time.
    pub from: DateMath,
    /// Window end, date math resolved at the execution's actual start time.
    pub to: DateMath,
    pub enabled: bool,
}

impl ScheduledRule {
    /// True when two definitions time their executions identically.
    pub fn same_schedule(&self, other: &ScheduledRule) -> bool {
        self.interval == other.interval
            && self.cron.as_ref().map(|c| c.to_string())
                == other.cron.as_ref().map(|c| c.to_string())
    }
}

/// An inclusive time range queried by one execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    #[serde(rename = "gte")]
    pub from: DateTime<Utc>,
    #[serde(rename = "lte")]
    pub to: DateTime<Utc>,
}

/// Why a window is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WindowKind {
    /// The rule's normal window at this start time.
    Scheduled,
    /// A window catching up on time left uncovered by downtime or failures.
    Backfill,
}

/// The windows one execution runs, oldest first, and the gap it gives up on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub windows: Vec<(WindowKind, Window)>,
    /// Uncovered time older than `max_backfill`: recorded, never queried.
    pub gap: Option<GapRange>,
}

/// A stable 64-bit hash (FNV-1a then a splitmix64 finalizer): the same on every platform and
/// Rust version, unlike `DefaultHasher`.
pub fn stable_hash(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The rule's offset inside its interval (milliseconds precision): rules sharing an interval
/// start at different instants instead of all at once. Deterministic per `rule_id`.
pub fn spread_offset(rule_id: &str, interval: Duration) -> Duration {
    let ms = interval.num_milliseconds();
    if ms <= 1 {
        return Duration::zero();
    }
    Duration::milliseconds((stable_hash(rule_id) % ms as u64) as i64)
}

/// The first instant at or after `t` when `rule` is due, `None` when it never is again.
///
/// Interval rules run on the grid `epoch + offset + k × interval` (so a restart or a replay
/// keeps the same instants); cron rules at their cron instants.
pub fn next_due(rule: &ScheduledRule, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if let Some(cron) = &rule.cron {
        let probe = t - Duration::seconds(1);
        return cron.after(&probe).find(|d| *d >= t);
    }
    let interval = rule.interval.num_milliseconds();
    if interval <= 0 {
        return None;
    }
    let offset = spread_offset(&rule.rule_id, rule.interval).num_milliseconds();
    let since = t.timestamp_millis() - offset;
    let k = since.div_euclid(interval) + i64::from(since.rem_euclid(interval) != 0);
    DateTime::from_timestamp_millis(k.checked_mul(interval)?.checked_add(offset)?)
}

/// The first instant strictly after `t` when `rule` is due.
pub fn next_due_after(rule: &ScheduledRule, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    next_due(rule, t + Duration::milliseconds(1))
}

/// The rule's normal window for an execution starting at `t`.
pub fn normal_window(rule: &ScheduledRule, t: DateTime<Utc>) -> Window {
    Window {
        from: rule.from.resolve(t),
        to: rule.to.resolve(t),
    }
}

/// The windows an execution starting at `t` runs.
///
/// - No `covered_until` (first run ever), or it reaches the normal window: the normal window.
/// - Otherwise the uncovered time `[covered_until, from]` is split into contiguous windows of
///   the rule's look-back length (`to − from`), oldest first, then the normal window, which
///   starts earlier by the remainder shorter than one look-back (so it is at most twice as
///   long): nothing is left unqueried, nothing is queried twice beyond the shared boundary
///   instants, and start-time jitter never costs an extra tiny query.
/// - Backfill reaches back at most `max_backfill` before `from`; older uncovered time is the gap.
pub fn plan(
    rule: &ScheduledRule,
    t: DateTime<Utc>,
    covered_until: Option<DateTime<Utc>>,
    max_backfill: Duration,
) -> Plan {
    let normal = normal_window(rule, t);
    let mut out = Plan {
        windows: Vec::new(),
        gap: None,
    };
    let lookback = normal.to - normal.from;
    if let Some(covered) = covered_until {
        if covered < normal.from && lookback > Duration::zero() {
            let limit = normal.from - max_backfill.max(Duration::zero());
            let mut start = covered;
            if covered < limit {
                out.gap = Some(GapRange {
                    gte: covered,
                    lte: limit,
                });
                start = limit;
            }
            while normal.from - start >= lookback {
                let end = start + lookback;
                out.windows.push((
                    WindowKind::Backfill,
                    Window {
                        from: start,
                        to: end,
                    },
                ));
                start = end;
            }
            // A remainder shorter than one window (start-time jitter, a short failure) joins
            // the normal window instead of costing a query of its own.
            out.windows.push((
                WindowKind::Scheduled,
                Window {
                    from: start,
                    to: normal.to,
                },
            ));
            return out;
        }
    }
    out.windows.push((WindowKind::Scheduled, normal));
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::time::{parse_absolute, parse_datemath};
    use std::str::FromStr;

    fn at(s: &str) -> DateTime<Utc> {
        parse_absolute(s).unwrap()
    }

    fn rule(id: &str, interval_min: i64, from: &str) -> ScheduledRule {
        ScheduledRule {
            rule_id: id.to_string(),
            name: id.to_string(),
            interval: Duration::minutes(interval_min),
            cron: None,
            from: parse_datemath(from).unwrap(),
            to: parse_datemath("now").unwrap(),
            enabled: true,
        }
    }

    #[test]
    fn first_run_is_the_normal_window_only() {
        let r = rule("a", 5, "now-6m");
        let t = at("2024-05-01T10:00:00Z");
        let p = plan(&r, t, None, Duration::hours(24));
        assert_eq!(
            p.windows,
            vec![(
                WindowKind::Scheduled,
                Window {
                    from: at("2024-05-01T09:54:00Z"),
                    to: t
                }
            )]
        );
        assert_eq!(p.gap, None);
    }

    #[test]
    fn overlap_with_previous_window_needs_no_backfill() {
        let r = rule("a", 5, "now-6m");
        let t = at("2024-05-01T10:05:00Z");
        let p = plan(&r, t, Some(at("2024-05-01T10:00:00Z")), Duration::hours(24));
        assert_eq!(p.windows.len(), 1);
    }

    #[test]
    fn downtime_is_backfilled_contiguously_oldest_first() {
        let r = rule("a", 5, "now-6m");
        let covered = at("2024-05-01T09:00:00Z");
        let t = at("2024-05-01T10:00:00Z");
        let p = plan(&r, t, Some(covered), Duration::hours(24));
        assert_eq!(p.gap, None);
        let mut expect_from = covered;
        for (kind, w) in &p.windows[..p.windows.len() - 1] {
            assert_eq!(*kind, WindowKind::Backfill);
            assert_eq!(w.from, expect_from);
            assert!(w.to - w.from <= Duration::minutes(6));
            expect_from = w.to;
        }
        let (kind, last) = p.windows.last().unwrap();
        assert_eq!(*kind, WindowKind::Scheduled);
        assert_eq!(last.from, expect_from);
        assert_eq!(last.to, t);
        // 54 minutes of backfill in 6-minute windows, then the normal window.
        assert_eq!(p.windows.len(), 10);
    }

    #[test]
    fn downtime_beyond_max_backfill_is_a_gap() {
        let r = rule("a", 5, "now-6m");
        let covered = at("2024-05-01T00:00:00Z");
        let t = at("2024-05-01T10:00:00Z");
        let p = plan(&r, t, Some(covered), Duration::hours(1));
        let gap = p.gap.unwrap();
        assert_eq!(gap.gte, covered);
        assert_eq!(gap.lte, at("2024-05-01T08:54:00Z"));
        assert_eq!(p.windows[0].1.from, gap.lte);
        assert_eq!(p.windows.len(), 11);
    }

    #[test]
    fn an_uncovered_remainder_shorter_than_a_window_extends_the_normal_window() {
        // 1m look-back, 1m interval, started 3ms later than last time: no 3ms query.
        let r = rule("a", 1, "now-1m");
        let covered = at("2024-05-01T10:00:00.002Z");
        let t = at("2024-05-01T10:01:00.005Z");
        let p = plan(&r, t, Some(covered), Duration::hours(24));
        assert_eq!(
            p.windows,
            vec![(
                WindowKind::Scheduled,
                Window {
                    from: covered,
                    to: t
                }
            )]
        );
        // 2m30s uncovered before a 1m window: two backfill windows, then 1m30s normal.
        let covered = at("2024-05-01T09:57:30Z");
        let t = at("2024-05-01T10:01:00Z");
        let p = plan(&r, t, Some(covered), Duration::hours(24));
        let w: Vec<_> = p.windows.iter().map(|(_, w)| (w.from, w.to)).collect();
        assert_eq!(
            w,
            vec![
                (covered, at("2024-05-01T09:58:30Z")),
                (at("2024-05-01T09:58:30Z"), at("2024-05-01T09:59:30Z")),
                (at("2024-05-01T09:59:30Z"), t),
            ]
        );
    }

    #[test]
    fn interval_grid_is_aligned_and_spread() {
        let r = rule("rule-1", 5, "now-6m");
        let off = spread_offset("rule-1", r.interval);
        assert!(off >= Duration::zero() && off < r.interval);
        let t = at("2024-05-01T10:00:00Z");
        let d1 = next_due(&r, t).unwrap();
        assert!(d1 >= t && d1 - t < r.interval);
        assert_eq!(next_due(&r, d1), Some(d1));
        assert_eq!(next_due_after(&r, d1), Some(d1 + r.interval));
        assert_eq!(
            (d1.timestamp_millis() - off.num_milliseconds()) % 300_000,
            0
        );
    }

    #[test]
    fn spread_offsets_are_deterministic_and_distinct() {
        let interval = Duration::minutes(5);
        assert_eq!(
            spread_offset("abc", interval),
            spread_offset("abc", interval)
        );
        let offsets: std::collections::BTreeSet<i64> = (0..1000)
            .map(|i| spread_offset(&format!("rule-{i}"), interval).num_milliseconds())
            .collect();
        assert!(
            offsets.len() >= 995,
            "only {} distinct offsets",
            offsets.len()
        );
        // No second of the 5-minute interval hosts more than a handful of the 1,000 starts.
        let mut per_second = std::collections::BTreeMap::<i64, usize>::new();
        for o in &offsets {
            *per_second.entry(o / 1000).or_default() += 1;
        }
        assert!(per_second.values().all(|n| *n <= 12), "{per_second:?}");
        assert!(per_second.len() > 250);
    }

    #[test]
    fn cron_rules_run_at_cron_instants() {
        let mut r = rule("c", 60, "now-1h");
        r.cron = Some(cron::Schedule::from_str("0 15 * * * *").unwrap());
        let t = at("2024-05-01T10:20:00Z");
        assert_eq!(next_due(&r, t), Some(at("2024-05-01T11:15:00Z")));
        assert_eq!(
            next_due(&r, at("2024-05-01T11:15:00Z")),
            Some(at("2024-05-01T11:15:00Z"))
        );
        assert_eq!(
            next_due_after(&r, at("2024-05-01T11:15:00Z")),
            Some(at("2024-05-01T12:15:00Z"))
        );
    }
}
