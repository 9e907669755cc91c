//! Clocks: real time, and the simulated clock of a replay, which jumps straight to the next
//! due instant and (unless the replay has an end) turns into the real clock once it has caught
//! up with now.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// Where the scheduler reads the time and waits for an instant.
#[async_trait]
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
    /// Returns once `now() >= t` (at once on a simulated clock, which jumps to `t`).
    async fn sleep_until(&self, t: DateTime<Utc>);
    /// True while the clock is simulated (a replay that has not caught up).
    fn is_simulated(&self) -> bool {
        false
    }
}

/// Wall-clock time.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealClock;

#[async_trait]
impl Clock for RealClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    async fn sleep_until(&self, t: DateTime<Utc>) {
        real_sleep_until(t).await;
    }
}

async fn real_sleep_until(t: DateTime<Utc>) {
    // Re-check after each sleep: the wall clock may be adjusted while we wait.
    loop {
        let left = t - Utc::now();
        match left.to_std() {
            Ok(d) if !d.is_zero() => tokio::time::sleep(d).await,
            _ => return,
        }
    }
}

/// Simulated time for replay: `sleep_until(t)` moves the clock to `t` at once.
///
/// With `go_live`, the first `sleep_until` to an instant later than the real time switches the
/// clock to real time for good (replay without `--end` continues live).
#[derive(Debug)]
pub struct SimClock {
    now: Mutex<DateTime<Utc>>,
    go_live: bool,
    live: AtomicBool,
}

impl SimClock {
    /// A simulated clock starting at `start` that never becomes real.
    pub fn new(start: DateTime<Utc>) -> SimClock {
        SimClock {
            now: Mutex::new(start),
            go_live: false,
            live: AtomicBool::new(false),
        }
    }

    /// A simulated clock starting at `start` that switches to real time once it catches up.
    pub fn catching_up(start: DateTime<Utc>) -> SimClock {
        SimClock {
            go_live: true,
            ..SimClock::new(start)
        }
    }

    /// Sets the simulated time (tests).
    pub fn set(&self, t: DateTime<Utc>) {
        if let Ok(mut now) = self.now.lock() {
            *now = t;
        }
    }
}

#[async_trait]
impl Clock for SimClock {
    fn now(&self) -> DateTime<Utc> {
        if self.live.load(Ordering::Acquire) {
            return Utc::now();
        }
        match self.now.lock() {
            Ok(now) => *now,
            Err(poisoned) => *poisoned.into_inner(),
        }
    }

    async fn sleep_until(&self, t: DateTime<Utc>) {
        if self.live.load(Ordering::Acquire) {
            return real_sleep_until(t).await;
        }
        if self.go_live && t > Utc::now() {
            self.live.store(true, Ordering::Release);
            tracing::info!(until = %t, "replay caught up with the present, continuing live");
            return real_sleep_until(t).await;
        }
        if let Ok(mut now) = self.now.lock() {
            if t > *now {
                *now = t;
            }
        }
    }

    fn is_simulated(&self) -> bool {
        !self.live.load(Ordering::Acquire)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[tokio::test]
    async fn sim_clock_jumps_and_catches_up() {
        let start = Utc::now() - Duration::hours(1);
        let c = SimClock::new(start);
        c.sleep_until(start + Duration::minutes(30)).await;
        assert_eq!(c.now(), start + Duration::minutes(30));
        // Never goes backwards.
        c.sleep_until(start).await;
        assert_eq!(c.now(), start + Duration::minutes(30));

        let live = SimClock::catching_up(start);
        live.sleep_until(Utc::now() + Duration::milliseconds(20))
            .await;
        assert!(!live.is_simulated());
        assert!((Utc::now() - live.now()).num_seconds().abs() < 2);
    }
}
