//! The parsed CloudTrail record: JSON whose objects are vectors of entries in document order.
//!
//! CloudTrail objects are small (a record has about twenty top-level keys, its nested objects
//! fewer), and the pipeline looks each key up once or twice and then moves it. A linear search
//! over a vector beats hashing every key with SipHash, which `serde_json::Map` does (it is an
//! `IndexMap` because the crate keeps key order), and parsing into it allocates less. Duplicate
//! keys keep the last value at the first position, as `serde_json` and Elasticsearch's JSON
//! processor do.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::{Number, Value};

/// Key equality with the cheap checks first: most keys compared differ in length or first byte,
/// and a `memcmp` call costs more than the comparison for keys this short.
#[inline]
pub(crate) fn key_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.as_bytes().first() == b.as_bytes().first() && a == b
}

/// The segments of a dotted path, by a plain byte scan (the paths are short; `str::split`
/// costs more than the walk it drives).
pub(crate) fn segments(path: &str) -> Segments<'_> {
    Segments(Some(path))
}

pub(crate) struct Segments<'a>(Option<&'a str>);

impl<'a> Iterator for Segments<'a> {
    type Item = &'a str;

    #[inline]
    fn next(&mut self) -> Option<&'a str> {
        let s = self.0?;
        match s.bytes().position(|b| b == b'.') {
            Some(i) => {
                self.0 = Some(&s[i + 1..]);
                Some(&s[..i])
            }
            None => {
                self.0 = None;
                Some(s)
            }
        }
    }
}

/// `(parents, last)` of a dotted path; `None` when it has one segment.
#[inline]
pub(crate) fn split_last(path: &str) -> Option<(&str, &str)> {
    let i = path.bytes().rposition(|b| b == b'.')?;
    Some((&path[..i], &path[i + 1..]))
}

/// A JSON value (same variants as `serde_json::Value`).
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Json {
    #[default]
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Array(Vec<Json>),
    Object(Obj),
}

/// A JSON object: entries in document order.
#[derive(Debug, Clone, Default)]
pub struct Obj(Vec<(String, Json)>);

/// Above this many entries, duplicate keys are found with a hash set while parsing.
const LINEAR_DUPLICATE_CHECK: usize = 32;

impl Obj {
    pub fn new() -> Obj {
        Obj(Vec::new())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn get(&self, key: &str) -> Option<&Json> {
        self.0.iter().find(|(k, _)| key_eq(k, key)).map(|(_, v)| v)
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Json> {
        self.0
            .iter_mut()
            .find(|(k, _)| key_eq(k, key))
            .map(|(_, v)| v)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Sets a key (in place when present, else at the end); returns the old value.
    pub fn insert(&mut self, key: String, v: Json) -> Option<Json> {
        match self.get_mut(&key) {
            Some(slot) => Some(std::mem::replace(slot, v)),
            None => {
                self.0.push((key, v));
                None
            }
        }
    }

    /// Removes a key, keeping the order of the others.
    pub fn remove(&mut self, key: &str) -> Option<Json> {
        let i = self.0.iter().position(|(k, _)| key_eq(k, key))?;
        Some(self.0.remove(i).1)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &Json)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    pub fn values(&self) -> impl Iterator<Item = &Json> {
        self.0.iter().map(|(_, v)| v)
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut Json> {
        self.0.iter_mut().map(|(_, v)| v)
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&String, &mut Json) -> bool) {
        self.0.retain_mut(|(k, v)| keep(k, v));
    }
}

/// Objects are equal when they hold the same keys with equal values, whatever the order (as
/// `serde_json::Map`).
impl PartialEq for Obj {
    fn eq(&self, other: &Obj) -> bool {
        self.len() == other.len() && self.iter().all(|(k, v)| other.get(k) == Some(v))
    }
}

impl FromIterator<(String, Json)> for Obj {
    fn from_iter<I: IntoIterator<Item = (String, Json)>>(iter: I) -> Obj {
        let mut o = Obj::new();
        for (k, v) in iter {
            o.insert(k, v);
        }
        o
    }
}

impl Json {
    /// The member of an object.
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(m) => m.get(key),
            _ => None,
        }
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Json> {
        match self {
            Json::Object(m) => m.get_mut(key),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_object(&self) -> Option<&Obj> {
        match self {
            Json::Object(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_object_mut(&mut self) -> Option<&mut Obj> {
        match self {
            Json::Object(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&Vec<Json>> {
        match self {
            Json::Array(a) => Some(a),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Json::Null)
    }

    pub fn is_object(&self) -> bool {
        matches!(self, Json::Object(_))
    }

    pub fn is_string(&self) -> bool {
        matches!(self, Json::String(_))
    }

    /// The equivalent `serde_json::Value`.
    pub fn into_value(self) -> Value {
        match self {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(b),
            Json::Number(n) => Value::Number(n),
            Json::String(s) => Value::String(s),
            Json::Array(a) => Value::Array(a.into_iter().map(Json::into_value).collect()),
            Json::Object(m) => {
                let mut out = serde_json::Map::with_capacity(m.len());
                for (k, v) in m.0 {
                    out.insert(k, v.into_value());
                }
                Value::Object(out)
            }
        }
    }

    /// A copy as a `serde_json::Value` (built directly, as `into_value` builds it).
    pub fn to_value(&self) -> Value {
        match self {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(*b),
            Json::Number(n) => Value::Number(n.clone()),
            Json::String(s) => Value::String(s.clone()),
            Json::Array(a) => Value::Array(a.iter().map(Json::to_value).collect()),
            Json::Object(m) => {
                let mut out = serde_json::Map::with_capacity(m.len());
                for (k, v) in &m.0 {
                    out.insert(k.clone(), v.to_value());
                }
                Value::Object(out)
            }
        }
    }
}

impl From<Value> for Json {
    fn from(v: Value) -> Json {
        match v {
            Value::Null => Json::Null,
            Value::Bool(b) => Json::Bool(b),
            Value::Number(n) => Json::Number(n),
            Value::String(s) => Json::String(s),
            Value::Array(a) => Json::Array(a.into_iter().map(Json::from).collect()),
            Value::Object(m) => Json::Object(Obj(m
                .into_iter()
                .map(|(k, v)| (k, Json::from(v)))
                .collect())),
        }
    }
}

impl From<&str> for Json {
    fn from(s: &str) -> Json {
        Json::String(s.to_string())
    }
}

impl From<String> for Json {
    fn from(s: String) -> Json {
        Json::String(s)
    }
}

impl PartialEq<str> for Json {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == Some(other)
    }
}

impl PartialEq<&str> for Json {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == Some(*other)
    }
}

impl Serialize for Json {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Json::Null => s.serialize_unit(),
            Json::Bool(b) => s.serialize_bool(*b),
            Json::Number(n) => n.serialize(s),
            Json::String(x) => s.serialize_str(x),
            Json::Array(a) => {
                let mut seq = s.serialize_seq(Some(a.len()))?;
                for x in a {
                    seq.serialize_element(x)?;
                }
                seq.end()
            }
            Json::Object(m) => {
                let mut map = s.serialize_map(Some(m.len()))?;
                for (k, v) in &m.0 {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Json, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, b: bool) -> Result<Json, E> {
        Ok(Json::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Json, E> {
        Ok(Json::Number(n.into()))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Json, E> {
        Ok(Json::Number(n.into()))
    }

    fn visit_f64<E>(self, n: f64) -> Result<Json, E> {
        Ok(Number::from_f64(n).map_or(Json::Null, Json::Number))
    }

    fn visit_str<E>(self, s: &str) -> Result<Json, E> {
        Ok(Json::String(s.to_string()))
    }

    fn visit_string<E>(self, s: String) -> Result<Json, E> {
        Ok(Json::String(s))
    }

    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_none<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Json, D::Error> {
        Json::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(x) = seq.next_element()? {
            out.push(x);
        }
        Ok(Json::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut out: Vec<(String, Json)> = Vec::new();
        // Built only for large objects, to keep duplicate detection linear.
        let mut index: Option<std::collections::HashMap<String, usize>> = None;
        while let Some(k) = map.next_key::<String>()? {
            let v: Json = map.next_value()?;
            if out.len() >= LINEAR_DUPLICATE_CHECK && index.is_none() {
                index = Some(
                    out.iter()
                        .enumerate()
                        .map(|(i, (k, _))| (k.clone(), i))
                        .collect(),
                );
            }
            let existing = match &index {
                Some(ix) => ix.get(&k).copied(),
                None => out.iter().position(|(x, _)| *x == k),
            };
            match existing {
                Some(i) => out[i].1 = v,
                None => {
                    if let Some(ix) = &mut index {
                        ix.insert(k.clone(), out.len());
                    }
                    out.push((k, v));
                }
            }
        }
        Ok(Json::Object(Obj(out)))
    }
}

impl fmt::Display for Json {
    /// Compact JSON.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = serde_json::to_string(self).map_err(|_| fmt::Error)?;
        f.write_str(&s)
    }
}

/// `json!` as a [`Json`], for tests.
#[cfg(test)]
macro_rules! json_lit {
    ($($t:tt)+) => {
        crate::ecs::json::Json::from(serde_json::json!($($t)+))
    };
}
#[cfg(test)]
pub(crate) use json_lit;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_and_serialises_like_serde_json() {
        let text = r#"{"b":1,"a":[true,null,-2,3.5,"x"],"c":{"d":{}},"e":18446744073709551615}"#;
        let j: Json = serde_json::from_str(text).unwrap();
        assert_eq!(j.to_string(), text);
        let v: Value = serde_json::from_str(text).unwrap();
        assert_eq!(j.to_value(), v);
        assert_eq!(j.clone().into_value(), v);
        assert_eq!(
            serde_json::to_string(&j.to_value()).unwrap(),
            text,
            "same key order and numbers"
        );
        assert_eq!(Json::from(v), j);
    }

    #[test]
    fn duplicate_keys_keep_the_last_value_at_the_first_place() {
        let j: Json = serde_json::from_str(r#"{"a":1,"b":2,"a":3}"#).unwrap();
        assert_eq!(j.to_string(), r#"{"a":3,"b":2}"#);
        // Same with an object large enough to use the hash index.
        let mut text = String::from("{");
        for i in 0..100 {
            text.push_str(&format!("\"k{i}\":{i},"));
        }
        text.push_str("\"k5\":\"last\"}");
        let j: Json = serde_json::from_str(&text).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(j.as_object().unwrap().len(), 100);
        assert_eq!(j.get("k5"), Some(&Json::from("last")));
        assert_eq!(j.to_string(), v.to_string());
    }

    #[test]
    fn object_equality_ignores_order_and_remove_keeps_it() {
        let a: Json = serde_json::from_str(r#"{"x":1,"y":2,"z":3}"#).unwrap();
        let b: Json = serde_json::from_str(r#"{"z":3,"y":2,"x":1}"#).unwrap();
        assert_eq!(a, b);
        let mut m = a.as_object().unwrap().clone();
        assert_eq!(m.remove("x"), Some(Json::Number(1.into())));
        assert_eq!(Json::Object(m).to_string(), r#"{"y":2,"z":3}"#);
        assert_eq!(json!(null), Json::Null.to_value());
    }
}
