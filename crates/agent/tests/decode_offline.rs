//! `decode_file`: JSON lines and MessagePack output of whole captures, malformed counting and
//! a capture file damaged part-way.

use agent::offline::{decode_file, OutputFormat};
use std::io::Write;

fn shared(name: &str) -> std::path::PathBuf {
    testkit::pcaps_dir().join(name)
}

#[test]
fn jsonl_one_object_per_frame_with_all_fields() {
    let mut out = Vec::new();
    let stats = decode_file(&shared("benign-mdns.pcap"), OutputFormat::Jsonl, &mut out).unwrap();
    assert_eq!((stats.frames, stats.decoded, stats.malformed), (292, 292, 0));
    assert_eq!(stats.file_error, None);
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 292);
    for l in &lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        let o = v.as_object().unwrap();
        assert_eq!(o.len(), 38, "{l}");
        assert_eq!(o["interface"], "benign-mdns.pcap");
        assert!(o["dst_mac"].is_null());
        assert!(o["src_mac"].is_string());
        assert!(o["tls_sni"].is_null());
        assert!(o["app_proto"].is_null() || o["app_proto"] == "dns", "{l}");
    }
}

#[test]
fn msgpack_named_maps_concatenated() {
    let mut out = Vec::new();
    let stats = decode_file(&shared("benign-http-auth.pcap"), OutputFormat::Msgpack, &mut out).unwrap();
    assert_eq!(stats.decoded, 33);
    let mut rd = std::io::Cursor::new(&out[..]);
    let mut n = 0;
    let mut methods = 0;
    while (rd.position() as usize) < out.len() {
        let at = rd.position() as usize;
        // map16 marker with 38 entries: a self-describing map, not an array.
        assert_eq!(&out[at..at + 3], &[0xde, 0, 38]);
        let r: wire::PacketRecord = rmp_serde::decode::from_read(&mut rd).unwrap();
        assert_eq!(&*r.interface, "benign-http-auth.pcap");
        methods += r.http_method.is_some() as usize;
        assert_eq!(r.app_proto == Some(wire::AppProto::Http), r.http_method.is_some() || r.http_status_code.is_some());
        n += 1;
    }
    assert_eq!(n, 33);
    assert!(methods > 0);
}

#[test]
fn truncated_capture_file_keeps_earlier_records() {
    let bytes = std::fs::read(shared("icmp-host-sweep.pcap")).unwrap();
    let mut f = tempfile::NamedTempFile::new().unwrap();
    // Cut in the middle of a record.
    f.write_all(&bytes[..bytes.len() / 2 + 7]).unwrap();
    f.flush().unwrap();
    let mut out = Vec::new();
    let stats = decode_file(f.path(), OutputFormat::Jsonl, &mut out).unwrap();
    assert!(stats.decoded > 100, "{stats:?}");
    assert_eq!(stats.decoded, stats.frames);
    assert_eq!(String::from_utf8(out).unwrap().lines().count() as u64, stats.decoded);
    assert!(stats.file_error.is_some(), "{stats:?}");
}

#[test]
fn missing_file_is_an_error() {
    let mut out = Vec::new();
    assert!(decode_file(std::path::Path::new("/nonexistent.pcap"), OutputFormat::Jsonl, &mut out).is_err());
}
