#!/usr/bin/env node
// Checks a JSON-lines event dump from benches/compare.sh (tail's or npm_driver.js's output):
// every line is an event whose new_image has `pk` and `v`, and sim_server writes `v` increasing
// along each key's shard lineage. Prints one JSON line: {"events", "keys", "duplicates",
// "out_of_order"}, where out_of_order counts events whose `v` is lower than an earlier event's
// of the same key (a child's record delivered before its parent's).
'use strict'

const fs = require('fs')
const readline = require('readline')

async function main() {
  const file = process.argv[2]
  if (!file) {
    console.error('usage: lineage_check.js FILE')
    process.exit(2)
  }
  const last = new Map()
  const seen = new Set()
  let events = 0
  let duplicates = 0
  let outOfOrder = 0
  const lines = readline.createInterface({ input: fs.createReadStream(file), crlfDelay: Infinity })
  for await (const line of lines) {
    if (!line) continue
    const event = JSON.parse(line)
    const image = event.new_image || {}
    const pk = image.pk
    const v = Number(image.v)
    events++
    const id = `${pk}#${v}`
    if (seen.has(id)) duplicates++
    seen.add(id)
    const before = last.get(pk)
    if (before !== undefined && v < before) outOfOrder++
    if (before === undefined || v > before) last.set(pk, v)
  }
  console.log(JSON.stringify({ events, keys: last.size, duplicates, out_of_order: outOfOrder }))
}

main().catch((e) => {
  console.error(`lineage_check: ${e.stack || e}`)
  process.exit(1)
})
