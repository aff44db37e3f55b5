#!/usr/bin/env bash
# Side by side over a real socket: the crate's `tail` example and the npm `dynamodb-stream`
# package drain the same stream, served by `examples/sim_server.rs` on a loopback port.
#
#   benches/compare.sh            # needs cargo, node (>= 18) and npm
#
# Two variants: SHARDS closed shards x RECORDS records of about RECORD_BYTES bytes ("plain"),
# and the same with every other shard split into two children, its records spread over the
# parent and the children ("split"). Each consumer drains from TRIM_HORIZON to the last record:
# - tail (release build): --from trim-horizon --until-caught-up, every event printed as a JSON
#   line to a file (stdout is not a terminal: block-buffered);
# - npm: benches/npm_driver.js, fetchStreamState() back to back from TRIM_HORIZON bookmarks,
#   every event written as a JSON line to a file, until every record was seen or NPM_TIMEOUT.
# benches/lineage_check.js then counts each dump's events, duplicates and events delivered out
# of lineage order (a child's record before its parent's, for the same key).
#
# Environment: SHARDS (64), RECORDS (2000 per shard), RECORD_BYTES (200), RUNS (3: the best run
# of each consumer is reported), NPM_TIMEOUT (60 s), VARIANTS ("plain split"), KEEP (set: keep
# the temporary folder). The npm packages are installed by name into a temporary folder.
set -euo pipefail

SHARDS=${SHARDS:-64}
RECORDS=${RECORDS:-2000}
RECORD_BYTES=${RECORD_BYTES:-200}
RUNS=${RUNS:-3}
NPM_TIMEOUT=${NPM_TIMEOUT:-60}
VARIANTS=${VARIANTS:-plain split}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
# The JS SDK warns about Node versions on stderr; nothing else should.
export AWS_SDK_JS_SUPPRESS_MAINTENANCE_MODE_MESSAGE=1

work=$(mktemp -d -t ddbs-compare.XXXXXX)
server=""
cleanup() {
    if [[ -n "$server" ]]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
    if [[ -z "${KEEP:-}" ]]; then rm -rf "$work"; else echo "kept $work" >&2; fi
}
trap cleanup EXIT

say() { echo "compare: $*" >&2; }
# field JSON NAME: one field of a JSON object (node is needed anyway; no jq).
field() { node -e 'console.log(JSON.parse(process.argv[1])[process.argv[2]])' "$1" "$2"; }

say "building tail and sim_server (release)"
(cd "$root" && cargo build --release --quiet --example tail --example sim_server)
bin="$root/target/release/examples"

say "installing dynamodb-stream and the AWS SDK v3 it is written for, with npm, into $work"
cp "$here/npm_driver.js" "$here/lineage_check.js" "$work/"
(cd "$work" && npm init -y >/dev/null 2>&1 &&
    npm install --no-audit --no-fund --loglevel=error \
        dynamodb-stream @aws-sdk/client-dynamodb-streams @aws-sdk/util-dynamodb >/dev/null)
npm_version=$(node -p "require('$work/node_modules/dynamodb-stream/package.json').version")
sdk_version=$(node -p "require('$work/node_modules/@aws-sdk/client-dynamodb-streams/package.json').version")

start_server() {
    local extra=$1
    # shellcheck disable=SC2086
    "$bin/sim_server" --port 0 --shards "$SHARDS" --records "$RECORDS" \
        --record-bytes "$RECORD_BYTES" --closed $extra >"$work/server.out" 2>"$work/server.err" &
    server=$!
    for _ in $(seq 1 600); do
        [[ $(wc -l <"$work/server.out") -ge 3 ]] && break
        kill -0 "$server" 2>/dev/null || { cat "$work/server.err" >&2; exit 1; }
        sleep 0.1
    done
    url=$(sed -n 1p "$work/server.out")
    arn=$(sed -n 2p "$work/server.out")
    total=$(sed -n 3p "$work/server.out" | awk '{print $2}')
}

stop_server() {
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    server=""
}

now() { date +%s.%N; }

# Fields of one result line: consumer events seconds events/s finished out_of_order duplicates
results=()

run_tail() {
    local variant=$1 best_rate=0 best=""
    for run in $(seq 1 "$RUNS"); do
        local t0 t1 status=0
        t0=$(now)
        "$bin/tail" --endpoint-url "$url" --stream-arn "$arn" --from trim-horizon \
            --until-caught-up >"$work/tail.out" 2>"$work/tail.err" || status=$?
        t1=$(now)
        if [[ $status -ne 0 ]]; then
            say "tail failed ($status):"; cat "$work/tail.err" >&2; exit 1
        fi
        local check events secs rate
        check=$(node "$work/lineage_check.js" "$work/tail.out")
        events=$(field "$check" events)
        secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
        rate=$(awk -v n="$events" -v s="$secs" 'BEGIN { printf "%d", n / s }')
        say "$variant tail run $run: $events events in $secs s = $rate events/s $check"
        if ((rate > best_rate)); then
            best_rate=$rate
            local finished=no
            ((events >= total)) && finished=yes
            best="tail $events $secs $rate $finished $(field "$check" out_of_order) $(field "$check" duplicates)"
        fi
    done
    results+=("$variant $best")
}

run_npm() {
    local variant=$1 best_rate=-1 best=""
    for run in $(seq 1 "$RUNS"); do
        local out check rate
        out=$(node "$work/npm_driver.js" --endpoint "$url" --arn "$arn" --expect "$total" \
            --timeout "$NPM_TIMEOUT" --out "$work/npm.out" 2>"$work/npm.err") || {
            say "npm driver failed:"; cat "$work/npm.err" >&2; exit 1
        }
        check=$(node "$work/lineage_check.js" "$work/npm.out")
        rate=$(field "$out" events_per_sec)
        say "$variant npm run $run: $out $check"
        if ((rate > best_rate)); then
            best_rate=$rate
            local finished=no
            [[ $(field "$out" finished) == true ]] && finished=yes
            best="npm $(field "$out" events) $(field "$out" seconds) $rate $finished $(field "$check" out_of_order) $(field "$check" duplicates)"
        fi
        # A run that times out will time out again: once is enough.
        [[ $(field "$out" finished) == true ]] || break
    done
    results+=("$variant $best")
}

for variant in $VARIANTS; do
    case $variant in
        plain) start_server "" ;;
        split) start_server "--split" ;;
        *) say "unknown variant $variant"; exit 2 ;;
    esac
    listed=$(grep -o '([0-9]* listed)' "$work/server.err" | tr -dc 0-9)
    say "$variant: $SHARDS root shards ($listed listed), $total records at $url"
    run_tail "$variant"
    run_npm "$variant"
    stop_server
done

echo
echo "Machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -1); node $(node --version);" \
    "dynamodb-stream (npm) $npm_version, @aws-sdk/client-dynamodb-streams $sdk_version"
echo "Workload: $SHARDS closed shards x $RECORDS records of ~$RECORD_BYTES B, drained from TRIM_HORIZON; best of $RUNS runs"
echo
printf '| %-7s | %-8s | %9s | %8s | %10s | %8s | %12s | %10s | %7s |\n' \
    variant consumer events seconds "events/s" finished out-of-order duplicates "tail/npm"
printf '|%s|\n' "---------|----------|-----------|----------|------------|----------|--------------|------------|---------"
for variant in $VARIANTS; do
    tail_rate=0
    for line in "${results[@]}"; do
        read -r v consumer events secs rate finished ooo dups <<<"$line"
        [[ $v == "$variant" && $consumer == tail ]] && tail_rate=$rate
    done
    for line in "${results[@]}"; do
        read -r v consumer events secs rate finished ooo dups <<<"$line"
        [[ $v == "$variant" ]] || continue
        ratio=""
        if [[ $consumer == npm ]]; then
            ratio=$(awk -v a="$tail_rate" -v b="$rate" 'BEGIN { if (b > 0) printf "%.1fx", a / b; else print "-" }')
        fi
        printf '| %-7s | %-8s | %9s | %8s | %10s | %8s | %12s | %10s | %7s |\n' \
            "$v" "$consumer" "$events" "$secs" "$rate" "$finished" "$ooo" "$dups" "$ratio"
    done
done
