//! Where a partition's windower resumes: its own checkpoint, or, the first time after the
//! partition count changed, the checkpoints of the previous partitioning, key by key.
//!
//! A *generation* is the set of checkpoints of one partition count; it is complete when every
//! partition `0..count` has one (the single windower, count 1, is one checkpoint). A complete
//! generation describes every key: a key's windows were emitted through the checkpoint of the
//! partition owning it then. The own checkpoint wins once it is at or past everything any other
//! complete generation reached; before that (a new partitioning still catching up, or an old
//! own checkpoint left behind by an earlier change), the most advanced complete other
//! generation is resumed key by key ([`crate::Windower::resume_by_owner`]) from the smallest of
//! its replay points. Either way a window is emitted only after its key's last owner stopped,
//! and rebuilt from every batch it needs; the repeats a key-by-key resume makes (windows
//! already emitted again by a newer owner before a restart) are identical, so the
//! `Nats-Msg-Id` de-duplication and the `ON CONFLICT DO NOTHING` insert absorb them.

use crate::Partition;
use std::collections::BTreeMap;
use store::windows::Checkpoint;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Resume {
    /// No checkpoint: replay the stream from its start.
    Fresh,
    Own(Checkpoint),
    /// `closed_through` of partition `i` of `checkpoints.len()` at `[i]`.
    ByOwner {
        checkpoints: Vec<[i64; 3]>,
        replay_seq: u64,
    },
}

impl Resume {
    pub fn replay_seq(&self) -> u64 {
        match self {
            Resume::Fresh => 0,
            Resume::Own(cp) => cp.replay_seq,
            Resume::ByOwner { replay_seq, .. } => *replay_seq,
        }
    }
}

impl std::fmt::Display for Resume {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Resume::Fresh => f.write_str("no checkpoint (the whole stream)"),
            Resume::Own(cp) if cp.closed_through[0] == i64::MIN => {
                f.write_str("own checkpoint (no window emitted yet)")
            }
            Resume::Own(cp) => {
                write!(f, "own checkpoint (5 s windows emitted through {})", epoch(cp.closed_through[0]))
            }
            Resume::ByOwner { checkpoints, .. } => {
                write!(f, "the checkpoints of {} partition(s), key by key", checkpoints.len())
            }
        }
    }
}

/// An epoch second as UTC `YYYY-MM-DDTHH:MM:SSZ`.
fn epoch(t: i64) -> String {
    let (y, m, d, hh, mm, ss) = wire::time::civil(t);
    format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
}

/// Chooses from every checkpoint of the windower group, `(index, count, checkpoint)`.
pub(crate) fn choose(part: Partition, rows: &[(u32, u32, Checkpoint)]) -> Resume {
    let own = rows.iter().find(|(i, c, _)| (*i, *c) == (part.index, part.count.max(1))).map(|r| r.2);
    let mut generations: BTreeMap<u32, BTreeMap<u32, Checkpoint>> = BTreeMap::new();
    for (i, c, cp) in rows {
        if *c != part.count.max(1) {
            generations.entry(*c).or_default().insert(*i, *cp);
        }
    }
    let complete: Vec<Vec<Checkpoint>> = generations
        .into_iter()
        .filter(|(c, cps)| cps.len() == *c as usize)
        .map(|(_, cps)| cps.into_values().collect())
        .collect();
    let reached = |cps: &[Checkpoint], f: fn(i64, i64) -> i64| -> [i64; 3] {
        let mut out = [cps[0].closed_through[0], cps[0].closed_through[1], cps[0].closed_through[2]];
        for cp in cps {
            for (o, c) in out.iter_mut().zip(cp.closed_through) {
                *o = f(*o, c);
            }
        }
        out
    };
    if let Some(own) = own {
        let caught_up =
            complete.iter().all(|cps| reached(cps, i64::max).iter().zip(own.closed_through).all(|(g, o)| o >= *g));
        if caught_up {
            return Resume::Own(own);
        }
    }
    let best = complete.into_iter().max_by_key(|cps| reached(cps, i64::min)[0]);
    match best {
        Some(cps) => Resume::ByOwner {
            checkpoints: cps.iter().map(|cp| cp.closed_through).collect(),
            replay_seq: cps.iter().map(|cp| cp.replay_seq).min().unwrap_or(0),
        },
        None => own.map_or(Resume::Fresh, Resume::Own),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cp(t: i64, seq: u64) -> Checkpoint {
        Checkpoint { closed_through: [t, t - t % 30, t - t % 180], replay_seq: seq }
    }

    #[test]
    fn epoch_seconds_read_as_utc() {
        assert_eq!(epoch(1_767_225_600), "2026-01-01T00:00:00Z");
        assert_eq!(epoch(951_782_400 + 86_399), "2000-02-29T23:59:59Z");
    }

    #[test]
    fn own_checkpoint_first_then_complete_generations_key_by_key() {
        let p = |i, c| Partition::new(i, c).unwrap();
        assert_eq!(choose(p(0, 1), &[]), Resume::Fresh);
        assert_eq!(choose(p(0, 1), &[(0, 1, cp(100, 7))]), Resume::Own(cp(100, 7)));
        // 1 -> 2: the single windower's checkpoint for every key.
        let single = [(0, 1, cp(100, 7))];
        let by_single = Resume::ByOwner { checkpoints: vec![cp(100, 7).closed_through], replay_seq: 7 };
        assert_eq!(choose(p(1, 2), &single), by_single);
        // Partition 0 of 2 got past it: its own; partition 1 not yet checkpointed: still key by key.
        let rows = [(0, 1, cp(100, 7)), (0, 2, cp(400, 20))];
        assert_eq!(choose(p(0, 2), &rows), Resume::Own(cp(400, 20)));
        assert_eq!(choose(p(1, 2), &rows), by_single);
        // Own checkpoint still behind the old generation's furthest partition.
        let rows = [(0, 2, cp(200, 9)), (1, 2, cp(500, 30)), (0, 3, cp(300, 12))];
        assert_eq!(
            choose(p(0, 3), &rows),
            Resume::ByOwner { checkpoints: vec![cp(200, 9).closed_through, cp(500, 30).closed_through], replay_seq: 9 }
        );
        // 2 -> 3 -> 2: the stale own checkpoints lose to the complete newer generation.
        let rows =
            [(0, 2, cp(100, 5)), (1, 2, cp(100, 6)), (0, 3, cp(900, 50)), (1, 3, cp(905, 51)), (2, 3, cp(900, 49))];
        assert_eq!(
            choose(p(1, 2), &rows),
            Resume::ByOwner {
                checkpoints: vec![cp(900, 50).closed_through, cp(905, 51).closed_through, cp(900, 49).closed_through],
                replay_seq: 49
            }
        );
        // An incomplete generation says nothing about the keys of its missing partitions.
        let rows = [(0, 2, cp(100, 5)), (0, 3, cp(900, 50))];
        assert_eq!(choose(p(1, 2), &rows), Resume::Fresh);
        assert_eq!(choose(p(0, 2), &rows), Resume::Own(cp(100, 5)));
    }
}
