//! Framing and the message codec.
//!
//! ```text
//!  0               4                                  4 + len
//! +---------------+-----------------------------------+
//! | len (u32, BE) | body: postcard(Message)           |
//! +---------------+-----------------------------------+
//!                 | id (varint u64) | tag (varint) | variant fields... |
//! ```
//!
//! `len` counts the body only and is at most [`MAX_FRAME_LEN`]. The body is
//! the postcard encoding of a [`Message`]: the request id, then the
//! [`Body`] tag, then the variant's fields. Because the id and the tag come
//! first, [`decode_message`] can name the request even when it cannot
//! decode the rest.
//!
//! # Bounds
//!
//! Everything a peer controls is bounded before memory is committed:
//! * [`FrameDecoder`] rejects a declared length over [`MAX_FRAME_LEN`] on
//!   the 4 prefix bytes, and only ever holds bytes it was given;
//! * [`decode_message`] never pre-allocates for elements not yet read,
//!   fails past [`MAX_DEPTH`] nesting levels (recursive actions and errors
//!   would otherwise overflow the stack), and charges every collection
//!   element's in-memory size against [`MAX_DECODED_LEN`] (an empty flow
//!   key is 1 byte on the wire and 312 in memory);
//! * [`Body::check_limits`] bounds names and version lists.
//!
//! Not supported: compression, checksums (the transport is a Unix socket or
//! TLS), skipping unknown fields (a new field is a new protocol version).

use serde::Deserialize;

use super::error::{CodecError, FrameError};
use super::guard::{Guard, LimitHit, Limits};
use super::msg::{Body, Message};

/// The largest body a frame may carry, in bytes.
pub const MAX_FRAME_LEN: usize = 16 * 1024 * 1024;
/// The deepest nesting [`decode_message`] accepts, counted in serde
/// values (a message with flows and actions needs about 12; each nested
/// `WriteActions` adds 3).
pub const MAX_DEPTH: usize = 64;
/// The most memory, in bytes, that collection elements of one decoded
/// message may take (`size_of` of each element, summed).
pub const MAX_DECODED_LEN: usize = 256 * 1024 * 1024;

/// Length of the frame prefix.
const PREFIX_LEN: usize = 4;

/// Encodes `msg` as one frame: the 4-byte length, then the body.
///
/// Fails if the message breaks [`Body::check_limits`] or the body would
/// exceed [`MAX_FRAME_LEN`] (split the request, or use a bundle).
pub fn encode_frame(msg: &Message) -> Result<Vec<u8>, CodecError> {
    msg.body.check_limits().map_err(CodecError::from)?;
    let out = postcard::to_extend(msg, vec![0u8; PREFIX_LEN]).map_err(|e| CodecError::Encode {
        detail: e.to_string(),
    })?;
    let len = out.len() - PREFIX_LEN;
    if len > MAX_FRAME_LEN {
        return Err(CodecError::FrameTooLarge {
            len,
            max: MAX_FRAME_LEN,
        });
    }
    let mut out = out;
    out[..PREFIX_LEN].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(out)
}

/// Decodes a frame body (as returned by [`FrameDecoder::next_frame`]).
///
/// Errors carry the request id when it was read: an unknown body tag is
/// [`CodecError::UnknownBody`] `{ id, tag }`, so the server can answer
/// `Error(UnknownMessage { tag })` with that id. Never panics.
pub fn decode_message(body: &[u8]) -> Result<Message, CodecError> {
    decode_with_limits(body, MAX_DEPTH, MAX_DECODED_LEN)
}

/// [`decode_message`] with explicit nesting and memory limits.
fn decode_with_limits(
    body: &[u8],
    max_depth: usize,
    max_decoded: usize,
) -> Result<Message, CodecError> {
    let (id, rest) = postcard::take_from_bytes::<u64>(body).map_err(|e| from_postcard(e, None))?;
    let (tag, _) =
        postcard::take_from_bytes::<u32>(rest).map_err(|e| from_postcard(e, Some(id)))?;
    if tag >= Body::TAG_COUNT {
        return Err(CodecError::UnknownBody { id, tag });
    }
    let limits = Limits::new(max_decoded);
    let mut de = postcard::Deserializer::from_bytes(rest);
    let body = match Body::deserialize(Guard::new(&mut de, max_depth, &limits)) {
        Ok(b) => b,
        Err(e) => {
            return Err(match limits.hit() {
                Some(LimitHit::Depth) => CodecError::LimitExceeded {
                    id: Some(id),
                    what: "nesting depth".into(),
                    limit: max_depth as u64,
                },
                Some(LimitHit::Memory) => CodecError::LimitExceeded {
                    id: Some(id),
                    what: "decoded size in bytes".into(),
                    limit: max_decoded as u64,
                },
                None => from_postcard(e, Some(id)),
            });
        }
    };
    let left = de.finalize().map_err(|e| from_postcard(e, Some(id)))?;
    if !left.is_empty() {
        return Err(CodecError::TrailingBytes {
            id,
            count: left.len(),
        });
    }
    body.check_limits()
        .map_err(|e| CodecError::from(e).with_id(id))?;
    Ok(Message { id, body })
}

fn from_postcard(e: postcard::Error, id: Option<u64>) -> CodecError {
    match e {
        postcard::Error::DeserializeUnexpectedEnd => CodecError::Truncated { id },
        other => CodecError::Malformed {
            id,
            detail: other.to_string(),
        },
    }
}

/// Splits a byte stream into frame bodies, sans I/O: feed it whatever the
/// socket returned with [`push`](Self::push), then take complete frames
/// with [`next_frame`](Self::next_frame) until it returns `Ok(None)`.
///
/// It holds only the bytes pushed and not yet returned; it never allocates
/// on the strength of a declared length. A length over [`MAX_FRAME_LEN`]
/// is an error as soon as the 4 prefix bytes are in, and the decoder stays
/// failed (the stream cannot be resynchronised; close the connection).
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    /// Start of the unread bytes in `buf`.
    pos: usize,
    failed: Option<FrameError>,
}

impl FrameDecoder {
    /// An empty decoder.
    pub fn new() -> FrameDecoder {
        FrameDecoder::default()
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        // Drop consumed bytes before growing, so the buffer holds at most
        // the unread bytes plus this push.
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame body, `Ok(None)` if more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let unread = self.buf.get(self.pos..).unwrap_or_default();
        let Some(len) = Self::declared_len(unread) else {
            return Ok(None);
        };
        if len > MAX_FRAME_LEN {
            let e = FrameError::TooLarge {
                len,
                max: MAX_FRAME_LEN,
            };
            self.failed = Some(e);
            self.buf = Vec::new();
            self.pos = 0;
            return Err(e);
        }
        let Some(body) = unread.get(PREFIX_LEN..PREFIX_LEN + len) else {
            return Ok(None);
        };
        let body = body.to_vec();
        self.pos += PREFIX_LEN + len;
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        Ok(Some(body))
    }

    /// How many more bytes are needed before the next frame is complete
    /// (at least 1 while the prefix is incomplete; 0 if a frame is ready
    /// or the decoder has failed). A read-size hint for the caller.
    pub fn needed(&self) -> usize {
        if self.failed.is_some() {
            return 0;
        }
        let unread = self.unread_len();
        match self.buf.get(self.pos..).and_then(Self::declared_len) {
            None => PREFIX_LEN - unread,
            Some(len) => (PREFIX_LEN + len.min(MAX_FRAME_LEN)).saturating_sub(unread),
        }
    }

    /// Bytes pushed and not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.unread_len()
    }

    /// Call at end of stream: `Ok` if the stream ended on a frame
    /// boundary, [`FrameError::Truncated`] if it ended inside a frame.
    pub fn finish(&self) -> Result<(), FrameError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let have = self.unread_len();
        if have == 0 {
            return Ok(());
        }
        let need = match self.buf.get(self.pos..).and_then(Self::declared_len) {
            None => PREFIX_LEN,
            Some(len) => PREFIX_LEN + len,
        };
        Err(FrameError::Truncated { have, need })
    }

    fn unread_len(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn declared_len(unread: &[u8]) -> Option<usize> {
        let prefix: [u8; PREFIX_LEN] = unread.get(..PREFIX_LEN)?.try_into().ok()?;
        Some(u32::from_be_bytes(prefix) as usize)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap (PREAMBLE).
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::ctl::msg::{FlowFilter, MAX_NAME_LEN, MAX_VERSIONS_OFFERED};
    use crate::ctl::{CtlError, strategy};
    use crate::flow::{Action, FlowSpec, PortNo};

    fn frame(id: u64, body: Body) -> Vec<u8> {
        encode_frame(&Message { id, body }).unwrap()
    }

    /// A body encoded by postcard directly, bypassing `check_limits`.
    fn raw_body(id: u64, body: &Body) -> Vec<u8> {
        postcard::to_allocvec(&(id, body)).unwrap()
    }

    #[test]
    fn ping_golden_bytes() {
        // len = 2, id = 5 (varint), tag 25 (Ping).
        assert_eq!(frame(5, Body::Ping), [0, 0, 0, 2, 5, 25]);
        // id 300 is a two-byte varint (0xac 0x02); Ok is tag 3.
        assert_eq!(frame(300, Body::Ok), [0, 0, 0, 3, 0xac, 0x02, 3]);
    }

    #[test]
    fn hello_golden_bytes() {
        let bytes = frame(
            1,
            Body::Hello {
                versions: vec![1],
                client: "wc".into(),
            },
        );
        // id 1, tag 0, 1 version (varint 1), "wc" (len 2).
        assert_eq!(bytes, [0, 0, 0, 7, 1, 0, 1, 1, 2, b'w', b'c']);
        let m = decode_message(&bytes[4..]).unwrap();
        assert_eq!(m.id, 1);
        assert_eq!(
            m.body,
            Body::Hello {
                versions: vec![1],
                client: "wc".into()
            }
        );
    }

    #[test]
    fn decoder_byte_by_byte() {
        let msgs = [
            Message {
                id: 1,
                body: Body::Ping,
            },
            Message {
                id: 2,
                body: Body::AddFlows {
                    flows: vec![FlowSpec {
                        actions: vec![Action::Output(PortNo(3))],
                        ..FlowSpec::default()
                    }],
                },
            },
            Message {
                id: 3,
                body: Body::Goodbye,
            },
        ];
        let stream: Vec<u8> = msgs.iter().flat_map(|m| encode_frame(m).unwrap()).collect();
        let mut dec = FrameDecoder::new();
        let mut got = Vec::new();
        for (i, b) in stream.iter().enumerate() {
            assert!(dec.needed() >= 1, "byte {i}");
            dec.push(&[*b]);
            while let Some(f) = dec.next_frame().unwrap() {
                got.push(decode_message(&f).unwrap());
            }
        }
        assert_eq!(got, msgs);
        assert_eq!(dec.buffered(), 0);
        assert_eq!(dec.finish(), Ok(()));
    }

    #[test]
    fn decoder_several_frames_in_one_push() {
        let mut stream = frame(1, Body::Ping);
        stream.extend(frame(2, Body::Ok));
        stream.extend(&frame(3, Body::Ping)[..3]);
        let mut dec = FrameDecoder::new();
        dec.push(&stream);
        assert_eq!(dec.next_frame().unwrap(), Some(vec![1, 25]));
        assert_eq!(dec.next_frame().unwrap(), Some(vec![2, 3]));
        assert_eq!(dec.next_frame().unwrap(), None);
        assert_eq!(dec.buffered(), 3);
        assert_eq!(dec.needed(), 1);
        assert_eq!(
            dec.finish(),
            Err(FrameError::Truncated { have: 3, need: 4 })
        );
        dec.push(&[2, 3]);
        assert_eq!(dec.needed(), 1);
        assert_eq!(
            dec.finish(),
            Err(FrameError::Truncated { have: 5, need: 6 })
        );
        dec.push(&[25]);
        assert_eq!(dec.needed(), 0);
        assert_eq!(dec.next_frame().unwrap(), Some(vec![3, 25]));
        assert_eq!(dec.finish(), Ok(()));
    }

    #[test]
    fn decoder_empty_frame() {
        let mut dec = FrameDecoder::new();
        dec.push(&[0, 0, 0, 0]);
        assert_eq!(dec.next_frame().unwrap(), Some(vec![]));
        assert_eq!(decode_message(&[]), Err(CodecError::Truncated { id: None }));
    }

    #[test]
    fn decoder_rejects_oversize_on_prefix() {
        let mut dec = FrameDecoder::new();
        let len = MAX_FRAME_LEN + 1;
        dec.push(&(len as u32).to_be_bytes());
        let e = FrameError::TooLarge {
            len,
            max: MAX_FRAME_LEN,
        };
        assert_eq!(dec.next_frame(), Err(e));
        assert_eq!(
            e.to_string(),
            "frame too large: declared length 16777217 bytes exceeds the limit of 16777216 bytes"
        );
        // Stays failed, holds nothing, ignores further input.
        dec.push(&[0; 100]);
        assert_eq!(dec.next_frame(), Err(e));
        assert_eq!(dec.buffered(), 0);
        assert_eq!(dec.needed(), 0);
        assert_eq!(dec.finish(), Err(e));
        assert_eq!(
            CtlError::from(e),
            CtlError::FrameTooLarge {
                len: len as u64,
                max: MAX_FRAME_LEN as u64
            }
        );
    }

    #[test]
    fn decoder_accepts_max_len_prefix() {
        let mut dec = FrameDecoder::new();
        dec.push(&(MAX_FRAME_LEN as u32).to_be_bytes());
        assert_eq!(dec.next_frame(), Ok(None));
        assert_eq!(dec.needed(), MAX_FRAME_LEN);
        let mut dec = FrameDecoder::new();
        dec.push(&[0xff; 4]);
        assert_eq!(
            dec.next_frame(),
            Err(FrameError::TooLarge {
                len: 0xffff_ffff,
                max: MAX_FRAME_LEN
            })
        );
    }

    #[test]
    fn encode_rejects_oversize_body() {
        let body = Body::PacketOut {
            in_port: PortNo::CONTROLLER,
            packet: vec![0; MAX_FRAME_LEN],
            actions: vec![],
        };
        match encode_frame(&Message { id: 1, body }) {
            Err(CodecError::FrameTooLarge { len, max }) => {
                assert!(len > MAX_FRAME_LEN);
                assert_eq!(max, MAX_FRAME_LEN);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_tag_keeps_id() {
        // id 42, tag TAG_COUNT (the first unknown), then a newer peer's fields.
        let mut body = vec![42, Body::TAG_COUNT as u8, 1, 2, 3];
        let e = decode_message(&body).unwrap_err();
        assert_eq!(
            e,
            CodecError::UnknownBody {
                id: 42,
                tag: Body::TAG_COUNT
            }
        );
        assert_eq!(e.request_id(), Some(42));
        assert_eq!(
            e.to_ctl_error(),
            CtlError::UnknownMessage {
                tag: Body::TAG_COUNT
            }
        );
        // A large tag: varint 1000 = 0xe8 0x07.
        body = vec![7, 0xe8, 0x07];
        assert_eq!(
            decode_message(&body),
            Err(CodecError::UnknownBody { id: 7, tag: 1000 })
        );
        // The last known tag decodes.
        assert_eq!(
            decode_message(&[7, 45]).unwrap_err(),
            CodecError::Truncated { id: Some(7) }
        );
    }

    #[test]
    fn truncated_and_malformed_ids() {
        assert_eq!(
            decode_message(&[0x80]),
            Err(CodecError::Truncated { id: None })
        );
        assert_eq!(
            decode_message(&[9]),
            Err(CodecError::Truncated { id: Some(9) })
        );
        // An 11-byte varint is not a u64.
        assert!(matches!(
            decode_message(&[0xff; 11]),
            Err(CodecError::Malformed { id: None, .. })
        ));
        // A tag varint over u32.
        assert!(matches!(
            decode_message(&[1, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
            Err(CodecError::Malformed { id: Some(1), .. })
        ));
    }

    #[test]
    fn malformed_field_keeps_id() {
        // Subscribe (tag 19) with packet_in = 2: not a bool.
        let e = decode_message(&[5, 19, 2, 0]).unwrap_err();
        assert!(
            matches!(e, CodecError::Malformed { id: Some(5), .. }),
            "{e:?}"
        );
        assert_eq!(e.request_id(), Some(5));
        assert!(matches!(e.to_ctl_error(), CtlError::Malformed { .. }));
    }

    #[test]
    fn trailing_bytes() {
        assert_eq!(
            decode_message(&[5, 25, 0, 0]),
            Err(CodecError::TrailingBytes { id: 5, count: 2 })
        );
    }

    #[test]
    fn hello_limits() {
        let many = Body::Hello {
            versions: vec![1; MAX_VERSIONS_OFFERED + 1],
            client: String::new(),
        };
        let want = CodecError::LimitExceeded {
            id: None,
            what: "Hello.versions".into(),
            limit: MAX_VERSIONS_OFFERED as u64,
        };
        assert_eq!(
            encode_frame(&Message {
                id: 3,
                body: many.clone()
            }),
            Err(want)
        );
        assert_eq!(
            decode_message(&raw_body(3, &many)),
            Err(CodecError::LimitExceeded {
                id: Some(3),
                what: "Hello.versions".into(),
                limit: MAX_VERSIONS_OFFERED as u64,
            })
        );
        let long = Body::Hello {
            versions: vec![1],
            client: "x".repeat(MAX_NAME_LEN + 1),
        };
        let e = decode_message(&raw_body(4, &long)).unwrap_err();
        assert_eq!(
            e.to_ctl_error(),
            CtlError::LimitExceeded {
                what: "Hello.client".into(),
                limit: MAX_NAME_LEN as u64
            }
        );
        let port = Body::PortDel {
            port: crate::ctl::PortRef::Name("y".repeat(MAX_NAME_LEN + 1)),
        };
        assert!(matches!(
            decode_message(&raw_body(4, &port)),
            Err(CodecError::LimitExceeded { id: Some(4), .. })
        ));
    }

    /// The postcard encoding of `WriteActions(...)` up to its element count.
    fn write_actions_prefix() -> Vec<u8> {
        let mut b = postcard::to_allocvec(&Action::WriteActions(vec![Action::DecTtl])).unwrap();
        // [tag, count = 1, DecTtl]: keep [tag, 1].
        b.truncate(2);
        b
    }

    fn nested_packet_out(levels: usize) -> Vec<u8> {
        // id 1, PacketOut (18), in_port 1, empty packet, 1 action.
        let mut b = vec![1, 18, 1, 0, 1];
        for _ in 0..levels {
            b.extend(write_actions_prefix());
        }
        b.push(postcard::to_allocvec(&Action::DecTtl).unwrap()[0]);
        b
    }

    #[test]
    fn modest_nesting_decodes() {
        let m = decode_message(&nested_packet_out(5)).unwrap();
        let Body::PacketOut { actions, .. } = m.body else {
            panic!("{m:?}")
        };
        let mut a = &actions[0];
        for _ in 0..5 {
            let Action::WriteActions(inner) = a else {
                panic!("{a:?}")
            };
            a = &inner[0];
        }
        assert_eq!(*a, Action::DecTtl);
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        // 500k levels in 1 MB: without the depth guard this overflows the
        // test thread's stack (an abort).
        let e = decode_message(&nested_packet_out(500_000)).unwrap_err();
        assert_eq!(
            e,
            CodecError::LimitExceeded {
                id: Some(1),
                what: "nesting depth".into(),
                limit: MAX_DEPTH as u64
            }
        );
        // Same for nested errors: Error(BundleFailed { 0, 0, BundleFailed { .. } }).
        let leaf = CtlError::UnknownMessage { tag: 0 };
        let nested = CtlError::BundleFailed {
            bundle_id: crate::ctl::BundleId(0),
            index: 0,
            error: Box::new(leaf.clone()),
        };
        let level = postcard::to_allocvec(&nested).unwrap();
        let leaf = postcard::to_allocvec(&leaf).unwrap();
        let mut b = vec![1, 2];
        for _ in 0..500_000 {
            b.extend(&level[..level.len() - leaf.len()]);
        }
        b.extend(&leaf);
        assert!(matches!(
            decode_message(&b),
            Err(CodecError::LimitExceeded { id: Some(1), .. })
        ));
    }

    /// A legitimate worst case: a bundle modify whose flow nests
    /// `WriteActions` twice around a `SetField`, and a nested bundle error.
    fn deep_but_legit() -> Vec<Message> {
        use crate::ctl::{BundleId, FlowChange, FlowModify};
        use crate::flow::Field;
        let set = Action::SetField {
            field: Field::Reg(3),
            value: 1,
            mask: u128::MAX,
        };
        let spec = FlowSpec {
            actions: vec![Action::WriteActions(vec![Action::WriteActions(vec![set])])],
            ..FlowSpec::default()
        };
        vec![
            Message {
                id: 1,
                body: Body::BundleAdd {
                    bundle_id: BundleId(1),
                    changes: vec![FlowChange::Modify(FlowModify { spec, strict: true })],
                },
            },
            Message {
                id: 2,
                body: Body::Error(CtlError::BundleFailed {
                    bundle_id: BundleId(1),
                    index: 0,
                    error: Box::new(CtlError::BadFlow {
                        index: 0,
                        flow: String::new(),
                        field: "x".into(),
                        reason: "y".into(),
                    }),
                }),
            },
        ]
    }

    #[test]
    fn depth_limit_has_headroom() {
        // Real messages fit in a quarter of the limit.
        for m in deep_but_legit() {
            let bytes = encode_frame(&m).unwrap();
            assert_eq!(
                decode_with_limits(&bytes[4..], MAX_DEPTH / 4, MAX_DECODED_LEN).unwrap(),
                m
            );
        }
        // ... and the limit is real: depth 8 is too little for the first.
        let bytes = encode_frame(&deep_but_legit()[0]).unwrap();
        assert_eq!(
            decode_with_limits(&bytes[4..], 8, MAX_DECODED_LEN),
            Err(CodecError::LimitExceeded {
                id: Some(1),
                what: "nesting depth".into(),
                limit: 8
            })
        );
    }

    #[test]
    fn decoded_size_limit() {
        // 100 minimal flows: 11 bytes each on the wire (the default
        // priority is a 3-byte varint), each a `FlowSpec` of several
        // hundred bytes in memory.
        let m = Message {
            id: 4,
            body: Body::AddFlows {
                flows: vec![FlowSpec::default(); 100],
            },
        };
        let bytes = encode_frame(&m).unwrap();
        assert_eq!(bytes.len(), 4 + 3 + 100 * 11, "minimal flow encoding");
        let need = 100 * core::mem::size_of::<FlowSpec>();
        assert_eq!(
            decode_with_limits(&bytes[4..], MAX_DEPTH, 2 * need).unwrap(),
            m
        );
        assert_eq!(
            decode_with_limits(&bytes[4..], MAX_DEPTH, need / 2),
            Err(CodecError::LimitExceeded {
                id: Some(4),
                what: "decoded size in bytes".into(),
                limit: (need / 2) as u64
            })
        );
    }

    #[test]
    fn filter_default_selects_all() {
        let f = FlowFilter::default();
        assert_eq!(f.table, None);
        assert!(f.r#match.mask.is_catchall());
        let m = Message {
            id: 1,
            body: Body::DeleteFlows(f),
        };
        assert_eq!(decode_message(&encode_frame(&m).unwrap()[4..]).unwrap(), m);
    }

    proptest! {
        #[test]
        fn round_trip(msg in strategy::message(), chunk in 1usize..64) {
            let bytes = encode_frame(&msg).unwrap();
            prop_assert_eq!(
                u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize,
                bytes.len() - 4
            );
            // The tag follows the id varint.
            let id_len = bytes[4..].iter().position(|b| b & 0x80 == 0).unwrap() + 1;
            let (tag, _) = postcard::take_from_bytes::<u32>(&bytes[4 + id_len..]).unwrap();
            prop_assert_eq!(tag, msg.body.tag());
            let mut dec = FrameDecoder::new();
            let mut frames = Vec::new();
            for c in bytes.chunks(chunk) {
                dec.push(c);
                while let Some(f) = dec.next_frame().unwrap() {
                    frames.push(f);
                }
            }
            prop_assert_eq!(frames.len(), 1);
            prop_assert_eq!(decode_message(&frames[0]).unwrap(), msg);
        }

        #[test]
        fn truncated_bodies_are_errors(msg in strategy::message()) {
            let bytes = encode_frame(&msg).unwrap();
            let body = &bytes[4..];
            for n in 0..body.len() {
                prop_assert!(decode_message(&body[..n]).is_err(), "prefix {} of {:?}", n, msg);
            }
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_message(&bytes);
            let mut dec = FrameDecoder::new();
            dec.push(&bytes);
            while let Ok(Some(f)) = dec.next_frame() {
                let _ = decode_message(&f);
            }
            let _ = dec.finish();
        }

        #[test]
        fn mutated_bodies_never_panic(
            msg in strategy::message(),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        ) {
            let mut body = encode_frame(&msg).unwrap().split_off(4);
            for (i, b) in flips {
                let i = i.index(body.len());
                body[i] = b;
            }
            if let Ok(m) = decode_message(&body) {
                // Whatever decodes re-encodes and decodes to itself.
                let again = encode_frame(&m).map(|b| decode_message(&b[4..]));
                if let Ok(again) = again {
                    prop_assert_eq!(again.unwrap(), m);
                }
            }
        }
    }
}
