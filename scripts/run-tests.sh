#!/usr/bin/env bash
# Runs the built test bundle (swift-testing) with a hard time bound: run-tests.sh <bound, e.g. 45m> <test arguments>.
# `swift test` holds the test process's output in a buffer, so a run stopped by a hang showed a log that ended
# mid-line, short of the test that hung; the bundle run directly writes each event as it happens, and `timeout`
# ends a hung run with the failing status instead of letting it eat the CI deadline.
set -euo pipefail
bound=$1
shift
bin=$("${SWIFT:-swift}" build --show-bin-path)
exec timeout --kill-after=30s "$bound" "$bin/OutboundDialerPackageTests.xctest" --testing-library swift-testing "$@"
