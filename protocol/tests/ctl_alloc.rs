//! Allocation bounds of `protocol::ctl` decoding, measured with a counting
//! global allocator: a frame that claims a huge collection inside a small
//! body fails without allocating for the claim.
#![allow(unsafe_code)] // The counting allocator must implement `GlobalAlloc`.
#![allow(clippy::unwrap_used)] // Tests may unwrap (PREAMBLE).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use protocol::ctl::{CodecError, FrameDecoder, FrameError, MAX_FRAME_LEN, decode_message};

/// Counts live bytes and the peak since the last reset.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to `System` unchanged; only adds counting.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::SeqCst) + layout.size();
            PEAK.fetch_max(live, Ordering::SeqCst);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::SeqCst);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Peak bytes allocated (above the live bytes at the start) while running `f`.
fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.load(Ordering::SeqCst);
    PEAK.store(base, Ordering::SeqCst);
    let out = f();
    (out, PEAK.load(Ordering::SeqCst).saturating_sub(base))
}

/// LEB128 varint, as postcard writes lengths.
fn varint(mut v: u64, out: &mut Vec<u8>) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

// One test, so no other test thread allocates while we measure.
#[test]
fn hostile_lengths_do_not_allocate() {
    const GIB: u64 = 1 << 30;

    // AddFlows (tag 4) claiming 1 GiB flows, then 1 KB of zeros (which
    // decode as ~100 minimal flows before the input runs out).
    let mut body = vec![1, 4];
    varint(GIB, &mut body);
    body.resize(body.len() + 1024, 0);
    let (r, peak) = peak_during(|| decode_message(&body));
    assert_eq!(r, Err(CodecError::Truncated { id: Some(1) }));
    assert!(peak < 256 * 1024, "AddFlows: peak {peak} bytes");

    // PacketOut (tag 18), in_port 1, packet claiming 1 GiB bytes, 1 KB given.
    let mut body = vec![2, 18, 1];
    varint(GIB, &mut body);
    body.resize(body.len() + 1024, 0xa5);
    let (r, peak) = peak_during(|| decode_message(&body));
    assert_eq!(r, Err(CodecError::Truncated { id: Some(2) }));
    assert!(peak < 16 * 1024, "PacketOut: peak {peak} bytes");

    // Hello (tag 0) claiming 1 GiB versions, and a client name of 1 GiB.
    let mut body = vec![3, 0];
    varint(GIB, &mut body);
    body.resize(body.len() + 1024, 1);
    let (r, peak) = peak_during(|| decode_message(&body));
    assert_eq!(r, Err(CodecError::Truncated { id: Some(3) }));
    assert!(peak < 16 * 1024, "Hello: peak {peak} bytes");

    // The frame decoder: a 16 MiB declared length with 1 KB received holds
    // about 1 KB; a 4 GiB declared length is refused on the prefix.
    let (_, peak) = peak_during(|| {
        let mut dec = FrameDecoder::new();
        dec.push(&(MAX_FRAME_LEN as u32).to_be_bytes());
        dec.push(&[0; 1024]);
        assert_eq!(dec.next_frame(), Ok(None));
        let mut dec = FrameDecoder::new();
        dec.push(&[0xff; 4]);
        assert_eq!(
            dec.next_frame(),
            Err(FrameError::TooLarge {
                len: 0xffff_ffff,
                max: MAX_FRAME_LEN
            })
        );
    });
    assert!(peak < 16 * 1024, "FrameDecoder: peak {peak} bytes");
}
