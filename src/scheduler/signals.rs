//! Process signals and the rules-folder watcher: SIGINT/SIGTERM cancel the scheduler,
//! SIGHUP or a change under the rules folder asks for a reload (the caller loads the rules
//! and calls [`super::SchedulerHandle::reload`]).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Cancels `token` on the first SIGINT or SIGTERM.
pub fn cancel_on_shutdown_signals(token: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (mut int, mut term) = match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(i), Ok(t)) => (i, t),
            (Err(e), _) | (_, Err(e)) => {
                warn!(error = %e, "cannot listen for shutdown signals");
                return;
            }
        };
        tokio::select! {
            _ = token.cancelled() => return,
            _ = int.recv() => info!(signal = "SIGINT", "shutting down"),
            _ = term.recv() => info!(signal = "SIGTERM", "shutting down"),
        }
        token.cancel();
    })
}

/// A message on the returned channel each time a reload is asked for: on SIGHUP, and (with
/// `rules_dir`) when the set of files under it, their sizes or modification times change
/// (checked every `poll`). Stops when `cancel` is cancelled.
pub fn reload_triggers(
    rules_dir: Option<PathBuf>,
    poll: std::time::Duration,
    cancel: CancellationToken,
) -> mpsc::Receiver<()> {
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                warn!(error = %e, "cannot listen for SIGHUP");
                None
            }
        };
        let mut last = match &rules_dir {
            Some(d) => fingerprint_blocking(d.clone()).await,
            None => 0,
        };
        let mut tick = tokio::time::interval(poll.max(std::time::Duration::from_millis(10)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let hup_recv = async {
                match hup.as_mut() {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            };
            let fire = tokio::select! {
                _ = cancel.cancelled() => return,
                _ = hup_recv => {
                    info!(signal = "SIGHUP", "reloading rules");
                    true
                }
                _ = tick.tick(), if rules_dir.is_some() => {
                    let Some(d) = &rules_dir else { continue };
                    let now = fingerprint_blocking(d.clone()).await;
                    let changed = now != last;
                    last = now;
                    if changed {
                        info!(dir = %d.display(), "rules changed, reloading");
                    }
                    changed
                }
            };
            // A full channel already holds a pending reload: nothing to add.
            if fire && tx.try_send(()).is_err() && tx.is_closed() {
                return;
            }
        }
    });
    rx
}

async fn fingerprint_blocking(dir: PathBuf) -> u64 {
    tokio::task::spawn_blocking(move || fingerprint(&dir))
        .await
        .unwrap_or(0)
}

/// A hash of the paths, sizes and modification times of every file under `dir`.
pub fn fingerprint(dir: &Path) -> u64 {
    let mut entries: Vec<(String, u64, u128)> = walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| {
            let m = e.metadata().ok()?;
            let mtime = m
                .modified()
                .ok()?
                .duration_since(SystemTime::UNIX_EPOCH)
                .ok()?
                .as_nanos();
            Some((e.path().to_string_lossy().into_owned(), m.len(), mtime))
        })
        .collect();
    entries.sort();
    let mut text = String::new();
    for (p, len, mtime) in entries {
        text.push_str(&format!("{p}\0{len}\0{mtime}\n"));
    }
    super::plan::stable_hash(&text)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_changes_when_a_rule_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let a = fingerprint(dir.path());
        std::fs::write(dir.path().join("r.toml"), "x").unwrap();
        let b = fingerprint(dir.path());
        assert_ne!(a, b);
        assert_eq!(b, fingerprint(dir.path()));
        std::fs::write(dir.path().join("r.toml"), "xy").unwrap();
        assert_ne!(b, fingerprint(dir.path()));
    }
}
