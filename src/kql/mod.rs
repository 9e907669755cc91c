//! KQL (Kibana Query Language): parser and AST.
//!
//! `parse(&str) -> Result<Ast, ParseError>` is the only entry point. The grammar is Kibana's
//! (`@kbn/es-query` `kuery.peggy`). This module knows nothing about Elasticsearch or documents:
//! `dsl` and `matcher` are its two consumers. `Ast::to_kql` (also `Display`) prints a tree back to
//! KQL that parses to the same tree.

mod ast;
mod parser;
mod print;

pub use ast::{Ast, Field, LiteralKind, Part, RangeOp, Value};
pub use parser::{parse, ParseError, MAX_DEPTH};
