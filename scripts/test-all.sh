#!/usr/bin/env bash
# Every test (`make test`), in three phases on one throwaway PostgreSQL; fails when any test or the fuzzing fails.
#
#   1. The suites that wait more than they compute (most: processes, brokers, timeouts), several at once
#      (TEST_PARALLEL_WIDTH, default 4), with API fuzzing (scripts/fuzz.sh quick) beside them. Each test has its own
#      database, ports and broker, so running them together only shares the CPU. Run alone, one after the other,
#      they took 15 minutes; together about 5.
#   2. The suites whose assertions include a pace or a deadline that a loaded CPU would miss, one at a time
#      (serial_suites below: the organization's calls-per-second pace, slow-client cut-offs), and the worker's
#      restarts, broker and node outages (ResilienceTests: once in five parallel runs a restarted worker's terminal
#      event was not in PostgreSQL within 60 s; alone it has always passed).
#   3. The fault suite: the real processes under load, one fault at a time; alone, as it measures.
#
# Each phase has a hard bound (scripts/run-tests.sh): a hang fails the run, the test it hung in last in the log. The
# fuzzing's report is printed after phase 1 (its output would interleave with the tests').
set -uo pipefail
cd "$(dirname "$0")/.."

if [[ -z "${TEST_DATABASE_URL:-}" ]]; then
    exec scripts/with-postgres.sh "$0" "$@"
fi

width="${TEST_PARALLEL_WIDTH:-4}"
serial_suites='OrganizationLimitEndToEndTests|HostileInputTests|ResilienceTests'
# Single tests whose assertions include a deadline, in suites that otherwise share the machine well.
serial_tests='DeliveryTests/deadEndpointDoesNotDelayOthers\('
failed=()

mkdir -p .build/fuzz
fuzz_log=.build/fuzz/fuzz-quick.log
# Sharing the CPU, the fuzzing gets as long as phase 1 takes (alone, 240 s gave about 10,700 cases; shared, 300 s
# gives about as many).
FUZZ_MAX_TIME="${FUZZ_MAX_TIME:-300}" scripts/fuzz.sh quick >"$fuzz_log" 2>&1 &
fuzz_pid=$!

echo "test-all: phase 1, the suites that can share the machine ($width at once), with API fuzzing beside them" >&2
scripts/run-tests.sh 30m --experimental-maximum-parallelization-width "$width" \
    --skip "^FaultTests\\.|\\.($serial_suites)/|\\.($serial_tests)" || failed+=("phase 1 (parallel suites)")

fuzz_status=0
wait "$fuzz_pid" || fuzz_status=$?
echo "test-all: API fuzzing (scripts/fuzz.sh quick), exit $fuzz_status:" >&2
cat "$fuzz_log"
[[ $fuzz_status -eq 0 ]] || failed+=("API fuzzing")

echo "test-all: phase 2, the suites with paces and deadlines, alone" >&2
scripts/run-tests.sh 15m --no-parallel --filter "\\.($serial_suites)/|\\.($serial_tests)" \
    || failed+=("phase 2 (serial suites)")

echo "test-all: phase 3, the fault suite, alone" >&2
scripts/run-tests.sh 20m --no-parallel --filter '^FaultTests\.' || failed+=("phase 3 (fault suite)")

if [[ ${#failed[@]} -gt 0 ]]; then
    printf 'test-all: FAILED: %s\n' "${failed[@]}" >&2
    exit 1
fi
echo "test-all: every phase passed" >&2
