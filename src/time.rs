//! Time values in rules and config: intervals (`5m`) and Elasticsearch date math (`now-9m`,
//! `now-1h/h`, `2024-01-01T00:00:00Z||+1d`).
//!
//! Date math follows Elasticsearch: an anchor (`now` or an absolute date followed by `||`),
//! then any number of `+N<unit>`, `-N<unit>` and `/<unit>` (round down) operations, with units
//! `y M w d h H m s` (`ms` is not allowed in date math; it is in intervals).

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Timelike, Utc};

/// A bad interval or date-math expression.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    #[error(
        "invalid interval `{0}`: expected a positive number followed by s, m, h or d (e.g. `5m`)"
    )]
    Interval(String),
    #[error("invalid date math `{input}`: {reason}")]
    DateMath { input: String, reason: String },
}

/// Parses a rule interval such as `5m`, `1h`, `30s`, `1d` or `500ms`. Zero is rejected.
pub fn parse_interval(s: &str) -> Result<Duration, TimeError> {
    let err = || TimeError::Interval(s.to_string());
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?;
    let (num, unit) = t.split_at(split);
    let n: i64 = num.parse().map_err(|_| err())?;
    if n <= 0 {
        return Err(err());
    }
    let d = match unit {
        "ms" => Duration::try_milliseconds(n),
        "s" => Duration::try_seconds(n),
        "m" => Duration::try_minutes(n),
        "h" => Duration::try_hours(n),
        "d" => Duration::try_days(n),
        _ => None,
    };
    d.ok_or_else(err)
}

/// Formats a duration the way rule files write it (`5m`, `90s`, `1h`).
pub fn format_interval(d: Duration) -> String {
    let ms = d.num_milliseconds();
    if ms % 1000 != 0 {
        return format!("{ms}ms");
    }
    let s = ms / 1000;
    if s != 0 && s % 86_400 == 0 {
        format!("{}d", s / 86_400)
    } else if s != 0 && s % 3600 == 0 {
        format!("{}h", s / 3600)
    } else if s != 0 && s % 60 == 0 {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

/// A date-math unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Year,
    Month,
    Week,
    Day,
    Hour,
    Minute,
    Second,
}

/// One operation after the anchor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Add(i64, Unit),
    Round(Unit),
}

/// A parsed date-math expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateMath {
    /// `None` = `now`.
    pub anchor: Option<DateTime<Utc>>,
    pub ops: Vec<Op>,
    /// The text as written.
    pub source: String,
}

/// Parses date math (`now-6m`, `now-1h/h`, `now`, `2024-05-01T00:00:00Z||-1d`, or an absolute
/// RFC 3339 time).
pub fn parse_datemath(s: &str) -> Result<DateMath, TimeError> {
    let input = s.trim();
    let err = |reason: &str| TimeError::DateMath {
        input: s.to_string(),
        reason: reason.to_string(),
    };
    let (anchor, rest) = if let Some(rest) = input.strip_prefix("now") {
        (None, rest)
    } else if let Some(pos) = input.find("||") {
        (
            Some(parse_absolute(&input[..pos]).ok_or_else(|| err("bad date before `||`"))?),
            &input[pos + 2..],
        )
    } else {
        let t = parse_absolute(input)
            .ok_or_else(|| err("expected `now`, an RFC 3339 time, or `<time>||<math>`"))?;
        (Some(t), "")
    };
    let mut ops = Vec::new();
    let b = rest.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        i += 1;
        match c {
            b'/' => {
                let (unit, used) =
                    parse_unit(&rest[i..]).ok_or_else(|| err("expected a unit after `/`"))?;
                i += used;
                ops.push(Op::Round(unit));
            }
            b'+' | b'-' => {
                let start = i;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                let n: i64 = if start == i {
                    1
                } else {
                    rest[start..i]
                        .parse()
                        .map_err(|_| err("number too large"))?
                };
                let (unit, used) = parse_unit(&rest[i..])
                    .ok_or_else(|| err("expected a unit (y, M, w, d, h, H, m, s)"))?;
                i += used;
                ops.push(Op::Add(if c == b'-' { -n } else { n }, unit));
            }
            _ => return Err(err("expected `+`, `-` or `/`")),
        }
    }
    Ok(DateMath {
        anchor,
        ops,
        source: s.to_string(),
    })
}

fn parse_unit(s: &str) -> Option<(Unit, usize)> {
    let c = s.chars().next()?;
    let unit = match c {
        'y' => Unit::Year,
        'M' => Unit::Month,
        'w' => Unit::Week,
        'd' => Unit::Day,
        'h' | 'H' => Unit::Hour,
        'm' => Unit::Minute,
        's' => Unit::Second,
        _ => return None,
    };
    Some((unit, 1))
}

/// Parses an absolute time: RFC 3339, or a date `YYYY-MM-DD` (midnight UTC), or epoch millis.
pub fn parse_absolute(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Some(Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0)?));
    }
    if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f") {
        return Some(Utc.from_utc_datetime(&t));
    }
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return DateTime::from_timestamp_millis(s.parse().ok()?);
    }
    None
}

impl DateMath {
    /// The instant this expression denotes when `now` is `now`.
    pub fn resolve(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let mut t = self.anchor.unwrap_or(now);
        for op in &self.ops {
            t = match *op {
                Op::Add(n, unit) => add(t, n, unit),
                Op::Round(unit) => round_down(t, unit),
            };
        }
        t
    }

    /// True for plain `now`.
    pub fn is_now(&self) -> bool {
        self.anchor.is_none() && self.ops.is_empty()
    }

    /// For `now-<duration>` (no rounding, no months/years), the look-back as a duration.
    pub fn lookback(&self) -> Option<Duration> {
        if self.anchor.is_some() {
            return None;
        }
        let mut total = Duration::zero();
        for op in &self.ops {
            match *op {
                Op::Add(n, unit) => total += fixed(unit, n)?,
                Op::Round(_) => return None,
            }
        }
        Some(-total)
    }
}

fn fixed(unit: Unit, n: i64) -> Option<Duration> {
    match unit {
        Unit::Week => Duration::try_weeks(n),
        Unit::Day => Duration::try_days(n),
        Unit::Hour => Duration::try_hours(n),
        Unit::Minute => Duration::try_minutes(n),
        Unit::Second => Duration::try_seconds(n),
        Unit::Year | Unit::Month => None,
    }
}

fn add(t: DateTime<Utc>, n: i64, unit: Unit) -> DateTime<Utc> {
    match unit {
        Unit::Year | Unit::Month => {
            let months = if unit == Unit::Year {
                n.saturating_mul(12)
            } else {
                n
            };
            let m = chrono::Months::new(months.unsigned_abs().min(u32::MAX as u64) as u32);
            let r = if months >= 0 {
                t.checked_add_months(m)
            } else {
                t.checked_sub_months(m)
            };
            r.unwrap_or(t)
        }
        _ => fixed(unit, n)
            .and_then(|d| t.checked_add_signed(d))
            .unwrap_or(t),
    }
}

fn round_down(t: DateTime<Utc>, unit: Unit) -> DateTime<Utc> {
    let date = t.date_naive();
    let r = match unit {
        Unit::Year => {
            NaiveDate::from_ymd_opt(date.year(), 1, 1).and_then(|d| d.and_hms_opt(0, 0, 0))
        }
        Unit::Month => NaiveDate::from_ymd_opt(date.year(), date.month(), 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0)),
        Unit::Week => {
            let back = date.weekday().num_days_from_monday() as i64;
            (date - Duration::days(back)).and_hms_opt(0, 0, 0)
        }
        Unit::Day => date.and_hms_opt(0, 0, 0),
        Unit::Hour => date.and_hms_opt(t.hour(), 0, 0),
        Unit::Minute => date.and_hms_opt(t.hour(), t.minute(), 0),
        Unit::Second => date.and_hms_opt(t.hour(), t.minute(), t.second()),
    };
    r.map(|n| Utc.from_utc_datetime(&n)).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        parse_absolute(s).unwrap()
    }

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("5m").unwrap(), Duration::minutes(5));
        assert_eq!(parse_interval("1h").unwrap(), Duration::hours(1));
        assert_eq!(parse_interval("30s").unwrap(), Duration::seconds(30));
        assert!(parse_interval("0m").is_err());
        assert!(parse_interval("5").is_err());
        assert!(parse_interval("m").is_err());
        assert!(parse_interval("5x").is_err());
        assert_eq!(format_interval(Duration::minutes(5)), "5m");
        assert_eq!(format_interval(Duration::seconds(90)), "90s");
    }

    #[test]
    fn datemath_relative_and_rounding() {
        let now = at("2024-05-15T10:37:12Z");
        assert_eq!(parse_datemath("now").unwrap().resolve(now), now);
        assert_eq!(
            parse_datemath("now-9m").unwrap().resolve(now),
            at("2024-05-15T10:28:12Z")
        );
        assert_eq!(
            parse_datemath("now-1h/h").unwrap().resolve(now),
            at("2024-05-15T09:00:00Z")
        );
        assert_eq!(
            parse_datemath("now-10d").unwrap().resolve(now),
            at("2024-05-05T10:37:12Z")
        );
        assert_eq!(
            parse_datemath("now/d").unwrap().resolve(now),
            at("2024-05-15T00:00:00Z")
        );
        assert_eq!(
            parse_datemath("now-1M").unwrap().resolve(now),
            at("2024-04-15T10:37:12Z")
        );
        assert_eq!(
            parse_datemath("2024-01-01T00:00:00Z||+1d")
                .unwrap()
                .resolve(now),
            at("2024-01-02T00:00:00Z")
        );
        assert_eq!(
            parse_datemath("now-6m").unwrap().lookback(),
            Some(Duration::minutes(6))
        );
    }

    #[test]
    fn datemath_errors() {
        for bad in ["now-", "now-5", "now-5x", "yesterday", "now+1q", "now//d"] {
            assert!(parse_datemath(bad).is_err(), "{bad} should be rejected");
        }
    }
}
