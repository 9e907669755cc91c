//! CloudTrail to ECS: reading raw CloudTrail files and normalising records as Elastic's aws integration does.

pub mod categories;
pub mod doc;
pub mod entity;
pub mod geoip;
pub mod javamap;
pub mod json;
pub mod normalize;
pub mod reader;
pub mod split;

use std::io::{BufWriter, Write};
use std::process::ExitCode;

use crate::cli::{Cli, EcsArgs};

pub use doc::EcsDoc;
pub use normalize::{normalize, normalize_owned, normalize_str, NormalizeError, NormalizeOptions};
pub use reader::{read_file, read_paths, Document, ReadError, ReadSummary};

/// The default normalisation (the integration's defaults, data stream constants) with the
/// given MaxMind databases opened (none: no `source.geo` / `source.as`).
pub fn options_with_geoip(
    databases: &[std::path::PathBuf],
) -> Result<NormalizeOptions, geoip::GeoIpError> {
    let mut opts = NormalizeOptions::default();
    if !databases.is_empty() {
        let g = geoip::GeoIp::open(databases)?;
        tracing::info!(databases = ?g, "GeoIP databases opened");
        opts.geoip = Some(std::sync::Arc::new(g));
    }
    Ok(opts)
}

/// `detectd ecs FILE...`: the normalised documents as NDJSON on stdout, skipped records on
/// stderr (file, record, reason) and a summary; exit code 1 when any record was skipped.
pub fn ecs_command(cli: &Cli, args: &EcsArgs) -> anyhow::Result<ExitCode> {
    let databases = if args.geoip.is_empty() {
        cli.load_config()?.embedded.geoip_databases
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
