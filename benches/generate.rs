//! Throughput of `detectd generate`: about 1,000,000 records over 14 days, written as gzipped
//! delivery files into a temporary folder. Run with `cargo bench --bench generate`.

use std::time::Instant;

use detectd::generate::{generate, Options};

fn main() -> anyhow::Result<()> {
    for compression in [6u32, 1] {
        let dir = tempfile::tempdir()?;
        let opts = Options {
            out: dir.path().to_path_buf(),
            seed: 42,
            days: 14,
            start: "2026-11-02".to_owned(),
            events_per_day: 82_300,
            accounts: 8,
            users_per_account: 100,
            compression,
            force: false,
        };
        let started = Instant::now();
        let manifest = generate(&opts)?;
        let secs = started.elapsed().as_secs_f64();
        let bytes: u64 = walk(dir.path())?;
        println!(
            "generate: compression {compression}: {} records in {} files, {:.1} MB gzipped, {secs:.1} s, {:.0} records/s",
            manifest.records,
            manifest.files,
            bytes as f64 / 1e6,
            manifest.records as f64 / secs
        );
    }
    Ok(())
}

fn walk(dir: &std::path::Path) -> std::io::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            walk(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}
