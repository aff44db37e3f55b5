#!/usr/bin/env node
// Drains a DynamoDB stream with the npm `dynamodb-stream` package, for benches/compare.sh.
//
//   node npm_driver.js --endpoint URL --arn ARN --expect N [--timeout SECONDS] [--out FILE]
//
// The package only ever asks for LATEST iterators. To drain from the trim horizon it is used
// the way its README suggests for resuming: fetchStreamShards() once, then setShardState()
// with a TRIM_HORIZON iterator for every shard it listed. From there fetchStreamState() is
// called back to back (its own concurrency, 10 shards at a time) until N records were emitted
// or the timeout passed. Each event is written as one JSON line (kind, keys, new_image,
// old_image, unmarshalled with @aws-sdk/util-dynamodb, as the package's README does) to
// FILE, through a buffered file stream: the same work `tail` does.
//
// Prints one JSON line on stdout: {"events", "seconds", "events_per_sec", "finished",
// "polls", "errors"}.
'use strict'

const fs = require('fs')
const DynamoDBStream = require('dynamodb-stream')
const { DynamoDBStreams } = require('@aws-sdk/client-dynamodb-streams')
const { unmarshall } = require('@aws-sdk/util-dynamodb')

function args() {
  const out = { timeout: 120, out: '/dev/null' }
  const argv = process.argv.slice(2)
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '')
    out[key] = argv[i + 1]
  }
  for (const required of ['endpoint', 'arn', 'expect']) {
    if (!out[required]) {
      console.error(`npm_driver: --${required} is required`)
      process.exit(2)
    }
  }
  out.expect = Number(out.expect)
  out.timeout = Number(out.timeout)
  return out
}

async function main() {
  const opts = args()
  const client = new DynamoDBStreams({
    endpoint: opts.endpoint,
    region: process.env.AWS_REGION || 'us-east-1',
    credentials: {
      accessKeyId: process.env.AWS_ACCESS_KEY_ID || 'test',
      secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY || 'test',
    },
  })
  const stream = new DynamoDBStream(client, opts.arn, unmarshall)
  const out = fs.createWriteStream(opts.out)
  let events = 0
  const emit = (kind, keys, newImage, oldImage) => {
    events++
    out.write(
      JSON.stringify({ kind, keys, new_image: newImage ?? null, old_image: oldImage ?? null }) +
        '\n',
    )
  }
  stream.on('insert record', (newImage, keys) => emit('INSERT', keys, newImage, null))
  stream.on('modify record', (newImage, oldImage, keys) => emit('MODIFY', keys, newImage, oldImage))
  stream.on('remove record', (oldImage, keys) => emit('REMOVE', keys, null, oldImage))

  const start = process.hrtime.bigint()
  const elapsed = () => Number(process.hrtime.bigint() - start) / 1e9

  // Bookmark every listed shard at TRIM_HORIZON through the package's state API.
  await stream.fetchStreamShards()
  const state = stream.getShardState()
  for (const shardId of Object.keys(state)) {
    const { ShardIterator } = await client.getShardIterator({
      StreamArn: opts.arn,
      ShardId: shardId,
      ShardIteratorType: 'TRIM_HORIZON',
    })
    state[shardId].nextShardIterator = ShardIterator
  }
  stream.setShardState(state)

  let polls = 0
  let errors = 0
  let lastError = null
  while (events < opts.expect && elapsed() < opts.timeout) {
    polls++
    try {
      await stream.fetchStreamState()
    } catch (e) {
      // The package surfaces some service errors (e.g. DescribeStream throttling): poll again.
      errors++
      lastError = e.name || String(e)
    }
  }
  const seconds = elapsed()
  await new Promise((resolve) => out.end(resolve))
  const result = {
    events,
    seconds: Number(seconds.toFixed(3)),
    events_per_sec: Math.round(events / seconds),
    finished: events >= opts.expect,
    polls,
    errors,
  }
  if (lastError) result.last_error = lastError
  console.log(JSON.stringify(result))
  // Pending polls or sockets must not keep the process alive after a timeout.
  process.exit(0)
}

main().catch((e) => {
  console.error(`npm_driver: ${e.stack || e}`)
  process.exit(1)
})
