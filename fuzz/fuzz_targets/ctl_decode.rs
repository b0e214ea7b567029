//! Control-protocol decoding: any frame body decodes or gives an error (with
//! the request id when it could be read); whatever decodes re-encodes to a
//! frame that decodes to the same message. The frame decoder never yields a
//! frame over the limit, whatever it is fed.
#![no_main]
use libfuzzer_sys::fuzz_target;
use protocol::ctl::{FrameDecoder, MAX_FRAME_LEN, decode_message, encode_frame};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = decode_message(data) {
        let frame = encode_frame(&m).expect("a decoded message re-encodes");
        let mut d = FrameDecoder::new();
        d.push(&frame);
        let body = d.next_frame().expect("own frame").expect("complete frame");
        assert_eq!(decode_message(&body).expect("re-decodes"), m);
    }
    let mut d = FrameDecoder::new();
    for chunk in data.chunks(7) {
        d.push(chunk);
        loop {
            match d.next_frame() {
                Ok(Some(f)) => assert!(f.len() <= MAX_FRAME_LEN),
                Ok(None) | Err(_) => break,
            }
        }
    }
});
