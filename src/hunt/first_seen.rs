//! The first-seen index of one new_terms rule: per term tuple, the times it was seen by matching
//! documents, compacted to what the rule's executions can ask, and the documents that may be the
//! first of their tuple in some window (the only ones an alert can be built from).
//!
//! Every history question is "was the tuple seen in `[history_start, from]`", an interval at
//! least `gap` long (`gap` = the smallest `from − history_start` of the rule's windows). A time
//! `b` between two kept times `a < b < c` with `c − a ≤ gap` can be dropped: an interval of
//! length ≥ `gap` holding `b` holds `a` or `c`. So a tuple seen every few minutes for a month
//! keeps about two times per `gap`, and times older than every future history start go.
//!
//! A document seen at `t` is the first of its tuple in some window `(from, to]` with no earlier
//! sighting in `[history_start, from]` only if the tuple was not seen in `[t − gap, t)`; other
//! documents keep no text. Sightings arrive in any order: a sighting at `p` revokes the
//! candidates in `(p, p + gap]`.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

/// A document that may be the first of its tuple in a window.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub t: i64,
    pub ts: i64,
    pub id: Arc<str>,
    pub json: Arc<str>,
}

/// What is known of one tuple.
#[derive(Debug, Clone, Default)]
pub struct Tuple {
    pub values: Vec<Value>,
    /// Sorted sighting times (compacted).
    times: Vec<i64>,
    candidates: Vec<Candidate>,
}

impl Tuple {
    /// True when the tuple was seen in `[lo, hi]` (exact for intervals at least `gap` long).
    pub fn seen_in(&self, lo: i64, hi: i64) -> bool {
        let i = self.times.partition_point(|&t| t < lo);
        self.times.get(i).is_some_and(|&t| t <= hi)
    }

    /// The candidate document with this sort key.
    pub fn candidate(&self, t: i64, ts: i64, id: &str) -> Option<&Candidate> {
        self.candidates
            .iter()
            .find(|c| c.t == t && c.ts == ts && &*c.id == id)
    }
}

/// The index of one rule.
#[derive(Debug, Default)]
pub struct FirstSeen {
    gap: i64,
    tuples: HashMap<Arc<str>, Tuple>,
}

impl FirstSeen {
    /// An index for windows whose `from − history_start` is at least `gap` milliseconds.
    pub fn new(gap: i64) -> FirstSeen {
        FirstSeen {
            gap: gap.max(1),
            tuples: HashMap::new(),
        }
    }

    pub fn get(&self, key: &str) -> Option<&Tuple> {
        self.tuples.get(key)
    }

    /// Tuples held.
    pub fn len(&self) -> usize {
        self.tuples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tuples.is_empty()
    }

    /// Sighting times and candidates held (for the memory figure).
    pub fn entries(&self) -> (usize, usize) {
        self.tuples.values().fold((0, 0), |(t, c), v| {
            (t + v.times.len(), c + v.candidates.len())
        })
    }

    /// Records a sighting of tuple `key` at `t`; `doc` gives the document's (ts, id, text) and
    /// is called only when the document may be the first of its tuple in a window. Returns the
    /// key as stored.
    pub fn see(
        &mut self,
        key: &str,
        values: impl FnOnce() -> Vec<Value>,
        t: i64,
        doc: impl FnOnce() -> (i64, Arc<str>, Arc<str>),
    ) -> Arc<str> {
        let gap = self.gap;
        let key: Arc<str> = match self.tuples.get_key_value(key) {
            Some((k, _)) => k.clone(),
            None => {
                let k: Arc<str> = Arc::from(key);
                let tuple = Tuple {
                    values: values(),
                    ..Tuple::default()
                };
                self.tuples.insert(k.clone(), tuple);
                k
            }
        };
        let Some(tuple) = self.tuples.get_mut(&*key) else {
            return key;
        };
        let candidate = !tuple.seen_in(t.saturating_sub(gap), t - 1);
        let pos = tuple.times.partition_point(|&x| x < t);
        if tuple.times.get(pos) != Some(&t) {
            tuple.times.insert(pos, t);
            compact(&mut tuple.times, pos, gap);
        }
        tuple
            .candidates
            .retain(|c| !(c.t > t && c.t <= t.saturating_add(gap)));
        if candidate {
            let (ts, id, json) = doc();
            tuple.candidates.push(Candidate { t, ts, id, json });
        }
        key
    }

    /// Drops what no future execution can use: sightings before `history_start` and candidates
    /// before `from` (both the next window's), then tuples left empty.
    pub fn prune(&mut self, history_start: i64, from: i64) {
        self.tuples.retain(|_, v| {
            let cut = v.times.partition_point(|&t| t < history_start);
            v.times.drain(..cut);
            v.candidates.retain(|c| c.t >= from);
            !v.times.is_empty() || !v.candidates.is_empty()
        });
    }
}

/// Removes times around `pos` that the interval argument makes redundant.
fn compact(times: &mut Vec<i64>, pos: usize, gap: i64) {
    let mut i = pos.saturating_sub(1).max(1);
    let mut end = pos + 1;
    while i <= end && i + 1 < times.len() {
        if times[i + 1] - times[i - 1] <= gap {
            times.remove(i);
            end = end.saturating_sub(1);
            i = (i - 1).max(1);
        } else {
            i += 1;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn doc(t: i64) -> impl FnOnce() -> (i64, Arc<str>, Arc<str>) {
        move || (t, Arc::from(format!("d{t}")), Arc::from("{}"))
    }

    /// Brute force: the sightings themselves.
    fn seen(all: &[i64], lo: i64, hi: i64) -> bool {
        all.iter().any(|&t| t >= lo && t <= hi)
    }

    #[test]
    fn compacted_times_answer_every_long_enough_interval_exactly() {
        let gap = 100;
        let mut ix = FirstSeen::new(gap);
        // pseudo-random sightings in any order
        let mut x: u64 = 7;
        let mut all = Vec::new();
        for _ in 0..2000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let t = ((x >> 33) % 20_000) as i64;
            all.push(t);
            ix.see("k", Vec::new, t, doc(t));
        }
        let tuple = ix.get("k").unwrap();
        assert!(tuple.times.len() < 600, "{} times kept", tuple.times.len());
        for lo in (-200..20_200).step_by(7) {
            for len in [gap, gap + 1, 3 * gap, 5000] {
                assert_eq!(
                    tuple.seen_in(lo, lo + len),
                    seen(&all, lo, lo + len),
                    "[{lo}, +{len}]"
                );
            }
        }
        // candidates: exactly the sightings with no other sighting in [t - gap, t)
        for c in &tuple.candidates {
            assert!(!seen(&all, c.t - gap, c.t - 1));
        }
        for &t in &all {
            if !seen(&all, t - gap, t - 1) {
                assert!(tuple.candidates.iter().any(|c| c.t == t), "{t} lost");
            }
        }
    }

    #[test]
    fn prune_drops_old_history_and_empty_tuples() {
        let mut ix = FirstSeen::new(10);
        ix.see("a", Vec::new, 5, doc(5));
        ix.see("b", Vec::new, 50, doc(50));
        ix.prune(20, 40);
        assert!(ix.get("a").is_none());
        assert!(ix.get("b").unwrap().seen_in(40, 60));
        assert!(ix.get("b").unwrap().candidate(50, 50, "d50").is_some());
    }
}
