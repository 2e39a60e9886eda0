//! The decoder must never panic: every prefix of every frame of every shared capture, those
//! frames with random bytes flipped, and random byte strings, under every supported link type.

use agent::decode::Decoder;
use agent::source::{Next, Source};
use rand::{Rng, RngCore, SeedableRng};

const LINKTYPES: &[i32] = &[0, 1, 12, 14, 101, 108, 113, 228, 229, 276, 147];

fn all_frames() -> Vec<(i32, Vec<u8>)> {
    let mut out = Vec::new();
    for path in testkit::shared_pcaps() {
        let mut src = Source::open_file(&path).unwrap();
        let lt = src.linktype;
        while let Next::Frame(f) = src.next_frame().unwrap() {
            out.push((lt, f.data.to_vec()));
        }
    }
    out
}

#[test]
fn every_truncation_of_every_shared_frame() {
    let frames = all_frames();
    assert!(frames.len() > 10_000);
    let mut decoded = 0u64;
    for (lt, data) in &frames {
        let d = Decoder::new(*lt);
        for cut in 0..=data.len() {
            if d.decode(0.0, data.len() as u32, &data[..cut]).is_ok() {
                decoded += 1;
            }
        }
    }
    assert!(decoded > 0);
}

#[test]
fn mutated_shared_frames_under_every_link_type() {
    let frames = all_frames();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    for (i, (lt, data)) in frames.iter().enumerate().step_by(3) {
        let mut m = data.clone();
        for _ in 0..rng.random_range(1..8) {
            if m.is_empty() {
                break;
            }
            let at = rng.random_range(0..m.len());
            m[at] = rng.random();
        }
        let cut = rng.random_range(0..=m.len());
        Decoder::new(*lt).decode(0.0, 0, &m[..cut]).ok();
        // The same bytes read as another link type.
        let other = LINKTYPES[i % LINKTYPES.len()];
        Decoder::new(other).decode(0.0, u32::MAX, &m).ok();
    }
}

#[test]
fn random_bytes_under_every_link_type() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let mut buf = vec![0u8; 2048];
    for &lt in LINKTYPES {
        let d = Decoder::new(lt);
        for i in 0..20_000 {
            let len = rng.random_range(0..if i % 4 == 0 { 2048 } else { 96 });
            rng.fill_bytes(&mut buf[..len]);
            // Make the interesting paths likely: a plausible EtherType / IP version nibble.
            if len > 14 && i % 2 == 0 {
                let t: u16 = [0x0800u16, 0x86dd, 0x0806, 0x8100, 0x88a8][i % 5];
                buf[12..14].copy_from_slice(&t.to_be_bytes());
                buf[14] = if i % 3 == 0 { 0x45 } else { 0x60 };
            }
            if len > 0 && i % 3 == 1 {
                buf[0] = 0x45;
            }
            d.decode(0.0, len as u32, &buf[..len]).ok();
        }
    }
}
