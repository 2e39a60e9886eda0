//! The windower: turns packet records into per-key window features.
//!
//! One code path serves live scoring (the `nta run --target windower` service), offline
//! analysis (`nta analyze`) and training, so identical inputs give identical windows.
//!
//! API contract:
//! * [`Windower::push`] feeds one record of one agent;
//! * [`Windower::poll_closed`] returns the windows the watermark has closed;
//! * [`Windower::finish`] closes everything (end of an offline input);
//! * [`Windower::closed_through`] tells, per window size, up to which end every window has
//!   been emitted (the service acknowledges packet batches against it);
//! * [`Windower::resume`] restarts from such a checkpoint: windows ending at or before it are
//!   not emitted again, but their 5 s partial states still feed the longer windows;
//! * [`windows_from_records`]: the offline path (one agent, finish at end) over records from
//!   any iterator (`nta analyze` and training feed it the agent's reader of capture files).
//!
//! # Windows
//!
//! Event time (the record's capture timestamp), tumbling windows aligned to epoch multiples
//! of 5, 30 and 180 s: `[start, start + size)`. Only 5 s windows are computed from packets;
//! a 30 s (180 s) window is the exact merge of the six (thirty-six) 5 s partial states of the
//! same key: counts add, distinct sets unite, variance comes from exact integer sums (n, Σx,
//! Σx², which is the parallel formula without rounding), DNS means merge as sums and counts,
//! intervals as (first, last, n), connections as per-connection first/last/flags maps, ARP
//! flaps as time-ordered segments. Rates divide by the real window length (5, 30 or 180).
//! A key with no packet in a window gets no record for it; a 30 s window whose 5 s parts are
//! partly empty is still exact. The features are defined in `FEATURES.md` (one line each).
//!
//! # Keys and views
//!
//! * **Source view** (`View::Source`): IP packets by `src_ip`; ARP frames by their sender
//!   `arp_psrc` (never a placeholder), its MAC kept so IP-to-MAC binding changes show. Packets
//!   *addressed to* a key that answer it (DNS responses, HTTP responses, SYN-ACKs) also update
//!   that key's "received" counters (answer sizes, failed logins, request completion), without
//!   counting as its traffic; a key that only received answers emits no source window.
//! * **Destination view** (`View::Destination`): IP packets by `dst_ip`, with inbound features
//!   (rates, SYNs, distinct sources, half-open tuples) that expose floods from spoofed sources.
//! * Frames with neither an IP source nor an ARP sender (LLDP, STP, ...) are skipped and counted
//!   (`nta_windower_skipped_records_total{reason="no_address"}`, [`WindowerStats`]).
//!
//! # Watermark and late records
//!
//! Per agent, the watermark is the largest event time seen minus `allowed_lateness` (2 s by
//! default). The global watermark is the minimum over agents heard from within
//! `idle_agent_timeout` (processing time), so a silent agent stops holding windows back; when
//! all agents are silent it is the maximum over all. A 5 s window closes once the watermark
//! passes its end; a 30 s or 180 s window closes with its last 5 s window.
//!
//! A record whose 5 s window is already closed is **late**: [`PushOutcome::Late`], counted
//! ([`WindowerStats::late`]; the service exports `nta_windower_late_records_total`) and merged
//! into *no* window, not even a still-open 30 s or 180 s one. This keeps the invariant that
//! every long window is exactly the merge of the 5 s windows that were emitted, which is what
//! makes the three paths comparable; a late packet is an observable event rather than a
//! silent revision of an emitted window.
//!
//! # Memory
//!
//! At most three states per key are alive (open 5 s, 30 s and 180 s accumulators; a 5 s state
//! is moved into its 30 s state when sealed, which is moved into its 180 s state). Keys expire
//! with their windows. Every unbounded set is a bottom-k sketch (see [`sketch`]) that is exact
//! up to `distinct_cap` members (default 4096) and a uniform sample above, with relative
//! standard error below `1/sqrt(cap - 2)` (1.6 %) for the distinct counts; ports are exact
//! bitmaps. Sketches merge exactly (the merged sketch equals the directly built one), so the
//! cascade equals the direct computation even above the cap.
//!
//! What a flood controls is the number of keys. A source key's state stays compact while it
//! has seen at most two plain packets (see [`slot`]): a spoofed source costs about 200 bytes,
//! not a full state's 0.6 KB, with the same windows. Source-view states are bounded per 3-minute
//! period by `max_open_keys` ([`WindowerConfig::key_budget`]): past it, source keys new to the
//! period are counted in aggregate, not kept (the key budget on [`Windower`]); the windows that
//! are emitted stay exact and the destination view is never shed.

pub mod service;

pub mod arp;
mod config;
pub mod dns;
mod engine;
pub mod features;
pub mod hash;
pub mod level;
pub mod partition;
pub mod run;
pub mod sketch;
pub mod slot;
pub mod state;

pub use config::{WindowerConfig, BYTES_PER_SOURCE_STATE};
pub use engine::{windows_from_records, windows_from_records_with_stats, PushOutcome, Windower, WindowerStats};
pub use level::direct_window;
pub use partition::Partition;
pub use run::ClosedWindow;
pub use wire::features::{DESTINATION_FEATURES, EXTRA_SOURCE_FEATURES, ORIGINAL_FEATURES};
