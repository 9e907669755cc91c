//! `detectd validate`: load rule files, print one line per problem, then a summary (text or
//! JSON). Exit code 0 when no error was found, 1 otherwise.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::cli::{Cli, OutputFormat, ValidateArgs};
use crate::ecs::geoip::GeoIp;
use crate::rules::{geoip_kinds_needed, load_paths, render_summary, summarize, ValidateOutput};

/// `detectd validate`.
pub fn run(cli: &Cli, args: &ValidateArgs) -> anyhow::Result<ExitCode> {
    let config = super::load_config(cli)?;
    let paths: Vec<PathBuf> = if args.paths.is_empty() {
        vec![config.rules_dir.clone()]
    } else {
        args.paths.clone()
    };
    let report = load_paths(&paths);
    let mut summary = summarize(&report);
    let mut geoip_error = None;
    if !config.embedded.geoip_databases.is_empty() {
        match GeoIp::open(&config.embedded.geoip_databases) {
            Ok(g) => {
                let have = g.kinds();
                summary.needs_geoip = report
                    .rules
                    .iter()
                    .filter(|r| geoip_kinds_needed(r).iter().any(|k| !have.contains(k)))
                    .map(|r| format!("{} ({})", r.name, r.source.display()))
                    .collect();
            }
            Err(e) => {
                summary.errors += 1;
                geoip_error = Some(format!("embedded.geoip_databases: {e}"));
            }
        }
    }
    if let Some(e) = &geoip_error {
        eprintln!("error: {e}");
    }
    if args.cluster {
        let backend = crate::backend::elasticsearch::ElasticsearchBackend::new(
            &config.elasticsearch,
            &config.alerts,
        )?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let info = rt
            .block_on(backend.cluster_info())
            .map_err(|e| anyhow::anyhow!("--cluster: {e}"))?;
        eprintln!("cluster: {} {}", info.name(), info.number);
        summary.not_runnable_on_cluster = report
            .rules
            .iter()
            .filter_map(|r| {
                let why = info.refuses_rule(r)?;
                Some(format!("{} ({}): {why}", r.name, r.source.display()))
            })
            .collect();
    }
    let failed = summary.errors > 0;
    match args.format {
        OutputFormat::Json => {
            let out = ValidateOutput {
                problems: report.problems,
                summary,
            };
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        OutputFormat::Text => {
            for p in &report.problems {
                println!("{p}");
            }
            print!("{}", render_summary(&summary));
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
