//! The service's behaviour: each operation served against the model, under the lock.

use super::iter::{self, Token};
use super::model::Model;
use super::seq::Seq;
use super::shard::PositionError;
use super::types::{Fault, Operation};
use super::wire::{
    ApiError, DescribeStreamInput, ErrorCode, GetRecordsInput, GetShardIteratorInput, Reply,
    Request, ShardView,
};
use std::ops::Bound;
use std::time::Duration;
use tokio::time::Instant;

/// DescribeStream's default and maximum `Limit`.
const MAX_SHARDS_PER_PAGE: i64 = 100;
/// GetRecords' default and maximum `Limit`.
const MAX_RECORDS_PER_PAGE: i64 = 1000;
/// A GetRecords page holds at most 1 MB of records.
const MAX_PAGE_BYTES: usize = 1 << 20;
/// DescribeStream calls allowed per stream per second.
const DESCRIBE_PER_SECOND: usize = 10;

/// Identity of the stream being served.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ctx<'a> {
    pub(crate) sim: u64,
    pub(crate) arn: &'a str,
    pub(crate) table: &'a str,
}

fn not_found(what: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        ErrorCode::ResourceNotFound,
        format!("Requested resource not found: {what}"),
    )
}

fn validation(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::Validation, message)
}

impl Model {
    /// Takes the next scripted fault for a call of `op`, if any.
    pub(crate) fn take_fault(&mut self, op: Operation) -> Option<Fault> {
        let i = self
            .faults
            .iter()
            .position(|f| f.left > 0 && f.op.matches(op))?;
        let f = &mut self.faults[i];
        f.left -= 1;
        let fault = f.fault;
        if f.left == 0 {
            self.faults.remove(i);
        }
        Some(fault)
    }

    /// Serves one parsed request.
    pub(crate) fn serve(
        &mut self,
        req: Request,
        ctx: Ctx<'_>,
        now: Instant,
    ) -> Result<Reply, ApiError> {
        if let Request::ListStreams(input) = &req {
            // ListStreams is account-wide: a deleted stream is simply not listed.
            let listed =
                !self.deleted && input.table_name.as_deref().is_none_or(|t| t == ctx.table);
            return Ok(Reply::Streams { listed });
        }
        if self.deleted {
            return Err(not_found(format!("Stream: {} not found", ctx.arn)));
        }
        match req {
            Request::DescribeStream(input) => self.describe_stream(input, ctx, now),
            Request::GetShardIterator(input) => self.get_shard_iterator(input, ctx, now),
            Request::GetRecords(input) => self.get_records(input, ctx, now),
            Request::ListStreams(_) => Ok(Reply::Streams { listed: false }),
        }
    }

    fn check_arn(arn: Option<&str>, ctx: Ctx<'_>) -> Result<(), ApiError> {
        match arn {
            None => Err(validation("StreamArn is required")),
            Some(a) if a == ctx.arn => Ok(()),
            Some(a) => Err(not_found(format!("Stream: {a} not found"))),
        }
    }

    fn describe_stream(
        &mut self,
        input: DescribeStreamInput,
        ctx: Ctx<'_>,
        now: Instant,
    ) -> Result<Reply, ApiError> {
        Self::check_arn(input.stream_arn.as_deref(), ctx)?;
        let limit = input.limit.unwrap_or(MAX_SHARDS_PER_PAGE);
        if !(1..=MAX_SHARDS_PER_PAGE).contains(&limit) {
            return Err(validation(format!(
                "1 validation error detected: Value '{limit}' at 'limit' failed to satisfy constraint: \
                 Member must have value less than or equal to 100"
            )));
        }
        if self.settings.describe_rate_limit {
            let window = Duration::from_secs(1);
            while self
                .describe_calls
                .front()
                .is_some_and(|&t| now.saturating_duration_since(t) >= window)
            {
                self.describe_calls.pop_front();
            }
            if self.describe_calls.len() >= DESCRIBE_PER_SECOND {
                return Err(ApiError::new(
                    ErrorCode::LimitExceeded,
                    "Rate exceeded for DescribeStream",
                ));
            }
            self.describe_calls.push_back(now);
        }
        let start = input
            .exclusive_start_shard_id
            .as_deref()
            .map(|id| self.list_key(id));
        let candidates: Vec<usize> = match input.shard_filter {
            None => {
                let lower = start.map_or(Bound::Unbounded, Bound::Excluded);
                self.listing
                    .range((lower, Bound::Unbounded))
                    .map(|(_, &i)| i)
                    .filter(|&i| self.shards[i].listed(now))
                    .take(limit as usize + 1)
                    .collect()
            }
            Some(filter) => {
                if filter.r#type.as_deref() != Some("CHILD_SHARDS") {
                    return Err(validation("ShardFilter.Type must be CHILD_SHARDS"));
                }
                let parent = filter
                    .shard_id
                    .ok_or_else(|| validation("ShardFilter.ShardId is required"))?;
                let mut children: Vec<_> = self
                    .index(&parent)
                    .map(|p| self.shards[p].children.clone())
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|&i| self.shards[i].listed(now))
                    .map(|i| (self.list_key(&self.shards[i].id), i))
                    .filter(|(k, _)| start.as_ref().is_none_or(|s| k > s))
                    .collect();
                children.sort();
                children
                    .into_iter()
                    .map(|(_, i)| i)
                    .take(limit as usize + 1)
                    .collect()
            }
        };
        let more = candidates.len() > limit as usize;
        let next_seq = self.seqs.peek();
        let shards: Vec<ShardView> = candidates
            .into_iter()
            .take(limit as usize)
            .map(|i| {
                let s = &self.shards[i];
                ShardView {
                    id: s.id.clone(),
                    parent: s.parent.clone(),
                    start: s.starting_seq(next_seq),
                    end: s.end_seq(),
                }
            })
            .collect();
        let trailing = self.settings.trailing_empty_listing_page && !shards.is_empty();
        let last_evaluated = (more || trailing)
            .then(|| shards.last().map(|s| s.id.clone()))
            .flatten();
        Ok(Reply::Describe {
            shards,
            last_evaluated,
        })
    }

    fn now_ns(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    fn iterator(&self, ctx: Ctx<'_>, shard: usize, pos: u64, now: Instant) -> String {
        let token = Token {
            sim: ctx.sim,
            shard: u32::try_from(shard).unwrap_or(u32::MAX),
            pos,
            issued_ns: self.now_ns(now),
        };
        iter::encode(ctx.arn, &token)
    }

    fn get_shard_iterator(
        &mut self,
        input: GetShardIteratorInput,
        ctx: Ctx<'_>,
        now: Instant,
    ) -> Result<Reply, ApiError> {
        Self::check_arn(input.stream_arn.as_deref(), ctx)?;
        let id = input
            .shard_id
            .ok_or_else(|| validation("ShardId is required"))?;
        let idx = self
            .index(&id)
            .filter(|&i| !self.shards[i].aged_out)
            .ok_or_else(|| not_found(format!("Shard: {id} in Stream: {} not found", ctx.arn)))?;
        let shard = &self.shards[idx];
        let kind = input
            .shard_iterator_type
            .ok_or_else(|| validation("ShardIteratorType is required"))?;
        let pos = match kind.as_str() {
            "TRIM_HORIZON" => shard.base(),
            "LATEST" => shard.end(),
            "AT_SEQUENCE_NUMBER" | "AFTER_SEQUENCE_NUMBER" => {
                let raw = input
                    .sequence_number
                    .ok_or_else(|| validation(format!("SequenceNumber is required for {kind}")))?;
                let seq = Seq::parse(&raw)
                    .ok_or_else(|| validation(format!("Invalid SequenceNumber: {raw}")))?;
                match shard.position_at(seq, kind == "AFTER_SEQUENCE_NUMBER") {
                    Ok(pos) => pos,
                    Err(PositionError::NotInShard) => {
                        return Err(validation(format!(
                            "Invalid SequenceNumber {raw} for shard {id}: not in the shard's range"
                        )));
                    }
                    Err(PositionError::Trimmed) => {
                        return Err(ApiError::new(
                            ErrorCode::TrimmedDataAccess,
                            format!(
                                "Sequence number {raw} is beyond the trim horizon of shard {id}"
                            ),
                        ));
                    }
                }
            }
            "AT_TIMESTAMP" => {
                return Err(validation("AT_TIMESTAMP is not supported by the simulator"));
            }
            other => {
                return Err(validation(format!(
                    "1 validation error detected: Value '{other}' at 'shardIteratorType' failed to satisfy \
                     constraint: Member must satisfy enum value set: [AFTER_SEQUENCE_NUMBER, AT_SEQUENCE_NUMBER, \
                     LATEST, TRIM_HORIZON]"
                )));
            }
        };
        Ok(Reply::Iterator(self.iterator(ctx, idx, pos, now)))
    }

    fn get_records(
        &mut self,
        input: GetRecordsInput,
        ctx: Ctx<'_>,
        now: Instant,
    ) -> Result<Reply, ApiError> {
        let raw = input
            .shard_iterator
            .ok_or_else(|| validation("ShardIterator is required"))?;
        let invalid = || validation("Invalid ShardIterator");
        let token = iter::decode(&raw)
            .filter(|t| t.sim == ctx.sim)
            .ok_or_else(invalid)?;
        let idx = token.shard as usize;
        if idx >= self.shards.len() {
            return Err(invalid());
        }
        let limit = input.limit.unwrap_or(MAX_RECORDS_PER_PAGE);
        if limit < 1 {
            return Err(validation("Limit must be at least 1"));
        }
        if limit > MAX_RECORDS_PER_PAGE {
            return Err(ApiError::new(
                ErrorCode::LimitExceeded,
                format!("Limit {limit} exceeds the maximum of 1000 records per GetRecords call"),
            ));
        }
        let age = Duration::from_nanos(self.now_ns(now).saturating_sub(token.issued_ns));
        if age >= self.settings.iterator_ttl {
            return Err(ApiError::new(
                ErrorCode::ExpiredIterator,
                "Iterator expired. The iterator was created more than 15 minutes ago",
            ));
        }
        let max_records = (limit as usize).min(self.settings.max_page.max(1));
        let shard = &mut self.shards[idx];
        let at_final_end = !shard.open && token.pos == shard.end();
        if shard.empty_pages > 0 && !at_final_end && token.pos >= shard.base() {
            shard.empty_pages -= 1;
            return Ok(Reply::Records {
                records: Vec::new(),
                next: Some(self.iterator(ctx, idx, token.pos, now)),
            });
        }
        let page = match shard.page(token.pos, max_records, MAX_PAGE_BYTES) {
            Ok(p) => p,
            Err(PositionError::Trimmed) => {
                return Err(ApiError::new(
                    ErrorCode::TrimmedDataAccess,
                    "The iterator points before the trim horizon of the shard",
                ));
            }
            Err(PositionError::NotInShard) => return Err(invalid()),
        };
        let next = (!page.finished).then(|| self.iterator(ctx, idx, page.next, now));
        Ok(Reply::Records {
            records: page.records,
            next,
        })
    }
}
