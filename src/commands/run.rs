//! `detectd run`: every enabled rule on its schedule, or a replay with `--start/--end`; prints
//! a summary of the alerts by rule.

use std::collections::BTreeMap;
use std::process::ExitCode;

use crate::cli::{Cli, RunArgs};
use crate::config::{BackendKind, Config};
use crate::scheduler::RunSummary;
use crate::service::{RunOptions, Tally};

/// `detectd run`: every enabled rule on its schedule; with `--start` a replay.
pub fn run(cli: &Cli, args: &RunArgs) -> anyhow::Result<ExitCode> {
    let cfg = super::load_config(cli)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let opts = RunOptions {
        start: args.start.clone(),
        end: args.end.clone(),
        config_path: cli.config.clone(),
    };
    let outcome = rt.block_on(crate::service::run(cfg.clone(), opts, |s| {
        println!(
            "detectd: {} rules on the {} backend{}",
            s.rules,
            s.backend,
            match (&args.start, &args.end) {
                (Some(s), Some(e)) => format!(", replaying {s} .. {e}"),
                (Some(s), None) => format!(", replaying from {s} then live"),
                _ => String::new(),
            }
        );
    }))?;
    print_summary(&cfg, &outcome.summary, &outcome.tally);
    Ok(if outcome.summary.failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn print_summary(cfg: &Config, s: &RunSummary, tally: &BTreeMap<String, Tally>) {
    let existing: usize = tally.values().map(|t| t.existing.len()).sum();
    println!(
        "\n{} executions ({} failed, {} gaps): {} new alerts, {} already stored",
        s.executions, s.failed, s.gaps, s.alerts, existing
    );
    if !tally.is_empty() {
        let width = tally
            .values()
            .map(|t| t.name.len())
            .max()
            .unwrap_or(4)
            .max(4);
        println!(
            "\n{:<width$}  {:>10}  {:>14}  severity",
            "rule", "new alerts", "already stored"
        );
        for t in tally.values() {
            println!(
                "{:<width$}  {:>10}  {:>14}  {}",
                t.name,
                t.created.len(),
                t.existing.len(),
                t.severity
            );
        }
    }
    match cfg.backend {
        BackendKind::Embedded => println!(
            "\nalerts: {}  executions: {}  state: {}",
            cfg.embedded.alerts_file.display(),
            cfg.embedded.executions_file.display(),
            cfg.embedded.state_file.display()
        ),
        BackendKind::Elasticsearch => {
            println!("\nalerts: Elasticsearch index alias {}", cfg.alerts.index)
        }
    }
}
