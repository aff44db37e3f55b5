//! A transport in front of the simulator that rewrites its `GetRecords` bodies: for pages in
//! forms the simulator never writes (floats, duplicate keys, bad records), as other servers
//! and emulators do.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_sdk_dynamodbstreams::Client;
use aws_sdk_dynamodbstreams::config::{BehaviorVersion, Credentials, Region};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use dynamodb_stream::sim::Simulator;

/// Rewrites the `n`th successful `GetRecords` body (counting from 0).
pub type Rewrite = dyn Fn(usize, String) -> String + Send + Sync;

#[derive(Clone)]
struct Rewriting {
    sim: Simulator,
    rewrite: Arc<Rewrite>,
    pages: Arc<AtomicUsize>,
}

impl fmt::Debug for Rewriting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rewriting").finish_non_exhaustive()
    }
}

impl HttpConnector for Rewriting {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let target = request
            .headers()
            .get("x-amz-target")
            .unwrap_or_default()
            .to_owned();
        let (status, body) = self
            .sim
            .handle(&target, request.body().bytes().unwrap_or(b"\0"));
        let body = if status == 200 && target.ends_with(".GetRecords") {
            let n = self.pages.fetch_add(1, Ordering::Relaxed);
            let text = String::from_utf8(body.to_vec()).expect("the simulator writes UTF-8");
            bytes::Bytes::from((self.rewrite)(n, text))
        } else {
            body
        };
        let mut response =
            HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::from(body));
        response
            .headers_mut()
            .insert("content-type", "application/x-amz-json-1.0");
        HttpConnectorFuture::ready(Ok(response))
    }
}

impl HttpClient for Rewriting {
    fn http_connector(
        &self,
        _settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

/// A streams client whose `GetRecords` bodies pass through `rewrite`. The SDK's defaults
/// otherwise, stalled-stream protection included.
pub fn client(
    sim: &Simulator,
    rewrite: impl Fn(usize, String) -> String + Send + Sync + 'static,
) -> Client {
    let transport = Rewriting {
        sim: sim.clone(),
        rewrite: Arc::new(rewrite),
        pages: Arc::default(),
    };
    let config = aws_sdk_dynamodbstreams::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url("http://sim.invalid")
        .credentials_provider(Credentials::new("a", "b", None, None, "test"))
        .http_client(transport)
        .build();
    Client::from_conf(config)
}
