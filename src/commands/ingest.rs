//! `detectd ingest`: raw CloudTrail to ECS into Elasticsearch.

use std::process::ExitCode;
use std::time::Instant;

use crate::backend::elasticsearch::ElasticsearchBackend;
use crate::cli::{Cli, IngestArgs};

/// `detectd ingest FILES... --index NAME`: raw CloudTrail to ECS into Elasticsearch.
pub fn run(cli: &Cli, args: &IngestArgs) -> anyhow::Result<ExitCode> {
    let config = super::load_config(cli)?;
    let backend = ElasticsearchBackend::new(&config.elasticsearch, &config.alerts)?;
    let databases = if args.geoip.is_empty() {
        config.embedded.geoip_databases.clone()
    } else {
        args.geoip.clone()
    };
    let opts = crate::ecs::options_with_geoip(&databases)?;
    let runtime = tokio::runtime::Runtime::new()?;
    let started = Instant::now();
    let totals = runtime.block_on(crate::backend::elasticsearch::ingest::ingest(
        &backend,
        &args.files,
        &args.index,
        opts,
    ))?;
    eprintln!(
        "ingested {} of {} documents from {} files into {} in {:.1}s ({} already there, {} records skipped, {} refused)",
        totals.indexed,
        totals.documents,
        totals.files,
        args.index,
        started.elapsed().as_secs_f64(),
        totals.duplicates,
        totals.skipped,
        totals.failed
    );
    // Everything readable was loaded; a skipped record or a refused document still fails the
    // command, as `detectd ecs` does.
    Ok(if totals.failed > 0 || totals.skipped > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
