//! The Elasticsearch backend (official `elasticsearch` client): searches with point in time, aggregations, bulk alert writes.

use std::process::ExitCode;

use crate::cli::{Cli, IngestArgs};

/// `detectd ingest`.
pub fn ingest_command(_cli: &Cli, _args: &IngestArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`detectd ingest` is not implemented yet")
}
