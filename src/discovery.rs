//! Shard discovery: paginated, paced `DescribeStream` calls.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use aws_sdk_dynamodbstreams::types::{ShardFilter, ShardFilterType};
use tokio::time::Instant;

use crate::error::{Error, ErrorKind, Result};
use crate::lineage::ShardInfo;
use crate::retry::{classify, to_error};
use crate::shard::Context;

/// The service's page size cap for `DescribeStream`.
const LIST_LIMIT: i32 = 100;
/// A listing of more pages than this is a server that never ends its pagination.
const MAX_LIST_PAGES: usize = 10_000;

/// Spaces `DescribeStream` calls: the service allows 10 per second per stream, shared by
/// every consumer of the stream. Consumers of the same stream in one process share a pacer.
#[derive(Debug)]
pub(crate) struct Pacer {
    interval: Duration,
    next: Mutex<Option<Instant>>,
}

impl Pacer {
    /// The pacer of `stream_arn` for this process, created with `interval` if none is alive.
    pub(crate) fn shared(stream_arn: &str, interval: Duration) -> Arc<Self> {
        static PACERS: OnceLock<Mutex<HashMap<String, Weak<Pacer>>>> = OnceLock::new();
        let mut pacers = PACERS
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        pacers.retain(|_, p| p.strong_count() > 0);
        if let Some(p) = pacers.get(stream_arn).and_then(Weak::upgrade) {
            return p;
        }
        let pacer = Arc::new(Self {
            interval,
            next: Mutex::new(None),
        });
        pacers.insert(stream_arn.to_owned(), Arc::downgrade(&pacer));
        pacer
    }

    /// Waits for this caller's slot.
    pub(crate) async fn wait(&self) {
        let now = Instant::now();
        let slot = {
            let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
            let slot = next.map_or(now, |n| n.max(now));
            *next = Some(slot + self.interval);
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

/// Every shard of the stream: follows `LastEvaluatedShardId` until it is absent (a present one
/// does not promise more shards).
pub(crate) async fn list_all(ctx: &Context) -> Result<Vec<ShardInfo>> {
    let mut shards = Vec::new();
    let mut start: Option<String> = None;
    for _ in 0..MAX_LIST_PAGES {
        let (page, last) = describe(ctx, start.clone(), None).await?;
        shards.extend(page);
        match last {
            // A server that hands back the page start it was given would loop forever.
            Some(last) if Some(&last) != start.as_ref() => start = Some(last),
            _ => return Ok(shards),
        }
    }
    Err(Error::new(
        ErrorKind::InvalidRequest,
        format!("DescribeStream kept paginating past {MAX_LIST_PAGES} pages"),
    ))
}

/// The listed children of one shard (`ShardFilter` `CHILD_SHARDS`). Entries that are not
/// children (some emulators return the shard itself) are dropped.
pub(crate) async fn list_children(ctx: &Context, parent: &Arc<str>) -> Result<Vec<ShardInfo>> {
    let filter = ShardFilter::builder()
        .r#type(ShardFilterType::ChildShards)
        .shard_id(parent.to_string())
        .build();
    let mut children = Vec::new();
    let mut start: Option<String> = None;
    for _ in 0..MAX_LIST_PAGES {
        let (page, last) = describe(ctx, start.clone(), Some(filter.clone())).await?;
        children.extend(
            page.into_iter()
                .filter(|s| s.parent.as_ref() == Some(parent)),
        );
        match last {
            Some(last) if Some(&last) != start.as_ref() => start = Some(last),
            _ => break,
        }
    }
    Ok(children)
}

async fn describe(
    ctx: &Context,
    start: Option<String>,
    filter: Option<ShardFilter>,
) -> Result<(Vec<ShardInfo>, Option<String>)> {
    let mut attempt = 0;
    loop {
        ctx.pacer.wait().await;
        let result = ctx
            .client
            .describe_stream()
            .stream_arn(&*ctx.stream_arn)
            .limit(LIST_LIMIT)
            .set_exclusive_start_shard_id(start.clone())
            .set_shard_filter(filter.clone())
            .send()
            .await;
        match result {
            Ok(out) => {
                let Some(desc) = out.stream_description else {
                    return Ok((Vec::new(), None));
                };
                let last = desc.last_evaluated_shard_id;
                let shards = desc
                    .shards
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|s| {
                        let id: Arc<str> = Arc::from(s.shard_id?);
                        let closed = s
                            .sequence_number_range
                            .is_some_and(|r| r.ending_sequence_number.is_some());
                        Some(ShardInfo {
                            id,
                            parent: s.parent_shard_id.map(Arc::from),
                            closed,
                        })
                    })
                    .collect();
                return Ok((shards, last));
            }
            Err(err) => {
                let fault = classify(&err);
                if fault.is_transient() && attempt < ctx.retry.max_retries {
                    let delay = ctx.retry.delay(attempt, fastrand::f64());
                    tracing::warn!(stream = %ctx.stream_arn, ?fault, attempt, ?delay, "DescribeStream failed; retrying");
                    attempt += 1;
                    tokio::time::sleep(delay).await;
                    continue;
                }
                return Err(to_error(fault, "DescribeStream", err));
            }
        }
    }
}
