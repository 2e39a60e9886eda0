//! pcap exports of the frames agents keep on `NTA_FRAMES`: `nta export-pcap` and the
//! dashboard's "Download pcap" both call [`export`]. It depends on no stage (the dashboard uses
//! it): NATS through `bus`, alerts through `store`, frames through `wire`.
//!
//! How a range is read: JetStream can start a consumer at a *store* time, and the frames are
//! stored after they are captured, so the scan starts at the range's start (minus a margin for
//! clocks) and reads only headers (each batch's capture-time span and size); the bodies of the
//! batches whose span meets the range are then fetched one by one by sequence. A replay of an old
//! capture is stored long after it was captured: its batches are scanned but only the wanted
//! ones downloaded.

mod filter;
pub mod pcapout;

pub use filter::Filters;

use anyhow::Context;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use pcapout::{Iface, OutFrame};

/// Store time may precede capture time by this much (an agent's clock ahead of the server's)
/// and the scan still finds the batch.
pub const CLOCK_SKEW_MARGIN_NS: i64 = 10 * 60 * 1_000_000_000;

/// What to export.
#[derive(Debug, Clone, Default)]
pub struct ExportRequest {
    /// Capture-time range, epoch nanoseconds, both ends included.
    pub from_ns: Option<i64>,
    pub to_ns: Option<i64>,
    pub host: Option<IpAddr>,
    pub port: Option<u16>,
    pub bpf: Option<String>,
    /// Only this agent's frames.
    pub agent: Option<String>,
    /// An alert: its key as `host`, its first and last seen as the range (unless given).
    pub alert: Option<i64>,
    /// Refuse to produce more than this many bytes (the dashboard's limit).
    pub max_bytes: Option<u64>,
    /// Refuse a range longer than this (ns).
    pub max_range_ns: Option<i64>,
}

/// Why an export failed: the caller's input (a 400, exit code 2) or the system (500, 1).
#[derive(Debug)]
pub enum ExportError {
    BadRequest(String),
    Failed(anyhow::Error),
}

impl std::fmt::Display for ExportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExportError::BadRequest(m) => f.write_str(m),
            ExportError::Failed(e) => write!(f, "{e:#}"),
        }
    }
}

impl std::error::Error for ExportError {}

impl From<anyhow::Error> for ExportError {
    fn from(e: anyhow::Error) -> Self {
        ExportError::Failed(e)
    }
}

fn bad<T>(msg: impl Into<String>) -> Result<T, ExportError> {
    Err(ExportError::BadRequest(msg.into()))
}

/// What an export did.
#[derive(Debug, Clone, Default)]
pub struct ExportReport {
    pub from_ns: i64,
    pub to_ns: i64,
    pub host: Option<IpAddr>,
    pub format: &'static str,
    pub frames_written: u64,
    pub bytes_written: u64,
    /// Batch headers read by the scan.
    pub batches_scanned: u64,
    /// Batch bodies downloaded (those whose capture-time span meets the range).
    pub bodies_fetched: u64,
    pub bytes_fetched: u64,
    /// The stream when the export started.
    pub stream_messages: u64,
    pub stream_bytes: u64,
    /// Said to the user without failing (nothing matched, part of the range aged out...).
    pub warnings: Vec<String>,
}

/// Progress of a long export, for a progress bar.
#[derive(Debug, Clone, Copy)]
pub enum Progress {
    /// Headers scanned so far.
    Scanning { scanned: u64 },
    /// Bodies fetched of the total to fetch.
    Fetching { fetched: u64, total: u64 },
}

/// The request's range and host once its alert (if any) is resolved.
async fn resolve(
    req: &ExportRequest,
    db: Option<&impl tokio_postgres::GenericClient>,
) -> Result<(i64, i64, Option<IpAddr>), ExportError> {
    let (mut from, mut to, mut host) = (req.from_ns, req.to_ns, req.host);
    if let Some(id) = req.alert {
        let Some(db) = db else { return bad("--alert needs the database (database_url)") };
        let span = store::alerts::alert_span(db, id).await.context("reading the alert")?;
        let Some(span) = span else { return bad(format!("no alert with id {id}")) };
        // The key is the attacker (source view) or the victim (destination view): either way
        // the address the alert is about.
        let key: IpAddr = match span.key.parse() {
            Ok(a) => a,
            Err(_) => return bad(format!("alert {id} is about {:?}, not an address", span.key)),
        };
        if host.is_some_and(|h| h != key) {
            return bad(format!("alert {id} is about {key}, not the --host given"));
        }
        host = Some(key);
        from = from.or(Some(span.first_seen_ns));
        to = to.or(Some(span.last_seen_ns));
    }
    let (Some(from), Some(to)) = (from, to) else { return bad("a time range is needed: --from and --to, or --alert") };
    if from > to {
        return bad(format!("--from {} is after --to {}", wire::time::format_ns(from), wire::time::format_ns(to)));
    }
    if let Some(max) = req.max_range_ns {
        if to - from > max {
            return bad(format!(
                "the range is {:.0} s long; at most {:.0} s may be exported at once",
                (to - from) as f64 / 1e9,
                max as f64 / 1e9
            ));
        }
    }
    Ok((from, to, host))
}

/// Exports the request's frames as pcap or pcapng into `out`; `db` is needed for `alert`.
pub async fn export(
    js: &bus::frames::Js,
    db: Option<&impl tokio_postgres::GenericClient>,
    req: &ExportRequest,
    out: &mut impl std::io::Write,
    mut progress: impl FnMut(Progress),
) -> Result<ExportReport, ExportError> {
    let (from, to, host) = resolve(req, db).await?;
    let filters = Filters::new(host, req.port, req.bpf.as_deref()).map_err(ExportError::BadRequest)?;
    if let Some(a) = &req.agent {
        if a.is_empty() || !a.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return bad(format!("{a:?} is not an agent id"));
        }
    }
    let Some((stream, state)) = bus::frames::frames_stream(js).await? else {
        return bad(format!(
            "no frames are kept: there is no {} stream (agents keep frames unless --frame-bytes 0)",
            bus::FRAMES_STREAM
        ));
    };
    let mut report = ExportReport {
        from_ns: from,
        to_ns: to,
        host,
        stream_messages: state.messages,
        stream_bytes: state.bytes,
        ..Default::default()
    };
    let retention = || {
        format!(
            "{} keeps frames for {} h and up to {}",
            bus::FRAMES_STREAM,
            state.max_age.as_secs() / 3600,
            if state.max_bytes > 0 {
                format!("{:.2} GB", state.max_bytes as f64 / 1e9)
            } else {
                "no size limit".into()
            }
        )
    };
    if state.messages == 0 {
        return bad(format!("no frames are kept at the moment ({})", retention()));
    }
    let start = from.saturating_sub(CLOCK_SKEW_MARGIN_NS);
    let refs = bus::frames::scan_headers(&stream, req.agent.as_deref(), start, state.last_seq, |n| {
        progress(Progress::Scanning { scanned: n })
    })
    .await?;
    report.batches_scanned = refs.len() as u64;
    if let (Some(a), true) = (&req.agent, refs.is_empty()) {
        // A mistyped id, or an agent that keeps no frames (--frame-bytes 0).
        return bad(format!("no frames of agent {a} stored since {} ({})", wire::time::format_ns(start), retention()));
    }
    let wanted: Vec<_> = refs.iter().filter(|r| r.ts_max >= from && r.ts_min <= to).collect();
    if wanted.is_empty() {
        let span = retained_span(&stream, &state, &refs).await?;
        let outside = span.is_none_or(|(lo, hi)| to < lo || from > hi);
        if outside {
            let held = match span {
                Some((lo, hi)) => {
                    format!("frames captured {} to {}", wire::time::format_ns(lo), wire::time::format_ns(hi))
                }
                None => "no frame span".into(),
            };
            return bad(format!(
                "no frames kept for {} to {}{}: {} holds {held} (the oldest stored {}); {}",
                wire::time::format_ns(from),
                wire::time::format_ns(to),
                req.agent.as_ref().map(|a| format!(" of agent {a}")).unwrap_or_default(),
                bus::FRAMES_STREAM,
                wire::time::format_ns(state.first_stored_ns),
                retention()
            ));
        }
    } else if state.first_seq > 1 {
        // The stream has dropped its oldest batches: say so if the range reaches before them.
        if let Some((lo, _)) = retained_span(&stream, &state, &refs).await?.filter(|(lo, _)| from < *lo) {
            report.warnings.push(format!(
                "frames captured before {} are no longer kept ({})",
                wire::time::format_ns(lo),
                retention()
            ));
        }
    }

    // One interface (one agent, one link type, per the headers) and times a pcap holds: the
    // frames go straight to `out` in capture order, whatever their number. Otherwise they are
    // gathered to be merged on one time line into a pcapng.
    let header_ifaces: Option<BTreeSet<Iface>> =
        wanted.iter().map(|r| r.linktype.map(|dlt| Iface { agent: r.agent.clone(), dlt })).collect();
    let fits = wanted.iter().all(|r| pcapout::fits_pcap(r.ts_min.max(from)) && pcapout::fits_pcap(r.ts_max.min(to)));
    let streamed: Option<Iface> = header_ifaces.filter(|s| s.len() == 1 && fits).and_then(|s| s.into_iter().next());
    if let Some(iface) = &streamed {
        let h = pcapout::pcap_header(iface.dlt);
        out.write_all(&h).context("writing the pcap")?;
        report.bytes_written += h.len() as u64;
        report.format = pcapout::Format::Pcap.name();
    }
    let mut ifaces: BTreeMap<Iface, usize> = BTreeMap::new();
    let mut frames: Vec<OutFrame> = Vec::new();
    let mut out_bytes = 0u64;
    let total = wanted.len() as u64;
    for r in wanted {
        let Some(body) = bus::frames::fetch_body(&stream, r.seq).await? else {
            report.warnings.push(format!("batch {} aged out during the export", r.seq));
            continue;
        };
        report.bodies_fetched += 1;
        report.bytes_fetched += body.len() as u64;
        progress(Progress::Fetching { fetched: report.bodies_fetched, total });
        let batch = match wire::FrameBatch::decode(&body).map_err(|e| e.to_string()).and_then(|b| {
            b.validate().map_err(|e| e.to_string())?;
            Ok(b)
        }) {
            Ok(b) => b,
            Err(e) => {
                // Not an agent's batch (forged or corrupt): skipped, said.
                report.warnings.push(format!("batch {} skipped: {e}", r.seq));
                continue;
            }
        };
        let in_range: Vec<&wire::Frame> = batch.frames.iter().filter(|f| (from..=to).contains(&f.ts_ns)).collect();
        let data: Vec<(&[u8], u32)> = in_range.iter().map(|f| (f.data.as_slice(), f.wire_len)).collect();
        let keep = filters.apply(batch.linktype, &data).map_err(ExportError::BadRequest)?;
        let next = ifaces.len();
        // The subject names the agent (NATS permissions bind it), not the batch's own field.
        let iface = Iface { agent: r.agent.clone(), dlt: batch.linktype };
        if streamed.as_ref().is_some_and(|s| *s != iface) {
            report.warnings.push(format!("batch {} skipped: its link type is not what its header says", r.seq));
            continue;
        }
        for (f, k) in in_range.into_iter().zip(keep) {
            if !k {
                continue;
            }
            out_bytes += f.data.len() as u64 + 32;
            if let Some(max) = req.max_bytes.filter(|m| out_bytes > *m) {
                return bad(format!(
                    "the export would exceed {:.1} MB: narrow the range or the filters (or use nta export-pcap)",
                    max as f64 / 1e6
                ));
            }
            if streamed.is_some() {
                out.write_all(&pcapout::pcap_record(f.ts_ns, f.data.len(), f.wire_len)).context("writing the pcap")?;
                out.write_all(&f.data).context("writing the pcap")?;
                report.bytes_written += 16 + f.data.len() as u64;
                report.frames_written += 1;
                continue;
            }
            let i = *ifaces.entry(iface.clone()).or_insert(next);
            frames.push(OutFrame { ts_ns: f.ts_ns, wire_len: f.wire_len, data: f.data.clone(), iface: i });
        }
    }
    if streamed.is_some() {
        if report.frames_written == 0 {
            report.warnings.push("no frame in the range matches the filters: the file holds none".into());
        }
        return Ok(report);
    }
    let mut list: Vec<(Iface, usize)> = ifaces.into_iter().collect();
    list.sort_by_key(|(_, i)| *i);
    let list: Vec<Iface> = list.into_iter().map(|(f, _)| f).collect();
    if list.len() > 1 {
        // Several captures meet: one time line (stable, so each capture keeps its order).
        frames.sort_by_key(|f| f.ts_ns);
    }
    let format = pcapout::choose(&list, &frames);
    report.format = format.name();
    report.bytes_written = pcapout::write(out, format, &list, &frames).context("writing the pcap")?;
    report.frames_written = frames.len() as u64;
    if frames.is_empty() {
        report.warnings.push("no frame in the range matches the filters: the file holds none".into());
    }
    Ok(report)
}

/// Capture-time span of what the stream holds, as far as it is known without reading it all:
/// the first and the last batch and those scanned (replays make store order and capture order
/// differ). `None` if there is none.
async fn retained_span(
    stream: &bus::frames::FramesStream,
    state: &bus::frames::FramesState,
    scanned: &[bus::frames::BatchRef],
) -> anyhow::Result<Option<(i64, i64)>> {
    let mut spans: Vec<(i64, i64)> = scanned.iter().map(|r| (r.ts_min, r.ts_max)).collect();
    spans.extend(bus::frames::batch_span(stream, state.first_seq).await?);
    spans.extend(bus::frames::batch_span(stream, state.last_seq).await?);
    Ok(spans.into_iter().reduce(|a, b| (a.0.min(b.0), a.1.max(b.1))))
}

/// Epoch nanoseconds of a time given on a command line or in a query (RFC 3339 or epoch
/// seconds), as a bad-request error naming `what`.
pub fn parse_time(what: &str, text: &str) -> Result<i64, ExportError> {
    wire::time::parse_ns(text).map_err(|e| ExportError::BadRequest(format!("{what}: {e}")))
}
