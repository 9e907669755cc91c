//! The KQL abstract syntax tree: the one representation of a query that both consumers read
//! (`dsl` turns it into Elasticsearch query DSL, `matcher` evaluates it on documents).
//!
//! It mirrors the node types of Kibana's `@kbn/es-query` kuery AST after parsing:
//! value lists such as `f:(a or b)` are already distributed over the field
//! (`Or([Is f:a, Is f:b])`), exactly as Kibana's grammar does it.
//! Nothing here knows about Elasticsearch.

use std::fmt;

/// A parsed KQL query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ast {
    /// `a and b and c` (also `f:(a and b)` after distribution). Never empty.
    And(Vec<Ast>),
    /// `a or b or c`. Never empty.
    Or(Vec<Ast>),
    /// `not a`.
    Not(Box<Ast>),
    /// `field:value`, or free text (`value` alone) when `field` is `None`.
    /// `field:*` is `Exists`, never `Is`.
    Is { field: Option<Field>, value: Value },
    /// `field:*`.
    Exists { field: Field },
    /// `field < value`, `field <= value`, `field > value`, `field >= value`.
    Range {
        field: Field,
        op: RangeOp,
        value: Value,
    },
    /// `path:{ query }`; field names inside `query` are relative to `path`.
    Nested { path: Field, query: Box<Ast> },
    /// The empty query (blank input, `*`, `*:*`): matches every document.
    MatchAll,
}

/// A field name as written (escapes removed). `wildcard` is true when the name contains an
/// unescaped `*` (e.g. `machine*`), which then stands for any sequence of characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Field {
    pub name: String,
    pub wildcard: bool,
}

/// A value as written. `parts` alternates literal text (escapes removed) and `*` wildcards;
/// a quoted value never contains `Wildcard` (a quoted `*` is literal text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value {
    /// In trees built by `parse`, adjacent `Text` parts are merged and never empty (the empty
    /// string is `parts: []`).
    pub parts: Vec<Part>,
    /// `"quoted phrase"`: Kibana builds phrase queries (`match_phrase`) for these.
    pub quoted: bool,
    /// What the literal looks like (Kibana keeps `true` typed; we keep the text and note it).
    pub kind: LiteralKind,
}

/// One piece of a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Text(String),
    /// An unescaped `*` in an unquoted value: any sequence of characters (possibly empty).
    Wildcard,
}

/// The type Kibana's grammar gives an unquoted literal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiteralKind {
    /// Quoted values, and unquoted ones other than `true` / `false` (`200` and `null` included).
    String,
    /// Never produced by `kql::parse`: Kibana stopped recognising numbers in KQL in 7.12
    /// (elastic/kibana#93658), so `200` is a string there too.
    Number,
    /// Unquoted `true` or `false` (exactly, lowercase).
    Boolean,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeOp {
    Lt,
    Lte,
    Gt,
    Gte,
}

impl Value {
    /// A plain (non-wildcard) string value.
    pub fn text(s: impl Into<String>) -> Value {
        Value {
            parts: vec![Part::Text(s.into())],
            quoted: false,
            kind: LiteralKind::String,
        }
    }

    /// True when the value has at least one `*` wildcard.
    pub fn is_wildcard(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Wildcard))
    }

    /// The literal text when the value has no wildcard (concatenated text parts).
    pub fn as_literal(&self) -> Option<String> {
        if self.is_wildcard() {
            return None;
        }
        Some(self.joined('*'))
    }

    /// The value with each wildcard replaced by `wildcard_repr` (no escaping).
    pub fn joined(&self, wildcard_repr: char) -> String {
        let mut s = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => s.push_str(t),
                Part::Wildcard => s.push(wildcard_repr),
            }
        }
        s
    }
}

impl fmt::Display for RangeOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RangeOp::Lt => "<",
            RangeOp::Lte => "<=",
            RangeOp::Gt => ">",
            RangeOp::Gte => ">=",
        })
    }
}
