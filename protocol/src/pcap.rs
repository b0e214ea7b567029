//! The classic libpcap capture file format, read from and written to byte
//! slices (no I/O).
//!
//! It lives in `protocol` because several parts of Weft share it: switchd's
//! pcap ports (capture middleware and replay), the tools, the benches and the
//! tests (which read the captures in `shared/pcaps/`). Callers do the file
//! I/O; this module only turns bytes into records and back.
//!
//! ```text
//! global header (24 bytes, once)
//! +---------------+-------+-------+---------------+---------------+
//! | magic (4)     |major 2|minor 2| thiszone (4)  | sigfigs (4)   |
//! +---------------+-------+-------+---------------+---------------+
//! | snaplen (4)   | link type (4) |
//! +---------------+---------------+
//! record (16-byte header, then incl_len bytes), repeated
//! +---------------+---------------+---------------+---------------+
//! | ts_sec (4)    | ts_frac (4)   | incl_len (4)  | orig_len (4)  |
//! +---------------+---------------+---------------+---------------+
//! | data (incl_len bytes) ...
//! ```
//!
//! The magic gives the byte order of every other field (the writer's native
//! order) and the timestamp resolution: `a1b2c3d4` microseconds,
//! `a1b23c4d` nanoseconds, read in either byte order.
//!
//! The reader never panics: a bad global header is an error from
//! [`PcapReader::new`]; a truncated or oversized record yields one error from
//! the iterator and then the iteration stops. Every record's `data` is a
//! sub-slice of the input.
//!
//! Not supported: pcapng (its magic is rejected as a bad magic), the
//! modified-Kuznetzov/IXIA variants, and the FCS bits that some writers put
//! in the high bits of the link type field (they are kept in
//! [`PcapReader::link_type`] as read). Only major version 2 is accepted (as
//! libpcap does); the minor version, `thiszone` and `sigfigs` are ignored.
//! `snaplen` is reported but not enforced: records up to
//! [`MAX_RECORD_LEN`] bytes are accepted whatever it says.

/// Link type of Ethernet captures (`LINKTYPE_ETHERNET`, DLT_EN10MB).
pub const LINKTYPE_ETHERNET: u32 = 1;

/// The largest record (`incl_len`) the reader accepts, 256 KiB, like
/// libpcap's `MAXIMUM_SNAPLEN`. The writer's snaplen.
pub const MAX_RECORD_LEN: u32 = 256 * 1024;

/// Length of the global file header.
pub const GLOBAL_HEADER_LEN: usize = 24;

/// Length of a record header.
pub const RECORD_HEADER_LEN: usize = 16;

const MAGIC_MICRO: u32 = 0xa1b2_c3d4;
const MAGIC_NANO: u32 = 0xa1b2_3c4d;

/// Why bytes are not a readable pcap file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PcapError {
    /// The input is shorter than the global header.
    #[error("pcap global header truncated: {len} bytes, need 24")]
    TruncatedHeader {
        /// Length of the whole input.
        len: usize,
    },
    /// The first four bytes are not a classic pcap magic.
    #[error("not a classic pcap file: bad magic 0x{magic:08x}")]
    BadMagic {
        /// The first four bytes, read big-endian.
        magic: u32,
    },
    /// The major version is not 2.
    #[error("unsupported pcap version {major}.{minor}")]
    BadVersion {
        /// Major version.
        major: u16,
        /// Minor version.
        minor: u16,
    },
    /// Fewer than 16 bytes remain for a record header.
    #[error(
        "pcap record {index} at byte {offset}: record header truncated \
         ({remaining} of 16 bytes)"
    )]
    TruncatedRecordHeader {
        /// Zero-based record number.
        index: usize,
        /// Byte offset of the record header in the input.
        offset: usize,
        /// Bytes left in the input.
        remaining: usize,
    },
    /// `incl_len` exceeds [`MAX_RECORD_LEN`].
    #[error(
        "pcap record {index} at byte {offset}: captured length {incl_len} exceeds \
         the limit of 262144 bytes"
    )]
    RecordTooLarge {
        /// Zero-based record number.
        index: usize,
        /// Byte offset of the record header in the input.
        offset: usize,
        /// The captured length the record header claims.
        incl_len: u32,
    },
    /// `incl_len` is larger than what remains of the input.
    #[error(
        "pcap record {index} at byte {offset}: data truncated: captured length \
         {incl_len}, {remaining} bytes left"
    )]
    TruncatedRecordData {
        /// Zero-based record number.
        index: usize,
        /// Byte offset of the record header in the input.
        offset: usize,
        /// The captured length the record header claims.
        incl_len: u32,
        /// Bytes left after the record header.
        remaining: usize,
    },
}

/// Timestamp resolution of a file (from its magic).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TsResolution {
    /// `ts_frac` counts microseconds.
    Micro,
    /// `ts_frac` counts nanoseconds.
    Nano,
}

/// Reads four bytes at `at` in the file's byte order, if present.
#[inline]
fn read_u32(bytes: &[u8], at: usize, big_endian: bool) -> Option<u32> {
    let b: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(if big_endian {
        u32::from_be_bytes(b)
    } else {
        u32::from_le_bytes(b)
    })
}

/// Reads two bytes at `at` in the file's byte order, if present.
#[inline]
fn read_u16(bytes: &[u8], at: usize, big_endian: bool) -> Option<u16> {
    let b: [u8; 2] = bytes.get(at..at.checked_add(2)?)?.try_into().ok()?;
    Some(if big_endian {
        u16::from_be_bytes(b)
    } else {
        u16::from_le_bytes(b)
    })
}

/// A parsed pcap global header over a borrowed file image.
#[derive(Debug, Clone, Copy)]
pub struct PcapReader<'a> {
    bytes: &'a [u8],
    big_endian: bool,
    resolution: TsResolution,
    version: (u16, u16),
    snaplen: u32,
    link_type: u32,
}

impl<'a> PcapReader<'a> {
    /// Parses the global header of a pcap file image.
    pub fn new(bytes: &'a [u8]) -> Result<PcapReader<'a>, PcapError> {
        let Some(magic) = read_u32(bytes, 0, true) else {
            return Err(PcapError::TruncatedHeader { len: bytes.len() });
        };
        let (big_endian, resolution) = match magic {
            MAGIC_MICRO => (true, TsResolution::Micro),
            MAGIC_NANO => (true, TsResolution::Nano),
            m if m == MAGIC_MICRO.swap_bytes() => (false, TsResolution::Micro),
            m if m == MAGIC_NANO.swap_bytes() => (false, TsResolution::Nano),
            magic => return Err(PcapError::BadMagic { magic }),
        };
        let (Some(major), Some(minor), Some(snaplen), Some(link_type)) = (
            read_u16(bytes, 4, big_endian),
            read_u16(bytes, 6, big_endian),
            read_u32(bytes, 16, big_endian),
            read_u32(bytes, 20, big_endian),
        ) else {
            return Err(PcapError::TruncatedHeader { len: bytes.len() });
        };
        if major != 2 {
            return Err(PcapError::BadVersion { major, minor });
        }
        Ok(PcapReader {
            bytes,
            big_endian,
            resolution,
            version: (major, minor),
            snaplen,
            link_type,
        })
    }

    /// The link type (e.g. [`LINKTYPE_ETHERNET`]).
    #[inline]
    pub fn link_type(&self) -> u32 {
        self.link_type
    }

    /// The snapshot length the writer declared.
    #[inline]
    pub fn snaplen(&self) -> u32 {
        self.snaplen
    }

    /// The timestamp resolution of `ts_frac`.
    #[inline]
    pub fn ts_resolution(&self) -> TsResolution {
        self.resolution
    }

    /// The file format version (major, minor).
    #[inline]
    pub fn version(&self) -> (u16, u16) {
        self.version
    }

    /// True if the file's fields are big-endian.
    #[inline]
    pub fn is_big_endian(&self) -> bool {
        self.big_endian
    }

    /// An iterator over the records, in file order.
    #[inline]
    pub fn records(&self) -> Records<'a> {
        Records {
            bytes: self.bytes,
            offset: GLOBAL_HEADER_LEN,
            index: 0,
            big_endian: self.big_endian,
            done: false,
        }
    }
}

impl<'a> IntoIterator for &PcapReader<'a> {
    type Item = Result<PcapRecord<'a>, PcapError>;
    type IntoIter = Records<'a>;

    fn into_iter(self) -> Records<'a> {
        self.records()
    }
}

/// One captured packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PcapRecord<'a> {
    /// Seconds since the Unix epoch.
    pub ts_sec: u32,
    /// Fraction of a second, in micro- or nanoseconds
    /// ([`PcapReader::ts_resolution`]).
    pub ts_frac: u32,
    /// Length of the packet on the wire (may exceed `data.len()`).
    pub orig_len: u32,
    /// The captured bytes (`incl_len` of them), borrowed from the input.
    pub data: &'a [u8],
}

/// Iterator over the records of a [`PcapReader`].
///
/// Yields `Err` at most once, then ends.
#[derive(Debug, Clone)]
pub struct Records<'a> {
    bytes: &'a [u8],
    offset: usize,
    index: usize,
    big_endian: bool,
    done: bool,
}

impl<'a> Records<'a> {
    fn read(&self) -> Result<(PcapRecord<'a>, usize), PcapError> {
        let (index, offset, be) = (self.index, self.offset, self.big_endian);
        let remaining = self.bytes.len().saturating_sub(offset);
        let (Some(ts_sec), Some(ts_frac), Some(incl_len), Some(orig_len)) = (
            read_u32(self.bytes, offset, be),
            read_u32(self.bytes, offset + 4, be),
            read_u32(self.bytes, offset + 8, be),
            read_u32(self.bytes, offset + 12, be),
        ) else {
            return Err(PcapError::TruncatedRecordHeader {
                index,
                offset,
                remaining,
            });
        };
        if incl_len > MAX_RECORD_LEN {
            return Err(PcapError::RecordTooLarge {
                index,
                offset,
                incl_len,
            });
        }
        let start = offset + RECORD_HEADER_LEN;
        // incl_len <= 256 KiB, so this cannot overflow.
        let end = start + incl_len as usize;
        let Some(data) = self.bytes.get(start..end) else {
            return Err(PcapError::TruncatedRecordData {
                index,
                offset,
                incl_len,
                remaining: remaining - RECORD_HEADER_LEN,
            });
        };
        Ok((
            PcapRecord {
                ts_sec,
                ts_frac,
                orig_len,
                data,
            },
            end,
        ))
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<PcapRecord<'a>, PcapError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.offset >= self.bytes.len() {
            return None;
        }
        match self.read() {
            Ok((record, end)) => {
                self.offset = end;
                self.index += 1;
                Some(Ok(record))
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

impl core::iter::FusedIterator for Records<'_> {}

/// Builds a little-endian, microsecond pcap file image in memory.
///
/// Not on the packet path, so it owns a `Vec`. Records longer than
/// [`MAX_RECORD_LEN`] (the snaplen it declares) are cut to it, with the full
/// length kept in `orig_len`, as a capturing tool would.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcapWriter {
    buf: Vec<u8>,
}

impl PcapWriter {
    /// A file with just the global header for `link_type`.
    pub fn new(link_type: u32) -> PcapWriter {
        let mut buf = Vec::with_capacity(GLOBAL_HEADER_LEN);
        buf.extend_from_slice(&MAGIC_MICRO.to_le_bytes());
        buf.extend_from_slice(&2u16.to_le_bytes());
        buf.extend_from_slice(&4u16.to_le_bytes());
        buf.extend_from_slice(&0i32.to_le_bytes()); // thiszone
        buf.extend_from_slice(&0u32.to_le_bytes()); // sigfigs
        buf.extend_from_slice(&MAX_RECORD_LEN.to_le_bytes());
        buf.extend_from_slice(&link_type.to_le_bytes());
        PcapWriter { buf }
    }

    /// Appends a record captured at `ts_sec` seconds plus `ts_usec`
    /// microseconds.
    pub fn push(&mut self, ts_sec: u32, ts_usec: u32, data: &[u8]) {
        let orig_len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        let incl_len = orig_len.min(MAX_RECORD_LEN);
        let data = &data[..incl_len as usize];
        self.buf.reserve(RECORD_HEADER_LEN + data.len());
        self.buf.extend_from_slice(&ts_sec.to_le_bytes());
        self.buf.extend_from_slice(&ts_usec.to_le_bytes());
        self.buf.extend_from_slice(&incl_len.to_le_bytes());
        self.buf.extend_from_slice(&orig_len.to_le_bytes());
        self.buf.extend_from_slice(data);
    }

    /// The file image so far.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// The finished file image.
    #[inline]
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::path::PathBuf;

    /// `tcpdump-geneve-gcp.pcap`, byte for byte (the tcpdump test suite, see
    /// `shared/pcaps/README.md`): little-endian, microseconds, snaplen
    /// 262144, Ethernet, one 130-byte record.
    static GCP_PCAP: [u8; 170] = [
        0xd4, 0xc3, 0xb2, 0xa1, 0x02, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x04, 0x00, 0x01, 0x00, 0x00, 0x00, 0xe7, 0x53, 0x38, 0x62, 0x54, 0xd3,
        0x03, 0x00, 0x82, 0x00, 0x00, 0x00, 0x82, 0x00, 0x00, 0x00, 0x42, 0x01, 0xc0, 0xa8, 0x64,
        0x03, 0x42, 0x01, 0xc0, 0xa8, 0x64, 0xfe, 0x08, 0x00, 0x45, 0x00, 0x00, 0x74, 0x00, 0x00,
        0x40, 0x00, 0x02, 0x11, 0x2e, 0x27, 0xc0, 0xa8, 0x64, 0xfe, 0xc0, 0xa8, 0x64, 0x03, 0xf5,
        0xfe, 0x17, 0xc1, 0x00, 0x60, 0x00, 0x00, 0x0a, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x01, 0x32, 0x01, 0x01, 0x80, 0x00, 0x00, 0xd1, 0x01, 0x32, 0x02, 0x04, 0x08, 0x00, 0x00,
        0x0d, 0xc0, 0xa8, 0x64, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x32,
        0x03, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x12, 0x34, 0x45, 0x00, 0x00, 0x28, 0xd9,
        0x44, 0x00, 0x00, 0x40, 0x06, 0x58, 0x37, 0xc0, 0xa8, 0x64, 0x02, 0xc0, 0xa8, 0x64, 0x01,
        0x0b, 0x59, 0x1f, 0x90, 0x2d, 0x5a, 0xde, 0x40, 0x78, 0xe9, 0xbf, 0xda, 0x50, 0x00, 0x02,
        0x00, 0xf5, 0x47, 0x00, 0x00,
    ];

    /// `$WEFT_PCAPS`, or `shared/pcaps` next to the repository checkout.
    fn shared_pcaps_dir() -> PathBuf {
        match std::env::var_os("WEFT_PCAPS") {
            Some(dir) => PathBuf::from(dir),
            None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/pcaps")),
        }
    }

    /// Checks the invariant that `data` lies inside `input`.
    fn within(input: &[u8], data: &[u8]) -> bool {
        let outer = input.as_ptr_range();
        let inner = data.as_ptr_range();
        outer.start <= inner.start && inner.end <= outer.end
    }

    /// Reads every record, checking the invariants; returns the count and
    /// the error, if any.
    fn walk(bytes: &[u8]) -> (usize, Option<PcapError>) {
        let Ok(r) = PcapReader::new(bytes) else {
            return (0, None);
        };
        let mut n = 0;
        let mut err = None;
        for rec in &r {
            match rec {
                Ok(rec) => {
                    assert!(within(bytes, rec.data));
                    assert!(rec.data.len() <= MAX_RECORD_LEN as usize);
                    n += 1;
                }
                Err(e) => {
                    assert!(err.is_none(), "two errors");
                    err = Some(e);
                    let _ = e.to_string();
                }
            }
        }
        (n, err)
    }

    #[test]
    fn read_gcp() {
        let r = PcapReader::new(&GCP_PCAP).unwrap();
        assert_eq!(r.link_type(), LINKTYPE_ETHERNET);
        assert_eq!(r.snaplen(), 262_144);
        assert_eq!(r.ts_resolution(), TsResolution::Micro);
        assert_eq!(r.version(), (2, 4));
        assert!(!r.is_big_endian());
        let mut it = r.records();
        let rec = it.next().unwrap().unwrap();
        assert_eq!(rec.ts_sec, 0x6238_53e7);
        assert_eq!(rec.ts_frac, 250_708);
        assert_eq!(rec.orig_len, 130);
        assert_eq!(rec.data, &GCP_PCAP[40..]);
        assert!(within(&GCP_PCAP, rec.data));
        assert!(it.next().is_none());
        assert!(it.next().is_none());
    }

    /// Rewrites a little-endian file image (with records) in big-endian.
    fn to_big_endian(le: &[u8]) -> Vec<u8> {
        let mut v = le.to_vec();
        let swap4 = |v: &mut Vec<u8>, at: usize| v[at..at + 4].reverse();
        let swap2 = |v: &mut Vec<u8>, at: usize| v[at..at + 2].reverse();
        swap4(&mut v, 0);
        swap2(&mut v, 4);
        swap2(&mut v, 6);
        for at in [8, 12, 16, 20] {
            swap4(&mut v, at);
        }
        let mut off = GLOBAL_HEADER_LEN;
        while off < v.len() {
            let incl = u32::from_le_bytes(le[off + 8..off + 12].try_into().unwrap()) as usize;
            for at in [0, 4, 8, 12] {
                swap4(&mut v, off + at);
            }
            off += RECORD_HEADER_LEN + incl;
        }
        v
    }

    #[test]
    fn both_byte_orders_and_resolutions() {
        let be = to_big_endian(&GCP_PCAP);
        assert_eq!(&be[..4], &[0xa1, 0xb2, 0xc3, 0xd4]);
        let mut le_nano = GCP_PCAP.to_vec();
        le_nano[..4].copy_from_slice(&[0x4d, 0x3c, 0xb2, 0xa1]);
        let mut be_nano = be.clone();
        be_nano[..4].copy_from_slice(&[0xa1, 0xb2, 0x3c, 0x4d]);
        for (bytes, big, res) in [
            (&GCP_PCAP[..], false, TsResolution::Micro),
            (&be[..], true, TsResolution::Micro),
            (&le_nano[..], false, TsResolution::Nano),
            (&be_nano[..], true, TsResolution::Nano),
        ] {
            let r = PcapReader::new(bytes).unwrap();
            assert_eq!(r.is_big_endian(), big);
            assert_eq!(r.ts_resolution(), res);
            assert_eq!(r.link_type(), 1);
            assert_eq!(r.snaplen(), 262_144);
            assert_eq!(r.version(), (2, 4));
            let recs: Vec<_> = r.records().map(|x| x.unwrap()).collect();
            assert_eq!(recs.len(), 1);
            assert_eq!(recs[0].ts_sec, 0x6238_53e7);
            assert_eq!(recs[0].ts_frac, 250_708);
            assert_eq!(recs[0].orig_len, 130);
            assert_eq!(recs[0].data, &GCP_PCAP[40..]);
        }
    }

    #[test]
    fn truncated_global_header() {
        assert_eq!(
            PcapReader::new(&GCP_PCAP[..23]).unwrap_err(),
            PcapError::TruncatedHeader { len: 23 }
        );
        assert_eq!(
            PcapReader::new(&GCP_PCAP[..3]).unwrap_err(),
            PcapError::TruncatedHeader { len: 3 }
        );
        assert_eq!(
            PcapReader::new(&[]).unwrap_err().to_string(),
            "pcap global header truncated: 0 bytes, need 24"
        );
    }

    #[test]
    fn bad_magic() {
        let mut b = GCP_PCAP;
        b[..4].copy_from_slice(&[0x0a, 0x0d, 0x0d, 0x0a]); // pcapng
        let e = PcapReader::new(&b).unwrap_err();
        assert_eq!(e, PcapError::BadMagic { magic: 0x0a0d_0d0a });
        assert_eq!(
            e.to_string(),
            "not a classic pcap file: bad magic 0x0a0d0d0a"
        );
    }

    #[test]
    fn bad_version() {
        let mut b = GCP_PCAP;
        b[4] = 1;
        let e = PcapReader::new(&b).unwrap_err();
        assert_eq!(e, PcapError::BadVersion { major: 1, minor: 4 });
        assert_eq!(e.to_string(), "unsupported pcap version 1.4");
    }

    #[test]
    fn empty_file_has_no_records() {
        let r = PcapReader::new(&GCP_PCAP[..24]).unwrap();
        assert!(r.records().next().is_none());
    }

    #[test]
    fn truncated_record_header() {
        let r = PcapReader::new(&GCP_PCAP[..24 + 15]).unwrap();
        let mut it = r.records();
        let e = it.next().unwrap().unwrap_err();
        assert_eq!(
            e,
            PcapError::TruncatedRecordHeader {
                index: 0,
                offset: 24,
                remaining: 15
            }
        );
        assert_eq!(
            e.to_string(),
            "pcap record 0 at byte 24: record header truncated (15 of 16 bytes)"
        );
        assert!(it.next().is_none());
    }

    #[test]
    fn truncated_record_data() {
        let r = PcapReader::new(&GCP_PCAP[..169]).unwrap();
        let mut it = r.records();
        let e = it.next().unwrap().unwrap_err();
        assert_eq!(
            e,
            PcapError::TruncatedRecordData {
                index: 0,
                offset: 24,
                incl_len: 130,
                remaining: 129
            }
        );
        assert_eq!(
            e.to_string(),
            "pcap record 0 at byte 24: data truncated: captured length 130, 129 bytes left"
        );
        assert!(it.next().is_none());
    }

    #[test]
    fn record_too_large() {
        // A good first record, then one claiming 256 KiB + 1 bytes.
        let mut b = GCP_PCAP.to_vec();
        b.extend_from_slice(&[0; 8]);
        b.extend_from_slice(&(MAX_RECORD_LEN + 1).to_le_bytes());
        b.extend_from_slice(&[0; 4]);
        let r = PcapReader::new(&b).unwrap();
        let mut it = r.records();
        assert!(it.next().unwrap().is_ok());
        let e = it.next().unwrap().unwrap_err();
        assert_eq!(
            e,
            PcapError::RecordTooLarge {
                index: 1,
                offset: 170,
                incl_len: 262_145
            }
        );
        assert_eq!(
            e.to_string(),
            "pcap record 1 at byte 170: captured length 262145 exceeds the limit of 262144 bytes"
        );
        assert!(it.next().is_none());
        // u32::MAX must not overflow anything either.
        let n = b.len();
        b[n - 8..n - 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            walk(&b),
            (1, Some(PcapError::RecordTooLarge { .. }))
        ));
    }

    #[test]
    fn writer_reader_roundtrip() {
        let mut w = PcapWriter::new(LINKTYPE_ETHERNET);
        assert_eq!(w.as_bytes().len(), GLOBAL_HEADER_LEN);
        let packets: [&[u8]; 3] = [&GCP_PCAP[40..], &[], &[1, 2, 3]];
        for (i, p) in packets.iter().enumerate() {
            w.push(1_000 + i as u32, 999_999, p);
        }
        let bytes = w.into_bytes();
        // The header matches the layout of a tcpdump file byte for byte.
        assert_eq!(&bytes[..24], &GCP_PCAP[..24]);
        let r = PcapReader::new(&bytes).unwrap();
        assert_eq!(r.link_type(), LINKTYPE_ETHERNET);
        assert_eq!(r.snaplen(), MAX_RECORD_LEN);
        let recs: Vec<_> = r.records().map(|x| x.unwrap()).collect();
        assert_eq!(recs.len(), 3);
        for (i, (rec, p)) in recs.iter().zip(packets).enumerate() {
            assert_eq!(rec.ts_sec, 1_000 + i as u32);
            assert_eq!(rec.ts_frac, 999_999);
            assert_eq!(rec.orig_len as usize, p.len());
            assert_eq!(rec.data, p);
        }
    }

    #[test]
    fn writer_cuts_to_snaplen() {
        let big = vec![0x5a; MAX_RECORD_LEN as usize + 10];
        let mut w = PcapWriter::new(LINKTYPE_ETHERNET);
        w.push(1, 2, &big);
        let bytes = w.into_bytes();
        let r = PcapReader::new(&bytes).unwrap();
        let rec = r.records().next().unwrap().unwrap();
        assert_eq!(rec.data.len(), MAX_RECORD_LEN as usize);
        assert_eq!(rec.orig_len, MAX_RECORD_LEN + 10);
    }

    #[test]
    fn read_every_shared_capture() {
        let dir = shared_pcaps_dir();
        let expected = [
            ("tcpdump-geneve.pcap", 39),
            ("tcpdump-geneve-gcp.pcap", 1),
            ("tcpdump-vxlan.pcap", 10),
            ("tcpdump-vxlan_port_8472.pcap", 10),
            ("tcpdump-gso-ipv4-vxlan-ipv4.pcap", 1),
            ("tcpdump-gso-ipv6-vxlan-ipv6.pcap", 1),
            ("tcpdump-gso-ipv6-geneve-ipv6.pcap", 1),
        ];
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| {
            panic!(
                "cannot read {} ({e}); set WEFT_PCAPS to the shared/pcaps directory",
                dir.display()
            )
        });
        let mut seen = Vec::new();
        for entry in entries {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|x| x != "pcap") {
                continue;
            }
            let name = path.file_name().unwrap().to_str().unwrap().to_owned();
            let bytes = std::fs::read(&path).unwrap();
            let r = PcapReader::new(&bytes).unwrap();
            assert_eq!(r.link_type(), LINKTYPE_ETHERNET, "{name}");
            let (n, err) = walk(&bytes);
            assert_eq!(err, None, "{name}");
            if let Some((_, want)) = expected.iter().find(|(f, _)| *f == name) {
                assert_eq!(n, *want, "{name}");
            }
            if name == "tcpdump-geneve-gcp.pcap" {
                assert_eq!(bytes, GCP_PCAP);
            }
            seen.push(name);
        }
        for (f, _) in expected {
            assert!(
                seen.iter().any(|s| s == f),
                "{f} missing from {}",
                dir.display()
            );
        }
    }

    fn read_shared(name: &str) -> Vec<u8> {
        let path = shared_pcaps_dir().join(name);
        std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "cannot read {} ({e}); set WEFT_PCAPS to the shared/pcaps directory",
                path.display()
            )
        })
    }

    /// Every packet of the tunnel captures parses with the wire modules
    /// (outer Ethernet + IPv4 without options + UDP = 42 bytes).
    #[test]
    fn shared_tunnel_captures_parse() {
        use crate::wire::{GenevePacket, GeneveRepr, VxlanPacket, VxlanRepr};

        let bytes = read_shared("tcpdump-geneve.pcap");
        let (mut with_opt, mut without) = (0, 0);
        for rec in PcapReader::new(&bytes).unwrap().records() {
            let data = rec.unwrap().data;
            let r = GeneveRepr::parse(&GenevePacket::new_checked(&data[42..]).unwrap()).unwrap();
            match r.vni.get() {
                0xa => {
                    assert_eq!(
                        r.to_string(),
                        "Geneve vni=10 proto=TEB opts=1 [0x0000/0x80 len=4] C"
                    );
                    with_opt += 1;
                }
                0xb => {
                    assert_eq!(r.to_string(), "Geneve vni=11 proto=TEB opts=0");
                    without += 1;
                }
                v => panic!("unexpected VNI {v}"),
            }
        }
        assert_eq!((with_opt, without), (19, 20));

        for name in ["tcpdump-vxlan.pcap", "tcpdump-vxlan_port_8472.pcap"] {
            let bytes = read_shared(name);
            for rec in PcapReader::new(&bytes).unwrap().records() {
                let data = rec.unwrap().data;
                let p = VxlanPacket::new_checked(&data[42..]).unwrap();
                assert_eq!(VxlanRepr::parse(&p).unwrap().vni.get(), 100, "{name}");
            }
        }
    }

    proptest! {
        #[test]
        fn never_panics_on_random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = walk(&bytes);
        }

        #[test]
        fn never_panics_on_random_header_with_records(
            magic in prop::sample::select(vec![
                [0xd4u8, 0xc3, 0xb2, 0xa1], [0xa1, 0xb2, 0xc3, 0xd4],
                [0x4d, 0x3c, 0xb2, 0xa1], [0xa1, 0xb2, 0x3c, 0x4d],
            ]),
            rest in prop::collection::vec(any::<u8>(), 0..512),
        ) {
            let mut bytes = magic.to_vec();
            bytes.extend_from_slice(&[2, 0, 2, 0]);
            bytes.extend_from_slice(&rest);
            let _ = walk(&bytes);
        }

        #[test]
        fn never_panics_on_mutated_capture(
            edits in prop::collection::vec((0usize..170, any::<u8>()), 1..8),
            cut in 0usize..=170,
        ) {
            let mut bytes = GCP_PCAP.to_vec();
            for (at, v) in edits {
                bytes[at] = v;
            }
            bytes.truncate(cut);
            let _ = walk(&bytes);
        }

        #[test]
        fn writer_roundtrip(
            pkts in prop::collection::vec(
                (any::<u32>(), any::<u32>(), prop::collection::vec(any::<u8>(), 0..100)),
                0..8,
            ),
        ) {
            let mut w = PcapWriter::new(LINKTYPE_ETHERNET);
            for (s, us, d) in &pkts {
                w.push(*s, *us, d);
            }
            let bytes = w.into_bytes();
            let r = PcapReader::new(&bytes).unwrap();
            let recs: Vec<_> = r.records().map(|x| x.unwrap()).collect();
            prop_assert_eq!(recs.len(), pkts.len());
            for (rec, (s, us, d)) in recs.iter().zip(&pkts) {
                prop_assert_eq!(rec.ts_sec, *s);
                prop_assert_eq!(rec.ts_frac, *us);
                prop_assert_eq!(rec.data, &d[..]);
            }
        }
    }
}
