//! Arrow Flight SQL messages the tests send (they do not link arrow-flight), and a call.

use prost::Message;
use quiver_proto::signing::{Credentials, Signed};
use tonic::transport::Channel;

/// Flight's `FlightDescriptor` (the tests do not link arrow-flight).
#[derive(Clone, PartialEq, Message)]
pub struct FlightDescriptor {
    #[prost(int32, tag = "1")]
    pub r#type: i32,
    #[prost(bytes = "vec", tag = "2")]
    pub cmd: Vec<u8>,
}

/// A Flight SQL `CommandStatementQuery` in a CMD (2) descriptor.
pub fn statement(sql: &str) -> FlightDescriptor {
    #[derive(Clone, PartialEq, Message)]
    struct CommandStatementQuery {
        #[prost(string, tag = "1")]
        query: String,
    }
    let command = prost_types::Any {
        type_url: "type.googleapis.com/arrow.flight.protocol.sql.CommandStatementQuery".into(),
        value: CommandStatementQuery { query: sql.into() }.encode_to_vec(),
    };
    FlightDescriptor {
        r#type: 2,
        cmd: command.encode_to_vec(),
    }
}

/// GetFlightInfo for the SQL statement `sql` on a Flight SQL `channel`, signed with
/// `credentials` when given.
pub async fn statement_info(
    channel: Channel,
    credentials: Option<Credentials>,
    sql: &str,
) -> Result<(), tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(Signed::new(channel, credentials));
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    grpc.unary::<_, prost_types::Any, _>(
        tonic::Request::new(statement(sql)),
        "/arrow.flight.protocol.FlightService/GetFlightInfo"
            .parse()
            .unwrap(),
        tonic_prost::ProstCodec::default(),
    )
    .await
    .map(|_| ())
}
