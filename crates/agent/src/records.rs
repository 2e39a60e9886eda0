//! Frames to records: [`FrameDecoder`] is the one step from a captured frame to a
//! [`PacketRecord`] (decode, stamp the interface, count what is malformed), shared by live
//! capture and file replay ([`crate::capture`]), `nta decode` ([`crate::offline`], through
//! [`for_each_chunk`]) and every reader of capture files ([`for_each_record`]: `nta analyze`
//! and training), so all of them see the same records.

use anyhow::{bail, Result};
use std::path::Path;
use std::sync::Arc;
use wire::PacketRecord;

use crate::decode::{DecodeError, Decoder};
use crate::source::{Next, RawFrame, Source};

/// Decodes the frames of one source into records carrying its interface name.
pub struct FrameDecoder {
    decoder: Decoder,
    interface: Arc<str>,
}

impl FrameDecoder {
    /// For frames of `linktype`, recorded as seen on `interface` (cut to
    /// [`wire::limits::MAX_INTERFACE_LEN`]: a capture file's name can be longer once made
    /// UTF-8, and consumers reject records with a longer one).
    pub fn new(linktype: i32, interface: Arc<str>) -> FrameDecoder {
        let max = wire::limits::MAX_INTERFACE_LEN;
        let interface = if interface.len() > max {
            Arc::from(crate::decode::bounded("interface", &interface, max))
        } else {
            interface
        };
        FrameDecoder { decoder: Decoder::new(linktype), interface }
    }

    /// For the frames of `source` (its link type and interface or file name).
    pub fn for_source(source: &Source) -> FrameDecoder {
        FrameDecoder::new(source.linktype, source.interface.clone())
    }

    /// The record of `frame`, or `None` when the frame is malformed: then it is counted in
    /// `nta_agent_frames_malformed_total{reason}` and logged (debug) with its number `n`.
    #[inline]
    pub fn record(&self, frame: &RawFrame<'_>, n: u64) -> Option<PacketRecord> {
        let mut rec = PacketRecord::default();
        self.record_into(frame, n, &mut rec).then_some(rec)
    }

    /// [`FrameDecoder::record`] into `rec`, where the caller keeps it (saves copying the
    /// record); `false` when the frame is malformed (then `rec` holds a partial record).
    #[inline]
    pub fn record_into(&self, frame: &RawFrame<'_>, n: u64, rec: &mut PacketRecord) -> bool {
        match self.decoder.decode_into(frame.timestamp, frame.wire_len, frame.data, rec) {
            Ok(()) => {
                rec.interface = self.interface.clone();
                true
            }
            Err(e) => {
                metrics::counter!("nta_agent_frames_malformed_total", "reason" => e.kind()).increment(1);
                tracing::debug!(frame = n, error = %e, "skipping malformed frame");
                false
            }
        }
    }
}

/// What reading a capture file saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileStats {
    /// Frames read from the file.
    pub frames: u64,
    /// Frames turned into records.
    pub decoded: u64,
    /// Frames skipped because their link or network header is truncated or invalid.
    pub malformed: u64,
    /// The file itself is truncated or corrupt: reading stopped there (the records before it
    /// were delivered).
    pub file_error: Option<String>,
}

impl FileStats {
    /// Logs a warning when the file `path` ended early (see [`FileStats::file_error`]).
    pub fn warn_on_file_error(&self, path: &Path) {
        if let Some(e) = &self.file_error {
            tracing::warn!(file = %path.display(), error = %e, "capture ends early");
        }
    }
}

/// Calls `f` with the record of every decodable frame of `path`, in file order. Malformed
/// frames are counted and skipped; a file damaged part-way stops the read and is reported in
/// [`FileStats::file_error`], not as an error. Errors are: the file cannot be opened, its link
/// type is not supported, or `f` fails (which stops the read).
pub fn for_each_record(path: &Path, mut f: impl FnMut(PacketRecord) -> Result<()>) -> Result<FileStats> {
    read_file(path, |frames, frame, n| match frames.record(frame, n) {
        Some(rec) => f(rec).map(|()| true),
        None => Ok(false),
    })
}

/// The reading loop of [`for_each_record`]: `decode` turns frame number `n` into a record
/// (and hands it on), saying whether the frame was decodable.
fn read_file(
    path: &Path,
    mut decode: impl FnMut(&FrameDecoder, &RawFrame<'_>, u64) -> Result<bool>,
) -> Result<FileStats> {
    let mut source = Source::open_file(path)?;
    if !Decoder::supports(source.linktype) {
        bail!("{}: {}", path.display(), DecodeError::UnsupportedLinktype(source.linktype));
    }
    let frames = FrameDecoder::for_source(&source);
    let mut stats = FileStats::default();
    loop {
        let frame = match source.next_frame() {
            Ok(Next::Frame(fr)) => fr,
            Ok(Next::Idle) => continue,
            Ok(Next::End) => break,
            Err(e) => {
                stats.file_error = Some(format!("{e:#}"));
                break;
            }
        };
        stats.frames += 1;
        if decode(&frames, &frame, stats.frames)? {
            stats.decoded += 1;
        } else {
            stats.malformed += 1;
        }
    }
    Ok(stats)
}

/// Records per chunk handed over by [`for_each_chunk`]: large enough that the hand-over costs
/// nothing per record, small enough that the first output comes at once.
const CHUNK: usize = 1024;
/// Chunks decoded ahead of the consumer; bounds the memory the reader may run ahead with.
const CHUNKS_AHEAD: usize = 4;

/// Why the reading thread of [`for_each_chunk`] stopped early: the consumer failed (its error
/// is the one reported).
#[derive(Debug, thiserror::Error)]
#[error("the consumer of the records stopped")]
struct ConsumerStopped;

/// [`for_each_record`] on two threads: reading and decoding `path` run on a thread of their
/// own while `f` gets the records on the calling thread, in file order, in chunks of up to
/// [`CHUNK`], so that whatever `f` does with them (encoding, writing) overlaps with the
/// reading. The outcome is [`for_each_record`]'s: the same [`FileStats`] (a file damaged
/// part-way is reported after all the records before the damage were handed over), the same
/// errors; an error of `f` stops the read and is the one returned.
pub fn for_each_chunk(path: &Path, mut f: impl FnMut(&[PacketRecord]) -> Result<()>) -> Result<FileStats> {
    let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<Vec<PacketRecord>>(CHUNKS_AHEAD);
    // Emptied chunks go back to the reader, so steady state allocates no chunk.
    let (empty_tx, empty_rx) = std::sync::mpsc::sync_channel::<Vec<PacketRecord>>(CHUNKS_AHEAD + 2);
    std::thread::scope(|scope| {
        let reader = std::thread::Builder::new().name("nta-read".into()).spawn_scoped(scope, move || {
            let mut chunk = Vec::with_capacity(CHUNK);
            let stats = read_file(path, |frames, frame, n| {
                // Decoded in place, in the chunk.
                chunk.push(PacketRecord::default());
                let slot = chunk.last_mut().expect("just pushed");
                if !frames.record_into(frame, n, slot) {
                    chunk.pop();
                    return Ok(false);
                }
                if chunk.len() == CHUNK {
                    let next = empty_rx.try_recv().unwrap_or_else(|_| Vec::with_capacity(CHUNK));
                    full_tx.send(std::mem::replace(&mut chunk, next)).map_err(|_| ConsumerStopped)?;
                }
                Ok(true)
            })?;
            if !chunk.is_empty() {
                full_tx.send(chunk).map_err(|_| ConsumerStopped)?;
            }
            Ok(stats)
        })?;
        let mut consumed = Ok(());
        while let Ok(mut chunk) = full_rx.recv() {
            if let Err(e) = f(&chunk) {
                consumed = Err(e);
                break;
            }
            chunk.clear();
            let _ = empty_tx.try_send(chunk);
        }
        // A reader blocked on a full channel now fails its send and stops.
        drop(full_rx);
        let read: Result<FileStats> = reader.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        consumed?;
        read
    })
}

/// Every decodable record of a capture file (a file damaged part-way yields the records before
/// the damage, with a warning).
pub fn records_from_file(path: &Path) -> Result<Vec<PacketRecord>> {
    let mut v = Vec::new();
    for_each_record(path, |r| {
        v.push(r);
        Ok(())
    })?
    .warn_on_file_error(path);
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_shared_capture_and_refuses_what_is_not_one() {
        let path = testkit::pcaps_dir().join("arp_spoof-unsolicited-replies.pcap");
        let mut n = 0;
        let stats = for_each_record(&path, |r| {
            assert_eq!(&*r.interface, "arp_spoof-unsolicited-replies.pcap");
            n += 1;
            Ok(())
        })
        .unwrap();
        assert!(n > 0);
        assert_eq!((stats.frames, stats.decoded, stats.malformed, stats.file_error), (n, n, 0, None));
        assert_eq!(records_from_file(&path).unwrap().len() as u64, n);

        // A failing callback stops the read with its error.
        let e = for_each_record(&path, |_| bail!("stop here")).unwrap_err();
        assert_eq!(e.to_string(), "stop here");

        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.pcap");
        std::fs::write(&junk, b"not a capture at all").unwrap();
        assert!(records_from_file(&junk).is_err());
    }

    /// The two-thread reader hands over exactly the records and stats of the one-thread one,
    /// on whole files, a file cut in the middle of a frame, and a file that is not a capture;
    /// a failing consumer stops it with the consumer's error.
    #[test]
    fn chunks_are_the_records_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let whole = testkit::pcaps_dir().join("port_scan-syn-1000ports.pcap");
        let bytes = std::fs::read(&whole).unwrap();
        let cut = dir.path().join("cut.pcap");
        std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3 + 5]).unwrap();
        for path in [whole.clone(), cut.clone(), testkit::pcaps_dir().join("malformed-badpackets.pcap")] {
            let mut expected = Vec::new();
            let expected_stats = for_each_record(&path, |r| {
                expected.push(r);
                Ok(())
            })
            .unwrap();
            let mut got = Vec::new();
            let mut sizes = Vec::new();
            let stats = for_each_chunk(&path, |c| {
                got.extend_from_slice(c);
                sizes.push(c.len());
                Ok(())
            })
            .unwrap();
            assert_eq!(stats, expected_stats, "{}", path.display());
            assert!(got == expected, "{}", path.display());
            assert!(sizes.iter().all(|&n| n > 0 && n <= CHUNK), "{sizes:?}");
        }
        let n = records_from_file(&whole).unwrap().len();
        assert!(n > 2 * CHUNK, "{n} records: the test wants several chunks");
        let cut_stats = for_each_chunk(&cut, |_| Ok(())).unwrap();
        assert!(cut_stats.file_error.is_some() && cut_stats.decoded > 0, "{cut_stats:?}");

        let mut calls = 0;
        let e = for_each_chunk(&whole, |_| {
            calls += 1;
            bail!("output closed")
        })
        .unwrap_err();
        assert_eq!((e.to_string(), calls), ("output closed".to_string(), 1));

        let junk = dir.path().join("junk.pcap");
        std::fs::write(&junk, b"not a capture at all").unwrap();
        let e = for_each_chunk(&junk, |_| Ok(())).unwrap_err();
        assert!(e.to_string().contains("cannot open capture"), "{e:#}");
    }

    /// A pcapng file: section header, one Ethernet interface (microseconds), and an enhanced
    /// packet block per `(timestamp in microseconds, frame)`.
    fn pcapng(packets: &[(u64, &[u8])]) -> Vec<u8> {
        let block = |kind: u32, body: &[u8]| {
            let len = (12 + body.len().next_multiple_of(4)) as u32;
            let mut b = Vec::new();
            b.extend_from_slice(&kind.to_le_bytes());
            b.extend_from_slice(&len.to_le_bytes());
            b.extend_from_slice(body);
            b.resize(len as usize - 4, 0);
            b.extend_from_slice(&len.to_le_bytes());
            b
        };
        let mut shb = 0x1a2b_3c4du32.to_le_bytes().to_vec();
        shb.extend_from_slice(&[1, 0, 0, 0]); // version 1.0
        shb.extend_from_slice(&u64::MAX.to_le_bytes()); // section length unknown
        let mut f = block(0x0a0d_0d0a, &shb);
        f.extend(block(1, &[1, 0, 0, 0, 0, 0, 0, 0])); // IDB: LINKTYPE_ETHERNET, no snaplen
        for (ts, frame) in packets {
            let mut epb = 0u32.to_le_bytes().to_vec(); // interface 0
            epb.extend_from_slice(&((ts >> 32) as u32).to_le_bytes());
            epb.extend_from_slice(&(*ts as u32).to_le_bytes());
            epb.extend_from_slice(&(frame.len() as u32).to_le_bytes());
            epb.extend_from_slice(&(frame.len() as u32).to_le_bytes());
            epb.extend_from_slice(frame);
            f.extend(block(6, &epb));
        }
        f
    }

    /// Found by fuzzing (`read_capture`): a pcapng timestamp beyond the year 9999 made a
    /// record that `PacketBatch::validate` rejects, so its whole batch would be dead-lettered.
    #[test]
    fn frames_with_impossible_capture_times_are_malformed() {
        // An Ethernet frame of an unknown EtherType: a record without IP fields.
        let frame = [&[2u8, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x88, 0xb5][..], &[0; 46]].concat();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad-time.pcapng");
        let ok = 1_767_225_600_000_000u64; // 2026-01-01 in microseconds
        std::fs::write(&path, pcapng(&[(ok, &frame), (0xffff_f60d_ffdc_ef58, &frame), (ok + 1, &frame)])).unwrap();
        let mut times = Vec::new();
        let stats = for_each_record(&path, |r| {
            times.push(r.timestamp);
            Ok(())
        })
        .unwrap();
        assert_eq!((stats.frames, stats.decoded, stats.malformed, stats.file_error), (3, 2, 1, None));
        assert_eq!(times, [1_767_225_600.0, 1_767_225_600.000001]);
        let mut batch = wire::PacketBatch::new("a", "b", 0);
        batch.records = records_from_file(&path).unwrap();
        assert_eq!(batch.validate(), Ok(()));
    }
}
