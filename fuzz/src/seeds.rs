//! Writes the seed corpora of the fuzz targets into `<out>/<target>/` from capture files (the
//! shared captures): frames for `decode_frame` (every link type, IP packets re-wrapped in the
//! link types the captures lack, and a few frames of each application protocol identified),
//! file heads for `read_capture`, encoded batches of the decoded records for `packet_batch`
//! (one per capture in the shorter form of agents older than `app_proto` and `tls_sni`), the
//! first frames of each capture as the agent keeps them for `frame_batch`, windows for `window_record`, and a small trained model for
//! `model_file` (the shipped model is 370 KB: too slow to mutate).
//!
//! Usage: seeds OUT_DIR CAPTURE_DIR...

use agent::decode::dlt;
use agent::source::{Next, Source};
use linfa::prelude::*;
use nta_fuzz::selector;
use predictor::{ForestParams, Model, ViewModel};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use wire::{PacketBatch, View, WindowRecord};

/// Frames kept per capture (spread over the file) and the size of a capture head.
const FRAMES_PER_CAPTURE: usize = 24;
const CAPTURE_HEAD: usize = 16 * 1024;
const RECORDS_PER_BATCH: usize = 6;
/// Frames kept per capture for each (app_proto, with a server name) seen.
const IDENTIFIED_PER_KIND: usize = 3;
const BATCHES_PER_CAPTURE: usize = 4;

struct Out {
    dir: PathBuf,
    n: usize,
}

impl Out {
    fn write(&mut self, target: &str, bytes: &[u8]) {
        let dir = self.dir.join(target);
        std::fs::create_dir_all(&dir).expect("creating the corpus directory");
        std::fs::write(dir.join(format!("seed-{:05}", self.n)), bytes).expect("writing a seed");
        self.n += 1;
    }
}

fn main() {
    let mut args = std::env::args_os().skip(1);
    let Some(out) = args.next() else {
        eprintln!("usage: seeds OUT_DIR CAPTURE_DIR...");
        std::process::exit(2);
    };
    let mut out = Out { dir: PathBuf::from(out), n: 0 };
    let mut captures: Vec<PathBuf> = Vec::new();
    for dir in args {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        captures.extend(entries.flatten().map(|e| e.path()).filter(|p| is_capture(p)));
    }
    captures.sort();
    if captures.is_empty() {
        eprintln!("seeds: no capture files found");
        std::process::exit(1);
    }
    for path in &captures {
        let bytes = std::fs::read(path).expect("reading a capture");
        out.write("read_capture", &bytes[..bytes.len().min(CAPTURE_HEAD)]);
        frames(&mut out, path);
        batches(&mut out, path);
        frame_batches(&mut out, path);
    }
    windows(&mut out);
    model(&mut out);
    eprintln!("seeds: {} seeds from {} captures in {}", out.n, captures.len(), out.dir.display());
}

/// A batch of the first frames of `path` as the agent keeps them (`frame_batch`).
fn frame_batches(out: &mut Out, path: &Path) {
    let Ok(mut src) = Source::open_file(path) else { return };
    let mut b = wire::FrameBatch::new("seed", "0123456789abcdef", 1, src.linktype);
    while let Ok(Next::Frame(f)) = src.next_frame() {
        b.frames.push(wire::Frame { ts_ns: f.ts_ns, wire_len: f.wire_len, data: f.data.to_vec() });
        if b.frames.len() == RECORDS_PER_BATCH {
            break;
        }
    }
    out.write("frame_batch", &b.encode());
}

fn is_capture(p: &Path) -> bool {
    matches!(p.extension().and_then(|e| e.to_str()), Some("pcap" | "pcapng" | "cap"))
}

fn frames(out: &mut Out, path: &Path) {
    let Ok(mut src) = Source::open_file(path) else { return };
    let Some(sel) = selector(src.linktype) else { return };
    let mut all = Vec::new();
    while let Ok(Next::Frame(f)) = src.next_frame() {
        all.push(f.data.to_vec());
    }
    let step = (all.len() / FRAMES_PER_CAPTURE).max(1);
    let spread = all.iter().step_by(step).take(FRAMES_PER_CAPTURE);
    // Frames identified by content (TLS ClientHellos above all) are rare in a capture: a few of
    // each kind are added so the identifiers are fuzzed from real input.
    let decoder = agent::decode::Decoder::new(src.linktype);
    let mut kinds: BTreeMap<(Option<wire::AppProto>, bool), usize> = BTreeMap::new();
    let identified = all.iter().filter(|f| match decoder.decode(1.0, f.len() as u32, f) {
        Ok(r) if r.app_proto.is_some() => {
            let n = kinds.entry((r.app_proto, r.tls_sni.is_some())).or_default();
            *n += 1;
            *n <= IDENTIFIED_PER_KIND
        }
        _ => false,
    });
    let chosen: Vec<&Vec<u8>> = spread.chain(identified.collect::<Vec<_>>()).collect();
    for frame in chosen {
        out.write("decode_frame", &[&[sel][..], frame].concat());
        // The same IP packet under every other link type.
        if src.linktype == dlt::EN10MB && frame.len() > 14 {
            let (ether_type, ip) = (&frame[12..14], &frame[14..]);
            let v6 = ether_type == [0x86, 0xdd];
            if ether_type != [0x08, 0x00] && !v6 {
                continue;
            }
            let family_le: u32 = if v6 { 10 } else { 2 };
            let family_be: u32 = if v6 { 24 } else { 2 };
            let sll = [&[0, 0, 0, 1, 0, 6][..], &frame[6..12], &[0, 0], ether_type].concat();
            let sll2 = [ether_type, &[0, 0, 0, 0, 0, 2, 0, 1, 0, 6], &frame[6..12], &[0, 0]].concat();
            for (linktype, header) in [
                (dlt::RAW, Vec::new()),
                (dlt::LINUX_SLL, sll),
                (dlt::LINUX_SLL2, sll2),
                (dlt::NULL, family_le.to_le_bytes().to_vec()),
                (dlt::LOOP, family_be.to_be_bytes().to_vec()),
            ] {
                let sel = selector(linktype).expect("a supported link type");
                out.write("decode_frame", &[&[sel][..], &header, ip].concat());
            }
        }
    }
}

fn batches(out: &mut Out, path: &Path) {
    let Ok(records) = agent::records_from_file(path) else { return };
    // Records with DNS or HTTP fields first: they exercise the string fields.
    let (mut rich, plain): (Vec<_>, Vec<_>) = records.into_iter().partition(|r| {
        r.dns_qname.is_some() || r.http_method.is_some() || r.http_status_code.is_some() || r.tls_sni.is_some()
    });
    rich.extend(plain);
    for (i, chunk) in rich.chunks(RECORDS_PER_BATCH).take(BATCHES_PER_CAPTURE).enumerate() {
        let mut b = PacketBatch::new("seed-agent", "0123456789abcdef", i as u64);
        b.records = chunk.to_vec();
        out.write("packet_batch", &b.encode().expect("encoding a batch"));
        if i == 0 {
            out.write("packet_batch", &older_agent_batch(&b));
        }
    }
}

/// `b` as an agent from before `app_proto` and `tls_sni` wrote it: records of 36 fields.
fn older_agent_batch(b: &PacketBatch) -> Vec<u8> {
    let mut head = b.clone();
    head.records.clear();
    let mut out = head.encode().expect("encoding a batch");
    assert_eq!(out.pop(), Some(0x90), "an empty record array ends the batch");
    out.extend_from_slice(&[0xdc, 0, b.records.len() as u8]);
    for r in &b.records {
        let mut old = r.clone();
        (old.app_proto, old.tls_sni) = (None, None);
        let mut rec = Vec::new();
        old.encode_msgpack(&mut rec);
        assert_eq!(rec[..3], [0xdc, 0, 38]);
        rec[2] = 36;
        rec.truncate(rec.len() - 2); // the two trailing nils
        out.extend_from_slice(&rec);
    }
    out
}

fn window(view: View, size: u32, value: impl Fn(usize) -> Option<f64>) -> WindowRecord {
    WindowRecord {
        v: wire::BATCH_FORMAT_VERSION,
        view,
        key: if view == View::Source { "10.0.0.1".into() } else { "2001:db8::2".into() },
        window_start: 1_767_225_600,
        window_size: size,
        features: wire::features::names(view).enumerate().map(|(i, f)| (f.to_string(), value(i))).collect(),
    }
}

fn windows(out: &mut Out) {
    for view in [View::Source, View::Destination] {
        for size in wire::window::WINDOW_SIZES {
            for w in [
                window(view, size, |i| Some(i as f64 * 1.5)),
                window(view, size, |i| if i % 3 == 0 { None } else { Some(1e6 / (i + 1) as f64) }),
                window(view, size, |_| Some(0.0)),
            ] {
                out.write("window_record", &w.encode().expect("encoding a window"));
            }
        }
    }
}

/// A model of both views on a few features, trained like the predictor's tests train theirs.
fn model(out: &mut Out) {
    let mut per_view = BTreeMap::new();
    for view in [View::Source, View::Destination] {
        let features: Vec<String> = wire::features::names(view).take(3).map(String::from).collect();
        let (mut rows, mut y) = (Vec::new(), Vec::new());
        for i in 0..60 {
            let class = [0usize, 4, 7][i % 3];
            rows.push(window(view, 5, |j| Some((class * 100 + i + j) as f64)));
            y.push(class);
        }
        let x = predictor::model::feature_matrix(&features, &rows);
        let forest = ForestParams { n_trees: 2, max_depth: 4, ..Default::default() }
            .fit(&Dataset::new(x, ndarray::Array1::from(y)))
            .expect("training the seed model");
        per_view.insert(view, ViewModel::new(features, forest).expect("a valid view model"));
    }
    let m = Model::new(
        per_view.remove(&View::Source),
        per_view.remove(&View::Destination),
        "fuzz-seed",
        serde_json::json!({"n_trees": 2}),
        serde_json::json!({}),
    )
    .expect("a valid model");
    out.write("model_file", &m.to_bytes().expect("encoding the model"));
}
