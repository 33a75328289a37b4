//! The online record codec (`server/storage/src/online/codec.rs`) on any bytes, as if read back
//! from a damaged or foreign RocksDB value: decoding answers a value or an error, never panics,
//! and what it decodes encodes back to bytes that decode to the same record.

#![no_main]
use libfuzzer_sys::fuzz_target;
use quiver_storage::online::codec;

fuzz_target!(|data: &[u8]| {
    let _ = codec::header_bytes(data);
    let _ = codec::is_sealed(data);
    let _ = codec::holds_identifier(data);
    let header = codec::decode_header(data);
    let mut seen = 0usize;
    let visited = codec::visit(data, |_, value| {
        seen += 1;
        let _ = value.to_value();
    });
    let Ok(record) = codec::decode(data) else {
        assert!(visited.is_err() || header.is_err() || codec::is_sealed(data));
        return;
    };
    assert!(visited.is_ok(), "decode accepted what visit refused");
    assert_eq!(seen, record.values.len());
    assert_eq!(header.expect("decoded"), record.header);
    // Round trip: the canonical encoding of what was decoded decodes to the same record
    // (compared as encodings, so NaN payloads compare by their bits).
    let again = codec::encode(&record.header, &record.values);
    let decoded = codec::decode(&again).expect("an encoded record decodes");
    assert_eq!(decoded.header, record.header);
    assert_eq!(codec::encode(&decoded.header, &decoded.values), again);
});
