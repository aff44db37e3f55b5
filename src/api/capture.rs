//! The fast path's hook into one `GetRecords` call: the SDK still makes the call (signing,
//! endpoints, timeouts, stall protection, retries, error responses); only a 2xx body's
//! parsing changes hands.
//!
//! How: a per-call interceptor ([`Capture`]), before the call runs, puts a response
//! deserializer of its own ([`RawDeserializer`]) into the call's config bag, where the SDK's
//! orchestrator looks it up (the interceptor layer is searched first). The orchestrator reads
//! the body into memory as usual and hands it over. A 2xx body is parsed by
//! [`RawPage::parse`]: on success the page goes into the call's [`Slot`] and the SDK gets an
//! empty output (whose `None` iterator means nothing: the caller takes the page's); a body the
//! parse declines, and every error response, go to the SDK's own `GetRecords` deserializer, on
//! the same bytes. Every page is decoded exactly once, by one of the two.
//!
//! If a later SDK stops consulting the config bag, or stops providing its deserializer where
//! this module finds it, the call simply runs as before on the SDK's parse: the slot stays
//! empty, the page counts as a fallback, and the test `raw_path_serves_the_pages` fails.

use std::pin::pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};

use aws_sdk_dynamodbstreams::operation::get_records::{GetRecords, GetRecordsOutput};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, BeforeTransmitInterceptorContextRef, Error, Output,
};
use aws_smithy_runtime_api::client::interceptors::{Intercept, dyn_dispatch_hint};
use aws_smithy_runtime_api::client::orchestrator::{HttpResponse, OrchestratorError};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::client::runtime_plugin::RuntimePlugin;
use aws_smithy_runtime_api::client::ser_de::{DeserializeResponse, SharedResponseDeserializer};
use aws_smithy_types::config_bag::{ConfigBag, FrozenLayer};
use bytes::Bytes;
use http_body::Body;

use crate::raw::RawPage;

/// Where one call's parsed page is left for the caller.
#[derive(Clone, Debug, Default)]
pub(super) struct Slot(Arc<Mutex<Option<RawPage>>>);

impl Slot {
    fn put(&self, page: Option<RawPage>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = page;
    }

    /// The page the call's last attempt parsed, if the fast path parsed it.
    pub(super) fn take(&self) -> Option<RawPage> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// The per-call interceptor.
#[derive(Debug)]
pub(super) struct Capture {
    slot: Slot,
}

impl Capture {
    pub(super) fn new(slot: &Slot) -> Self {
        Self { slot: slot.clone() }
    }
}

#[dyn_dispatch_hint]
impl Intercept for Capture {
    fn name(&self) -> &'static str {
        "dynamodb_stream::Capture"
    }

    fn read_before_execution(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(sdk) = sdk_deserializer() {
            let raw = RawDeserializer {
                sdk: sdk.clone(),
                slot: self.slot.clone(),
            };
            cfg.interceptor_state()
                .store_put(SharedResponseDeserializer::new(raw));
        }
        Ok(())
    }

    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // A page belongs to the attempt that parsed it; a retried attempt starts empty.
        self.slot.put(None);
        Ok(())
    }
}

/// The SDK's own `GetRecords` runtime plugin layer, which holds its response deserializer:
/// the fallback. `None` if this SDK version keeps it elsewhere (then no call is captured).
fn sdk_deserializer() -> Option<&'static FrozenLayer> {
    static LAYER: OnceLock<Option<FrozenLayer>> = OnceLock::new();
    LAYER
        .get_or_init(|| {
            GetRecords::new()
                .config()
                .filter(|layer| layer.load::<SharedResponseDeserializer>().is_some())
        })
        .as_ref()
}

/// Parses 2xx bodies itself, hands everything else to the SDK's deserializer.
#[derive(Debug)]
struct RawDeserializer {
    /// Holds the SDK's deserializer (checked present by [`sdk_deserializer`]).
    sdk: FrozenLayer,
    slot: Slot,
}

impl RawDeserializer {
    fn sdk(&self) -> Option<&SharedResponseDeserializer> {
        self.sdk.load::<SharedResponseDeserializer>()
    }
}

impl DeserializeResponse for RawDeserializer {
    fn deserialize_streaming_with_config(
        &self,
        response: &mut HttpResponse,
        cfg: &ConfigBag,
    ) -> Option<Result<Output, OrchestratorError<Error>>> {
        // `GetRecords` is not a streaming operation: the SDK answers `None`, and the
        // orchestrator reads the body before calling the method below.
        self.sdk()?.deserialize_streaming_with_config(response, cfg)
    }

    fn deserialize_nonstreaming_with_config(
        &self,
        response: &HttpResponse,
        cfg: &ConfigBag,
    ) -> Result<Output, OrchestratorError<Error>> {
        let page = response
            .status()
            .is_success()
            .then(|| body_bytes(response))
            .flatten()
            .and_then(|body| match RawPage::parse(body) {
                Ok(page) => Some(page),
                Err(why) => {
                    tracing::debug!(%why, "GetRecords page left to the SDK's deserializer");
                    None
                }
            });
        if let Some(page) = page {
            self.slot.put(Some(page));
            return Ok(Output::erase(GetRecordsOutput::builder().build()));
        }
        self.slot.put(None);
        match self.sdk() {
            Some(sdk) => sdk.deserialize_nonstreaming_with_config(response, cfg),
            None => Err(OrchestratorError::other(
                "the SDK's GetRecords deserializer is gone",
            )),
        }
    }
}

/// The response body as one `Bytes`, without a copy: the orchestrator has read it into
/// memory, and a clone of such a body yields it whole in one poll.
fn body_bytes(response: &HttpResponse) -> Option<Bytes> {
    let in_memory = response.body().bytes()?;
    let whole = response
        .body()
        .try_clone()
        .and_then(|body| {
            let mut cx = Context::from_waker(Waker::noop());
            match pin!(body).poll_frame(&mut cx) {
                Poll::Ready(Some(Ok(frame))) => frame.into_data().ok(),
                _ => None,
            }
        })
        .filter(|bytes| bytes.len() == in_memory.len());
    Some(whole.unwrap_or_else(|| Bytes::copy_from_slice(in_memory)))
}
