//! `detectd ecs`: raw CloudTrail files as the ECS documents the rules see.

use std::io::{BufWriter, Write};
use std::process::ExitCode;

use crate::cli::{Cli, EcsArgs};
use crate::ecs::{options_with_geoip, read_paths};

/// `detectd ecs FILE...`: the normalised documents as NDJSON on stdout, skipped records on
/// stderr (file, record, reason) and a summary; exit code 1 when any record was skipped.
pub fn run(cli: &Cli, args: &EcsArgs) -> anyhow::Result<ExitCode> {
    let databases = if args.geoip.is_empty() {
        super::load_config(cli)?.embedded.geoip_databases
    } else {
        args.geoip.clone()
    };
    let opts = options_with_geoip(&databases)?;
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut write_error: Option<std::io::Error> = None;
    let summary = read_paths(
        &args.files,
        &opts,
        |d| {
            if write_error.is_some() {
                return;
            }
            let res = serde_json::to_writer(&mut out, &d.doc)
                .map_err(std::io::Error::from)
                .and_then(|()| out.write_all(b"\n"));
            if let Err(e) = res {
                write_error = Some(e);
            }
        },
        |e| eprintln!("error: {e}"),
    );
    if let Some(e) = write_error {
        // A closed pipe (`| head`) is not a failure of the conversion.
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return Err(e.into());
        }
        return Ok(ExitCode::SUCCESS);
    }
    out.flush()?;
    eprintln!(
        "{} files, {} documents, {} errors",
        summary.files, summary.documents, summary.errors
    );
    Ok(if summary.errors > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
