//! Java `HashMap.toString()` / `ArrayList.toString()` rendering of parsed JSON, as the pipeline's
//! `ctx.json.requestParameters.toString()` produces it: no quotes, `{k=v, k2=v2}` and `[a, b]`,
//! keys in Java `HashMap` iteration order, values the pipeline's first null-removal script would
//! remove left out.
//!
//! Elasticsearch's JSON processor parses objects into `HashMap`s of default capacity 16; a map's
//! capacity doubles while its size exceeds 0.75 × capacity, and the size that counts is the size
//! when the map was parsed — before pruning removed null or empty values (removal never shrinks a
//! `HashMap`). Iteration walks buckets in order, entries of one bucket in insertion order (a resize
//! split keeps relative order).

use super::json::{Json, Obj};

/// Whether the pipeline's first `remove-nulls` script removes this value: null, `""`, `"-"`,
/// `"none"`, or a map/list left empty once its own removable children are gone.
pub fn is_removed(v: &Json) -> bool {
    match v {
        Json::Null => true,
        Json::String(s) => s.is_empty() || s == "-" || s == "none",
        Json::Object(m) => m.values().all(is_removed),
        Json::Array(a) => a.iter().all(is_removed),
        _ => false,
    }
}

/// Removes in place what [`is_removed`] says the script removes (children first).
pub fn prune(v: &mut Json) {
    match v {
        Json::Object(m) => prune_map(m),
        Json::Array(a) => {
            for x in a.iter_mut() {
                prune(x);
            }
            a.retain(|x| !removable_after_prune(x));
        }
        _ => {}
    }
}

/// Prunes the values of a map in place.
pub fn prune_map(m: &mut Obj) {
    for x in m.values_mut() {
        prune(x);
    }
    m.retain(|_, x| !removable_after_prune(x));
}

fn removable_after_prune(v: &Json) -> bool {
    match v {
        Json::Null => true,
        Json::String(s) => s.is_empty() || s == "-" || s == "none",
        Json::Object(m) => m.is_empty(),
        Json::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// Java `String.hashCode` over UTF-16 code units.
pub fn java_string_hash(s: &str) -> i32 {
    let mut h: i32 = 0;
    for u in s.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(i32::from(u));
    }
    h
}

/// Capacity of a default `HashMap` after `n` insertions.
fn capacity_for(n: usize) -> usize {
    let mut cap = 16usize;
    while n > cap / 4 * 3 {
        cap *= 2;
    }
    cap
}

fn bucket(key: &str, cap: usize) -> usize {
    let h = java_string_hash(key) as u32;
    ((h ^ (h >> 16)) as usize) & (cap - 1)
}

/// The keys of `m` that survive pruning, in Java `HashMap` iteration order for a map that was
/// filled with all of `m`'s keys (in `m`'s order) and then pruned.
pub fn java_key_order(m: &Obj) -> Vec<(&String, &Json)> {
    let cap = capacity_for(m.len());
    let mut entries: Vec<(usize, &String, &Json)> = m
        .iter()
        .filter(|(_, v)| !is_removed(v))
        .map(|(k, v)| (bucket(k, cap), k, v))
        .collect();
    // Stable: entries of one bucket keep insertion order.
    entries.sort_by_key(|e| e.0);
    entries.into_iter().map(|(_, k, v)| (k, v)).collect()
}

/// `value.toString()` in Java for the value the JSON processor built from `v`, after pruning.
pub fn java_to_string(v: &Json) -> String {
    let mut out = String::new();
    write_value(&mut out, v);
    out
}

fn write_value(out: &mut String, v: &Json) {
    match v {
        Json::Null => out.push_str("null"),
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Json::Number(n) => write_number(out, n),
        Json::String(s) => out.push_str(s),
        Json::Array(a) => {
            out.push('[');
            let mut first = true;
            for x in a.iter().filter(|x| !is_removed(x)) {
                if !first {
                    out.push_str(", ");
                }
                first = false;
                write_value(out, x);
            }
            out.push(']');
        }
        Json::Object(m) => {
            out.push('{');
            let mut first = true;
            for (k, x) in java_key_order(m) {
                if !first {
                    out.push_str(", ");
                }
                first = false;
                out.push_str(k);
                out.push('=');
                write_value(out, x);
            }
            out.push('}');
        }
    }
}

fn write_number(out: &mut String, n: &serde_json::Number) {
    if n.is_i64() || n.is_u64() {
        out.push_str(&n.to_string());
    } else if let Some(f) = n.as_f64() {
        out.push_str(&java_double_to_string(f));
    } else {
        out.push_str(&n.to_string());
    }
}

/// Java `Double.toString` (JDK 19+ shortest representation): plain decimal for
/// 10^-3 ≤ |x| < 10^7 (`100.0`, `0.001`), otherwise `d.dddE±n` (`1.0E10`, `1.0E-4`).
pub fn java_double_to_string(x: f64) -> String {
    if x.is_nan() {
        return "NaN".to_string();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity" } else { "-Infinity" }.to_string();
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0.0" } else { "0.0" }.to_string();
    }
    // Shortest round-trip digits and decimal exponent from Rust's formatter.
    let sci = format!("{:e}", x.abs());
    let (mant, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
    let sign = if x < 0.0 { "-" } else { "" };
    let abs = x.abs();
    if (1e-3..1e7).contains(&abs) {
        let mut s = String::from(sign);
        if exp >= 0 {
            let int_len = (exp + 1) as usize;
            if digits.len() <= int_len {
                s.push_str(&digits);
                s.extend(std::iter::repeat_n('0', int_len - digits.len()));
                s.push_str(".0");
            } else {
                s.push_str(&digits[..int_len]);
                s.push('.');
                s.push_str(&digits[int_len..]);
            }
        } else {
            s.push_str("0.");
            s.extend(std::iter::repeat_n('0', (-exp - 1) as usize));
            s.push_str(&digits);
        }
        s
    } else {
        let (first, rest) = digits.split_at(1);
        let rest = if rest.is_empty() { "0" } else { rest };
        format!("{sign}{first}.{rest}E{exp}")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    use crate::ecs::json::json_lit as j;

    #[test]
    fn doubles_render_like_java() {
        assert_eq!(java_double_to_string(1.0), "1.0");
        assert_eq!(java_double_to_string(1e10), "1.0E10");
        assert_eq!(java_double_to_string(1.5e-4), "1.5E-4");
        assert_eq!(java_double_to_string(0.001), "0.001");
        assert_eq!(java_double_to_string(1234567.5), "1234567.5");
        assert_eq!(java_double_to_string(12345678.0), "1.2345678E7");
        assert_eq!(java_double_to_string(-2.25), "-2.25");
        assert_eq!(java_double_to_string(100.0), "100.0");
    }

    #[test]
    fn string_hash_matches_java() {
        // "hello".hashCode() == 99162322 in Java.
        assert_eq!(java_string_hash("hello"), 99_162_322);
        assert_eq!(java_string_hash(""), 0);
    }

    #[test]
    fn pruned_values_are_left_out_but_still_count_for_capacity() {
        let v = j!({"a": null, "b": "-", "c": {"d": "none"}, "e": [""], "f": 1.0, "g": [1, "x"]});
        assert_eq!(java_to_string(&v), "{f=1.0, g=[1, x]}");
    }
}
