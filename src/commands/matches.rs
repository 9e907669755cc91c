//! `detectd match`: grep ECS NDJSON documents with a KQL query.

use std::io::{BufRead, Write};
use std::process::ExitCode;

use serde_json::Value;

use crate::cli::{Cli, MatchArgs};
use crate::dsl::load_field_caps;
use crate::fields::FieldCatalog;
use crate::matcher::Matcher;

/// `detectd match`: prints the NDJSON lines of the files (or standard input) that match the KQL
/// query, or their number with `--count`. Exit code 0 when something matched, 1 otherwise.
pub fn run(_cli: &Cli, args: &MatchArgs) -> anyhow::Result<ExitCode> {
    let ast = crate::kql::parse(&args.kql)
        .map_err(|e| anyhow::anyhow!("invalid kql query: {}", e.render()))?;
    let catalog = match &args.field_caps {
        Some(path) => load_field_caps(path)?,
        None => FieldCatalog::builtin(),
    };
    let matcher = Matcher::compile(&ast, &catalog)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut count: u64 = 0;
    if args.files.is_empty() {
        let stdin = std::io::stdin();
        count += filter_lines(&matcher, stdin.lock(), "<stdin>", args.count, &mut out)?;
    } else {
        for path in &args.files {
            let file = std::fs::File::open(path)
                .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
            let name = path.display().to_string();
            count += filter_lines(
                &matcher,
                std::io::BufReader::new(file),
                &name,
                args.count,
                &mut out,
            )?;
        }
    }
    if args.count {
        writeln!(out, "{count}")?;
    }
    out.flush()?;
    Ok(if count > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Streams NDJSON lines from `input`, writing the matching ones unless `count_only`.
fn filter_lines(
    matcher: &Matcher,
    mut input: impl BufRead,
    name: &str,
    count_only: bool,
    out: &mut impl Write,
) -> anyhow::Result<u64> {
    let mut line = String::new();
    let mut line_no: u64 = 0;
    let mut count = 0;
    loop {
        line.clear();
        if input.read_line(&mut line)? == 0 {
            break;
        }
        line_no += 1;
        let text = line.trim_end_matches(['\n', '\r']);
        if text.trim().is_empty() {
            continue;
        }
        let doc: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(file = name, line = line_no, error = %e, "skipping invalid json line");
                eprintln!("{name}:{line_no}: invalid json: {e}");
                continue;
            }
        };
        if matcher.matches_json(&doc) {
            count += 1;
            if !count_only {
                out.write_all(text.as_bytes())?;
                out.write_all(b"\n")?;
            }
        }
    }
    Ok(count)
}
