//! Crash-safe IPv4 address management for one node's pool.
//!
//! # What
//!
//! Hands out addresses of a [`Pool`] (the node's podCIDR, later a tenant
//! subnet) to attachments (container id + interface name), and gives them
//! back on `DEL` and `GC`.
//!
//! # Storage: one file per address
//!
//! Like the reference `host-local` plugin, every allocation is a file in the
//! network's directory (`<dataDir>/<network name>/`) named by the address
//! (`10.244.1.7`), holding a JSON [`Record`] (container id, interface name,
//! host-side interface, pod name and namespace from `CNI_ARGS`). An embedded
//! database (redb, sqlite) would add a dependency and a file format for a
//! few hundred entries per node; files are also what an operator can read
//! and fix with `ls` and `cat`.
//!
//! # Durability and crash safety
//!
//! An allocation is durable before `ADD` returns:
//!
//! 1. the record is written to `tmp-<pid>`;
//! 2. it is hard-linked to the address's name: `link(2)` fails with
//!    `EEXIST` if the name exists, so it is the `O_EXCL` step, and the
//!    address file appears atomically, complete or not at all, for every
//!    other process (the page cache survives a killed writer);
//! 3. `tmp-<pid>` is removed, then the file (through the descriptor that
//!    wrote it) and the directory are `fsync`ed, which makes the record
//!    and its new name durable across a power loss.
//!
//! Syncing once after the name changes, instead of the data before the
//! link and the directory after it, costs one file-system journal commit
//! per `ADD` instead of two (on ext4 the file's `fsync` commits the
//! transaction that holds its data, the link and the unlink, and the
//! directory's finds nothing left to do; the directory `fsync` stays for
//! file systems where that is not so). Each commit is a wait for the disk,
//! the largest cost of an `ADD` on a busy machine (`scripts/bench-cni.sh`).
//!
//! A kill -9 at any point leaves either no address file (the address was
//! never handed out, since `ADD` had not returned) or a complete one. A
//! power loss before the `fsync` can also leave an address file without
//! its data (delayed allocation): it is kept as taken with an empty
//! attachment (never a duplicate) and `GC` releases it, since no runtime
//! lists an empty attachment. Stray `tmp-*` files are removed by the next
//! holder of the lock. An address file for an attachment whose `ADD` never
//! returned is not a leak: a retried `ADD` of the same attachment finds and
//! reuses it ([`Locked::allocate`] is idempotent per attachment), `DEL`
//! releases it, and `GC` releases everything the runtime no longer lists.
//!
//! Release is `unlink` without `fsync` (as `host-local`): a release undone
//! by a power loss brings back the reservation of an attachment that no
//! longer exists, which is a leak until the runtime's next `GC`, never a
//! duplicate; a killed plugin cannot undo it.
//!
//! # Concurrency
//!
//! Every operation holds an exclusive `flock(2)` on `<dir>/lock` for its
//! whole read-modify-write ([`Store::lock`]); the kernel drops it when the
//! holder dies, so a killed plugin never blocks the next one. Parallel
//! `ADD`s are serialized for the few milliseconds of an allocation only; the
//! veth and switchd work happens after the lock is released.
//!
//! # Order of addresses
//!
//! Round robin from the last address handed out (`last_reserved_ip`, as
//! host-local), so a just-released address is not reused at once (a
//! restarting pod's old address may still be in peers' ARP caches and in
//! flight). The gateway is never handed out.
//!
//! # Limits
//!
//! IPv4 only (IPv6 pools are future work). Finding an attachment's record
//! reads the directory: O(allocations), a few hundred files per node.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::spec::{Attachment, Pool};

/// What is stored for one address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    /// The address (also the file name).
    pub ip: Ipv4Addr,
    /// The attachment holding it.
    #[serde(flatten)]
    pub attachment: Attachment,
    /// Host side of the pod's veth (also the switchd port name).
    pub host_ifname: String,
    /// `K8S_POD_NAMESPACE` from `CNI_ARGS`, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_namespace: Option<String>,
    /// `K8S_POD_NAME` from `CNI_ARGS`, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_name: Option<String>,
}

/// IPAM failures.
#[derive(Debug, thiserror::Error)]
pub enum IpamError {
    /// Every address of the pool is taken.
    #[error("no free address in {start}..={end} ({used} allocated)")]
    Exhausted {
        /// First address of the range.
        start: Ipv4Addr,
        /// Last address of the range.
        end: Ipv4Addr,
        /// Allocations found.
        used: usize,
    },
    /// The state directory could not be read or written.
    #[error("IPAM state {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> IpamError + '_ {
    move |source| IpamError::Io {
        path: path.to_owned(),
        source,
    }
}

/// One network's allocation directory.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
    pool: Pool,
}

/// The store with its lock held; dropping it unlocks.
#[derive(Debug)]
pub struct Locked<'a> {
    store: &'a Store,
    _lock: File,
}

const LAST_RESERVED: &str = "last_reserved_ip";
const LOCK: &str = "lock";
const TMP_PREFIX: &str = "tmp-";

impl Store {
    /// The store in `dir` (created, mode 0700, if missing).
    ///
    /// # Errors
    /// The directory cannot be created.
    pub fn open(dir: &Path, pool: Pool) -> Result<Store, IpamError> {
        fs::create_dir_all(dir).map_err(io_at(dir))?;
        Ok(Store {
            dir: dir.to_owned(),
            pool,
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Takes the exclusive lock (blocks until the current holder is done).
    ///
    /// # Errors
    /// The lock file cannot be opened or locked.
    pub fn lock(&self) -> Result<Locked<'_>, IpamError> {
        let path = self.dir.join(LOCK);
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_at(&path))?;
        f.lock().map_err(io_at(&path))?;
        Ok(Locked {
            store: self,
            _lock: f,
        })
    }
}

fn fsync_dir(dir: &Path) -> Result<(), IpamError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_at(dir))
}

impl Locked<'_> {
    /// Every allocation, sorted by address. Removes stray `tmp-*` files
    /// (left by a crashed writer: the lock is ours, so nobody is writing).
    /// An address file that cannot be parsed is kept as taken and returned
    /// with an empty attachment, so `GC` can release it.
    ///
    /// # Errors
    /// The directory cannot be read.
    pub fn records(&self) -> Result<Vec<Record>, IpamError> {
        let dir = &self.store.dir;
        let mut out = Vec::new();
        for entry in fs::read_dir(dir).map_err(io_at(dir))? {
            let entry = entry.map_err(io_at(dir))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with(TMP_PREFIX) {
                let _ = fs::remove_file(entry.path());
                continue;
            }
            let Ok(ip) = name.parse::<Ipv4Addr>() else {
                continue;
            };
            let path = entry.path();
            let rec = fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice::<Record>(&b).ok())
                .filter(|r| r.ip == ip)
                .unwrap_or(Record {
                    ip,
                    attachment: Attachment {
                        container_id: String::new(),
                        ifname: String::new(),
                    },
                    host_ifname: String::new(),
                    pod_namespace: None,
                    pod_name: None,
                });
            out.push(rec);
        }
        out.sort_by_key(|r| r.ip);
        Ok(out)
    }

    /// The record of `att`, if it holds an address.
    ///
    /// # Errors
    /// As [`Locked::records`].
    pub fn find(&self, att: &Attachment) -> Result<Option<Record>, IpamError> {
        Ok(self.records()?.into_iter().find(|r| &r.attachment == att))
    }

    /// Allocates an address for `template.attachment` (its `ip` is ignored)
    /// and makes it durable, or returns the existing allocation of that
    /// attachment (a retried `ADD`).
    ///
    /// # Errors
    /// The pool is exhausted, or the directory cannot be written.
    pub fn allocate(&self, template: &Record) -> Result<Record, IpamError> {
        let records = self.records()?;
        if let Some(r) = records.iter().find(|r| r.attachment == template.attachment) {
            return Ok(r.clone());
        }
        let pool = &self.store.pool;
        let (start, end) = (u32::from(pool.start), u32::from(pool.end));
        let size = end - start + 1;
        let taken: std::collections::HashSet<Ipv4Addr> = records.iter().map(|r| r.ip).collect();
        let last = self.last_reserved().map(u32::from);
        let first_try = match last {
            Some(l) if (start..end).contains(&l) => l + 1,
            _ => start,
        };
        for i in 0..size {
            let ip = Ipv4Addr::from(start + (first_try - start + i) % size);
            if ip == pool.gateway || taken.contains(&ip) {
                continue;
            }
            let rec = Record {
                ip,
                ..template.clone()
            };
            if self.write_new(&rec)? {
                self.set_last_reserved(ip);
                return Ok(rec);
            }
        }
        Err(IpamError::Exhausted {
            start: pool.start,
            end: pool.end,
            used: records.len(),
        })
    }

    /// Writes `rec` under its address name unless that name exists
    /// (`false`). Durable when it returns `true`.
    fn write_new(&self, rec: &Record) -> Result<bool, IpamError> {
        let dir = &self.store.dir;
        let tmp = dir.join(format!("{TMP_PREFIX}{}", std::process::id()));
        let bytes = serde_json::to_vec_pretty(rec).map_err(|e| IpamError::Io {
            path: tmp.clone(),
            source: io::Error::other(e),
        })?;
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(io_at(&tmp))?;
        f.write_all(&bytes).map_err(io_at(&tmp))?;
        let path = dir.join(rec.ip.to_string());
        let linked = match fs::hard_link(&tmp, &path) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(io_at(&path)(e));
            }
        };
        fs::remove_file(&tmp).map_err(io_at(&tmp))?;
        if !linked {
            return Ok(false);
        }
        crate::test_hook::pause_at("ipam-linked");
        f.sync_all().map_err(io_at(&path))?;
        fsync_dir(dir)?;
        Ok(true)
    }

    fn last_reserved(&self) -> Option<Ipv4Addr> {
        fs::read_to_string(self.store.dir.join(LAST_RESERVED))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Best effort: losing it only changes where the next search starts.
    ///
    /// Written in place at a fixed width (the address padded with blanks,
    /// which the reader trims), not as a temporary file renamed over the
    /// old one: on ext4 a rename or truncate that replaces a file's data
    /// starts writeback of the new data (`auto_da_alloc`), which cost about
    /// 5 ms of every ADD (strace, `scripts/bench-cni.sh`). A torn write
    /// reads back as no hint.
    fn set_last_reserved(&self, ip: Ipv4Addr) {
        use std::os::unix::fs::FileExt as _;
        let line = format!("{:<15}\n", ip.to_string());
        if let Ok(f) = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(self.store.dir.join(LAST_RESERVED))
        {
            let _ = f.write_all_at(line.as_bytes(), 0);
        }
    }

    /// Releases the address of `att`; `None` if it held none.
    ///
    /// # Errors
    /// The directory cannot be read or written.
    pub fn release(&self, att: &Attachment) -> Result<Option<Record>, IpamError> {
        let Some(rec) = self.find(att)? else {
            return Ok(None);
        };
        self.release_record(&rec)?;
        Ok(Some(rec))
    }

    /// Removes `rec`'s address file (not synced: see the module doc).
    ///
    /// # Errors
    /// The file cannot be removed.
    pub fn release_record(&self, rec: &Record) -> Result<(), IpamError> {
        let path = self.store.dir.join(rec.ip.to_string());
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_at(&path)(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::spec::Ipv4Net;

    fn pool(start: u8, end: u8) -> Pool {
        Pool {
            subnet: Ipv4Net::parse("10.9.0.0/24").unwrap(),
            gateway: Ipv4Addr::new(10, 9, 0, 1),
            start: Ipv4Addr::new(10, 9, 0, start),
            end: Ipv4Addr::new(10, 9, 0, end),
        }
    }

    fn rec(id: &str) -> Record {
        Record {
            ip: Ipv4Addr::UNSPECIFIED,
            attachment: Attachment {
                container_id: id.into(),
                ifname: "eth0".into(),
            },
            host_ifname: format!("h{id}"),
            pod_namespace: None,
            pod_name: None,
        }
    }

    #[test]
    fn allocate_is_idempotent_and_skips_gateway() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path(), pool(1, 4)).unwrap();
        let l = s.lock().unwrap();
        let a = l.allocate(&rec("a")).unwrap();
        assert_eq!(a.ip, Ipv4Addr::new(10, 9, 0, 2), "gateway .1 skipped");
        assert_eq!(
            l.allocate(&rec("a")).unwrap(),
            a,
            "same attachment, same IP"
        );
        let b = l.allocate(&rec("b")).unwrap();
        let c = l.allocate(&rec("c")).unwrap();
        assert_eq!((b.ip.octets()[3], c.ip.octets()[3]), (3, 4));
        match l.allocate(&rec("d")) {
            Err(IpamError::Exhausted { used: 3, .. }) => {}
            other => panic!("{other:?}"),
        }
        // Release b: the next allocation gets it (the only free one).
        assert_eq!(l.release(&b.attachment).unwrap().unwrap().ip, b.ip);
        assert_eq!(l.release(&b.attachment).unwrap(), None, "release twice");
        assert_eq!(l.allocate(&rec("d")).unwrap().ip, b.ip);
        // The file is the JSON record.
        let text = fs::read_to_string(d.path().join("10.9.0.2")).unwrap();
        assert!(text.contains("\"containerID\": \"a\""), "{text}");
    }

    #[test]
    fn round_robin_does_not_reuse_at_once() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path(), pool(10, 20)).unwrap();
        let l = s.lock().unwrap();
        let a = l.allocate(&rec("a")).unwrap();
        l.release(&a.attachment).unwrap();
        let b = l.allocate(&rec("b")).unwrap();
        assert_ne!(a.ip, b.ip);
        assert_eq!(u32::from(b.ip), u32::from(a.ip) + 1);
    }

    #[test]
    fn stray_tmp_and_corrupt_files() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path(), pool(2, 3)).unwrap();
        fs::write(d.path().join("tmp-999"), b"{half").unwrap();
        fs::write(d.path().join("10.9.0.2"), b"garbage").unwrap();
        let l = s.lock().unwrap();
        let recs = l.records().unwrap();
        assert!(!d.path().join("tmp-999").exists(), "stray tmp removed");
        assert_eq!(recs.len(), 1, "corrupt file kept as taken");
        assert_eq!(recs[0].attachment.container_id, "");
        assert_eq!(
            l.allocate(&rec("a")).unwrap().ip,
            Ipv4Addr::new(10, 9, 0, 3)
        );
        l.release_record(&recs[0]).unwrap();
        assert_eq!(l.records().unwrap().len(), 1);
    }
}
