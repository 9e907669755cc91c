//! The embedded evaluator: KQL compiled into a matcher over ECS JSON documents that agrees with
//! Elasticsearch on the query DSL Kibana builds for it.
//!
//! A query is compiled once ([`Matcher::compile`], [`compile_filters`]) into a small tree of
//! DSL-level predicates (`term`, `match`, `match_phrase`, `wildcard`, `query_string`, `range`,
//! `exists`) whose semantics depend on the field's mapping type from the [`FieldCatalog`].
//! Fields are interned into slots; a document is prepared once ([`Matcher::prepare`],
//! [`MatcherSet::prepare`]) into per-slot borrowed values, and every rule then evaluates against
//! the same prepared document without allocating.
//!
//! Elasticsearch behaviours reproduced (each has a test in `tests/matcher_cases.rs`):
//! - keyword family (`keyword`, `constant_keyword`, `wildcard`, flattened leaves): exact and
//!   case-sensitive; wildcards over the whole value; values longer than `ignore_above` are not
//!   indexed, so they match neither a term, a wildcard nor `exists` (ES's exists documentation
//!   lists `ignore_above` among the reasons a field does not exist);
//! - `constant_keyword`: the catalog's value when the document lacks the field;
//! - flattened leaves compare as strings (`true`, `42`); a query on the flattened root matches any
//!   leaf. Wildcards on keyed flattened fields are evaluated as ES 8 does (7.10 rejected them);
//! - text: the standard analyzer; `match` is an OR of tokens, `match_phrase` needs consecutive
//!   tokens in one value, `query_string` wildcards are lowercased and matched per token, `term`
//!   compares the raw value with the (lowercased) tokens;
//! - dates by instant (`f:2024-01-01` is `gte`/`lte` of the same day: `lte`/`gt` bounds fill
//!   missing time components with their maximum, per the range query's "missing date components"
//!   documentation and elastic/elasticsearch#113882), numbers by value, booleans, IPs with CIDR;
//!   `now` in date math is resolved when the query is compiled;
//! - arrays match when any element does; dotted paths go through arrays of objects;
//! - a field missing from the catalog is typed as ES dynamic mapping would type the document's
//!   value: a string is `text` with a `.keyword` sub-field (`ignore_above: 256`), or a `date` when
//!   it looks like `strict_date_optional_time`; numbers and booleans by their JSON type;
//! - free text (no field) behaves like `multi_match`/`query_string` over `default_field: *`
//!   with `lenient: true`: any leaf of the document matching the value for its type (Fleet
//!   templates narrow `index.query.default_field` to a field list; the matcher searches all);
//! - `f:{ q }` evaluates `q` on each object of the array at `f` (ES requires a `nested`
//!   mapping there and answers 400 otherwise; the matcher does not check the mapping);
//! - a wildcard field name (`event.act*:x`) expands over the catalog; none → no match.
//!
//! Cost: `prepare` walks the document once (only into objects on the path of a used field) and
//! makes two allocations; evaluation allocates nothing except for free-text and nested queries.

mod analyze;
mod filters;
mod values;

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

use chrono::{DateTime, Utc};
use serde_json::{Map, Number, Value};

use crate::fields::{FieldCatalog, FieldSpec};
use crate::kql::{Ast, Field, Part, RangeOp};

use analyze::{eq_lower, tokens, Glob, Pat};

pub use filters::compile_filters;

/// Why a query or filter cannot be evaluated (Elasticsearch would answer 400 for these).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    /// A value that the field's type cannot parse (ES: `failed to create query`).
    #[error("field `{field}` ({field_type}): cannot use value `{value}`: {reason}")]
    Value {
        field: String,
        field_type: String,
        value: String,
        reason: String,
    },
    /// A wildcard query on a field that is neither keyword nor text.
    #[error("field `{field}` ({field_type}): wildcard queries need a keyword or text field")]
    Wildcard { field: String, field_type: String },
    /// A rule filter whose shape is not supported.
    #[error("filter {index}: {reason}")]
    Filter { index: usize, reason: String },
}

/// One compiled query with the field table its documents are prepared with.
#[derive(Debug, Clone)]
pub struct Matcher {
    table: FieldTable,
    root: Node,
}

/// Many compiled queries sharing one field table, so a document is prepared once for all.
#[derive(Debug, Clone, Default)]
pub struct MatcherSet {
    table: FieldTable,
    roots: Vec<Node>,
}

/// A document split into the values of the fields the compiled queries use.
#[derive(Debug, Clone)]
pub struct PreparedDoc<'a> {
    values: Vec<Val<'a>>,
    /// `offsets[slot]..offsets[slot + 1]` index `values`.
    offsets: Vec<u32>,
    /// Every leaf with its path, only when a free-text query needs them.
    leaves: Vec<(String, Val<'a>)>,
}

impl Matcher {
    /// Compiles a KQL AST against the field types of `catalog`.
    pub fn compile(ast: &Ast, catalog: &FieldCatalog) -> Result<Matcher, CompileError> {
        let mut table = FieldTable::default();
        let root = Compiler {
            catalog,
            table: &mut table,
            prefix: "",
            now: Utc::now(),
        }
        .ast(ast)?;
        Ok(Matcher { table, root })
    }

    /// A matcher that requires both `self` and `other` (a rule's query and its filters).
    pub fn and(self, other: Matcher) -> Matcher {
        let mut table = self.table;
        let other_root = other.root.remap(&other.table, &mut table);
        Matcher {
            table,
            root: Node::All(vec![self.root, other_root]),
        }
    }

    /// Splits `doc` into the values this matcher reads.
    pub fn prepare<'a>(&self, doc: &'a Value) -> PreparedDoc<'a> {
        self.table.prepare(doc)
    }

    /// True when the prepared document matches (it must come from [`Matcher::prepare`]).
    pub fn matches(&self, doc: &PreparedDoc<'_>) -> bool {
        self.root.eval(doc)
    }

    /// Prepares and evaluates in one call.
    pub fn matches_json(&self, doc: &Value) -> bool {
        self.matches(&self.prepare(doc))
    }

    /// Evaluates on a document known only by the fields this matcher reads, each a single
    /// string or absent: `field(name)` is `Some(Some(v))`, `Some(None)` when absent, `None`
    /// when unknown, which makes the answer unknown (`None`) too. What `matches_json` answers
    /// for any document with those values.
    pub fn matches_known<'a>(
        &self,
        field: impl Fn(&str) -> Option<Option<&'a str>>,
    ) -> Option<bool> {
        if self.table.all_leaves || !self.table.flattened.is_empty() {
            return None;
        }
        let mut values = Vec::with_capacity(self.table.names.len());
        let mut offsets = Vec::with_capacity(self.table.names.len() + 1);
        offsets.push(0u32);
        for name in &self.table.names {
            if let Some(v) = field(name)? {
                values.push(Val::Str(v));
            }
            offsets.push(u32::try_from(values.len()).ok()?);
        }
        Some(self.root.eval(&PreparedDoc {
            values,
            offsets,
            leaves: Vec::new(),
        }))
    }
}

impl MatcherSet {
    /// An empty set.
    pub fn new() -> MatcherSet {
        MatcherSet::default()
    }

    /// Adds a compiled matcher; returns its index.
    pub fn add(&mut self, matcher: &Matcher) -> usize {
        let root = matcher.root.clone().remap(&matcher.table, &mut self.table);
        self.roots.push(root);
        self.roots.len() - 1
    }

    /// Number of matchers.
    pub fn len(&self) -> usize {
        self.roots.len()
    }

    /// True when no matcher was added.
    pub fn is_empty(&self) -> bool {
        self.roots.is_empty()
    }

    /// Splits `doc` into the values all matchers read.
    pub fn prepare<'a>(&self, doc: &'a Value) -> PreparedDoc<'a> {
        self.table.prepare(doc)
    }

    /// True when matcher `index` matches the prepared document (false for an unknown index).
    pub fn matches(&self, index: usize, doc: &PreparedDoc<'_>) -> bool {
        self.roots.get(index).is_some_and(|r| r.eval(doc))
    }
}

// ---------------------------------------------------------------------------------------------
// Field types

/// How a field's values are indexed, which decides what each query does on it.
#[derive(Debug, Clone, PartialEq)]
enum Kind {
    /// keyword, wildcard, flattened leaves (and the flattened root: any leaf).
    Keyword {
        ignore_above: Option<usize>,
    },
    /// constant_keyword: the document's value, or this one when it has none.
    Constant {
        value: Option<String>,
    },
    Text,
    Number {
        integer: bool,
    },
    Date,
    Bool,
    Ip,
    /// Not in the catalog: typed per value as dynamic mapping would.
    Dynamic,
    /// `x.keyword` of a dynamically mapped string `x`.
    DynamicKeyword,
    /// A mapping type with no query semantics here (geo_point, binary, ...): never matches.
    Unsupported(String),
}

impl Kind {
    fn name(&self) -> String {
        match self {
            Kind::Keyword { .. } => "keyword".into(),
            Kind::Constant { .. } => "constant_keyword".into(),
            Kind::Text => "text".into(),
            Kind::Number { integer: true } => "long".into(),
            Kind::Number { integer: false } => "double".into(),
            Kind::Date => "date".into(),
            Kind::Bool => "boolean".into(),
            Kind::Ip => "ip".into(),
            Kind::Dynamic | Kind::DynamicKeyword => "unmapped".into(),
            Kind::Unsupported(t) => t.clone(),
        }
    }

    fn is_keyword_family(&self) -> bool {
        matches!(
            self,
            Kind::Keyword { .. } | Kind::Constant { .. } | Kind::DynamicKeyword
        )
    }
}

fn kind_of_spec(spec: &FieldSpec) -> Kind {
    let ty = spec.es_types.first().map(String::as_str).unwrap_or("");
    match ty {
        "keyword" | "wildcard" | "flattened" | "version" => Kind::Keyword {
            ignore_above: spec.ignore_above,
        },
        "constant_keyword" => Kind::Constant {
            value: spec.constant_value.clone(),
        },
        "text" | "match_only_text" => Kind::Text,
        "long" | "integer" | "short" | "byte" | "unsigned_long" => Kind::Number { integer: true },
        "double" | "float" | "half_float" | "scaled_float" => Kind::Number { integer: false },
        "date" | "date_nanos" => Kind::Date,
        "boolean" => Kind::Bool,
        "ip" => Kind::Ip,
        "object" | "nested" => Kind::Dynamic,
        other => Kind::Unsupported(other.to_string()),
    }
}

/// The field's kind and the slot name its values are read from.
fn resolve(catalog: &FieldCatalog, name: &str) -> (Kind, String) {
    if let Some(r) = catalog.resolve(name) {
        if r.flattened_leaf {
            let kind = Kind::Keyword {
                ignore_above: r.spec.ignore_above,
            };
            return (kind, name.to_string());
        }
        // A multi-field (`user.name.text`) indexes its parent's values.
        let slot = r
            .spec
            .multi_parent
            .clone()
            .unwrap_or_else(|| name.to_string());
        return (kind_of_spec(r.spec), slot);
    }
    if let Some(parent) = name.strip_suffix(".keyword") {
        if catalog.get(parent).is_none() {
            return (Kind::DynamicKeyword, parent.to_string());
        }
    }
    (Kind::Dynamic, name.to_string())
}

fn is_flattened_root(catalog: &FieldCatalog, name: &str) -> bool {
    catalog
        .get(name)
        .is_some_and(|s| s.es_types.iter().any(|t| t == "flattened"))
}

// ---------------------------------------------------------------------------------------------
// Field table and document preparation

/// FxHash-style hashing, a word at a time: field paths are short and trusted.
#[derive(Default, Clone, Copy)]
struct Fx(u64);

impl Hasher for Fx {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut h = self.0;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            h = (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
        }
        for b in chunks.remainder() {
            h = (h.rotate_left(5) ^ u64::from(*b)).wrapping_mul(K);
        }
        self.0 = h;
    }
}

type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<Fx>>;
type FastSet<K> = HashSet<K, BuildHasherDefault<Fx>>;

/// The fields compiled queries read, interned into slots, with a trie of their path segments
/// so that preparing a document looks up each key once, without building paths.
#[derive(Debug, Clone)]
struct FieldTable {
    names: Vec<String>,
    /// Path-segment trie; node 0 is the document root.
    trie: Vec<TrieNode>,
    /// Slots that are flattened roots: they also receive every leaf below them.
    flattened: FastSet<u32>,
    /// A free-text query needs every leaf (with its path).
    all_leaves: bool,
}

#[derive(Debug, Clone)]
struct TrieNode {
    children: FastMap<Box<str>, u32>,
    /// The slot of the path ending here, `NO_SLOT` when it is only a prefix.
    slot: u32,
}

const NO_SLOT: u32 = u32::MAX;

impl Default for FieldTable {
    fn default() -> FieldTable {
        FieldTable {
            names: Vec::new(),
            trie: vec![TrieNode {
                children: FastMap::default(),
                slot: NO_SLOT,
            }],
            flattened: FastSet::default(),
            all_leaves: false,
        }
    }
}

impl FieldTable {
    fn intern(&mut self, name: &str) -> u32 {
        let mut node = 0usize;
        for seg in name.split('.') {
            let next = self.trie.len() as u32;
            let child = *self
                .trie
                .get_mut(node)
                .map(|n| n.children.entry(seg.into()).or_insert(next))
                .unwrap_or(&mut 0);
            if child == next {
                self.trie.push(TrieNode {
                    children: FastMap::default(),
                    slot: NO_SLOT,
                });
            }
            node = child as usize;
        }
        let new_slot = self.names.len() as u32;
        match self.trie.get_mut(node) {
            Some(n) if n.slot != NO_SLOT => n.slot,
            Some(n) => {
                n.slot = new_slot;
                self.names.push(name.to_string());
                new_slot
            }
            None => NO_SLOT,
        }
    }

    /// The trie node below `node` for a document key (a dotted key spans several segments).
    fn child(&self, node: u32, key: &str) -> Option<u32> {
        let n = self.trie.get(node as usize)?;
        if let Some(&c) = n.children.get(key) {
            return Some(c);
        }
        if !key.contains('.') {
            return None;
        }
        let mut cur = node;
        for seg in key.split('.') {
            cur = *self.trie.get(cur as usize)?.children.get(seg)?;
        }
        Some(cur)
    }

    fn prepare<'a>(&self, doc: &'a Value) -> PreparedDoc<'a> {
        let mut pairs: Vec<(u32, Val<'a>)> = Vec::with_capacity(32);
        let mut leaves = Vec::new();
        let mut path = String::new();
        self.walk(doc, Some(0), None, &mut path, &mut pairs, &mut leaves);
        pairs.sort_unstable_by_key(|p| p.0);
        let n = self.names.len();
        let mut offsets = vec![0u32; n + 1];
        for (slot, _) in &pairs {
            if let Some(o) = offsets.get_mut(*slot as usize + 1) {
                *o += 1;
            }
        }
        for i in 1..offsets.len() {
            offsets[i] += offsets[i - 1];
        }
        PreparedDoc {
            values: pairs.into_iter().map(|p| p.1).collect(),
            offsets,
            leaves,
        }
    }

    fn walk<'a>(
        &self,
        v: &'a Value,
        node: Option<u32>,
        flat_root: Option<u32>,
        path: &mut String,
        out: &mut Vec<(u32, Val<'a>)>,
        leaves: &mut Vec<(String, Val<'a>)>,
    ) {
        let slot = node
            .and_then(|n| self.trie.get(n as usize))
            .map(|n| n.slot)
            .filter(|s| *s != NO_SLOT);
        let val = match v {
            Value::Null => return,
            Value::Bool(b) => Val::Bool(*b),
            Value::Number(n) => Val::Num(n),
            Value::String(s) => Val::Str(s),
            Value::Array(items) => {
                for item in items {
                    self.walk(item, node, flat_root, path, out, leaves);
                }
                return;
            }
            Value::Object(map) => {
                if let Some(s) = slot {
                    out.push((s, Val::Obj(map)));
                }
                let root = match slot {
                    Some(s) if self.flattened.contains(&s) => Some(s),
                    _ => flat_root,
                };
                let has_children = node
                    .and_then(|n| self.trie.get(n as usize))
                    .is_some_and(|n| !n.children.is_empty());
                if !has_children && root.is_none() && !self.all_leaves {
                    return;
                }
                let len = path.len();
                for (k, child) in map {
                    let child_node = node.and_then(|n| self.child(n, k));
                    if child_node.is_none() && root.is_none() && !self.all_leaves {
                        continue;
                    }
                    if self.all_leaves {
                        if len > 0 {
                            path.push('.');
                        }
                        path.push_str(k);
                    }
                    self.walk(child, child_node, root, path, out, leaves);
                    path.truncate(len);
                }
                return;
            }
        };
        if let Some(s) = slot {
            out.push((s, val));
        }
        if let Some(r) = flat_root {
            if Some(r) != slot {
                out.push((r, val));
            }
        }
        if self.all_leaves {
            leaves.push((path.clone(), val));
        }
    }
}

/// One value of a document field, borrowed from the JSON.
#[derive(Debug, Clone, Copy)]
enum Val<'a> {
    Str(&'a str),
    Num(&'a Number),
    Bool(bool),
    Obj(&'a Map<String, Value>),
}

impl<'a> PreparedDoc<'a> {
    fn slot(&self, slot: u32) -> &[Val<'a>] {
        let i = slot as usize;
        match (self.offsets.get(i), self.offsets.get(i + 1)) {
            (Some(&a), Some(&b)) => self.values.get(a as usize..b as usize).unwrap_or(&[]),
            _ => &[],
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The compiled program

#[derive(Debug, Clone)]
enum Node {
    True,
    False,
    All(Vec<Node>),
    Any(Vec<Node>),
    /// At least `n` of the children (`bool.should` with `minimum_should_match`).
    AtLeast(usize, Vec<Node>),
    Not(Box<Node>),
    Leaf(Box<Leaf>),
    /// `path:{ query }`: the inner matcher on each object at `slot`.
    Nested {
        slot: u32,
        inner: Box<Matcher>,
    },
    /// Free text over every leaf of the document.
    FreeText(Box<FreeText>),
}

#[derive(Debug, Clone)]
struct Leaf {
    slot: u32,
    kind: Kind,
    op: Op,
}

/// A DSL-level query on one field.
#[derive(Debug, Clone)]
enum Op {
    Exists,
    /// `term` (also `match` on non-text fields, where it is the same).
    Term(QVal),
    /// `match` (OR of tokens, or AND with `operator: and`) on text; `term` elsewhere.
    Match {
        q: QVal,
        all: bool,
    },
    /// `match_phrase` on text; `term` elsewhere.
    Phrase(QVal),
    /// `wildcard`/`prefix` query (`?` allowed) or a KQL wildcard (`query_string`).
    Wildcard {
        glob: Glob,
        text_glob: Glob,
    },
    Range(Box<RangeQ>),
}

/// A query value with every form a field type may need, parsed once.
#[derive(Debug, Clone)]
struct QVal {
    raw: String,
    tokens: Vec<String>,
    num: Option<f64>,
    boolean: Option<bool>,
    ip: Option<(u128, u128)>,
    /// The instants a date term covers (`2024-01-01` → the whole day).
    date: Option<(i64, i64)>,
}

impl QVal {
    fn new(raw: &str) -> QVal {
        QVal {
            raw: raw.to_string(),
            tokens: analyze::analyze(raw),
            num: values::parse_number(raw),
            boolean: values::parse_bool(raw),
            ip: values::ip_range(raw),
            date: values::parse_date(raw, false).zip(values::parse_date(raw, true)),
        }
    }
}

#[derive(Debug, Clone, Default)]
struct RangeQ {
    lower: Option<Bound>,
    upper: Option<Bound>,
}

#[derive(Debug, Clone)]
struct Bound {
    inclusive: bool,
    raw: String,
    num: Option<f64>,
    date: Option<i64>,
    ip: Option<u128>,
}

#[derive(Debug, Clone)]
struct FreeText {
    q: QVal,
    phrase: bool,
    glob: Option<(Glob, Glob)>,
    catalog: FieldCatalog,
}

impl Node {
    fn eval(&self, doc: &PreparedDoc<'_>) -> bool {
        match self {
            Node::True => true,
            Node::False => false,
            Node::All(c) => c.iter().all(|n| n.eval(doc)),
            Node::Any(c) => c.iter().any(|n| n.eval(doc)),
            Node::AtLeast(n, c) => {
                *n == 0 || c.iter().filter(|x| x.eval(doc)).take(*n).count() >= *n
            }
            Node::Not(c) => !c.eval(doc),
            Node::Leaf(l) => leaf_matches(&l.kind, &l.op, doc.slot(l.slot)),
            Node::Nested { slot, inner } => doc.slot(*slot).iter().any(|v| match v {
                Val::Obj(map) => {
                    let obj = Value::Object((*map).clone());
                    inner.matches_json(&obj)
                }
                _ => false,
            }),
            Node::FreeText(ft) => free_text(ft, doc),
        }
    }

    /// The node with its slots renumbered from `from` into `into`.
    fn remap(self, from: &FieldTable, into: &mut FieldTable) -> Node {
        let map_slot = |slot: u32, into: &mut FieldTable| -> u32 {
            let name = from.names.get(slot as usize).cloned().unwrap_or_default();
            let new = into.intern(&name);
            if from.flattened.contains(&slot) {
                into.flattened.insert(new);
            }
            new
        };
        if from.all_leaves {
            into.all_leaves = true;
        }
        match self {
            Node::All(c) => Node::All(c.into_iter().map(|n| n.remap(from, into)).collect()),
            Node::Any(c) => Node::Any(c.into_iter().map(|n| n.remap(from, into)).collect()),
            Node::AtLeast(k, c) => {
                Node::AtLeast(k, c.into_iter().map(|n| n.remap(from, into)).collect())
            }
            Node::Not(c) => Node::Not(Box::new(c.remap(from, into))),
            Node::Leaf(mut l) => {
                l.slot = map_slot(l.slot, into);
                Node::Leaf(l)
            }
            Node::Nested { slot, inner } => Node::Nested {
                slot: map_slot(slot, into),
                inner,
            },
            other => other,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Compilation from KQL (Kibana's `@kbn/es-query` translation)

struct Compiler<'c> {
    catalog: &'c FieldCatalog,
    table: &'c mut FieldTable,
    /// The nested path prefix (`path.`) for catalog look-ups inside `path:{ ... }`.
    prefix: &'c str,
    now: DateTime<Utc>,
}

impl Compiler<'_> {
    fn ast(&mut self, ast: &Ast) -> Result<Node, CompileError> {
        Ok(match ast {
            Ast::MatchAll => Node::True,
            Ast::And(c) => Node::All(c.iter().map(|a| self.ast(a)).collect::<Result<_, _>>()?),
            Ast::Or(c) => Node::Any(c.iter().map(|a| self.ast(a)).collect::<Result<_, _>>()?),
            Ast::Not(c) => Node::Not(Box::new(self.ast(c)?)),
            Ast::Exists { field } => self.per_field(field, |_, _| Ok(Op::Exists))?,
            Ast::Is { field: None, value } => {
                let raw = value.joined('*');
                let glob = value.is_wildcard().then(|| kql_globs(&value.parts));
                self.table.all_leaves = true;
                Node::FreeText(Box::new(FreeText {
                    q: QVal::new(&raw),
                    phrase: value.quoted,
                    glob,
                    catalog: self.catalog.clone(),
                }))
            }
            Ast::Is {
                field: Some(field),
                value,
            } => self.per_field(field, |name, kind| {
                if value.is_wildcard() {
                    if !(kind.is_keyword_family()
                        || matches!(kind, Kind::Text | Kind::Dynamic | Kind::Unsupported(_)))
                    {
                        return Err(CompileError::Wildcard {
                            field: name.to_string(),
                            field_type: kind.name(),
                        });
                    }
                    let (glob, text_glob) = kql_globs(&value.parts);
                    return Ok(Op::Wildcard { glob, text_glob });
                }
                let raw = value.joined('*');
                let q = QVal::new(&raw);
                check_value(name, kind, &q)?;
                Ok(if value.quoted {
                    Op::Phrase(q)
                } else {
                    Op::Match { q, all: false }
                })
            })?,
            Ast::Range { field, op, value } => {
                let raw = value.joined('*');
                let now = self.now;
                self.per_field(field, |name, kind| {
                    let inclusive = matches!(op, RangeOp::Gte | RangeOp::Lte);
                    let upper = matches!(op, RangeOp::Lt | RangeOp::Lte);
                    let bound = make_bound(name, kind, &raw, inclusive, upper, now)?;
                    let mut r = RangeQ::default();
                    if upper {
                        r.upper = Some(bound);
                    } else {
                        r.lower = Some(bound);
                    }
                    Ok(Op::Range(Box::new(r)))
                })?
            }
            Ast::Nested { path, query } => {
                let full = self.full_name(&path.name);
                let slot = self.table.intern(&full);
                let prefix = format!("{full}.");
                let mut table = FieldTable::default();
                let root = Compiler {
                    catalog: self.catalog,
                    table: &mut table,
                    prefix: &prefix,
                    now: self.now,
                }
                .ast(query)?;
                // The inner table holds relative names; look-ups used the full ones.
                Node::Nested {
                    slot,
                    inner: Box::new(Matcher { table, root }),
                }
            }
        })
    }

    fn full_name(&self, name: &str) -> String {
        format!("{}{}", self.prefix, name)
    }

    /// One leaf per field the name stands for (a wildcard name expands over the catalog).
    fn per_field(
        &mut self,
        field: &Field,
        mut make_op: impl FnMut(&str, &Kind) -> Result<Op, CompileError>,
    ) -> Result<Node, CompileError> {
        let names: Vec<String> = if field.wildcard {
            let pattern = Glob::from_es(&self.full_name(&field.name).replace('?', "\\?"), false);
            self.catalog
                .iter()
                .filter(|s| pattern.matches(&s.name))
                .map(|s| s.name.clone())
                .collect()
        } else {
            vec![self.full_name(&field.name)]
        };
        let mut nodes = Vec::with_capacity(names.len());
        for full in &names {
            let full: &str = full;
            let (kind, slot_name) = resolve(self.catalog, full);
            let op = make_op(full, &kind)?;
            let relative = slot_name
                .strip_prefix(self.prefix)
                .unwrap_or(&slot_name)
                .to_string();
            let slot = self.table.intern(&relative);
            if is_flattened_root(self.catalog, full) {
                self.table.flattened.insert(slot);
            }
            nodes.push(Node::Leaf(Box::new(Leaf { slot, kind, op })));
        }
        Ok(match nodes.len() {
            0 => Node::False,
            1 => nodes.pop().unwrap_or(Node::False),
            _ => Node::Any(nodes),
        })
    }
}

/// The glob of a KQL wildcard value: as is (keyword) and lowercased (text, `query_string`).
fn kql_globs(parts: &[Part]) -> (Glob, Glob) {
    let mut pat = Vec::new();
    for p in parts {
        match p {
            Part::Text(t) => pat.extend(t.chars().map(Pat::Char)),
            Part::Wildcard => pat.push(Pat::Star),
        }
    }
    (Glob::new(pat.clone(), false), Glob::new(pat, true))
}

/// ES rejects (400) a term on a typed field whose value does not parse.
fn check_value(name: &str, kind: &Kind, q: &QVal) -> Result<(), CompileError> {
    let reason = match kind {
        Kind::Number { .. } if q.num.is_none() => "not a number",
        Kind::Bool if q.boolean.is_none() => "not a boolean (true or false)",
        Kind::Ip if q.ip.is_none() => "not an ip address or cidr block",
        Kind::Date if q.date.is_none() => "not a date (strict_date_optional_time or epoch_millis)",
        _ => return Ok(()),
    };
    Err(CompileError::Value {
        field: name.to_string(),
        field_type: kind.name(),
        value: q.raw.clone(),
        reason: reason.to_string(),
    })
}

fn make_bound(
    name: &str,
    kind: &Kind,
    raw: &str,
    inclusive: bool,
    upper: bool,
    now: DateTime<Utc>,
) -> Result<Bound, CompileError> {
    // ES rounds up the upper bound of `lte` and the lower bound of `gt`.
    let round_up = inclusive == upper;
    let b = Bound {
        inclusive,
        raw: raw.to_string(),
        num: values::parse_number(raw),
        date: values::parse_date_bound(raw, round_up, now),
        ip: values::ip_u128(raw),
    };
    let reason = match kind {
        Kind::Number { .. } if b.num.is_none() => "not a number",
        Kind::Date if b.date.is_none() => "not a date or date math",
        Kind::Ip if b.ip.is_none() => "not an ip address",
        _ => return Ok(b),
    };
    Err(CompileError::Value {
        field: name.to_string(),
        field_type: kind.name(),
        value: raw.to_string(),
        reason: reason.to_string(),
    })
}

// ---------------------------------------------------------------------------------------------
// Evaluation

/// Whether a keyword value of this length is indexed (`ignore_above` counts UTF-16 units).
fn indexed(s: &str, ignore_above: Option<usize>) -> bool {
    match ignore_above {
        None => true,
        Some(max) => s.len() <= max || s.encode_utf16().count() <= max,
    }
}

fn leaf_matches(kind: &Kind, op: &Op, vals: &[Val<'_>]) -> bool {
    match kind {
        Kind::Constant { value } => {
            if vals.is_empty() {
                match value {
                    Some(c) => keyword_matches(op, &[Val::Str(c)], None),
                    None => false,
                }
            } else {
                keyword_matches(op, vals, None)
            }
        }
        Kind::Keyword { ignore_above } => keyword_matches(op, vals, *ignore_above),
        Kind::DynamicKeyword => {
            let strings = vals.iter().any(|v| matches!(v, Val::Str(_)));
            strings
                && vals.iter().any(|v| match v {
                    Val::Str(_) => keyword_matches(op, std::slice::from_ref(v), Some(256)),
                    _ => false,
                })
        }
        Kind::Text => vals.iter().any(|v| match v {
            Val::Str(s) => text_matches(op, s),
            Val::Num(_) | Val::Bool(_) => with_str(v, |s| text_matches(op, s)),
            Val::Obj(_) => false,
        }),
        Kind::Number { integer } => vals.iter().any(|v| number_matches(op, v, *integer)),
        Kind::Date => vals.iter().any(|v| date_matches(op, v)),
        Kind::Bool => vals.iter().any(|v| bool_matches(op, v)),
        Kind::Ip => vals.iter().any(|v| ip_matches(op, v)),
        Kind::Dynamic => vals.iter().any(|v| dynamic_matches(op, v)),
        Kind::Unsupported(_) => matches!(op, Op::Exists) && !vals.is_empty(),
    }
}

/// Calls `f` with the string form of a scalar (numbers as written, booleans `true`/`false`).
fn with_str<R: Default>(v: &Val<'_>, f: impl FnOnce(&str) -> R) -> R {
    match v {
        Val::Str(s) => f(s),
        Val::Num(n) => f(&n.to_string()),
        Val::Bool(b) => f(if *b { "true" } else { "false" }),
        Val::Obj(_) => R::default(),
    }
}

fn has_leaf(map: &Map<String, Value>) -> bool {
    fn any(v: &Value) -> bool {
        match v {
            Value::Null => false,
            Value::Array(a) => a.iter().any(any),
            Value::Object(m) => m.values().any(any),
            _ => true,
        }
    }
    map.values().any(any)
}

fn keyword_matches(op: &Op, vals: &[Val<'_>], ignore_above: Option<usize>) -> bool {
    vals.iter().any(|v| {
        if let Val::Obj(m) = v {
            return matches!(op, Op::Exists) && has_leaf(m);
        }
        with_str(v, |s| {
            if !indexed(s, ignore_above) {
                return false;
            }
            match op {
                Op::Exists => true,
                Op::Term(q) | Op::Match { q, .. } | Op::Phrase(q) => s == q.raw,
                Op::Wildcard { glob, .. } => glob.matches(s),
                Op::Range(r) => in_range(r, |b| Some(s.cmp(b.raw.as_str()))),
            }
        })
    })
}

fn text_matches(op: &Op, s: &str) -> bool {
    match op {
        Op::Exists => true,
        // `term` is not analysed: the raw value must equal an indexed (lowercased) token.
        Op::Term(q) => tokens(s).any(|t| eq_lower(t, &q.raw)),
        Op::Match { q, all } => {
            if q.tokens.is_empty() {
                return false;
            }
            if *all {
                q.tokens.iter().all(|qt| tokens(s).any(|t| eq_lower(t, qt)))
            } else {
                tokens(s).any(|t| q.tokens.iter().any(|qt| eq_lower(t, qt)))
            }
        }
        Op::Phrase(q) => phrase_matches(s, &q.tokens),
        Op::Wildcard { text_glob, .. } => tokens(s).any(|t| text_glob.matches(t)),
        Op::Range(r) => tokens(s).any(|t| {
            let lower = t.to_lowercase();
            in_range(r, |b| Some(lower.as_str().cmp(b.raw.as_str())))
        }),
    }
}

fn phrase_matches(s: &str, q: &[String]) -> bool {
    let Some(first) = q.first() else { return false };
    let mut it = tokens(s);
    while let Some(t) = it.next() {
        if eq_lower(t, first) {
            let mut rest = it.clone();
            if q.iter()
                .skip(1)
                .all(|qt| rest.next().is_some_and(|t| eq_lower(t, qt)))
            {
                return true;
            }
        }
    }
    false
}

/// Compares a value with the range's bounds; `cmp(bound)` orders the value against a bound.
fn in_range(r: &RangeQ, mut cmp: impl FnMut(&Bound) -> Option<std::cmp::Ordering>) -> bool {
    use std::cmp::Ordering::*;
    if let Some(b) = &r.lower {
        match cmp(b) {
            Some(Greater) => {}
            Some(Equal) if b.inclusive => {}
            _ => return false,
        }
    }
    if let Some(b) = &r.upper {
        match cmp(b) {
            Some(Less) => {}
            Some(Equal) if b.inclusive => {}
            _ => return false,
        }
    }
    true
}

fn doc_number(v: &Val<'_>, integer: bool) -> Option<f64> {
    let f = match v {
        Val::Num(n) => n.as_f64()?,
        Val::Str(s) => values::parse_number(s)?,
        _ => return None,
    };
    Some(if integer { f.trunc() } else { f })
}

fn number_matches(op: &Op, v: &Val<'_>, integer: bool) -> bool {
    let Some(x) = doc_number(v, integer) else {
        return false;
    };
    match op {
        Op::Exists => true,
        Op::Term(q) | Op::Match { q, .. } | Op::Phrase(q) => q.num.is_some_and(|n| n == x),
        Op::Wildcard { .. } => false,
        Op::Range(r) => in_range(r, |b| b.num.and_then(|n| x.partial_cmp(&n))),
    }
}

fn doc_date(v: &Val<'_>) -> Option<i64> {
    match v {
        Val::Str(s) => values::doc_date_str(s),
        Val::Num(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        _ => None,
    }
}

fn date_matches(op: &Op, v: &Val<'_>) -> bool {
    let Some(t) = doc_date(v) else { return false };
    match op {
        Op::Exists => true,
        Op::Term(q) | Op::Match { q, .. } | Op::Phrase(q) => {
            q.date.is_some_and(|(lo, hi)| lo <= t && t <= hi)
        }
        Op::Wildcard { .. } => false,
        Op::Range(r) => in_range(r, |b| b.date.map(|d| t.cmp(&d))),
    }
}

fn bool_matches(op: &Op, v: &Val<'_>) -> bool {
    let x = match v {
        Val::Bool(b) => *b,
        Val::Str(s) => match values::parse_bool(s) {
            Some(b) => b,
            None => return false,
        },
        _ => return false,
    };
    match op {
        Op::Exists => true,
        Op::Term(q) | Op::Match { q, .. } | Op::Phrase(q) => q.boolean == Some(x),
        Op::Wildcard { .. } => false,
        Op::Range(r) => in_range(r, |b| values::parse_bool(&b.raw).map(|y| x.cmp(&y))),
    }
}

fn ip_matches(op: &Op, v: &Val<'_>) -> bool {
    let Val::Str(s) = v else { return false };
    let Some(x) = values::ip_u128(s) else {
        return false;
    };
    match op {
        Op::Exists => true,
        Op::Term(q) | Op::Match { q, .. } | Op::Phrase(q) => {
            q.ip.is_some_and(|(lo, hi)| lo <= x && x <= hi)
        }
        Op::Wildcard { .. } => false,
        Op::Range(r) => in_range(r, |b| b.ip.map(|y| x.cmp(&y))),
    }
}

/// A value of an unmapped field, typed as dynamic mapping types it.
fn dynamic_matches(op: &Op, v: &Val<'_>) -> bool {
    match v {
        Val::Str(s) => {
            if values::parse_date(s, false).is_some() && looks_like_date(s) {
                date_matches(op, v)
            } else {
                text_matches(op, s)
            }
        }
        Val::Num(n) => number_matches(op, v, n.is_i64() || n.is_u64()),
        Val::Bool(_) => bool_matches(op, v),
        Val::Obj(m) => matches!(op, Op::Exists) && has_leaf(m),
    }
}

/// Dynamic date detection: `strict_date_optional_time` with at least a full date.
fn looks_like_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 10 && b.get(4) == Some(&b'-') && b.get(7) == Some(&b'-')
}

fn free_text(ft: &FreeText, doc: &PreparedDoc<'_>) -> bool {
    let op = match &ft.glob {
        Some((glob, text_glob)) => Op::Wildcard {
            glob: glob.clone(),
            text_glob: text_glob.clone(),
        },
        None if ft.phrase => Op::Phrase(ft.q.clone()),
        None => Op::Match {
            q: ft.q.clone(),
            all: false,
        },
    };
    let mut seen_constants: Vec<&str> = Vec::new();
    for (path, v) in &doc.leaves {
        let (kind, _) = resolve(&ft.catalog, path);
        if matches!(kind, Kind::Constant { .. }) {
            seen_constants.push(path);
        }
        let hit = match kind {
            // `default_field: *` also searches the `.keyword` sub-field of dynamic strings.
            Kind::Dynamic => {
                dynamic_matches(&op, v)
                    || (matches!(v, Val::Str(_))
                        && keyword_matches(&op, std::slice::from_ref(v), Some(256)))
            }
            // Typed fields: `lenient: true` turns unparseable values into no match.
            kind => leaf_matches(&kind, &op, std::slice::from_ref(v)),
        };
        if hit {
            return true;
        }
    }
    ft.catalog.iter().any(|spec| {
        spec.constant_value.as_deref().is_some_and(|c| {
            !seen_constants.contains(&spec.name.as_str())
                && keyword_matches(&op, &[Val::Str(c)], None)
        })
    })
}
