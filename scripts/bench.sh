#!/usr/bin/env bash
# The benchmarks of `make bench` and `make bench-quick`: every scenario with release binaries, each figure next to a
# baseline measured in the same run, one table on stdout, the raw figures in bench/results/<date>-<mode>.json.
#
#   scripts/bench.sh [--quick] [--bin DIR]        (DIR: the release binaries, default .build/release)
#
# BENCH_ONLY=gateway,e2e,memory,kafka,history,webhooks,campaigns picks scenarios; BENCH_E2E_RATES=100,200 and BENCH_E2E_DURATION=20
# override the end-to-end rates and seconds per rate; BENCH_IN_FLIGHT and BENCH_DB_CONNECTIONS the workers'
# MAX_ORIGINATES_IN_FLIGHT (128) and DATABASE_MAX_CONNECTIONS (20); BENCH_BROKERS the embedded cluster's brokers
# for the stack scenarios (1); BENCH_KEEP=1 keeps the run directory (logs).
# A scenario that cannot run is listed as such in the table. The script exits 1 when a figure misses its goal or a
# scenario gave no figures (the table marks each goal met or missed), 2 when the harness itself is broken (missing
# binaries, no PostgreSQL).
set -uo pipefail

mode=full
bin=.build/release
while [[ $# -gt 0 ]]; do
    case $1 in
        --quick) mode=quick ;;
        --bin) bin=$2; shift ;;
        *) echo "usage: $0 [--quick] [--bin DIR]" >&2; exit 2 ;;
    esac
    shift
done

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bin=$(cd "$bin" && pwd)
for executable in api-gateway dialer-worker webhook-dispatcher campaign-scheduler devstack loadgen kafka-bench; do
    [[ -x $bin/$executable ]] || { echo "bench: $bin/$executable is missing (make bench builds it)" >&2; exit 2; }
done
command -v wrk >/dev/null || { echo "bench: wrk is missing (apt-get install wrk)" >&2; exit 2; }

if [[ $mode == quick ]]; then
    gateway_args=(--duration 3 --half-duration 4)
    e2e_args=(--rates 100,250 --duration 8 --drain-timeout 15)
    memory_args=(--levels 0,1000 --rate 250 --settle 2)
    kafka_args=(--messages 50000 --rounds 1)
    history_args=(--calls 2500 --rounds 1)
    webhook_args=(--rate 1000 --duration 10)
    campaign_args=(--contacts 100000 --rate 500 --duration 8)
else
    gateway_args=(--duration 10 --half-duration 15)
    e2e_args=(--rates 100,200,300,500,1000 --duration 60 --drain-timeout 60)
    memory_args=(--levels 0,1000,10000 --rate 250 --settle 5)
    kafka_args=(--messages 200000 --rounds 3)
    history_args=(--calls 10000 --rounds 3)
    webhook_args=(--rate 1000 --duration 60)
    campaign_args=(--contacts 1000000 --rate 500 --duration 15)
fi
[[ -n ${BENCH_E2E_RATES:-} ]] && e2e_args+=(--rates "$BENCH_E2E_RATES")
[[ -n ${BENCH_E2E_DURATION:-} ]] && e2e_args+=(--duration "$BENCH_E2E_DURATION")
only=${BENCH_ONLY:-gateway,e2e,memory,kafka,history,webhooks,campaigns}
wanted() { [[ ",$only," == *",$1,"* ]]; }

stamp=$(date -u +%Y%m%dT%H%M%SZ)
revision=$(git rev-parse --short=12 HEAD)
git diff --quiet HEAD -- Package.swift Packages Services 2>/dev/null || revision+="-dirty"
run=$(mktemp -d /tmp/bench-run.XXXXXX)
chmod 755 "$run"
started=()

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Stops one process this script started (SIGTERM, then SIGKILL after `timeout` seconds) and waits for it. A devstack
# stops its own children; any it left behind (it was killed) are stopped by their process ids.
stop_pid() {
    local pid=$1 timeout=${2:-30} waited=0 children
    children=$(pgrep -P "$pid" | tr '\n' ' ')
    kill -TERM "$pid" 2>/dev/null || return 0
    while kill -0 "$pid" 2>/dev/null && ((waited < timeout * 10)); do sleep 0.1; ((waited++)); done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    for child in $children; do kill -KILL "$child" 2>/dev/null; done
    return 0
}

# Waits until a file contains a pattern (or the process died, or the timeout passed).
wait_for_line() {
    local file=$1 pattern=$2 pid=$3 timeout=$4 waited=0
    while ! grep -q "$pattern" "$file" 2>/dev/null; do
        kill -0 "$pid" 2>/dev/null || return 1
        ((waited++ > timeout * 10)) && return 1
        sleep 0.1
    done
}

# MARK: PostgreSQL (durable settings: fsync and synchronous_commit on, as in production)

pg_bindir=$(pg_config --bindir 2>/dev/null || ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
pg_port=$(free_port)
pg_dir=$run/postgres
run_as=()
mkdir -p "$pg_dir"
if [[ $(id -u) -eq 0 ]]; then
    chown postgres "$pg_dir"
    run_as=(runuser -u postgres --)
fi

# Waits up to 60 s for a process's HTTP answer to have the expected status; fails at once if the process exits.
wait_for_http() { # pid, status, URL, curl options...
    local pid=$1 status=$2 url=$3 waited=0
    shift 3
    until [[ $(curl -s -o /dev/null -w '%{http_code}' "$@" "$url") == "$status" ]]; do
        kill -0 "$pid" 2>/dev/null && ((waited++ < 300)) || return 1
        sleep 0.2
    done
}

cleanup() {
    for pid in "${started[@]}"; do stop_pid "$pid" 60; done
    "${run_as[@]}" "$pg_bindir/pg_ctl" -D "$pg_dir/data" -m fast stop >/dev/null 2>&1 || true
    if [[ ${BENCH_KEEP:-0} == 1 ]]; then echo "bench: logs kept in $run" >&2; else rm -rf "$run"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"${run_as[@]}" "$pg_bindir/initdb" -D "$pg_dir/data" -U postgres --auth=trust -E UTF8 >/dev/null ||
    { echo "bench: initdb failed" >&2; exit 2; }
"${run_as[@]}" "$pg_bindir/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/server.log" -w -t 60 \
    -o "-p $pg_port -k $pg_dir -c listen_addresses=127.0.0.1 -c max_connections=300 -c shared_buffers=256MB" \
    start >/dev/null || { echo "bench: PostgreSQL did not start" >&2; exit 2; }
pg_url="postgres://postgres@127.0.0.1:$pg_port"
for database in bench_gateway bench_e2e bench_memory bench_history bench_webhooks bench_campaigns; do
    psql -q -h 127.0.0.1 -p "$pg_port" -U postgres -c "CREATE DATABASE $database" >/dev/null
done
echo "bench: $mode run, revision $revision, PostgreSQL on 127.0.0.1:$pg_port, logs in $run" >&2

secret=$(head -c 48 /dev/urandom | od -An -tx1 | tr -d ' \n')
password="bench-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export SECRET_KEY=$secret
export ACCESS_TOKEN_EXPIRE_MINUTES=240
export ALLOWED_CONTEXTS=agents,outbound DEFAULT_CONTEXT=agents DEFAULT_EXTENSION=s DEFAULT_PRIORITY=1
export LOG_FORMAT=json

# Runs a measuring command in the background, its output appended to a log and echoed on stderr, and waits for it:
# `wait` returns when a signal arrives, so Ctrl-C stops the run at once (the command is stopped with the others).
run_logged() { # log, command...
    local log=$1
    shift
    "$@" > >(tee -a "$log" >&2) 2>&1 &
    local pid=$!
    started+=("$pid")
    wait "$pid"
}

token_for() { # base URL, user, password
    curl -s -X POST "$1/api/v1/auth/token" --data-urlencode "username=$2" --data-urlencode "password=$3" |
        jq -r .access_token
}

# MARK: 1. Gateway: POST /api/v1/calls against a bare Hummingbird route (its own process) and the gateway's baseline

scenario_gateway() {
    local log=$run/gateway.log
    "$bin/devstack" kafka --partitions 12 --log-level warning >"$run/kafka.out" 2>>"$log" &
    local kafka_pid=$!
    started+=("$kafka_pid")
    wait_for_line "$run/kafka.out" ':' "$kafka_pid" 30 || { echo "embedded Kafka did not start" >>"$log"; return 1; }
    local bootstrap
    bootstrap=$(head -1 "$run/kafka.out")
    local port
    port=$(free_port)
    (
        export DATABASE_URL=$pg_url/bench_gateway KAFKA_BOOTSTRAP_SERVERS=$bootstrap
        "$bin/api-gateway" migrate >>"$log" 2>&1 &&
            printf '%s' "$password" | "$bin/api-gateway" create-user --username bench --role operator >>"$log" 2>&1
    ) || { echo "gateway set-up failed" >>"$log"; return 1; }
    DATABASE_URL=$pg_url/bench_gateway KAFKA_BOOTSTRAP_SERVERS=$bootstrap BENCH_BASELINE_ROUTE=true \
        HOST=127.0.0.1 PORT=$port "$bin/api-gateway" serve >/dev/null 2>>"$log" &
    local gateway_pid=$!
    started+=("$gateway_pid")
    wait_for_http "$gateway_pid" 200 "http://127.0.0.1:$port/ready" || { echo "gateway not ready" >>"$log"; return 1; }
    local bare_port
    bare_port=$(free_port)
    "$bin/loadgen" bare-route --port "$bare_port" >/dev/null 2>>"$log" &
    local bare_pid=$!
    started+=("$bare_pid")
    wait_for_http "$bare_pid" 202 "http://127.0.0.1:$bare_port/calls" -X POST -d '{}' ||
        { echo "bare route not serving" >>"$log"; return 1; }
    local token
    token=$(token_for "http://127.0.0.1:$port" bench "$password")
    run_logged "$log" "$bin/loadgen" gateway --url "http://127.0.0.1:$port" --token "$token" \
        --gateway-pid "$gateway_pid" --broker-pid "$kafka_pid" --wrk-script "$root/bench/wrk/post-calls.lua" \
        --bare-url "http://127.0.0.1:$bare_port" --bare-pid "$bare_pid" "${gateway_args[@]}" --out "$run/gateway.json"
    stop_pid "$bare_pid"
    stop_pid "$gateway_pid"
    stop_pid "$kafka_pid"
}

# MARK: devstack up (gateway + embedded Kafka + ARI simulator + workers) on the bench PostgreSQL

# Starts the stack; sets stack_pid, stack_url, stack_ari, stack_workers (ops URLs), stack_token.
start_stack() { # name, workers, database, extra environment...
    local name=$1 workers=$2 database=$3
    shift 3
    local port
    port=$(free_port)
    # librdkafka's mock broker does not answer a waiting fetch when data arrives (it always waits fetch.wait.max.ms,
    # see rd_kafka_mock_handle_Fetch), unlike Kafka: a short wait stands in for Kafka's early answer. Each consumer
    # then runs a 100 Hz fetch loop per broker, CPU a real cluster (which parks the fetch) does not spend: one broker
    # (BENCH_BROKERS, default 1) keeps that artefact small.
    env KAFKA_PROP_FETCH_WAIT_MAX_MS="${BENCH_FETCH_WAIT_MS:-10}" "$@" DATABASE_URL="$pg_url/$database" \
        ADMIN_PASSWORD="$password" MAX_CONCURRENT_CALLS=20000 MAX_CALLS_PER_SECOND=5000 \
        MAX_ORIGINATES_IN_FLIGHT="${BENCH_IN_FLIGHT:-128}" DATABASE_MAX_CONNECTIONS="${BENCH_DB_CONNECTIONS:-20}" \
        "$bin/devstack" up --state-dir "$run/stack-$name" --gateway-port "$port" --workers "$workers" \
        --brokers "${BENCH_BROKERS:-1}" --bin-dir "$bin" >"$run/stack-$name.out" 2>&1 &
    stack_pid=$!
    started+=("$stack_pid")
    wait_for_line "$run/stack-$name.out" 'Try it' "$stack_pid" 180 || return 1
    stack_url="http://127.0.0.1:$port"
    stack_ari=$(awk '$1 == "ARI" {print $2; exit}' "$run/stack-$name.out")
    stack_workers=$(grep -o 'workers: .*' "$run/stack-$name.out" | grep -o 'http://127.0.0.1:[0-9]*')
    stack_token=$(token_for "$stack_url" admin "$password")
}

child_pids() { # parent, command name
    pgrep -P "$1" -x "$2" | tr '\n' ' '
}

# MARK: 2. End to end

scenario_e2e() {
    local log=$run/e2e.log
    start_stack e2e 2 bench_e2e DRAIN_TIMEOUT_SECONDS=5 || { cat "$run/stack-e2e.out" >>"$log"; return 1; }
    local processes=(--process "devstack=$stack_pid") index=1
    for pid in $(child_pids "$stack_pid" api-gateway); do processes+=(--process "gateway=$pid"); done
    for pid in $(child_pids "$stack_pid" dialer-worker); do processes+=(--process "worker-$index=$pid"); ((index++)); done
    processes+=(--process-tree "postgres=$(head -1 "$pg_dir/data/postmaster.pid")")
    run_logged "$log" "$bin/loadgen" e2e --url "$stack_url" --token "$stack_token" --ari-url "$stack_ari" \
        --database-url "$pg_url/bench_e2e" "${processes[@]}" "${e2e_args[@]}" --out "$run/e2e.json"
    stop_pid "$stack_pid" 60
}

# MARK: 3. Memory: one worker holding live answered calls

scenario_memory() {
    local log=$run/memory.log
    start_stack memory 1 bench_memory DRAIN_TIMEOUT_SECONDS=1 || { cat "$run/stack-memory.out" >>"$log"; return 1; }
    local worker
    worker=$(child_pids "$stack_pid" dialer-worker)
    run_logged "$log" "$bin/loadgen" memory --url "$stack_url" --token "$stack_token" --ari-url "$stack_ari" \
        --worker-pid "${worker%% *}" --worker-url "$(echo "$stack_workers" | head -1)" "${memory_args[@]}" \
        --out "$run/memory.json"
    stop_pid "$stack_pid" 60
}

# MARK: 4. Kafka layer and 5. history

scenario_kafka() {
    run_logged "$run/kafka.log" "$bin/loadgen" kafka --kafka-bench "$bin/kafka-bench" "${kafka_args[@]}" \
        --out "$run/kafka.json"
}

scenario_history() {
    run_logged "$run/history.log" "$bin/loadgen" history --database-url "$pg_url/bench_history" \
        "${history_args[@]}" --out "$run/history.json"
}

# MARK: 6. webhooks

scenario_webhooks() {
    run_logged "$run/webhooks.log" "$bin/loadgen" webhooks --database-url "$pg_url/bench_webhooks" \
        --dispatcher "$bin/webhook-dispatcher" "${webhook_args[@]}" --out "$run/webhooks.json"
}

# MARK: 7. campaigns

scenario_campaigns() {
    local log=$run/campaigns.log
    "$bin/devstack" kafka --partitions 12 --log-level warning >"$run/kafka-campaigns.out" 2>>"$log" &
    local kafka_pid=$!
    started+=("$kafka_pid")
    wait_for_line "$run/kafka-campaigns.out" ':' "$kafka_pid" 30 ||
        { echo "embedded Kafka did not start" >>"$log"; return 1; }
    local bootstrap port
    bootstrap=$(head -1 "$run/kafka-campaigns.out")
    port=$(free_port)
    (
        export DATABASE_URL=$pg_url/bench_campaigns KAFKA_BOOTSTRAP_SERVERS=$bootstrap
        "$bin/api-gateway" migrate >>"$log" 2>&1 &&
            printf '%s' "$password" | "$bin/api-gateway" create-user --username bench --role operator >>"$log" 2>&1
    ) || { echo "gateway set-up failed" >>"$log"; return 1; }
    DATABASE_URL=$pg_url/bench_campaigns KAFKA_BOOTSTRAP_SERVERS=$bootstrap HOST=127.0.0.1 PORT=$port \
        UPLOAD_DIRECTORY=$run "$bin/api-gateway" serve >/dev/null 2>>"$log" &
    local gateway_pid=$!
    started+=("$gateway_pid")
    wait_for_http "$gateway_pid" 200 "http://127.0.0.1:$port/ready" || { echo "gateway not ready" >>"$log"; return 1; }
    run_logged "$log" "$bin/loadgen" campaigns --url "http://127.0.0.1:$port" \
        --token "$(token_for "http://127.0.0.1:$port" bench "$password")" --gateway-pid "$gateway_pid" \
        --database-url "$pg_url/bench_campaigns" --bootstrap-servers "$bootstrap" \
        --scheduler "$bin/campaign-scheduler" "${campaign_args[@]}" --out "$run/campaigns.json"
    stop_pid "$gateway_pid"
    stop_pid "$kafka_pid"
}

for scenario in gateway e2e memory kafka history webhooks campaigns; do
    wanted "$scenario" || continue
    echo "bench: $scenario" >&2
    "scenario_$scenario" || echo "bench: $scenario did not complete (see the table)" >&2
done

mkdir -p bench/results
"$bin/loadgen" report --dir "$run" --revision "$revision" --mode "$mode" --scenarios "$only" \
    --out "bench/results/$stamp-$mode.json" --markdown "bench/results/$stamp-$mode.md"
status=$?
echo "bench: results in bench/results/$stamp-$mode.json" >&2
exit "$status"
