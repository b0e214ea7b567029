//! pcap reader: any bytes give records or an error, never a panic, and every
//! record's data lies inside the input.
#![no_main]
use libfuzzer_sys::fuzz_target;
use protocol::pcap::PcapReader;

fuzz_target!(|data: &[u8]| {
    let Ok(reader) = PcapReader::new(data) else { return };
    let base = data.as_ptr() as usize;
    let mut errors = 0;
    for rec in reader.records() {
        match rec {
            Ok(r) => {
                let p = r.data.as_ptr() as usize;
                assert!(p >= base && p + r.data.len() <= base + data.len());
                assert!(r.data.len() <= protocol::pcap::MAX_RECORD_LEN as usize);
            }
            Err(e) => {
                errors += 1;
                assert!(!e.to_string().is_empty());
            }
        }
    }
    assert!(errors <= 1, "the record iterator stops after its first error");
});
