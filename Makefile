# The two commands: `make run` (the whole system on this machine) and `make test` (every test).
SHELL := /bin/bash
SWIFT ?= swift
SWIFT_SOURCES := Package.swift Packages Services Tests
OPENAPI_CONTRACT := Services/api-gateway/Sources/APIGateway/Docs/openapi.yaml

.PHONY: deps build release test test-faults lint format run bench bench-quick bench-kafka bench-micro fuzz fuzz-quick clean

deps:
	@scripts/install-deps.sh

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

## Every test, against a throwaway PostgreSQL, the embedded Kafka broker and the ARI simulator: unit and component
## suites, the whole-stack security tests, bounded API fuzzing, and the fault suite (scripts/test-all.sh: the suites
## that mostly wait run several at once beside the fuzzing; those with paces or deadlines, then the fault suite, run
## alone). Each phase has a hard bound besides the suites' time limits: a hang fails the run, the test it hung in last
## in the log. Built once; every phase uses that build.
test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) build --product devstack
	$(SWIFT) build --product webhook-dispatcher
	$(SWIFT) build --product campaign-scheduler
	scripts/test-all.sh

## Faults under load (a few minutes): the real processes, one fault at a time; prints the README's fault table.
test-faults: deps
	$(SWIFT) build --build-tests
	$(SWIFT) build --product devstack
	$(SWIFT) build --product webhook-dispatcher
	$(SWIFT) build --product campaign-scheduler
	scripts/run-tests.sh 20m --no-parallel --filter '^FaultTests\.'

## API fuzzing with schemathesis against a live gateway (installed from PyPI when missing); fuzz-quick is bounded.
fuzz: deps
	$(SWIFT) build --product api-gateway
	$(SWIFT) build --product dialer-worker
	$(SWIFT) build --product webhook-dispatcher
	$(SWIFT) build --product campaign-scheduler
	$(SWIFT) build --product devstack
	scripts/fuzz.sh

fuzz-quick: deps
	$(SWIFT) build --product api-gateway
	$(SWIFT) build --product dialer-worker
	$(SWIFT) build --product webhook-dispatcher
	$(SWIFT) build --product campaign-scheduler
	$(SWIFT) build --product devstack
	scripts/fuzz.sh quick

## The whole system on this machine: release build, then `devstack up` (Ctrl-C stops everything).
run: deps
	$(SWIFT) build -c release --product api-gateway
	$(SWIFT) build -c release --product dialer-worker
	$(SWIFT) build -c release --product webhook-dispatcher
	$(SWIFT) build -c release --product campaign-scheduler
	$(SWIFT) build -c release --product devstack
	exec .build/release/devstack up

## Benchmarks: release build, every scenario, one table on stdout, raw JSON in bench/results/ (scripts/bench.sh).
## The table marks each goal met or missed; the run exits 1 when a goal is missed or a scenario gave no figures.
## BENCH_BUILD is the build directory (e.g. `make bench BENCH_BUILD=.build-release` keeps release builds apart).
BENCH_BUILD ?= .build
BENCH_PRODUCTS := api-gateway dialer-worker webhook-dispatcher campaign-scheduler devstack loadgen kafka-bench
BENCH_RELEASE = for product in $(BENCH_PRODUCTS); do \
	$(SWIFT) build -c release --scratch-path $(BENCH_BUILD) --product $$product || exit 1; done

bench: deps
	$(BENCH_RELEASE)
	scripts/bench.sh --bin $(BENCH_BUILD)/release

## The same scenarios, shorter (about two minutes once built).
bench-quick: deps
	$(BENCH_RELEASE)
	scripts/bench.sh --quick --bin $(BENCH_BUILD)/release

## Micro-benchmarks of the hot pieces (wire JSON, validation, the state machine): ns per operation, release build.
bench-micro: deps
	cd Packages/MicroBenchmarks && $(SWIFT) build -c release --product call-domain-bench
	Packages/MicroBenchmarks/.build/release/call-domain-bench --min-time 2

## The Kafka layer alone: acknowledged messages/s through the wrapper vs `kcat -P` on the same embedded broker.
bench-kafka: deps
	BENCH_BUILD=$(BENCH_BUILD) scripts/bench-kafka.sh

## swift format (checked-in .swift-format), the deployment files (YAML, Compose schema, manifests, Dockerfile,
## monitoring) and the OpenAPI contract (openapi-spec-validator, request examples against their schemas).
lint: deps
	$(SWIFT) format lint --strict --recursive --parallel $(SWIFT_SOURCES)
	scripts/lint-deploy.sh
	python3 scripts/check_openapi.py $(OPENAPI_CONTRACT)

format:
	$(SWIFT) format format --in-place --recursive --parallel $(SWIFT_SOURCES)

clean:
	rm -rf .build .devstack
