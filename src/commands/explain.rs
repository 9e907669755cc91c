//! `detectd explain`: the query DSL of a KQL query, or every request of one rule execution.

use std::io::Write;
use std::process::ExitCode;

use crate::cli::{Cli, ExplainArgs};
use crate::dsl::{load_field_caps, to_dsl};
use crate::fields::FieldCatalog;

/// `detectd explain`: the query DSL Kibana builds for `--kql QUERY`, or, for a rule file, every
/// Elasticsearch request one execution of the rule sends for the window of `--at`
/// ([`crate::explain`]).
pub fn run(_cli: &Cli, args: &ExplainArgs) -> anyhow::Result<ExitCode> {
    let fields = match &args.field_caps {
        Some(path) => load_field_caps(path)?,
        None => FieldCatalog::builtin(),
    };
    let text = match (&args.kql, &args.rule) {
        (Some(kql), _) => {
            let ast = crate::kql::parse(kql).map_err(|e| anyhow::anyhow!("kql: {}", e.render()))?;
            serde_json::to_string_pretty(&to_dsl(&ast, &fields)?)?
        }
        (None, Some(path)) => {
            let at = explain_time(args.at.as_deref())?;
            let loaded = crate::rules::load_file(path)?;
            let text = crate::explain::explain_rule(&loaded.rule, at, &fields)?;
            text.trim_end().to_string()
        }
        (None, None) => anyhow::bail!("explain needs a rule file or --kql QUERY"),
    };
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}") {
        // A closed pipe (`| head`) is not an error worth reporting.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// `--at`: RFC 3339 (or another absolute form), or date math against the current time.
fn explain_time(at: Option<&str>) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    let now = chrono::Utc::now();
    let Some(s) = at else { return Ok(now) };
    if let Some(t) = crate::time::parse_absolute(s) {
        return Ok(t);
    }
    crate::time::parse_datemath(s)
        .map(|d| d.resolve(now))
        .map_err(|e| anyhow::anyhow!("--at {s}: {e}"))
}
