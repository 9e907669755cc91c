//! Printing an [`Ast`] back to KQL text that [`super::parse`] reads to the same tree.
//!
//! Values and field names are escaped the way the grammar requires: special characters
//! (`\ ( ) : < > " * { }`) get a backslash, tab / CR / LF become `\t` `\r` `\n`, a keyword that
//! would end an unquoted value (` or `, ` and `, `not `) is escaped (`\or`, `\and`, `\u006eot`).
//! Field names that cannot be written unquoted (empty, or with leading or trailing whitespace)
//! are quoted. Trees the parser never builds (an empty `And`, an unquoted value with leading
//! whitespace) are printed as well as KQL allows, without any guarantee.

use std::fmt;

use super::ast::{Ast, Field, Part, Value};
use super::parser::{is_js_trim_space, is_special};

impl Ast {
    /// The query as KQL text; `parse(&ast.to_kql())` gives `ast` back for every tree `parse` builds.
    pub fn to_kql(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Ast {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ast::MatchAll => f.write_str("*"),
            Ast::Or(items) => join(f, items, " or ", |a| matches!(a, Ast::Or(_))),
            Ast::And(items) => join(f, items, " and ", |a| matches!(a, Ast::Or(_) | Ast::And(_))),
            Ast::Not(inner) => {
                f.write_str("not ")?;
                operand(
                    f,
                    inner,
                    matches!(**inner, Ast::Or(_) | Ast::And(_) | Ast::Not(_)),
                )
            }
            Ast::Is { field, value } => {
                if let Some(field) = field {
                    write_field(f, field)?;
                    f.write_str(":")?;
                }
                write_value(f, value)
            }
            Ast::Exists { field } => {
                write_field(f, field)?;
                f.write_str(":*")
            }
            Ast::Range { field, op, value } => {
                write_field(f, field)?;
                write!(f, " {op} ")?;
                write_value(f, value)
            }
            Ast::Nested { path, query } => {
                write_field(f, path)?;
                write!(f, ":{{ {query} }}")
            }
        }
    }
}

fn join(
    f: &mut fmt::Formatter<'_>,
    items: &[Ast],
    sep: &str,
    needs_parens: fn(&Ast) -> bool,
) -> fmt::Result {
    if items.is_empty() {
        return f.write_str("*");
    }
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(sep)?;
        }
        operand(f, item, needs_parens(item))?;
    }
    Ok(())
}

fn operand(f: &mut fmt::Formatter<'_>, ast: &Ast, parens: bool) -> fmt::Result {
    if parens {
        write!(f, "({ast})")
    } else {
        write!(f, "{ast}")
    }
}

fn write_field(f: &mut fmt::Formatter<'_>, field: &Field) -> fmt::Result {
    let bare = !field.name.is_empty()
        && !field.name.starts_with(is_js_trim_space)
        && !field.name.ends_with(is_js_trim_space);
    if !bare && !field.wildcard {
        return write_quoted(f, &field.name);
    }
    let mut out = String::new();
    if field.wildcard {
        // Every `*` of a wildcard field name is a wildcard.
        for (i, piece) in field.name.split('*').enumerate() {
            if i > 0 {
                out.push('*');
            }
            escape_unquoted(piece, &mut out);
        }
    } else {
        escape_unquoted(&field.name, &mut out);
    }
    f.write_str(&out)
}

fn write_value(f: &mut fmt::Formatter<'_>, value: &Value) -> fmt::Result {
    if value.quoted {
        return write_quoted(f, &value.joined('*'));
    }
    if value.parts.is_empty() {
        // The empty unquoted value: an escaped whitespace, trimmed away by the parser.
        return f.write_str("\\t");
    }
    let mut out = String::new();
    for part in &value.parts {
        match part {
            Part::Text(t) => escape_unquoted(t, &mut out),
            Part::Wildcard => out.push('*'),
        }
    }
    f.write_str(&out)
}

fn write_quoted(f: &mut fmt::Formatter<'_>, text: &str) -> fmt::Result {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        if matches!(c, '\\' | '"') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    f.write_str(&out)
}

/// Characters the grammar's `Space` rule accepts (the only ones that form keywords).
fn is_grammar_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n' | '\u{a0}')
}

/// Appends `text` escaped for an unquoted literal.
fn escape_unquoted(text: &str, out: &mut String) {
    let chars: Vec<char> = text.chars().collect();
    let word_at = |i: usize, w: &str| {
        let n = w.len();
        i + n <= chars.len()
            && chars[i..i + n]
                .iter()
                .zip(w.chars())
                .all(|(a, b)| a.eq_ignore_ascii_case(&b))
    };
    for (i, &c) in chars.iter().enumerate() {
        let after_space = i > 0 && is_grammar_space(chars[i - 1]);
        match c {
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            c if is_special(c) => {
                out.push('\\');
                out.push(c);
            }
            // `x or y` / `x and y` inside a value: escape the keyword.
            'o' | 'O' | 'a' | 'A' if after_space && (word_at(i, "or") || word_at(i, "and")) => {
                out.push('\\');
                out.push(c);
            }
            // `not ` anywhere (or at the end, before whatever follows): `\not` would read as
            // `\n` + `ot`, so spell the `n` as a unicode escape.
            'n' | 'N'
                if word_at(i, "not") && chars.get(i + 3).is_none_or(|&n| is_grammar_space(n)) =>
            {
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
}
