//! Raw SDK calls against the simulator, for the tests of the simulator itself.

use aws_sdk_dynamodbstreams::error::SdkError;
use aws_sdk_dynamodbstreams::operation::get_records::GetRecordsOutput;
use aws_sdk_dynamodbstreams::operation::get_shard_iterator::GetShardIteratorError;
use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use dynamodb_stream::sim::Simulator;

/// The first shard the simulator made.
pub fn root(sim: &Simulator) -> String {
    sim.shards()[0].shard_id.clone()
}

/// A shard iterator, or the service's error.
pub async fn iterator(
    sim: &Simulator,
    shard: &str,
    kind: ShardIteratorType,
    seq: Option<&str>,
) -> Result<String, SdkError<GetShardIteratorError>> {
    let out = sim
        .client()
        .get_shard_iterator()
        .stream_arn(sim.stream_arn())
        .shard_id(shard)
        .shard_iterator_type(kind)
        .set_sequence_number(seq.map(str::to_owned))
        .send()
        .await?;
    Ok(out.shard_iterator.unwrap())
}

/// An iterator at the shard's trim horizon.
pub async fn trim_horizon(sim: &Simulator, shard: &str) -> String {
    iterator(sim, shard, ShardIteratorType::TrimHorizon, None)
        .await
        .unwrap()
}

/// One `GetRecords` page.
pub async fn read(sim: &Simulator, it: &str) -> GetRecordsOutput {
    sim.client()
        .get_records()
        .shard_iterator(it)
        .send()
        .await
        .unwrap()
}

/// The sequence numbers of a page's records.
pub fn seqs(page: &GetRecordsOutput) -> Vec<String> {
    page.records()
        .iter()
        .map(|r| r.dynamodb().unwrap().sequence_number().unwrap().to_owned())
        .collect()
}
