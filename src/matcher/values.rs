//! Typed values as Elasticsearch parses them: dates (`strict_date_optional_time||epoch_millis`,
//! with the range query's rounding of missing components and date math), IP addresses and CIDR
//! blocks, numbers and booleans (with the coercion ES applies to JSON strings).

use std::net::IpAddr;

use chrono::{DateTime, NaiveDate, Utc};

use crate::time::{parse_datemath, DateMath, Op};

/// Parses a date as the default date format does (`strict_date_optional_time||epoch_millis`) and
/// returns epoch milliseconds. With `round_up` (upper bounds `lte`/`gt`), missing time components
/// are filled with their maximum (`2024-01-01` → `2024-01-01T23:59:59.999Z`), as ES's range query
/// does; missing month/day stay `01` (ES documents this for `gt`/`lte`).
pub fn parse_date(s: &str, round_up: bool) -> Option<i64> {
    let b = s.as_bytes();
    let digits = |from: usize, n: usize| -> Option<u32> {
        let part = b.get(from..from + n)?;
        if part.iter().all(u8::is_ascii_digit) {
            std::str::from_utf8(part).ok()?.parse().ok()
        } else {
            None
        }
    };
    // epoch_millis: a number that is not a 4-digit year (strict_date_optional_time is tried first).
    if !s.is_empty()
        && b.len() != 4
        && s.trim_start_matches('-')
            .bytes()
            .all(|c| c.is_ascii_digit())
    {
        return s.parse().ok();
    }
    let year = digits(0, 4)? as i32;
    let mut i = 4;
    let mut month = None;
    let mut day = None;
    if b.get(i) == Some(&b'-') {
        month = Some(digits(i + 1, 2)?);
        i += 3;
        if b.get(i) == Some(&b'-') {
            day = Some(digits(i + 1, 2)?);
            i += 3;
        }
    }
    let (mut hour, mut minute, mut second, mut milli) = (None, None, None, None);
    if day.is_some() && b.get(i) == Some(&b'T') {
        hour = Some(digits(i + 1, 2)?);
        i += 3;
        if b.get(i) == Some(&b':') {
            minute = Some(digits(i + 1, 2)?);
            i += 3;
            if b.get(i) == Some(&b':') {
                second = Some(digits(i + 1, 2)?);
                i += 3;
                if matches!(b.get(i), Some(b'.') | Some(b',')) {
                    let start = i + 1;
                    let mut j = start;
                    while b.get(j).is_some_and(u8::is_ascii_digit) {
                        j += 1;
                    }
                    if j == start || j - start > 9 {
                        return None;
                    }
                    let frac = s.get(start..j)?;
                    let mut ms = 0u32;
                    for (k, d) in frac.bytes().take(3).enumerate() {
                        ms += u32::from(d - b'0') * 10u32.pow(2 - k as u32);
                    }
                    milli = Some(ms);
                    i = j;
                }
            }
        }
    }
    // Time zone.
    let mut offset_secs: i64 = 0;
    match b.get(i) {
        None => {}
        Some(b'Z') if i + 1 == b.len() && hour.is_some() => {}
        Some(&sign @ (b'+' | b'-')) if hour.is_some() => {
            let h = digits(i + 1, 2)?;
            let rest = i + 3;
            let m = match b.get(rest) {
                None => 0,
                Some(b':') if rest + 3 == b.len() => digits(rest + 1, 2)?,
                Some(_) if rest + 2 == b.len() => digits(rest, 2)?,
                _ => return None,
            };
            if rest + 3 != b.len() && rest + 2 != b.len() && rest != b.len() {
                return None;
            }
            let secs = i64::from(h * 3600 + m * 60);
            offset_secs = if sign == b'+' { secs } else { -secs };
        }
        _ => return None,
    }
    let fill = |v: Option<u32>, max: u32| v.unwrap_or(if round_up { max } else { 0 });
    let date = NaiveDate::from_ymd_opt(year, month.unwrap_or(1), day.unwrap_or(1))?;
    let t = date.and_hms_milli_opt(
        fill(hour, 23),
        fill(minute, 59),
        fill(second, 59),
        fill(milli, 999),
    )?;
    Some(t.and_utc().timestamp_millis() - offset_secs * 1000)
}

/// Resolves a range bound: a date, `now` date math, or `<date>||<math>`. Rounding (`/d`) rounds
/// down, or up to the unit's last millisecond when `round_up` (ES: `gt` and `lte` round up).
pub fn parse_date_bound(s: &str, round_up: bool, now: DateTime<Utc>) -> Option<i64> {
    let s = s.trim();
    if s.starts_with("now") || s.contains("||") {
        let (anchor, math) = match s.strip_prefix("now") {
            Some(rest) => (None, rest),
            None => {
                let pos = s.find("||")?;
                (
                    Some(parse_date(s.get(..pos)?, round_up)?),
                    s.get(pos + 2..)?,
                )
            }
        };
        let parsed = parse_datemath(&format!("now{math}")).ok()?;
        let anchor_time = match anchor {
            Some(ms) => DateTime::from_timestamp_millis(ms)?,
            None => now,
        };
        let mut ops = parsed.ops.clone();
        let rounds_up = round_up && matches!(ops.last(), Some(Op::Round(_)));
        if let (true, Some(Op::Round(unit))) = (rounds_up, ops.last().copied()) {
            ops.push(Op::Add(1, unit));
        }
        let dm = DateMath {
            anchor: Some(anchor_time),
            ops,
            source: s.to_string(),
        };
        let t = dm.resolve(now).timestamp_millis();
        return Some(if rounds_up { t - 1 } else { t });
    }
    parse_date(s, round_up)
}

/// A date value in a document: a date string or epoch milliseconds.
pub fn doc_date_str(s: &str) -> Option<i64> {
    parse_date(s, false)
}

/// An address as the 128-bit number ES indexes (IPv4 mapped into IPv6).
pub fn ip_u128(s: &str) -> Option<u128> {
    let ip: IpAddr = s.trim().parse().ok()?;
    Some(match ip {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6),
    })
}

/// An IP address or CIDR block as an inclusive range of 128-bit addresses.
pub fn ip_range(s: &str) -> Option<(u128, u128)> {
    match s.split_once('/') {
        None => ip_u128(s).map(|a| (a, a)),
        Some((addr, bits)) => {
            let ip: IpAddr = addr.trim().parse().ok()?;
            let bits: u32 = bits.trim().parse().ok()?;
            let (base, prefix) = match ip {
                IpAddr::V4(v4) => {
                    if bits > 32 {
                        return None;
                    }
                    (u128::from(v4.to_ipv6_mapped()), bits + 96)
                }
                IpAddr::V6(v6) => {
                    if bits > 128 {
                        return None;
                    }
                    (u128::from(v6), bits)
                }
            };
            let host_mask = if prefix == 0 {
                u128::MAX
            } else {
                (1u128 << (128 - prefix)) - 1
            };
            let host_mask = if prefix == 128 { 0 } else { host_mask };
            Some((base & !host_mask, base | host_mask))
        }
    }
}

/// A boolean as ES accepts it in a document or query (`true`/`false`, and `""` as false).
pub fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "true" => Some(true),
        "false" | "" => Some(false),
        _ => None,
    }
}

/// A number as ES coerces a string for a numeric field.
pub fn parse_number(s: &str) -> Option<f64> {
    let t = s.trim();
    if t.is_empty() {
        return None;
    }
    t.parse::<f64>().ok().filter(|f| f.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.timestamp_millis())
            .unwrap_or(i64::MIN)
    }

    #[test]
    fn dates_round_missing_components() {
        assert_eq!(
            parse_date("2024-01-01", false),
            Some(ms("2024-01-01T00:00:00Z"))
        );
        assert_eq!(
            parse_date("2024-01-01", true),
            Some(ms("2024-01-01T23:59:59.999Z"))
        );
        assert_eq!(
            parse_date("2024-01-01T10", true),
            Some(ms("2024-01-01T10:59:59.999Z"))
        );
        assert_eq!(
            parse_date("2024-01-01T10:00:00.5Z", false),
            Some(ms("2024-01-01T10:00:00.500Z"))
        );
        assert_eq!(
            parse_date("2024-01-01T10:00:00+02:00", false),
            Some(ms("2024-01-01T08:00:00Z"))
        );
        assert_eq!(
            parse_date("1704067200000", false),
            Some(ms("2024-01-01T00:00:00Z"))
        );
        assert_eq!(parse_date("2024", false), Some(ms("2024-01-01T00:00:00Z")));
        assert_eq!(parse_date("2024/01/01", false), None);
        assert_eq!(parse_date("yesterday", false), None);
    }

    #[test]
    fn date_math_bounds() {
        let now = DateTime::parse_from_rfc3339("2024-05-10T12:34:56Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default();
        assert_eq!(
            parse_date_bound("now-1d/d", false, now),
            Some(ms("2024-05-09T00:00:00Z"))
        );
        assert_eq!(
            parse_date_bound("now-1d/d", true, now),
            Some(ms("2024-05-09T23:59:59.999Z"))
        );
        assert_eq!(
            parse_date_bound("2024-01-01||+1M", false, now),
            Some(ms("2024-02-01T00:00:00Z"))
        );
    }

    #[test]
    fn cidr_ranges() {
        let (lo, hi) = ip_range("10.0.0.0/8").unwrap_or((1, 0));
        assert!(lo <= ip_u128("10.1.2.3").unwrap_or(0) && ip_u128("10.1.2.3").unwrap_or(0) <= hi);
        assert!(ip_u128("11.0.0.0").unwrap_or(0) > hi);
        assert_eq!(ip_u128("::ffff:1.2.3.4"), ip_u128("1.2.3.4"));
        assert!(ip_range("1.2.3.4/33").is_none());
        assert_eq!(
            ip_range("0.0.0.0/0").map(|r| r.1),
            ip_u128("255.255.255.255")
        );
    }
}
