//! The AF_XDP port's per-packet path does not allocate after warm-up:
//! `XskPort::recv_batch`, `send` and `flush` over real frames on a veth
//! pair in a namespace of its own (`weft-xa<pid>`), counted by a global
//! allocator wrapper around those calls only (the AF_PACKET socket on the
//! other end is the traffic source and sink).
//!
//! Needs root (see `common/netns.rs`); under `CI=true` that is a failure,
//! elsewhere a loud skip.

#![allow(unsafe_code, clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::netns::{Netns, can_run_with, in_netns, ip_ok, no_offloads};
use weft_switchd::buf::{BATCH_MAX, PacketBuf};
use weft_switchd::port::{AfPacketPort, Port, XskPort};

#[path = "common/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::allocs;

/// A 60-byte broadcast frame of the local experimental EtherType 0x88b5
/// carrying `seq`.
fn frame(seq: u32) -> [u8; 60] {
    let mut f = [0u8; 60];
    f[..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 1]);
    f[12..14].copy_from_slice(&[0x88, 0xb5]);
    f[14..18].copy_from_slice(&seq.to_be_bytes());
    f
}

/// Receives on `port` until `want` frames of EtherType 0x88b5 came (5 s).
fn drain(port: &mut dyn Port, bufs: &mut [PacketBuf], want: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut got = 0;
    while got < want && Instant::now() < deadline {
        let n = port.recv_batch(bufs).unwrap();
        got += bufs[..n]
            .iter()
            .filter(|b| b.data().get(12..14) == Some(&[0x88, 0xb5][..]))
            .count();
    }
    got
}

#[test]
fn xsk_port_does_not_allocate_per_packet() {
    if !can_run_with("xsk_port_does_not_allocate_per_packet", &["ip"]) {
        return;
    }
    let mut nss = Netns::default();
    let ns = nss.add(&format!("weft-xa{}", std::process::id()));
    ip_ok(&[
        "-n", &ns, "link", "add", "xa", "type", "veth", "peer", "name", "xb",
    ]);
    ip_ok(&["-n", &ns, "link", "set", "xa", "up"]);
    ip_ok(&["-n", &ns, "link", "set", "xb", "up"]);
    no_offloads(&ns, "xb");
    let (counted, got_in, got_out) = in_netns(&ns, || {
        let mut xsk = XskPort::open("xa").unwrap();
        let mut peer = AfPacketPort::open("xb").unwrap();
        let mut bufs: Vec<PacketBuf> = (0..BATCH_MAX).map(|_| PacketBuf::new()).collect();
        let mut peer_bufs: Vec<PacketBuf> = (0..BATCH_MAX).map(|_| PacketBuf::new()).collect();
        let mut counted = 0;
        let (mut got_in, mut got_out) = (0, 0);
        // Round 0 warms up (first use of every frame and ring slot is not
        // special, but the peer's socket and the test's own code may be).
        for round in 0..40u32 {
            for i in 0..BATCH_MAX as u32 {
                peer.send(&frame(round * 100 + i)).unwrap();
            }
            peer.flush().unwrap();
            let before = allocs();
            let got = drain(&mut xsk, &mut bufs, BATCH_MAX);
            for i in 0..BATCH_MAX as u32 {
                xsk.send(&frame(round * 100 + i)).unwrap();
            }
            xsk.flush().unwrap();
            let used = allocs() - before;
            let back = drain(&mut peer, &mut peer_bufs, BATCH_MAX);
            if round > 0 {
                counted += used;
                got_in += got;
                got_out += back;
            }
        }
        (counted, got_in, got_out)
    })
    .join()
    .unwrap();
    let want = 39 * BATCH_MAX;
    assert_eq!(got_in, want, "frames received through AF_XDP");
    assert_eq!(got_out, want, "frames sent through AF_XDP");
    assert_eq!(counted, 0, "allocations in XskPort recv/send/flush");
}
