//! The normalised document: a tree built field by field as the pipeline's processors set them,
//! serialised straight to JSON.
//!
//! The pipeline sets about a hundred dotted fields per record. Building them in a
//! `serde_json::Map` (an `IndexMap` with SipHash, since the crate keeps key order) made hashing
//! and rehashing half of the normaliser's time; here an object is a small vector searched
//! linearly, keys are the pipeline's own static names, and leaves are the record's parsed values
//! moved in. Every consumer writes documents out as JSON (the embedded store keeps compact JSON,
//! `detectd ecs` prints NDJSON, ingest sends bulk bodies), so the tree is serialised directly;
//! [`EcsDoc::into_value`] gives a `serde_json::Value` where one is wanted.

use std::borrow::Cow;

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};

use super::json::{key_eq, segments, split_last, Json};

/// An object's or a leaf's place in the tree.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    /// An object built by the normaliser, keys in insertion order.
    Object(Vec<(Cow<'static, str>, Node)>),
    /// A parsed value (a leaf of the record, or a whole object moved from it).
    Leaf(Json),
}

impl Node {
    fn empty() -> Node {
        Node::Object(Vec::new())
    }

    fn child(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Object(entries) => entries.iter().find(|(k, _)| key_eq(k, key)).map(|(_, n)| n),
            Node::Leaf(_) => None,
        }
    }

    fn child_mut(&mut self, key: &str) -> Option<&mut Node> {
        match self {
            Node::Object(entries) => entries
                .iter_mut()
                .find(|(k, _)| key_eq(k, key))
                .map(|(_, n)| n),
            Node::Leaf(_) => None,
        }
    }

    fn into_value(self) -> Value {
        match self {
            Node::Leaf(v) => v.into_value(),
            Node::Object(entries) => {
                let mut m = Map::with_capacity(entries.len());
                for (k, n) in entries {
                    m.insert(k.into_owned(), n.into_value());
                }
                Value::Object(m)
            }
        }
    }

    fn to_value(&self) -> Value {
        match self {
            Node::Leaf(v) => v.to_value(),
            Node::Object(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, n)| (k.to_string(), n.to_value()))
                    .collect(),
            ),
        }
    }
}

impl Serialize for Node {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Node::Leaf(v) => v.serialize(s),
            Node::Object(entries) => {
                let mut m = s.serialize_map(Some(entries.len()))?;
                for (k, n) in entries {
                    m.serialize_entry(k.as_ref(), n)?;
                }
                m.end()
            }
        }
    }
}

/// The result of a path lookup.
enum Found<'a> {
    Object,
    Value(&'a Json),
}

/// One ECS document: what the normaliser produced, or an already-ECS document read as is.
#[derive(Debug, Clone, PartialEq)]
pub struct EcsDoc(pub(crate) Node);

impl EcsDoc {
    /// A document that was already ECS (passed through unchanged).
    pub fn from_json(v: Json) -> EcsDoc {
        EcsDoc(Node::Leaf(v))
    }

    /// The document when it was read as a whole `Value` (already ECS), not built here.
    pub fn as_json(&self) -> Option<&Json> {
        match &self.0 {
            Node::Leaf(v) => Some(v),
            Node::Object(_) => None,
        }
    }

    /// An empty object, to be filled with [`set`](Self::set).
    pub(crate) fn new() -> EcsDoc {
        EcsDoc(Node::empty())
    }

    /// What is at a dotted path: a node of the tree, or a value inside a parsed leaf.
    fn find(&self, path: &str) -> Option<Found<'_>> {
        let mut node = &self.0;
        let mut parts = segments(path);
        while let Some(p) = parts.next() {
            match node {
                Node::Object(_) => node = node.child(p)?,
                Node::Leaf(v) => {
                    let mut cur = v.get(p)?;
                    for p in parts.by_ref() {
                        cur = cur.get(p)?;
                    }
                    return Some(Found::Value(cur));
                }
            }
        }
        Some(match node {
            Node::Leaf(v) => Found::Value(v),
            Node::Object(_) => Found::Object,
        })
    }

    /// The non-null value at a dotted path (objects the normaliser built are not values; use
    /// [`is_object`](Self::is_object) for them).
    pub fn get(&self, path: &str) -> Option<&Json> {
        match self.find(path)? {
            Found::Value(v) if !v.is_null() => Some(v),
            _ => None,
        }
    }

    /// Whether something other than null is at the path.
    pub fn has(&self, path: &str) -> bool {
        match self.find(path) {
            Some(Found::Object) => true,
            Some(Found::Value(v)) => !v.is_null(),
            None => false,
        }
    }

    /// Whether the path holds an object (built here or parsed).
    pub fn is_object(&self, path: &str) -> bool {
        match self.find(path) {
            Some(Found::Object) => true,
            Some(Found::Value(v)) => v.is_object(),
            None => false,
        }
    }

    /// The parsed value at a path, mutable (not through objects that are values themselves).
    pub(crate) fn value_mut(&mut self, path: &str) -> Option<&mut Json> {
        let mut node = &mut self.0;
        for p in segments(path) {
            node = node.child_mut(p)?;
        }
        match node {
            Node::Leaf(v) => Some(v),
            Node::Object(_) => None,
        }
    }

    /// Sets (overwriting, in place) a dotted field, creating parent objects. Returns false when
    /// a parent is a value rather than an object (the processor would fail).
    pub(crate) fn set(&mut self, path: &'static str, v: Json) -> bool {
        self.set_node(path, Node::Leaf(v))
    }

    pub(crate) fn set_node(&mut self, path: &'static str, new: Node) -> bool {
        self.put(path, new, true)
    }

    /// Sets a field only when nothing but null is there (the `rename` processor's target
    /// check), in one walk. Returns whether it was set.
    pub(crate) fn set_if_absent(&mut self, path: &'static str, new: Node) -> bool {
        self.put(path, new, false)
    }

    fn put(&mut self, path: &'static str, new: Node, overwrite: bool) -> bool {
        let (parents, last) = match split_last(path) {
            Some((p, l)) => (Some(p), l),
            None => (None, path),
        };
        let mut cur = &mut self.0;
        if let Some(parents) = parents {
            for p in segments(parents) {
                let Node::Object(entries) = cur else {
                    return false;
                };
                let i = match entries.iter().position(|(k, _)| key_eq(k, p)) {
                    Some(i) => i,
                    None => {
                        entries.push((Cow::Borrowed(p), Node::empty()));
                        entries.len() - 1
                    }
                };
                cur = &mut entries[i].1;
            }
        }
        let Node::Object(entries) = cur else {
            return false;
        };
        match entries.iter_mut().find(|(k, _)| key_eq(k, last)) {
            Some((_, slot)) => {
                if !overwrite && !matches!(slot, Node::Leaf(Json::Null)) {
                    return false;
                }
                *slot = new;
            }
            None => entries.push((Cow::Borrowed(last), new)),
        }
        true
    }

    /// Removes and returns the node at a dotted path.
    pub(crate) fn remove(&mut self, path: &str) -> Option<Node> {
        let (parent, last) = match split_last(path) {
            Some((p, l)) => (self.node_mut(p)?, l),
            None => (&mut self.0, path),
        };
        let Node::Object(entries) = parent else {
            return None;
        };
        let i = entries.iter().position(|(k, _)| key_eq(k, last))?;
        Some(entries.remove(i).1)
    }

    fn node_mut(&mut self, path: &str) -> Option<&mut Node> {
        let mut node = &mut self.0;
        for p in segments(path) {
            node = node.child_mut(p)?;
        }
        Some(node)
    }

    /// Drops what `keep` rejects, bottom up: `keep` sees every parsed value; objects left empty
    /// are dropped too.
    pub(crate) fn retain_values(&mut self, keep: &mut dyn FnMut(&mut Json) -> bool) {
        fn walk(n: &mut Node, keep: &mut dyn FnMut(&mut Json) -> bool) -> bool {
            match n {
                Node::Leaf(v) => keep(v),
                Node::Object(entries) => {
                    entries.retain_mut(|(_, c)| walk(c, keep));
                    !entries.is_empty()
                }
            }
        }
        if let Node::Object(entries) = &mut self.0 {
            entries.retain_mut(|(_, c)| walk(c, keep));
        }
    }

    /// The document as a `serde_json::Value`.
    pub fn into_value(self) -> Value {
        self.0.into_value()
    }

    /// A copy of the document as a `serde_json::Value`.
    pub fn to_value(&self) -> Value {
        self.0.to_value()
    }

    /// Appends the compact JSON text to `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        // Writing a tree of strings and parsed values into memory cannot fail.
        let _ = serde_json::to_writer(out, &self.0);
    }

    /// Compact JSON text.
    pub fn to_json(&self) -> String {
        // Serialising a tree of strings and parsed values cannot fail.
        serde_json::to_string(&self.0).unwrap_or_default()
    }
}

impl Serialize for EcsDoc {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl From<EcsDoc> for Value {
    fn from(d: EcsDoc) -> Value {
        d.into_value()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::ecs::json::json_lit as j;

    #[test]
    fn set_builds_objects_in_order_and_overwrites_in_place() {
        let mut d = EcsDoc::new();
        assert!(d.set("event.action", j!("A")));
        assert!(d.set("user.name", j!("u")));
        assert!(d.set("event.kind", j!("event")));
        assert!(d.set("event.action", j!("B")));
        assert_eq!(
            d.to_json(),
            r#"{"event":{"action":"B","kind":"event"},"user":{"name":"u"}}"#
        );
        // A parent that is a value is not an object: the set fails and changes nothing.
        assert!(!d.set("user.name.first", j!("x")));
        assert_eq!(d.get("user.name"), Some(&j!("u")));
    }

    #[test]
    fn get_descends_into_parsed_values_and_skips_null() {
        let mut d = EcsDoc::new();
        d.set("aws.flat", j!({"a": {"b": 1}, "n": null}));
        assert_eq!(d.get("aws.flat.a.b"), Some(&j!(1)));
        assert_eq!(d.get("aws.flat.n"), None);
        assert!(d.is_object("aws"));
        assert!(d.is_object("aws.flat.a"));
        assert!(!d.has("aws.flat.n"));
        assert!(d.has("aws"));
        assert_eq!(
            d.to_value(),
            json!({"aws": {"flat": {"a": {"b": 1}, "n": null}}})
        );
        assert_eq!(d.clone().into_value(), d.to_value());
    }

    #[test]
    fn remove_and_retain() {
        let mut d = EcsDoc::new();
        d.set("a.b", j!(""));
        d.set("a.c", j!(1));
        d.set("x.y", j!(null));
        assert!(matches!(d.remove("a.c"), Some(Node::Leaf(v)) if v == j!(1)));
        d.retain_values(&mut |v| !(v.is_null() || v == &j!("")));
        assert_eq!(d.to_json(), "{}");
        let passthrough = EcsDoc::from_json(j!({"@timestamp": "t"}));
        assert_eq!(passthrough.get("@timestamp"), Some(&j!("t")));
    }
}
