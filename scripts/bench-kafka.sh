#!/usr/bin/env bash
# Kafka producer benchmark: acknowledged messages per second through the Kafka wrapper (send() and send(batch))
# versus `kcat -P`, against the same embedded broker, in the same run, printed side by side.
#
#   scripts/bench-kafka.sh [kafka-bench options]      e.g. --messages 1000000 --rounds 5
#
# Builds kafka-bench in release mode (BENCH_BUILD selects the build directory, default .build), runs it, and keeps
# a copy of the table in bench/kafka/last-run.txt. A benchmark, not a test: figures depend on the machine and its
# load; run it on an otherwise idle machine.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
build=${BENCH_BUILD:-.build}
command -v kcat >/dev/null || { echo "bench-kafka: kcat is not installed (apt-get install kcat)" >&2; exit 1; }
swift build -c release --scratch-path "$build" --product kafka-bench >&2
"$build/release/kafka-bench" "$@" | tee "$root/bench/kafka/last-run.txt"
