//! The one owner of PostgreSQL: connecting ([`conn`], TLS in [`tls`]), the schema ([`migrate`] and the SQL files
//! in `crates/store/migrations/`), and one module per table family whose functions the roles
//! and the dashboard call: [`packets`] (`raw_packets` and its ledger), [`rollup`]
//! (`traffic_rollup`), [`windows`] (`window_features`, the windower's checkpoint),
//! [`predictions`] and [`alerts`] (with the [`alert_events`] outbox), and the re-scoring runs ([`runs`]).
//!
//! Every write is idempotent (a ledger or a natural key with `ON CONFLICT`), so a caller may
//! acknowledge its messages after the commit and simply redo a batch after a crash.

use anyhow::Context as _;

pub mod alert_events;
pub mod alerts;
pub mod conn;
pub mod migrate;
pub mod packets;
pub mod predictions;
pub mod rollup;
pub mod runs;
pub mod tls;
pub mod windows;

pub use conn::{connect_cfg, connect_creating, DbConfig, Reconnecting, SslMode};
pub use migrate::{migrate, MIGRATION_COUNT};

/// Connects (creating the database if missing) and brings the schema up to date: what every
/// role does at start.
pub async fn open(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let mut client = connect_creating(url).await?;
    migrate(&mut client).await.context("migrating the database")?;
    Ok(client)
}
