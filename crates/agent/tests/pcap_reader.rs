//! The fast classic-pcap reader behind `Source::open_file` against libpcap itself: the same
//! frames (bytes, wire length, timestamp to the bit) and the same ending (end of file, or the
//! same error after the same frames) on every shared capture, on byte-swapped and nanosecond
//! rewrites of them, on files cut anywhere, and on frames longer than the snap length.

use agent::source::{Next, Source};
use std::path::{Path, PathBuf};

/// A frame as read: timestamp bits, wire length, bytes.
type Frame = (u64, u32, Vec<u8>);

/// Every frame of `src` and how the read ended.
fn read_all(mut src: Source) -> (Vec<Frame>, Option<String>) {
    let mut frames = Vec::new();
    loop {
        match src.next_frame() {
            Ok(Next::Frame(f)) => frames.push((f.timestamp.to_bits(), f.wire_len, f.data.to_vec())),
            Ok(Next::Idle) => panic!("a file is never idle"),
            Ok(Next::End) => return (frames, None),
            Err(e) => return (frames, Some(format!("{e:#}"))),
        }
    }
}

fn assert_same(path: &Path) -> usize {
    let ours = Source::open_file(path).map(|s| (s.linktype, read_all(s)));
    let libpcap = Source::open_file_with_libpcap(path).map(|s| (s.linktype, read_all(s)));
    match (ours, libpcap) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a.0, b.0, "{}: link type", path.display());
            assert_eq!(a.1 .1, b.1 .1, "{}: how the read ended", path.display());
            assert_eq!(a.1 .0.len(), b.1 .0.len(), "{}: frames", path.display());
            assert!(a.1 .0 == b.1 .0, "{}: frames differ", path.display());
            a.1 .0.len()
        }
        (Err(a), Err(b)) => {
            assert_eq!(format!("{a:#}"), format!("{b:#}"));
            0
        }
        (a, b) => panic!("{}: ours {:?}, libpcap {:?}", path.display(), a.map(|_| ()), b.map(|_| ())),
    }
}

fn captures() -> Vec<PathBuf> {
    let mut v = testkit::shared_pcaps();
    v.extend(testkit::benign_corpus());
    v
}

/// A classic pcap rewritten: byte order swapped and/or microseconds turned into nanoseconds.
fn rewrite(bytes: &[u8], swap: bool, to_nanos: bool) -> Option<Vec<u8>> {
    let magic = u32::from_le_bytes(bytes.get(0..4)?.try_into().unwrap());
    if magic != 0xa1b2_c3d4 {
        return None; // only little-endian microsecond files are rewritten
    }
    let rd = |b: &[u8], i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap());
    let wr = |out: &mut Vec<u8>, v: u32| out.extend_from_slice(&if swap { v.to_be_bytes() } else { v.to_le_bytes() });
    let wr16 = |out: &mut Vec<u8>, v: u16| out.extend_from_slice(&if swap { v.to_be_bytes() } else { v.to_le_bytes() });
    let mut out = Vec::with_capacity(bytes.len());
    wr(&mut out, if to_nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 });
    wr16(&mut out, u16::from_le_bytes([bytes[4], bytes[5]]));
    wr16(&mut out, u16::from_le_bytes([bytes[6], bytes[7]]));
    for i in [8, 12, 16, 20] {
        wr(&mut out, rd(bytes, i));
    }
    let mut at = 24;
    while at + 16 <= bytes.len() {
        let caplen = rd(bytes, at + 8) as usize;
        let frac = rd(bytes, at + 4);
        wr(&mut out, rd(bytes, at));
        wr(&mut out, if to_nanos { frac.wrapping_mul(1000) } else { frac });
        wr(&mut out, caplen as u32);
        wr(&mut out, rd(bytes, at + 12));
        let end = (at + 16 + caplen).min(bytes.len());
        out.extend_from_slice(&bytes[at + 16..end]);
        at = end;
    }
    Some(out)
}

#[test]
fn same_frames_as_libpcap_on_every_shared_capture() {
    let mut total = 0;
    for path in captures() {
        total += assert_same(&path);
    }
    assert!(total > 10_000, "{total} frames");
}

#[test]
fn same_frames_on_swapped_nanosecond_and_cut_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut rewritten = 0;
    for path in testkit::shared_pcaps() {
        let bytes = std::fs::read(&path).unwrap();
        for (swap, nanos) in [(true, false), (false, true), (true, true)] {
            if let Some(b) = rewrite(&bytes, swap, nanos) {
                let p = dir.path().join("rewritten.pcap");
                std::fs::write(&p, b).unwrap();
                assert!(assert_same(&p) > 0, "{} {swap} {nanos}", path.display());
                rewritten += 1;
            }
        }
        // Cut at a spread of offsets: inside the file header, record headers and frames.
        let step = (bytes.len() / 37).max(1);
        for cut in (0..bytes.len()).step_by(step).chain([1, 23, 24, 25, 39, 40, 41]) {
            let p = dir.path().join("cut.pcap");
            std::fs::write(&p, &bytes[..cut.min(bytes.len())]).unwrap();
            assert_same(&p);
        }
    }
    assert!(rewritten >= 30, "{rewritten} rewritten files");
}

/// A capture of several read buffers (1 MiB each): records cut across buffer boundaries.
#[test]
fn same_frames_on_a_capture_larger_than_the_read_buffers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gen.pcap");
    bench::capture::generate_capture(&path, 30_000).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() > 5 << 20, "{} bytes", bytes.len());
    assert_eq!(assert_same(&path), 30_000);
    let p = dir.path().join("variant.pcap");
    std::fs::write(&p, rewrite(&bytes, true, true).unwrap()).unwrap();
    assert_eq!(assert_same(&p), 30_000);
    for cut in [(1 << 20) - 7, (1 << 20) + 3, (3 << 20) + 11, bytes.len() - 1] {
        std::fs::write(&p, &bytes[..cut]).unwrap();
        assert!(assert_same(&p) > 1000);
    }
}

/// A named pipe can be read once: it stays libpcap's alone (NTA's reader opens the file again).
#[test]
fn a_named_pipe_is_read_by_libpcap() {
    let dir = tempfile::tempdir().unwrap();
    let path = testkit::pcaps_dir().join("port_scan-syn-1000ports.pcap");
    let expected = read_all(Source::open_file_with_libpcap(&path).unwrap());
    let fifo = dir.path().join("fifo.pcap");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let bytes = std::fs::read(&path).unwrap();
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::write(fifo, bytes))
    };
    let got = read_all(Source::open_file(&fifo).unwrap());
    writer.join().unwrap().unwrap();
    assert_eq!(got.1, expected.1);
    assert!(got.0 == expected.0, "{} frames against {}", got.0.len(), expected.0.len());
}

/// Frames longer than the file's snap length (libpcap truncates them), a frame of a length
/// libpcap refuses, and a file header of another version: our reader hands over to libpcap.
#[test]
fn unusual_files_are_read_as_libpcap_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    let header = |snaplen: u32, minor: u16| {
        let mut h = 0xa1b2_c3d4u32.to_le_bytes().to_vec();
        h.extend_from_slice(&2u16.to_le_bytes());
        h.extend_from_slice(&minor.to_le_bytes());
        h.extend_from_slice(&[0; 8]);
        h.extend_from_slice(&snaplen.to_le_bytes());
        h.extend_from_slice(&1u32.to_le_bytes());
        h
    };
    let record = |sec: u32, frac: u32, caplen: u32, data: &[u8]| {
        let mut r = Vec::new();
        for v in [sec, frac, caplen, data.len().max(caplen as usize) as u32] {
            r.extend_from_slice(&v.to_le_bytes());
        }
        r.extend_from_slice(data);
        r
    };
    let frame: Vec<u8> = (0..200u8).collect();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("over snaplen", [header(100, 4), record(1, 2, 60, &frame[..60]), record(3, 4, 200, &frame)].concat()),
        ("snaplen 0", [header(0, 4), record(1, 999_999, 200, &frame), record(u32::MAX, u32::MAX, 0, &[])].concat()),
        ("huge caplen", [header(65535, 4), record(1, 2, 60, &frame[..60]), record(1, 2, 0x7fff_ffff, &frame)].concat()),
        ("version 2.3", [header(65535, 3), record(1, 2, 60, &frame[..60])].concat()),
        ("negative time", [header(65535, 4), record(0x8000_0000, 0xffff_fff0, 60, &frame[..60])].concat()),
    ];
    for (name, bytes) in cases {
        let p = dir.path().join("unusual.pcap");
        std::fs::write(&p, bytes).unwrap();
        eprintln!("{name}");
        assert_same(&p);
    }
}
