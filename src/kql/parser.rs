//! Recursive-descent parser for Kibana's KQL grammar (`@kbn/es-query` `grammar.peggy`).
//!
//! Each grammar rule is one method, tried in the grammar's order with the same backtracking, so
//! the accepted language and the tree are Kibana's. Errors are reported the way the peggy-generated
//! parser reports them: the furthest offset any rule failed at, with the set of things expected
//! there (named rules such as `value` count as one expectation; rules called inside a named rule
//! or a lookahead record nothing). Kibana compiles the grammar with `cache: true`, so a rule
//! evaluated a second time at an offset records nothing; this matters only for `Space` and
//! `Literal`, the two rules first evaluated silently and later loudly, and is reproduced for them.
//!
//! Kibana-specific behaviour kept on purpose:
//! - unquoted values may contain spaces (`a:hello world` is one value) and are trimmed;
//! - a `not` followed by whitespace ends an unquoted value, even inside a word (`cannot be`);
//! - numbers are not recognised (Kibana removed number parsing in 7.12): `200` is a string;
//!   unquoted `true` / `false` are booleans; `null` stays the string `null`;
//! - `\n`, `\r`, `\t` are escaped whitespace, `\uXXXX` a UTF-16 code unit (a lone surrogate
//!   becomes U+FFFD), `\or` / `\and` / `\not` escaped keywords (though `\not` reads as `\n` + `ot`,
//!   exactly as in Kibana).

use super::ast::{Ast, Field, LiteralKind, Part, RangeOp, Value};

/// Deepest nesting of `(` and `{` accepted; deeper queries fail with a [`ParseError`].
pub const MAX_DEPTH: usize = 100;

/// A KQL syntax error, with the offset where parsing failed and Kibana's message.
///
/// `Display` prints the message only (Kibana's `shortMessage`); [`ParseError::render`] adds the
/// query line and a caret line, like Kibana's `KQLSyntaxError.message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    /// Offset (in characters of the input) where the error was detected.
    pub offset: usize,
    /// Kibana-style message, e.g. `Expected "(", "{", value, whitespace but end of input found.`
    pub message: String,
    /// The input, kept to render the caret line.
    pub input: String,
}

impl ParseError {
    /// The message, the query and a caret line under the offset, joined by newlines:
    ///
    /// ```text
    /// Expected "(", "{", value, whitespace but end of input found.
    /// response:
    /// ---------^
    /// ```
    pub fn render(&self) -> String {
        format!(
            "{}\n{}\n{}^",
            self.message,
            self.input,
            "-".repeat(self.offset)
        )
    }
}

/// Parses a KQL query.
///
/// Blank input, `*` and `*:*` give [`Ast::MatchAll`]; `field:*` gives [`Ast::Exists`]; value
/// lists are distributed over their field; one-element `and` / `or` collapse to the element.
pub fn parse(input: &str) -> Result<Ast, ParseError> {
    Parser::new(input).start()
}

// Expectation texts, already in the form Kibana's KQLSyntaxError prints them.
const E_WHITESPACE: &str = "whitespace";
const E_VALUE: &str = "value";
const E_FIELD: &str = "field name";
const E_LITERAL: &str = "literal";
const E_OR: &str = "OR";
const E_AND: &str = "AND";
const E_NOT: &str = "NOT";
const E_END: &str = "end of input";
const E_LPAREN: &str = "\"(\"";
const E_RPAREN: &str = "\")\"";
const E_LBRACE: &str = "\"{\"";
const E_RBRACE: &str = "\"}\"";
const E_COLON: &str = "\":\"";

/// A hard failure that stops parsing (as opposed to a grammar alternative failing).
type Fatal = ParseError;
/// `Ok(None)`: the rule did not match (the caller backtracks).
type PResult<T> = Result<Option<T>, Fatal>;

/// A parsed value list before it is applied to its field (`f:(a or not b)`).
enum ValueTree {
    Or(Vec<ValueTree>),
    And(Vec<ValueTree>),
    Not(Box<ValueTree>),
    Leaf(Value),
}

impl ValueTree {
    fn apply(self, field: &Field) -> Ast {
        match self {
            ValueTree::Or(items) => Ast::Or(items.into_iter().map(|t| t.apply(field)).collect()),
            ValueTree::And(items) => Ast::And(items.into_iter().map(|t| t.apply(field)).collect()),
            ValueTree::Not(t) => Ast::Not(Box::new(t.apply(field))),
            ValueTree::Leaf(v) => make_is(Some(field.clone()), v),
        }
    }
}

/// Kibana's `is` function on a parsed field and value: `*` alone means match-all (no field or
/// the field `*`) or exists (any other field).
fn make_is(field: Option<Field>, value: Value) -> Ast {
    let match_all_value = !value.quoted && matches!(value.parts.as_slice(), [Part::Wildcard]);
    match field {
        None if match_all_value => Ast::MatchAll,
        Some(f) if match_all_value => {
            if f.wildcard && f.name == "*" {
                Ast::MatchAll
            } else {
                Ast::Exists { field: f }
            }
        }
        field => Ast::Is { field, value },
    }
}

fn field_of(value: Value) -> Field {
    Field {
        wildcard: value.is_wildcard(),
        name: value.joined('*'),
    }
}

/// The grammar's `Space`.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n' | '\u{a0}')
}

/// The grammar's `SpecialCharacter`.
pub(crate) fn is_special(c: char) -> bool {
    matches!(
        c,
        '\\' | '(' | ')' | ':' | '<' | '>' | '"' | '*' | '{' | '}'
    )
}

/// Whitespace as JavaScript's `String.prototype.trim` sees it.
pub(crate) fn is_js_trim_space(c: char) -> bool {
    (c.is_whitespace() && c != '\u{85}') || c == '\u{feff}'
}

/// The kind Kibana gives an unquoted literal with this (trimmed, wildcard-free) text.
pub(crate) fn unquoted_kind(text: &str) -> LiteralKind {
    match text {
        "true" | "false" => LiteralKind::Boolean,
        _ => LiteralKind::String,
    }
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
    /// > 0 inside a named rule or a lookahead: failures are not recorded.
    silent: u32,
    max_fail_pos: usize,
    expected: Vec<&'static str>,
    /// Offsets where `Space` / `Literal` were already evaluated (peggy's result cache).
    space_seen: Vec<bool>,
    literal_seen: Vec<bool>,
    depth: usize,
    /// The last literal parsed, by start offset (a speed-up only: literals are pure).
    lit_cache: Option<(usize, Option<(Value, usize)>)>,
}

impl<'a> Parser<'a> {
    fn new(src: &'a str) -> Parser<'a> {
        Parser {
            src,
            pos: 0,
            silent: 0,
            max_fail_pos: 0,
            expected: Vec::new(),
            space_seen: vec![false; src.len() + 1],
            literal_seen: vec![false; src.len() + 1],
            depth: 0,
            lit_cache: None,
        }
    }

    // ----- low-level helpers -------------------------------------------------------------

    fn peek_at(&self, pos: usize) -> Option<char> {
        self.src.get(pos..).and_then(|s| s.chars().next())
    }

    fn fail(&mut self, pos: usize, expected: &'static str) {
        if self.silent > 0 || pos < self.max_fail_pos {
            return;
        }
        if pos > self.max_fail_pos {
            self.max_fail_pos = pos;
            self.expected.clear();
        }
        self.expected.push(expected);
    }

    /// Matches a literal string (case-sensitive) at the current offset.
    fn lit(&mut self, s: &str, expected: &'static str) -> bool {
        if self.src[self.pos..].starts_with(s) {
            self.pos += s.len();
            true
        } else {
            self.fail(self.pos, expected);
            false
        }
    }

    /// Matches an ASCII word case-insensitively at `pos`; returns its end.
    fn word_ci_at(&self, pos: usize, word: &str) -> Option<usize> {
        let end = pos + word.len();
        let s = self.src.as_bytes().get(pos..end)?;
        s.eq_ignore_ascii_case(word.as_bytes()).then_some(end)
    }

    /// The `Space` rule at `pos` (cached like peggy: only a first, loud evaluation records).
    fn space_at(&mut self, pos: usize) -> Option<usize> {
        let first = !self.space_seen[pos];
        self.space_seen[pos] = true;
        match self.peek_at(pos) {
            Some(c) if is_space(c) => Some(pos + c.len_utf8()),
            _ => {
                if first {
                    self.fail(pos, E_WHITESPACE);
                }
                None
            }
        }
    }

    fn space(&mut self) -> bool {
        match self.space_at(self.pos) {
            Some(end) => {
                self.pos = end;
                true
            }
            None => false,
        }
    }

    fn spaces_star(&mut self) {
        while self.space() {}
    }

    fn spaces_plus(&mut self) -> bool {
        if !self.space() {
            return false;
        }
        self.spaces_star();
        true
    }

    fn enter(&mut self, at: usize) -> Result<(), Fatal> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error_at(
                at,
                format!("query nesting exceeds the maximum depth of {MAX_DEPTH}"),
            ));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    fn error_at(&self, byte_pos: usize, message: String) -> ParseError {
        ParseError {
            offset: self.src[..byte_pos].chars().count(),
            message,
            input: self.src.to_string(),
        }
    }

    // ----- grammar rules ------------------------------------------------------------------

    /// `start = Space* OrQuery? OptionalSpace`, then end of input.
    fn start(mut self) -> Result<Ast, ParseError> {
        self.spaces_star();
        let save = self.pos;
        let query = self.or_query()?;
        if query.is_none() {
            self.pos = save;
        }
        self.spaces_star();
        if self.pos == self.src.len() {
            return Ok(query.unwrap_or(Ast::MatchAll));
        }
        self.fail(self.pos, E_END);
        Err(self.syntax_error())
    }

    fn syntax_error(&mut self) -> ParseError {
        let mut expected = std::mem::take(&mut self.expected);
        expected.sort_unstable();
        expected.dedup();
        let found = match self.peek_at(self.max_fail_pos) {
            Some(c) => format!("\"{c}\""),
            None => E_END.to_string(),
        };
        let message = format!("Expected {} but {found} found.", expected.join(", "));
        self.error_at(self.max_fail_pos, message)
    }

    /// A named keyword rule: `Or = Space+ 'or'i Space+`, `And = ...`, `Not = 'not'i Space+`.
    fn keyword_op(&mut self, word: &str, leading_space: bool, name: &'static str) -> bool {
        let start = self.pos;
        self.silent += 1;
        let mut ok = !leading_space || self.spaces_plus();
        if ok {
            match self.word_ci_at(self.pos, word) {
                Some(end) => {
                    self.pos = end;
                    ok = self.spaces_plus();
                }
                None => ok = false,
            }
        }
        self.silent -= 1;
        if !ok {
            self.pos = start;
            self.fail(start, name);
        }
        ok
    }

    /// `OrQuery = AndQuery (Or AndQuery)+ / AndQuery`.
    fn or_query(&mut self) -> PResult<Ast> {
        let start = self.pos;
        let Some(head) = self.and_query()? else {
            self.pos = start;
            return Ok(None);
        };
        let mut items = vec![head];
        loop {
            let save = self.pos;
            if !self.keyword_op("or", true, E_OR) {
                break;
            }
            match self.and_query()? {
                Some(q) => items.push(q),
                None => {
                    self.pos = save;
                    break;
                }
            }
        }
        Ok(Some(collapse(items, Ast::Or)))
    }

    /// `AndQuery = NotQuery (And NotQuery)+ / NotQuery`.
    fn and_query(&mut self) -> PResult<Ast> {
        let start = self.pos;
        let Some(head) = self.not_query()? else {
            self.pos = start;
            return Ok(None);
        };
        let mut items = vec![head];
        loop {
            let save = self.pos;
            if !self.keyword_op("and", true, E_AND) {
                break;
            }
            match self.not_query()? {
                Some(q) => items.push(q),
                None => {
                    self.pos = save;
                    break;
                }
            }
        }
        Ok(Some(collapse(items, Ast::And)))
    }

    /// `NotQuery = Not SubQuery / SubQuery`.
    fn not_query(&mut self) -> PResult<Ast> {
        let start = self.pos;
        if self.keyword_op("not", false, E_NOT) {
            if let Some(q) = self.sub_query()? {
                return Ok(Some(Ast::Not(Box::new(q))));
            }
            self.pos = start;
        }
        self.sub_query()
    }

    /// `SubQuery = '(' Space* OrQuery OptionalSpace ')' / NestedQuery`.
    fn sub_query(&mut self) -> PResult<Ast> {
        let start = self.pos;
        if self.lit("(", E_LPAREN) {
            self.enter(start)?;
            self.spaces_star();
            let inner = self.or_query()?;
            self.leave();
            if let Some(q) = inner {
                self.spaces_star();
                if self.lit(")", E_RPAREN) {
                    return Ok(Some(q));
                }
            }
            self.pos = start;
        }
        self.nested_query()
    }

    /// `NestedQuery = Field Space* ':' Space* '{' Space* OrQuery OptionalSpace '}' / Expression`.
    fn nested_query(&mut self) -> PResult<Ast> {
        let start = self.pos;
        if let Some(path) = self.field() {
            self.spaces_star();
            if self.lit(":", E_COLON) {
                self.spaces_star();
                let brace = self.pos;
                if self.lit("{", E_LBRACE) {
                    self.enter(brace)?;
                    self.spaces_star();
                    let inner = self.or_query()?;
                    self.leave();
                    if let Some(q) = inner {
                        self.spaces_star();
                        if self.lit("}", E_RBRACE) {
                            return Ok(Some(Ast::Nested {
                                path,
                                query: Box::new(q),
                            }));
                        }
                    }
                }
            }
        }
        self.pos = start;
        self.expression()
    }

    /// `Expression = FieldRangeExpression / FieldValueExpression / ValueExpression`.
    fn expression(&mut self) -> PResult<Ast> {
        let start = self.pos;
        // FieldRangeExpression = Field Space* RangeOperator Space* Literal
        if let Some(field) = self.field() {
            self.spaces_star();
            if let Some(op) = self.range_operator() {
                self.spaces_star();
                if let Some(value) = self.literal() {
                    return Ok(Some(Ast::Range { field, op, value }));
                }
            }
        }
        self.pos = start;
        // FieldValueExpression = Field Space* ':' Space* ListOfValues
        if let Some(field) = self.field() {
            self.spaces_star();
            if self.lit(":", E_COLON) {
                self.spaces_star();
                if let Some(tree) = self.list_of_values()? {
                    return Ok(Some(tree.apply(&field)));
                }
            }
        }
        self.pos = start;
        // ValueExpression = Value
        Ok(self.value().map(|v| make_is(None, v)))
    }

    /// `RangeOperator = '<=' / '>=' / '<' / '>'`.
    fn range_operator(&mut self) -> Option<RangeOp> {
        for (s, op) in [
            ("<=", RangeOp::Lte),
            (">=", RangeOp::Gte),
            ("<", RangeOp::Lt),
            (">", RangeOp::Gt),
        ] {
            let expected = match op {
                RangeOp::Lte => "\"<=\"",
                RangeOp::Gte => "\">=\"",
                RangeOp::Lt => "\"<\"",
                RangeOp::Gt => "\">\"",
            };
            if self.lit(s, expected) {
                return Some(op);
            }
        }
        None
    }

    /// `ListOfValues = '(' Space* OrListOfValues OptionalSpace ')' / Value`.
    fn list_of_values(&mut self) -> PResult<ValueTree> {
        let start = self.pos;
        if self.lit("(", E_LPAREN) {
            self.enter(start)?;
            self.spaces_star();
            let inner = self.or_list()?;
            self.leave();
            if let Some(t) = inner {
                self.spaces_star();
                if self.lit(")", E_RPAREN) {
                    return Ok(Some(t));
                }
            }
            self.pos = start;
        }
        Ok(self.value().map(ValueTree::Leaf))
    }

    /// `OrListOfValues = AndListOfValues (Or AndListOfValues)+ / AndListOfValues`.
    fn or_list(&mut self) -> PResult<ValueTree> {
        let Some(head) = self.and_list()? else {
            return Ok(None);
        };
        let mut items = vec![head];
        loop {
            let save = self.pos;
            if !self.keyword_op("or", true, E_OR) {
                break;
            }
            match self.and_list()? {
                Some(t) => items.push(t),
                None => {
                    self.pos = save;
                    break;
                }
            }
        }
        Ok(Some(collapse(items, ValueTree::Or)))
    }

    /// `AndListOfValues = NotListOfValues (And NotListOfValues)+ / NotListOfValues`.
    fn and_list(&mut self) -> PResult<ValueTree> {
        let Some(head) = self.not_list()? else {
            return Ok(None);
        };
        let mut items = vec![head];
        loop {
            let save = self.pos;
            if !self.keyword_op("and", true, E_AND) {
                break;
            }
            match self.not_list()? {
                Some(t) => items.push(t),
                None => {
                    self.pos = save;
                    break;
                }
            }
        }
        Ok(Some(collapse(items, ValueTree::And)))
    }

    /// `NotListOfValues = Not ListOfValues / ListOfValues`.
    fn not_list(&mut self) -> PResult<ValueTree> {
        let start = self.pos;
        if self.keyword_op("not", false, E_NOT) {
            if let Some(t) = self.list_of_values()? {
                return Ok(Some(ValueTree::Not(Box::new(t))));
            }
            self.pos = start;
        }
        self.list_of_values()
    }

    /// `Field "fieldName" = Literal`.
    fn field(&mut self) -> Option<Field> {
        let start = self.pos;
        self.literal_seen[start] = true;
        match self.raw_literal(start) {
            Some((v, end)) => {
                self.pos = end;
                Some(field_of(v))
            }
            None => {
                self.fail(start, E_FIELD);
                None
            }
        }
    }

    /// `Value "value" = QuotedString / UnquotedLiteral`.
    fn value(&mut self) -> Option<Value> {
        let start = self.pos;
        match self.raw_literal(start) {
            Some((v, end)) => {
                self.pos = end;
                Some(v)
            }
            None => {
                self.fail(start, E_VALUE);
                None
            }
        }
    }

    /// `Literal "literal" = QuotedString / UnquotedLiteral` (called loudly: a range's value).
    fn literal(&mut self) -> Option<Value> {
        let start = self.pos;
        let first = !self.literal_seen[start];
        self.literal_seen[start] = true;
        match self.raw_literal(start) {
            Some((v, end)) => {
                self.pos = end;
                Some(v)
            }
            None => {
                if first {
                    self.fail(start, E_LITERAL);
                }
                None
            }
        }
    }

    /// `QuotedString / UnquotedLiteral` at `start`, silently. Returns the value and its end.
    fn raw_literal(&mut self, start: usize) -> Option<(Value, usize)> {
        if let Some((at, cached)) = &self.lit_cache {
            if *at == start {
                return cached.clone();
            }
        }
        self.silent += 1;
        let result = self
            .quoted_string(start)
            .or_else(|| self.unquoted_literal(start));
        self.silent -= 1;
        self.lit_cache = Some((start, result.clone()));
        result
    }

    /// `'"' QuotedCharacter* '"'`.
    fn quoted_string(&self, start: usize) -> Option<(Value, usize)> {
        if self.peek_at(start) != Some('"') {
            return None;
        }
        let mut p = start + 1;
        let mut text = String::new();
        let mut units = Utf16Decoder::default();
        loop {
            let c = self.peek_at(p)?;
            match c {
                '"' => {
                    units.flush(&mut text);
                    let value = Value {
                        parts: text_parts(text),
                        quoted: true,
                        kind: LiteralKind::String,
                    };
                    return Some((value, p + 1));
                }
                '\\' => {
                    let next = self.peek_at(p + 1);
                    if let Some(ws) = next.and_then(escaped_whitespace) {
                        units.flush(&mut text);
                        text.push(ws);
                        p += 2;
                    } else if let Some(unit) = self.unicode_escape(p) {
                        units.push(unit, &mut text);
                        p += 6;
                    } else if matches!(next, Some('\\' | '"')) {
                        units.flush(&mut text);
                        text.push(next.unwrap_or('\\'));
                        p += 2;
                    } else {
                        units.flush(&mut text);
                        text.push('\\');
                        p += 1;
                    }
                }
                c => {
                    units.flush(&mut text);
                    text.push(c);
                    p += c.len_utf8();
                }
            }
        }
    }

    /// `\uXXXX` at `p` (which holds the backslash): the UTF-16 code unit.
    fn unicode_escape(&self, p: usize) -> Option<u16> {
        let hex = self.src.get(p + 1..p + 6)?;
        let digits = hex.strip_prefix('u')?;
        if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u16::from_str_radix(digits, 16).ok()
    }

    /// `UnquotedCharacter+`, trimmed, typed.
    fn unquoted_literal(&mut self, start: usize) -> Option<(Value, usize)> {
        let mut p = start;
        let mut chars: Vec<Option<char>> = Vec::new(); // None = wildcard
        let mut units = Utf16Decoder::default();
        let mut pending: Vec<char> = Vec::new();
        loop {
            let c = self.peek_at(p);
            if c == Some('\\') {
                let next = self.peek_at(p + 1);
                if let Some(ws) = next.and_then(escaped_whitespace) {
                    units.flush_into(&mut pending);
                    pending.push(ws);
                    p += 2;
                    continue;
                }
                if let Some(n) = next.filter(|&n| is_special(n)) {
                    units.flush_into(&mut pending);
                    pending.push(n);
                    p += 2;
                    continue;
                }
                if let Some(unit) = self.unicode_escape(p) {
                    units.push_into(unit, &mut pending);
                    p += 6;
                    continue;
                }
                if let Some(end) = ["or", "and", "not"]
                    .iter()
                    .find_map(|w| self.word_ci_at(p + 1, w))
                {
                    units.flush_into(&mut pending);
                    pending.extend(self.src[p + 1..end].chars());
                    p = end;
                    continue;
                }
                break; // a lone backslash is a special character
            }
            if c == Some('*') {
                units.flush_into(&mut pending);
                chars.extend(pending.drain(..).map(Some));
                chars.push(None);
                p += 1;
                continue;
            }
            if c.is_some_and(is_special) {
                break;
            }
            if self.keyword_at(p) {
                break;
            }
            let Some(c) = c else { break };
            units.flush_into(&mut pending);
            pending.push(c);
            p += c.len_utf8();
        }
        units.flush_into(&mut pending);
        chars.extend(pending.drain(..).map(Some));
        if p == start {
            return None;
        }
        // JavaScript `trim()` on the joined sequence: wildcards are never whitespace.
        let is_ws = |c: &Option<char>| c.is_some_and(is_js_trim_space);
        let first = chars.iter().position(|c| !is_ws(c)).unwrap_or(chars.len());
        let last = chars
            .iter()
            .rposition(|c| !is_ws(c))
            .map_or(first, |i| i + 1);
        let mut parts = Vec::new();
        let mut text = String::new();
        for c in &chars[first..last] {
            match c {
                Some(c) => text.push(*c),
                None => {
                    if !text.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut text)));
                    }
                    parts.push(Part::Wildcard);
                }
            }
        }
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        let kind = match parts.as_slice() {
            [Part::Text(t)] => unquoted_kind(t),
            _ => LiteralKind::String,
        };
        let value = Value {
            parts,
            quoted: false,
            kind,
        };
        Some((value, p))
    }

    /// The lookahead `Keyword = Space 'or'i Space / Space 'and'i Space / 'not'i Space` at `p`
    /// (evaluated silently; marks the `Space` offsets it evaluates, as peggy's cache would).
    fn keyword_at(&mut self, p: usize) -> bool {
        self.silent += 1;
        let found = self.keyword_at_inner(p);
        self.silent -= 1;
        found
    }

    fn keyword_at_inner(&mut self, p: usize) -> bool {
        if let Some(after_space) = self.space_at(p) {
            for w in ["or", "and"] {
                if let Some(end) = self.word_ci_at(after_space, w) {
                    if self.space_at(end).is_some() {
                        return true;
                    }
                }
            }
        }
        if let Some(end) = self.word_ci_at(p, "not") {
            if self.space_at(end).is_some() {
                return true;
            }
        }
        false
    }
}

fn escaped_whitespace(c: char) -> Option<char> {
    match c {
        't' => Some('\t'),
        'r' => Some('\r'),
        'n' => Some('\n'),
        _ => None,
    }
}

fn text_parts(text: String) -> Vec<Part> {
    if text.is_empty() {
        Vec::new()
    } else {
        vec![Part::Text(text)]
    }
}

fn collapse<T>(mut items: Vec<T>, wrap: fn(Vec<T>) -> T) -> T {
    match items.pop() {
        Some(only) if items.is_empty() => only,
        Some(last) => {
            items.push(last);
            wrap(items)
        }
        // Callers always pass at least one item; an empty list cannot be built.
        None => wrap(items),
    }
}

/// Joins `\uXXXX` escapes into characters: a surrogate pair makes one character, a lone
/// surrogate becomes U+FFFD.
#[derive(Default)]
struct Utf16Decoder {
    high: Option<u16>,
}

impl Utf16Decoder {
    fn push(&mut self, unit: u16, out: &mut String) {
        let mut buf = Vec::new();
        self.push_into(unit, &mut buf);
        out.extend(buf);
    }

    fn flush(&mut self, out: &mut String) {
        if self.high.take().is_some() {
            out.push(char::REPLACEMENT_CHARACTER);
        }
    }

    fn push_into(&mut self, unit: u16, out: &mut Vec<char>) {
        match (self.high.take(), unit) {
            (Some(high), 0xDC00..=0xDFFF) => {
                let c = char::decode_utf16([high, unit])
                    .next()
                    .and_then(Result::ok)
                    .unwrap_or(char::REPLACEMENT_CHARACTER);
                out.push(c);
            }
            (high, _) => {
                if high.is_some() {
                    out.push(char::REPLACEMENT_CHARACTER);
                }
                if (0xD800..=0xDBFF).contains(&unit) {
                    self.high = Some(unit);
                } else {
                    out.push(
                        char::from_u32(u32::from(unit)).unwrap_or(char::REPLACEMENT_CHARACTER),
                    );
                }
            }
        }
    }

    fn flush_into(&mut self, out: &mut Vec<char>) {
        if self.high.take().is_some() {
            out.push(char::REPLACEMENT_CHARACTER);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn is(field: &str, value: &str) -> Ast {
        Ast::Is {
            field: Some(Field {
                name: field.to_string(),
                wildcard: false,
            }),
            value: Value::text(value),
        }
    }

    #[test]
    fn field_value() {
        assert_eq!(parse("a:b").unwrap(), is("a", "b"));
    }

    #[test]
    fn kibana_syntax_error_examples() {
        let cases = [
            (
                "response:",
                "Expected \"(\", \"{\", value, whitespace but end of input found.",
                9,
            ),
            (
                "response:200 or ",
                "Expected \"(\", NOT, field name, value but end of input found.",
                16,
            ),
            (
                "foo:ba:r",
                "Expected AND, OR, end of input but \":\" found.",
                6,
            ),
        ];
        for (q, msg, off) in cases {
            let e = parse(q).unwrap_err();
            assert_eq!((e.message.as_str(), e.offset), (msg, off), "{q}");
        }
    }

    #[test]
    fn depth_limit() {
        let q = format!(
            "{}a{}",
            "(".repeat(MAX_DEPTH + 1),
            ")".repeat(MAX_DEPTH + 1)
        );
        let e = parse(&q).unwrap_err();
        assert!(e.message.contains("maximum depth"), "{}", e.message);
        let ok = format!("{}a{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        assert_eq!(
            parse(&ok).unwrap(),
            Ast::Is {
                field: None,
                value: Value::text("a")
            }
        );
    }
}
