//! The hand-written MessagePack encoder of `wire` against `rmp_serde` on every record of
//! every shared capture (benign-corpus included) and of the benchmark's synthetic capture:
//! both the record forms and whole batches must be byte-identical, so old and new agents
//! interoperate and `nta decode --format msgpack` prints what it printed before.

use agent::offline::{decode_file, OutputFormat};
use agent::records_from_file;
use std::path::PathBuf;
use wire::PacketBatch;

fn captures() -> Vec<PathBuf> {
    let mut v = testkit::shared_pcaps();
    v.extend(testkit::benign_corpus());
    v
}

fn assert_identical(path: &std::path::Path) -> usize {
    let records = records_from_file(path).unwrap();
    let mut named_stream = Vec::new();
    for (i, r) in records.iter().enumerate() {
        let mut ours = Vec::new();
        r.encode_msgpack(&mut ours);
        assert_eq!(ours, rmp_serde::to_vec(r).unwrap(), "{} record {i} (compact): {r:?}", path.display());
        let mut theirs = Vec::new();
        rmp_serde::encode::write_named(&mut theirs, r).unwrap();
        ours.clear();
        r.encode_msgpack_named(&mut ours);
        assert_eq!(ours, theirs, "{} record {i} (named): {r:?}", path.display());
        named_stream.extend_from_slice(&theirs);
    }
    // What `nta decode --format msgpack` writes: the serde encoding of every record, in order.
    let mut out = Vec::new();
    let stats = decode_file(path, OutputFormat::Msgpack, &mut out).unwrap();
    assert_eq!(stats.decoded as usize, records.len());
    assert!(out == named_stream, "{}: nta decode output differs from rmp_serde's", path.display());
    // The agent's batches, in the sizes it cuts.
    for size in [1, 500] {
        for (seq, chunk) in records.chunks(size).enumerate() {
            let mut b = PacketBatch::new("agent-1", "0123456789abcdef", seq as u64);
            b.records = chunk.to_vec();
            assert!(b.encode().unwrap() == rmp_serde::to_vec(&b).unwrap(), "{} batch {seq}", path.display());
        }
    }
    records.len()
}

#[test]
fn every_record_of_every_shared_capture() {
    let mut total = 0;
    for path in captures() {
        total += assert_identical(&path);
    }
    assert!(total > 10_000, "only {total} records compared");
}

#[test]
fn every_record_of_the_synthetic_capture() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gen.pcap");
    bench::capture::generate_capture(&path, 20_000).unwrap();
    assert_eq!(assert_identical(&path), 20_000);
}
