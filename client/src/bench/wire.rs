//! A lean gRPC unary caller over one HTTP/2 connection, for the measured phase of the benchmark.
//!
//! The load generator shares the machine's cores with the server, so every cycle it spends is
//! taken from the server under test. As `redis-benchmark` does for Redis, it speaks the wire
//! protocol directly: requests are encoded with prost and sent on an `h2` stream (no tower
//! buffer task between the caller and the connection), and the response message is checked but
//! not decoded into structs: its grpc-status must be OK and, where the caller asks, its body
//! non-empty. Requests made ready together leave in one write ([`Coalescing`], as the server
//! sends its responses): without it, each PutRecord request (over h2's copy threshold) was its
//! own `writev`. The loading phase and everything else use the regular [`quiver_client::Client`].

use anyhow::{Context, Result, anyhow, bail};
use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderValue, Method, Request, Uri};
use prost::Message;
use quiver_proto::coalescing::Coalescing;
use tokio::net::TcpStream;

/// One HTTP/2 connection to the server's gRPC listener; clones share it.
#[derive(Clone)]
pub struct Connection {
    sender: h2::client::SendRequest<Bytes>,
    scheme: http::uri::Scheme,
    authority: http::uri::Authority,
    /// Signs each request, as `quiver_client` does (a server with --auth).
    signer: Option<std::sync::Arc<quiver_proto::signing::Signer>>,
}

impl Connection {
    pub async fn connect(
        endpoint: &str,
        credentials: Option<quiver_proto::signing::Credentials>,
    ) -> Result<Self> {
        let uri: Uri = endpoint
            .parse()
            .with_context(|| format!("--endpoint {endpoint:?} is not a URI"))?;
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| anyhow!("--endpoint {endpoint:?} names no host:port"))?;
        let builder = || {
            let mut builder = h2::client::Builder::new();
            builder
                .initial_window_size(4 << 20)
                .initial_connection_window_size(16 << 20);
            builder
        };
        // Each connection task ends when the server closes the connection or the benchmark exits.
        let sender = match uri.scheme_str() {
            Some("http") => {
                let tcp = TcpStream::connect(authority.as_str())
                    .await
                    .with_context(|| format!("connecting to {authority}"))?;
                tcp.set_nodelay(true)?;
                let (sender, connection) = builder()
                    .handshake(Coalescing::new(tcp))
                    .await
                    .context("HTTP/2 handshake")?;
                tokio::spawn(connection);
                sender
            }
            Some("https") => {
                let tls = quiver_proto::tls::ClientTls::from_env().map_err(|e| anyhow!(e))?;
                let stream = tls
                    .connect_stream(&uri)
                    .await
                    .with_context(|| format!("TLS connection to {authority}"))?;
                let (sender, connection) = builder()
                    .handshake(Coalescing::new(stream))
                    .await
                    .context("HTTP/2 handshake")?;
                tokio::spawn(connection);
                sender
            }
            _ => bail!("--endpoint {endpoint:?}: must be http:// or https://"),
        };
        let scheme = uri.scheme().cloned().unwrap_or(http::uri::Scheme::HTTP);
        Ok(Self {
            sender,
            scheme,
            authority,
            signer: credentials.map(|c| std::sync::Arc::new(c.signer())),
        })
    }

    /// Calls `path` (`/package.Service/Method`) with `message`; returns the response message's
    /// length in bytes.
    pub async fn unary(&self, path: &str, message: &impl Message) -> Result<usize> {
        let length = message.encoded_len();
        let mut body = BytesMut::with_capacity(5 + length);
        body.put_u8(0); // not compressed
        body.put_u32(length as u32);
        message.encode(&mut body)?;
        self.unary_framed(path, body).await
    }

    /// Calls `path` with a request already framed as gRPC sends it: `[0][length u32 BE]` and
    /// the encoded message ([`frame`] builds one).
    pub async fn unary_framed(&self, path: &str, body: BytesMut) -> Result<usize> {
        let uri = Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path)
            .build()?;
        let mut request = Request::builder().method(Method::POST).uri(uri).body(())?;
        let headers = request.headers_mut();
        headers.insert("content-type", HeaderValue::from_static("application/grpc"));
        headers.insert("te", HeaderValue::from_static("trailers"));
        if let Some(signer) = &self.signer {
            request.headers_mut().insert(
                quiver_proto::signing::AUTHORIZATION,
                HeaderValue::try_from(signer.sign(path, &body))?,
            );
        }

        let mut sender = self.sender.clone().ready().await?;
        let (response, mut stream) = sender.send_request(request, false)?;
        stream.send_data(body.freeze(), true)?;
        let response = response.await?;
        if response.status() != http::StatusCode::OK {
            bail!("HTTP status {}", response.status());
        }
        // A failed call may answer with the status in the headers and no body (trailers-only).
        if let Some(status) = response.headers().get("grpc-status") {
            return grpc_status(status, response.headers().get("grpc-message")).map(|_| 0);
        }
        let mut body = response.into_body();
        let mut received = 0;
        while let Some(chunk) = body.data().await {
            let chunk = chunk?;
            received += chunk.len();
            let _ = body.flow_control().release_capacity(chunk.len());
        }
        let trailers = body
            .trailers()
            .await?
            .ok_or_else(|| anyhow!("the response ended without grpc-status trailers"))?;
        let status = trailers
            .get("grpc-status")
            .ok_or_else(|| anyhow!("the response trailers hold no grpc-status"))?;
        grpc_status(status, trailers.get("grpc-message"))?;
        if received < 5 {
            bail!("the response holds no gRPC message");
        }
        Ok(received - 5)
    }
}

/// A gRPC request frame whose message `encode` writes into the buffer it is given.
pub fn frame(capacity: usize, encode: impl FnOnce(&mut BytesMut)) -> BytesMut {
    let mut body = BytesMut::with_capacity(5 + capacity);
    body.put_u8(0); // not compressed
    body.put_u32(0);
    encode(&mut body);
    let length = (body.len() - 5) as u32;
    body[1..5].copy_from_slice(&length.to_be_bytes());
    body
}

fn grpc_status(status: &HeaderValue, message: Option<&HeaderValue>) -> Result<()> {
    if status.as_bytes() == b"0" {
        return Ok(());
    }
    let code = tonic::Code::from_bytes(status.as_bytes());
    let message = message
        .and_then(|m| m.to_str().ok())
        .map(percent_decode)
        .unwrap_or_default();
    bail!("status: {code:?}, message: {message:?}")
}

/// grpc-message is percent-encoded; errors are rare, so decode simply.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], bytes.get(i + 1..i + 3)) {
            (b'%', Some(hex)) => match std::str::from_utf8(hex)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                Some(b) => {
                    out.push(b);
                    i += 3;
                }
                None => {
                    out.push(b'%');
                    i += 1;
                }
            },
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::percent_decode;

    #[test]
    fn grpc_messages_are_percent_decoded() {
        assert_eq!(
            percent_decode("feature group %27g%27 not found"),
            "feature group 'g' not found"
        );
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
