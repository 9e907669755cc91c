//! KQL (Kibana Query Language): parser and AST.
//!
//! `parse(&str) -> Result<Ast, ParseError>` is the only entry point. The grammar is Kibana's
//! (`@kbn/es-query` `kuery.peggy`). This module knows nothing about Elasticsearch or documents:
//! `dsl` and `matcher` are its two consumers.

mod ast;
mod parser;

pub use ast::{Ast, Field, LiteralKind, Part, RangeOp, Value};
pub use parser::{parse, ParseError};
