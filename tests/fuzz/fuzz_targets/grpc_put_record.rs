//! The hand-written PutRecord decoder of the gRPC write path (`server/grpc/src/decode.rs`)
//! against prost on the same bytes: whenever it reads a request, prost reads the same request;
//! and the domain conversion of either answers a value or an error, never panics.

#![no_main]
use libfuzzer_sys::fuzz_target;
use prost::Message;
use quiver_grpc::decode::{PutRecordRequest, put_record_request};
use quiver_proto::v1 as pb;

fuzz_target!(|data: &[u8]| {
    let theirs = pb::PutRecordRequest::decode(data).ok();
    if let Some(request) = &theirs {
        let _ = quiver_grpc::convert::put_request(request.clone());
    }
    if let Ok(request) = pb::CreateFeatureGroupRequest::decode(data) {
        let _ = quiver_grpc::convert::group_spec(request);
    }
    if let Ok(request) = pb::PutSourceRecordsRequest::decode(data) {
        request.records.into_iter().for_each(|r| {
            let _ = quiver_grpc::convert::source_record(r);
        });
    }
    let Some(ours) = put_record_request(data) else {
        return; // prost decodes it instead (or reports what is wrong)
    };
    let theirs = theirs.unwrap_or_else(|| panic!("prost refuses what the hand decoder read"));
    // Debug forms compare NaN payloads equal, as the bits the server stores are the same.
    assert_eq!(
        format!("{ours:?}"),
        format!("{:?}", PutRecordRequest::of(&theirs)),
        "the hand decoder and prost disagree"
    );
});
