//! Recursive-descent parser for Kibana's KQL grammar.

use super::Ast;

/// A KQL syntax error, with the byte offset where parsing failed and Kibana's message.
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

/// Parses a KQL query.
pub fn parse(input: &str) -> Result<Ast, ParseError> {
    Err(ParseError {
        offset: 0,
        message: "kql parser not implemented yet".to_string(),
        input: input.to_string(),
    })
}
