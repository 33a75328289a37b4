//! Quiver's gRPC API, generated from `quiver/featurestore/v1/*.proto`, how its requests are
//! signed (`signing`), how clients reach it over TLS (`tls`), and a connection wrapper that
//! batches HTTP/2 writes (`coalescing`).

pub mod coalescing;
pub mod signing;
pub mod tls;

/// `quiver.featurestore.v1`: the feature store service and its messages.
pub mod v1 {
    tonic::include_proto!("quiver.featurestore.v1");
}

/// The server's side of `quiver.featurestore.v1.FeatureStore`: the same service and messages,
/// except that GetRecord and BatchGetRecord answer with [`Encoded`] messages, which the server
/// builds straight from stored records (clients decode them as the generated response types),
/// and PutRecord receives its request [`Undecoded`], which the server reads straight into its
/// own record type.
pub mod v1_server {
    include!(concat!(
        env!("OUT_DIR"),
        "/encoded_server/quiver.featurestore.v1.rs"
    ));
}

/// A message already in protobuf wire form: encoding it copies the bytes.
///
/// Decoding one keeps every field's bytes as they came, so decoding and re-encoding gives the
/// same message.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Encoded(pub Vec<u8>);

impl std::fmt::Debug for Encoded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Encoded({} bytes)", self.0.len())
    }
}

impl prost::Message for Encoded {
    fn encode_raw(&self, buf: &mut impl prost::bytes::BufMut) {
        buf.put_slice(&self.0);
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: prost::encoding::WireType,
        buf: &mut impl prost::bytes::Buf,
        ctx: prost::encoding::DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        use prost::encoding::{WireType, bytes, fixed32, fixed64, skip_field, uint64};
        let out = &mut self.0;
        match wire_type {
            WireType::Varint => {
                let mut value = 0;
                uint64::merge(wire_type, &mut value, buf, ctx)?;
                uint64::encode(tag, &value, out);
            }
            WireType::SixtyFourBit => {
                let mut value = 0;
                fixed64::merge(wire_type, &mut value, buf, ctx)?;
                fixed64::encode(tag, &value, out);
            }
            WireType::ThirtyTwoBit => {
                let mut value = 0;
                fixed32::merge(wire_type, &mut value, buf, ctx)?;
                fixed32::encode(tag, &value, out);
            }
            WireType::LengthDelimited => {
                let mut value = Vec::new();
                bytes::merge(wire_type, &mut value, buf, ctx)?;
                bytes::encode(tag, &value, out);
            }
            // No Quiver message has groups (a proto2 feature); skip them.
            WireType::StartGroup | WireType::EndGroup => skip_field(wire_type, tag, buf, ctx)?,
        }
        Ok(())
    }

    fn encoded_len(&self) -> usize {
        self.0.len()
    }

    fn clear(&mut self) {
        self.0.clear();
    }
}

/// A request message left in protobuf wire form: decoding it keeps the bytes (without copying
/// them out of the received frame) for the server to read itself.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Undecoded(pub prost::bytes::Bytes);

impl std::fmt::Debug for Undecoded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Undecoded({} bytes)", self.0.len())
    }
}

impl prost::Message for Undecoded {
    fn encode_raw(&self, buf: &mut impl prost::bytes::BufMut) {
        buf.put_slice(&self.0);
    }

    /// Takes the whole message as it is.
    fn merge(&mut self, mut buf: impl prost::bytes::Buf) -> Result<(), prost::DecodeError> {
        let rest = buf.copy_to_bytes(buf.remaining());
        self.0 = if self.0.is_empty() {
            rest
        } else {
            // Merging into a message appends its fields, as protobuf concatenation does.
            [self.0.as_ref(), rest.as_ref()].concat().into()
        };
        Ok(())
    }

    /// Not reached through [`Undecoded::merge`]; keeps a field given on its own.
    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: prost::encoding::WireType,
        buf: &mut impl prost::bytes::Buf,
        ctx: prost::encoding::DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        let mut field = Encoded::default();
        field.merge_field(tag, wire_type, buf, ctx)?;
        self.0 = [self.0.as_ref(), field.0.as_slice()].concat().into();
        Ok(())
    }

    fn encoded_len(&self) -> usize {
        self.0.len()
    }

    fn clear(&mut self) {
        self.0.clear();
    }
}

/// The encoded file descriptor set of every Quiver proto, served by gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("quiver_descriptor");
