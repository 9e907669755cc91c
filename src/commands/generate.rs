//! `detectd generate`: deterministic realistic CloudTrail with detections to find.

use std::process::ExitCode;

use crate::cli::{Cli, GenerateArgs};
use crate::generate::{generate, Options};

/// `detectd generate`.
pub fn run(_cli: &Cli, args: &GenerateArgs) -> anyhow::Result<ExitCode> {
    let opts = options(args);
    let manifest = generate(&opts)?;
    println!(
        "wrote {} records in {} files to {} ({} to {})",
        manifest.records,
        manifest.files,
        opts.out.display(),
        manifest.period.start,
        manifest.period.end
    );
    println!(
        "replay the last day: detectd run --start {} --end {}",
        manifest.replay.start, manifest.replay.end
    );
    for e in &manifest.injected {
        println!(
            "injected {} {} {} -> {} ({})",
            e.event_time, e.event_name, e.event_id, e.rule_name, e.rule_id
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The generator options of the command line.
pub fn options(args: &GenerateArgs) -> Options {
    Options {
        out: args.out.clone(),
        seed: args.seed,
        days: args.days,
        start: args.start.clone(),
        events_per_day: args.events_per_day,
        accounts: args.accounts,
        users_per_account: args.users_per_account,
        compression: args.compression,
        force: args.force,
    }
}
