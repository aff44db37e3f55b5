//! The SDK side: an in-process HTTP transport and a client wired to it.
//!
//! The SDK builds, signs and parses real requests; only the socket is replaced, by a call to
//! [`Simulator::handle`].

use super::Simulator;
use aws_sdk_dynamodbstreams::config::retry::RetryConfig;
use aws_sdk_dynamodbstreams::config::{
    AsyncSleep, BehaviorVersion, Credentials, Region, SharedAsyncSleep, Sleep,
    StalledStreamProtectionConfig,
};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use std::time::Duration;

/// Answers SDK requests from a [`Simulator`], without a socket.
#[derive(Clone, Debug)]
pub(crate) struct SimTransport {
    pub(crate) sim: Simulator,
}

impl HttpConnector for SimTransport {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let target = request.headers().get("x-amz-target").unwrap_or_default();
        let (status, body) = match request.body().bytes() {
            Some(body) => self.sim.handle(target, body),
            // The SDK sends JSON bodies in memory; a streaming body is not a valid call.
            None => self.sim.handle(target, b"\0"),
        };
        HttpConnectorFuture::ready(respond(status, body))
    }
}

fn respond(status: u16, body: bytes::Bytes) -> Result<HttpResponse, ConnectorError> {
    let status =
        StatusCode::try_from(status).map_err(|e| ConnectorError::other(Box::new(e), None))?;
    let mut response = HttpResponse::new(status, SdkBody::from(body));
    let headers = response.headers_mut();
    headers.insert("content-type", "application/x-amz-json-1.0");
    headers.insert("x-amzn-requestid", "00000000-0000-0000-0000-000000000000");
    Ok(response)
}

impl HttpClient for SimTransport {
    fn http_connector(
        &self,
        _settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

/// Sleeps on tokio's clock, so that paused test time also pauses SDK retry backoff.
#[derive(Debug)]
struct TokioSleep;

impl AsyncSleep for TokioSleep {
    fn sleep(&self, duration: Duration) -> Sleep {
        Sleep::new(tokio::time::sleep(duration))
    }
}

pub(crate) fn http_client(sim: &Simulator) -> SharedHttpClient {
    SharedHttpClient::new(SimTransport { sim: sim.clone() })
}

pub(crate) fn client(sim: &Simulator) -> aws_sdk_dynamodbstreams::Client {
    let config = aws_sdk_dynamodbstreams::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url("http://sim.invalid")
        .credentials_provider(Credentials::new(
            "AKIDSIMULATOR",
            "simulator-secret",
            None,
            None,
            "dynamodb-stream-sim",
        ))
        .http_client(http_client(sim))
        .retry_config(RetryConfig::standard())
        .sleep_impl(SharedAsyncSleep::new(TokioSleep))
        // The bodies are in memory, so a stall is impossible; the protection's timers would
        // only add work to every call.
        .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
        .build();
    aws_sdk_dynamodbstreams::Client::from_conf(config)
}
