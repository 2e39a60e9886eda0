//! `window_features` and `windower_checkpoint`: the windower's per-partition instance lock,
//! its checkpoints, membership of the windower processes, and the idempotent window insert.

use anyhow::{Context, Result};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Transaction};
use wire::WindowRecord;

/// Class of the session lock that keeps a second windower of the same durable (partition) from
/// running.
const INSTANCE_LOCK_CLASS: i32 = 0x4e54_5749; // "NTWI"

/// Tries to take the session lock of `durable` on this connection (released when it closes,
/// e.g. when the process dies).
pub async fn try_lock_instance(client: &Client, durable: &str) -> Result<bool> {
    Ok(client
        .query_one("SELECT pg_try_advisory_lock($1, hashtext($2))", &[&INSTANCE_LOCK_CLASS, &durable])
        .await?
        .get(0))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    pub closed_through: [i64; 3],
    /// First NTA_PACKETS stream sequence a restart must replay.
    pub replay_seq: u64,
}

/// Durable consumer (and checkpoint) name of partition `index` of `count` of windower `base`:
/// `base` itself when the keys are not partitioned, so a single windower keeps its history.
pub fn partition_durable(base: &str, index: u32, count: u32) -> String {
    if count <= 1 {
        base.to_string()
    } else {
        format!("{base}-{index}-of-{count}")
    }
}

/// (index, count) of a durable named by [`partition_durable`] for `base`.
pub fn parse_partition_durable(base: &str, durable: &str) -> Option<(u32, u32)> {
    if durable == base {
        return Some((0, 1));
    }
    let (i, c) = durable.strip_prefix(base)?.strip_prefix('-')?.split_once("-of-")?;
    let (i, c) = (i.parse().ok()?, c.parse().ok()?);
    (i < c && c > 1).then_some((i, c))
}

/// Every checkpoint of windower `base`, of any partitioning: (index, count, checkpoint).
pub async fn load_partition_checkpoints(client: &Client, base: &str) -> Result<Vec<(u32, u32, Checkpoint)>> {
    let rows = client
        .query(
            "SELECT durable, closed_through_5, closed_through_30, closed_through_180, replay_seq
             FROM windower_checkpoint WHERE durable = $1 OR starts_with(durable, $1 || '-')",
            &[&base],
        )
        .await
        .context("reading windower checkpoints")?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let (i, c) = parse_partition_durable(base, r.get(0))?;
            let cp = Checkpoint {
                closed_through: [r.get(1), r.get(2), r.get(3)],
                replay_seq: r.get::<_, i64>(4).max(0) as u64,
            };
            Some((i, c, cp))
        })
        .collect())
}

/// Marks this connection as a member of windower group `base` (see [`count_members`]).
pub async fn join_members(client: &Client, base: &str) -> Result<()> {
    client
        .execute("SELECT set_config('application_name', $1, false)", &[&member_name(base)])
        .await
        .context("registering the windower")?;
    Ok(())
}

/// Windower processes of group `base` alive now: connections marked by [`join_members`] to this
/// database. A process that dies closes its connection, so it stops counting at once.
pub async fn count_members(client: &Client, base: &str) -> Result<usize> {
    let n: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()",
            &[&member_name(base)],
        )
        .await
        .context("counting windowers")?
        .get(0);
    Ok(n.max(1) as usize)
}

fn member_name(base: &str) -> String {
    // application_name is cut at 63 bytes; a long durable still gets a stable, distinct name.
    let name = format!("nta-windower/{base}");
    if name.len() <= 63 {
        name
    } else {
        // FNV-1a: any fixed hash will do, it only has to be the same in every process.
        let h = base.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
        format!("nta-windower/{h:016x}")
    }
}

pub async fn load_checkpoint(client: &Client, durable: &str) -> Result<Option<Checkpoint>> {
    let row = client
        .query_opt(
            "SELECT closed_through_5, closed_through_30, closed_through_180, replay_seq
             FROM windower_checkpoint WHERE durable = $1",
            &[&durable],
        )
        .await?;
    Ok(row.map(|r| Checkpoint {
        closed_through: [r.get(0), r.get(1), r.get(2)],
        replay_seq: r.get::<_, i64>(3).max(0) as u64,
    }))
}

/// Writes the checkpoint inside `tx` (closed_through never moves back).
pub async fn store_checkpoint(tx: &Transaction<'_>, durable: &str, cp: &Checkpoint) -> Result<()> {
    let seq = i64::try_from(cp.replay_seq).unwrap_or(i64::MAX);
    tx.execute(
        "INSERT INTO windower_checkpoint
             (durable, closed_through_5, closed_through_30, closed_through_180, replay_seq, updated_at)
         VALUES ($1, $2, $3, $4, $5, now())
         ON CONFLICT (durable) DO UPDATE SET
             closed_through_5 = GREATEST(windower_checkpoint.closed_through_5, EXCLUDED.closed_through_5),
             closed_through_30 = GREATEST(windower_checkpoint.closed_through_30, EXCLUDED.closed_through_30),
             closed_through_180 = GREATEST(windower_checkpoint.closed_through_180, EXCLUDED.closed_through_180),
             replay_seq = EXCLUDED.replay_seq,
             updated_at = now()",
        &[&durable, &cp.closed_through[0], &cp.closed_through[1], &cp.closed_through[2], &seq],
    )
    .await
    .context("writing the windower checkpoint")?;
    Ok(())
}

/// `INSERT ... SELECT FROM unnest(<one array per column>) ON CONFLICT DO NOTHING`: one statement
/// for any number of windows.
fn insert_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        let n = FEATURE_COLUMNS.len();
        let cols = FEATURE_COLUMNS.join(", ");
        let aliases: Vec<String> = (0..n).map(|i| format!("c{i}")).collect();
        let arrays: Vec<String> = (0..n).map(|i| format!("${}::float8[]", i + 5)).collect();
        format!(
            "INSERT INTO window_features (view, key, window_start, window_end, window_size, {cols}, extra)
             SELECT v, k, to_timestamp(s), to_timestamp(s + z), z, {aliases}, e::jsonb
             FROM unnest($1::text[], $2::text[], $3::int8[], $4::int4[], {arrays}, ${e}::text[])
                  AS t(v, k, s, z, {aliases}, e)
             ON CONFLICT (view, key, window_start, window_size) DO NOTHING",
            aliases = aliases.join(", "),
            arrays = arrays.join(", "),
            e = n + 5,
        )
    })
}

/// Column-wise form of some windows, ready to bind to [`insert_sql`].
pub(crate) struct WindowColumns {
    view: Vec<&'static str>,
    key: Vec<String>,
    start: Vec<i64>,
    size: Vec<i32>,
    features: Vec<Vec<Option<f64>>>,
    extra: Vec<Option<String>>,
}

impl WindowColumns {
    pub(crate) fn new(windows: &[WindowRecord]) -> WindowColumns {
        let n = windows.len();
        let mut c = WindowColumns {
            view: Vec::with_capacity(n),
            key: Vec::with_capacity(n),
            start: Vec::with_capacity(n),
            size: Vec::with_capacity(n),
            features: (0..FEATURE_COLUMNS.len()).map(|_| Vec::with_capacity(n)).collect(),
            extra: Vec::with_capacity(n),
        };
        for w in windows {
            c.view.push(w.view.as_str());
            c.key.push(w.key.clone());
            c.start.push(w.window_start);
            c.size.push(i32::try_from(w.window_size).unwrap_or(i32::MAX));
            for (col, name) in c.features.iter_mut().zip(FEATURE_COLUMNS) {
                col.push(w.features.get(name).copied().flatten());
            }
            let mut extra = serde_json::Map::new();
            for (name, v) in &w.features {
                if !FEATURE_COLUMNS.contains(&name.as_str()) {
                    // JSON has no NaN or infinity: those (never expected) become null.
                    let v = v.and_then(serde_json::Number::from_f64).map_or(serde_json::Value::Null, Into::into);
                    extra.insert(name.clone(), v);
                }
            }
            c.extra.push((!extra.is_empty()).then(|| serde_json::Value::Object(extra).to_string()));
        }
        c
    }
}

/// Stores `windows` (those already there are left alone); returns the rows inserted.
pub async fn insert_windows(tx: &Transaction<'_>, windows: &[WindowRecord]) -> Result<u64> {
    if windows.is_empty() {
        return Ok(0);
    }
    let c = WindowColumns::new(windows);
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&c.view, &c.key, &c.start, &c.size];
    for f in &c.features {
        params.push(f);
    }
    params.push(&c.extra);
    let stmt = tx.prepare(insert_sql()).await?;
    tx.execute(&stmt, &params).await.context("inserting windows")
}

/// The 63 feature columns of `window_features`: the original analyzer's features
/// ([`wire::features::ORIGINAL_FEATURES`]; statements name their columns, so the table's own
/// column order does not matter). Any other feature goes to `extra` (jsonb).
pub const FEATURE_COLUMNS: [&str; 63] = wire::features::ORIGINAL_FEATURES;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_distinct_and_bound() {
        let distinct: std::collections::HashSet<_> = FEATURE_COLUMNS.iter().collect();
        assert_eq!(distinct.len(), 63);
        assert!(insert_sql().contains("$68::text[]"));
    }

    #[test]
    fn partition_durables_round_trip() {
        assert_eq!(partition_durable("nta-windower", 0, 1), "nta-windower");
        assert_eq!(partition_durable("nta-windower", 2, 4), "nta-windower-2-of-4");
        assert_eq!(parse_partition_durable("nta-windower", "nta-windower"), Some((0, 1)));
        assert_eq!(parse_partition_durable("nta-windower", "nta-windower-2-of-4"), Some((2, 4)));
        assert_eq!(parse_partition_durable("nta-windower", "nta-windower-4-of-4"), None);
        assert_eq!(parse_partition_durable("nta-windower", "nta-windower-x-2-of-4"), None);
        assert_eq!(parse_partition_durable("nta-windower", "other-0-of-2"), None);
        assert!(member_name(&"x".repeat(80)).len() <= 63);
    }
}
