//! An in-memory port: two queues, for tests and benches.
//!
//! What the test [injects](MemoryPortHandle::inject) is what the port
//! receives; what the port transmits (on [`Port::flush`]) the test
//! [takes](MemoryPortHandle::take_sent). The queues live behind an
//! `Arc<Mutex<_>>` shared with [`MemoryPortHandle`]s, so a test keeps a
//! handle after moving the port into a worker thread. The port takes the lock
//! once per `recv_batch`/`flush`, not per frame.
//!
//! [`Port::fd`] is an `eventfd` that is readable exactly while the receive
//! queue is non-empty, so a memory port can sit in the same poll loop as real
//! ports.
//!
//! Frames are stored as `Vec<u8>`: this port allocates per frame, which is
//! fine for tests and for feeding benches, and is why it is not a data-path
//! port.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::{Arc, Mutex, MutexGuard};

use nix::sys::eventfd::{EfdFlags, EventFd};

use super::{Port, PortKind, PortStats, TxQueue, too_long};
use crate::buf::{BATCH_MAX, MAX_PACKET, PacketBuf};

#[derive(Debug, Default)]
struct Queues {
    rx: VecDeque<Vec<u8>>,
    sent: Vec<Vec<u8>>,
    /// Frames a test asked to be refused on the next flushes (fault injection).
    fail_next_tx: usize,
}

#[derive(Debug)]
struct Shared {
    queues: Mutex<Queues>,
    /// Readable while `queues.rx` is non-empty; written and drained under the lock.
    ready: EventFd,
}

impl Shared {
    /// The queues, even if a panicking test thread poisoned the lock.
    fn lock(&self) -> MutexGuard<'_, Queues> {
        self.queues.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// An in-memory port; see the module documentation.
#[derive(Debug)]
pub struct MemoryPort {
    name: String,
    shared: Arc<Shared>,
    txq: TxQueue,
    stats: PortStats,
}

/// The test's side of a [`MemoryPort`]: inject frames to be received, take
/// frames that were transmitted. Cheap to clone.
#[derive(Debug, Clone)]
pub struct MemoryPortHandle {
    shared: Arc<Shared>,
}

impl MemoryPort {
    /// A new port named `name` and the handle to drive it.
    pub fn new(name: &str) -> io::Result<(MemoryPort, MemoryPortHandle)> {
        let ready =
            EventFd::from_value_and_flags(0, EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC)
                .map_err(io::Error::from)?;
        let shared = Arc::new(Shared {
            queues: Mutex::new(Queues::default()),
            ready,
        });
        let port = MemoryPort {
            name: name.to_owned(),
            shared: shared.clone(),
            txq: TxQueue::new(),
            stats: PortStats::default(),
        };
        Ok((port, MemoryPortHandle { shared }))
    }
}

impl MemoryPortHandle {
    /// Queues `frame` for the port to receive.
    pub fn inject(&self, frame: &[u8]) {
        let mut q = self.shared.lock();
        q.rx.push_back(frame.to_vec());
        // Cannot fail short of counter overflow (2^64 - 1 writes).
        let _ = self.shared.ready.write(1);
    }

    /// Takes every frame the port has transmitted so far, oldest first.
    pub fn take_sent(&self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.shared.lock().sent)
    }

    /// Frames injected and not yet received by the port.
    pub fn rx_pending(&self) -> usize {
        self.shared.lock().rx.len()
    }

    /// Makes the port's next `n` transmitted frames fail as if the device
    /// were busy (counted in `tx_dropped`), for fault-injection tests.
    pub fn fail_next_tx(&self, n: usize) {
        self.shared.lock().fail_next_tx = n;
    }
}

impl Port for MemoryPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> PortKind {
        PortKind::Memory
    }

    fn recv_batch(&mut self, bufs: &mut [PacketBuf]) -> io::Result<usize> {
        let want = bufs.len().min(BATCH_MAX);
        let mut q = self.shared.lock();
        let mut n = 0;
        while n < want {
            let Some(frame) = q.rx.pop_front() else { break };
            let area = bufs[n].rx_area();
            if frame.len() > area.len() {
                self.stats.rx_errors += 1;
                continue;
            }
            area[..frame.len()].copy_from_slice(&frame);
            bufs[n].set_received(frame.len());
            self.stats.rx_packets += 1;
            self.stats.rx_bytes += frame.len() as u64;
            n += 1;
        }
        if q.rx.is_empty() {
            // Reset the eventfd counter (EAGAIN if it already was zero).
            let _ = self.shared.ready.read();
        }
        Ok(n)
    }

    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        if frame.len() > MAX_PACKET {
            self.stats.tx_errors += 1;
            return Err(too_long());
        }
        if !self.txq.has_room(frame.len()) {
            self.flush()?;
        }
        if !self.txq.push(frame) {
            self.stats.tx_dropped += 1;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<usize> {
        let n = self.txq.len();
        let mut sent = 0;
        if n > 0 {
            let mut q = self.shared.lock();
            for i in 0..n {
                let frame = self.txq.frame(i);
                if q.fail_next_tx > 0 {
                    q.fail_next_tx -= 1;
                    self.stats.tx_dropped += 1;
                    continue;
                }
                q.sent.push(frame.to_vec());
                self.stats.tx_packets += 1;
                self.stats.tx_bytes += frame.len() as u64;
                sent += 1;
            }
        }
        self.txq.clear();
        Ok(sent)
    }

    fn pending(&self) -> usize {
        self.txq.len()
    }

    fn fd(&self) -> BorrowedFd<'_> {
        self.shared.ready.as_fd()
    }

    fn stats(&self) -> PortStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

    fn readable(p: &MemoryPort) -> bool {
        let mut fds = [PollFd::new(p.fd(), PollFlags::POLLIN)];
        poll(&mut fds, PollTimeout::ZERO).unwrap() == 1
    }

    #[test]
    fn receive_in_batches_and_wake_up() {
        let (mut port, h) = MemoryPort::new("m0").unwrap();
        assert_eq!(port.kind(), PortKind::Memory);
        assert_eq!(port.name(), "m0");
        let mut bufs: Vec<PacketBuf> = (0..BATCH_MAX).map(|_| PacketBuf::new()).collect();
        assert!(!readable(&port));
        assert_eq!(port.recv_batch(&mut bufs).unwrap(), 0);
        for i in 0..40u8 {
            h.inject(&[i; 60]);
        }
        assert!(readable(&port));
        assert_eq!(port.recv_batch(&mut bufs).unwrap(), BATCH_MAX);
        assert_eq!(bufs[0].data(), &[0u8; 60]);
        assert_eq!(bufs[31].data(), &[31u8; 60]);
        assert!(readable(&port), "8 frames still queued");
        assert_eq!(port.recv_batch(&mut bufs[..4]).unwrap(), 4);
        assert_eq!(port.recv_batch(&mut bufs).unwrap(), 4);
        assert_eq!(bufs[3].data(), &[39u8; 60]);
        assert!(!readable(&port));
        assert_eq!(h.rx_pending(), 0);
        let s = port.stats();
        assert_eq!((s.rx_packets, s.rx_bytes, s.rx_errors), (40, 2400, 0));
    }

    #[test]
    fn oversized_injected_frame_is_an_rx_error() {
        let (mut port, h) = MemoryPort::new("m0").unwrap();
        h.inject(&vec![0u8; MAX_PACKET + 1]);
        h.inject(&[7u8; 64]);
        let mut bufs = vec![PacketBuf::new(), PacketBuf::new()];
        assert_eq!(port.recv_batch(&mut bufs).unwrap(), 1);
        assert_eq!(bufs[0].data(), &[7u8; 64]);
        assert_eq!(port.stats().rx_errors, 1);
    }

    #[test]
    fn send_queues_until_flush() {
        let (mut port, h) = MemoryPort::new("m0").unwrap();
        port.send(&[1, 2, 3]).unwrap();
        port.send(&[4, 5]).unwrap();
        assert_eq!(port.pending(), 2);
        assert!(h.take_sent().is_empty(), "nothing leaves before flush");
        assert_eq!(port.flush().unwrap(), 2);
        assert_eq!(port.pending(), 0);
        assert_eq!(h.take_sent(), vec![vec![1, 2, 3], vec![4, 5]]);
        assert_eq!(port.flush().unwrap(), 0);
        let s = port.stats();
        assert_eq!((s.tx_packets, s.tx_bytes), (2, 5));
    }

    #[test]
    fn full_queue_flushes_on_send() {
        let (mut port, h) = MemoryPort::new("m0").unwrap();
        for i in 0..(BATCH_MAX + 3) {
            port.send(&[i as u8; 100]).unwrap();
        }
        assert_eq!(h.take_sent().len(), BATCH_MAX);
        assert_eq!(port.pending(), 3);
        assert_eq!(port.flush().unwrap(), 3);
        assert_eq!(h.take_sent()[2], vec![(BATCH_MAX + 2) as u8; 100]);
    }

    #[test]
    fn oversized_and_refused_frames_are_counted() {
        let (mut port, h) = MemoryPort::new("m0").unwrap();
        let err = port.send(&vec![0u8; MAX_PACKET + 1]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        h.fail_next_tx(1);
        port.send(&[1]).unwrap();
        port.send(&[2]).unwrap();
        assert_eq!(port.flush().unwrap(), 1);
        assert_eq!(h.take_sent(), vec![vec![2]]);
        let s = port.stats();
        assert_eq!((s.tx_errors, s.tx_dropped, s.tx_packets), (1, 1, 1));
    }
}
