#!/usr/bin/env bash
# API fuzzing with schemathesis against a live gateway: `devstack up` (gateway, two workers, the embedded Kafka
# cluster, the ARI simulator) on a throwaway PostgreSQL, authenticated as the admin user, every phase (examples,
# coverage, fuzzing, stateful) with positive and negative data and every check. Fails on any server error or
# response that breaks the documented schema.
#
#   scripts/fuzz.sh           the full run (FUZZ_MAX_EXAMPLES per operation, default 200)
#   scripts/fuzz.sh quick     a bounded run for CI (25 examples per operation, at most FUZZ_MAX_TIME s, default 240)
#
# schemathesis is installed from PyPI into a virtual environment under ~/.cache/outbound-dialer when missing.
# The executables must be built (make fuzz builds them). Reports go to .build/fuzz/.
set -euo pipefail
cd "$(dirname "$0")/.."

mode="${1:-full}"
version="4.32.5"
venv="${FUZZ_VENV:-$HOME/.cache/outbound-dialer/schemathesis-$version}"
bin_dir="${BIN_DIR:-.build/debug}"
report_dir=".build/fuzz"

if [[ ! -x "$venv/bin/st" ]]; then
    echo "fuzz: installing schemathesis $version into $venv" >&2
    if ! python3 -m venv "$venv" 2>/dev/null; then
        # Debian's python3 needs python3-venv for this.
        if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
            rm -rf "$venv"
            python3 -m venv "$venv"
        else
            echo "fuzz: python3 -m venv failed (install python3-venv)" >&2
            exit 1
        fi
    fi
    "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$version"
fi

if [[ -z "${TEST_DATABASE_URL:-}" ]]; then
    exec scripts/with-postgres.sh "$0" "$@"
fi

for executable in devstack api-gateway dialer-worker; do
    [[ -x "$bin_dir/$executable" ]] || { echo "fuzz: $bin_dir/$executable is missing (make fuzz builds it)" >&2; exit 1; }
done

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
state=$(mktemp -d /tmp/fuzz-devstack.XXXXXX)
password="fuzz-$(python3 -c 'import secrets; print(secrets.token_hex(12))')"
database="fuzz_$(python3 -c 'import secrets; print(secrets.token_hex(6))')"
admin_url="${TEST_DATABASE_URL%/*}/postgres"
psql "$admin_url" -q -c "CREATE DATABASE $database" >/dev/null
database_url="${TEST_DATABASE_URL%/*}/$database"

stack_pid=""
cleanup() {
    if [[ -n "$stack_pid" ]] && kill -0 "$stack_pid" 2>/dev/null; then
        # Its children, in case it has to be killed: a SIGKILLed devstack cannot stop them itself.
        local children
        children=$(pgrep -P "$stack_pid" | tr '\n' ' ')
        kill -TERM "$stack_pid"
        for _ in $(seq 1 300); do kill -0 "$stack_pid" 2>/dev/null || break; sleep 0.2; done
        if kill -0 "$stack_pid" 2>/dev/null; then
            kill -KILL "$stack_pid" 2>/dev/null || true
            for child in $children; do kill -KILL "$child" 2>/dev/null || true; done
        fi
    fi
    psql "$admin_url" -q -c "DROP DATABASE IF EXISTS $database WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$state"
}
trap cleanup EXIT INT TERM

# The token endpoint's rate limit would answer most fuzzed logins 429 (documented, but it starves the other
# checks); it has its own test (SecurityTests). The workers do not wait for the fuzzed calls still ringing when the
# run ends (DRAIN_TIMEOUT_SECONDS). Everything else is the default configuration.
DATABASE_URL="$database_url" ADMIN_PASSWORD="$password" TOKEN_RATE_LIMIT="100000/60" ALLOWED_CONTEXTS="agents,outbound" \
    DRAIN_TIMEOUT_SECONDS=2 \
    "$bin_dir/devstack" up --state-dir "$state" --gateway-port "$port" --partitions 4 >"$state/devstack.out" 2>&1 &
stack_pid=$!
for _ in $(seq 1 900); do
    grep -q "^ready:" "$state/devstack.out" 2>/dev/null && break
    kill -0 "$stack_pid" 2>/dev/null || { cat "$state/devstack.out" >&2; echo "fuzz: devstack exited" >&2; exit 1; }
    sleep 0.2
done
grep -q "^ready:" "$state/devstack.out" || { cat "$state/devstack.out" >&2; echo "fuzz: devstack not ready" >&2; exit 1; }

api="http://127.0.0.1:$port"
token=$(curl -s -X POST "$api/api/v1/auth/token" --data-urlencode username=admin --data-urlencode "password=$password" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')

arguments=(
    --config-file scripts/fuzz-schemathesis.toml
    run "$api/openapi.json"
    --header "Authorization: Bearer $token"
    --checks all
    --exclude-checks unsupported_method,ensure_resource_availability
    --generation-allow-x00 false
    --mode all
    --phases examples,coverage,fuzzing,stateful
    --workers 1
    --request-timeout 30
    --suppress-health-check too_slow,filter_too_much
    --report junit,ndjson --report-dir "$report_dir"
    --seed "${FUZZ_SEED:-$RANDOM}"
)
if [[ "$mode" == "quick" ]]; then
    arguments+=(--max-examples "${FUZZ_MAX_EXAMPLES:-25}" --max-time "${FUZZ_MAX_TIME:-240}")
else
    arguments+=(--max-examples "${FUZZ_MAX_EXAMPLES:-200}")
fi
mkdir -p "$report_dir"
echo "fuzz: schemathesis $version against $api/openapi.json ($mode)" >&2
status=0
"$venv/bin/st" "${arguments[@]}" || status=$?
if [[ $status -ne 0 ]]; then
    echo "fuzz: failures above; gateway log: $state/logs/api-gateway.log (kept: $report_dir/api-gateway.log)" >&2
    cp "$state/logs/api-gateway.log" "$report_dir/api-gateway.log" 2>/dev/null || true
fi
exit $status
