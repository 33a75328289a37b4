//! The one way Quiver's ingest makes a Kinesis client: for the Kinesis source and for a
//! Kinesis dead-letter stream.

use aws_sdk_kinesis::Client;

/// A Kinesis client for `region` (else the environment's) and `endpoint` (else AWS's), with
/// credentials from the usual AWS chain. The SDK's own retries are off: every caller retries
/// with its own backoff, and counts throttling.
pub async fn client(region: Option<&str>, endpoint: Option<&str>) -> Client {
    let region_chain = aws_config::meta::region::RegionProviderChain::first_try(
        region.map(|r| aws_config::Region::new(r.to_string())),
    )
    .or_default_provider()
    .or_else(aws_config::Region::new("us-east-1"));
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(region_chain)
        .retry_config(aws_config::retry::RetryConfig::disabled());
    if let Some(endpoint) = endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    Client::new(&loader.load().await)
}
