# The two commands: `make run` (the whole system on this machine) and `make test` (every test).
SHELL := /bin/bash
SWIFT ?= swift
SWIFT_SOURCES := Package.swift Packages Services Tests

.PHONY: deps build release test test-faults lint format run bench bench-quick bench-kafka fuzz clean

deps:
	@scripts/install-deps.sh

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

## Every test, against a throwaway PostgreSQL, the embedded Kafka broker and the ARI simulator.
test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) build --product devstack
	scripts/with-postgres.sh $(SWIFT) test --skip-build

## The whole system on this machine: release build, then `devstack up` (Ctrl-C stops everything).
run: deps
	$(SWIFT) build -c release --product api-gateway
	$(SWIFT) build -c release --product dialer-worker
	$(SWIFT) build -c release --product devstack
	exec .build/release/devstack up

## Benchmarks: release build, every scenario, one table on stdout, raw JSON in bench/results/ (scripts/bench.sh).
## BENCH_BUILD is the build directory (e.g. `make bench BENCH_BUILD=.build-release` keeps release builds apart).
BENCH_BUILD ?= .build
BENCH_PRODUCTS := api-gateway dialer-worker devstack loadgen kafka-bench
BENCH_RELEASE = for product in $(BENCH_PRODUCTS); do \
	$(SWIFT) build -c release --scratch-path $(BENCH_BUILD) --product $$product || exit 1; done

bench: deps
	$(BENCH_RELEASE)
	scripts/bench.sh --bin $(BENCH_BUILD)/release

## The same scenarios, shorter (about two minutes once built).
bench-quick: deps
	$(BENCH_RELEASE)
	scripts/bench.sh --quick --bin $(BENCH_BUILD)/release

## swift format (checked-in .swift-format) and the deployment files (YAML, Compose schema, manifests, Dockerfile).
lint:
	$(SWIFT) format lint --strict --recursive --parallel $(SWIFT_SOURCES)
	scripts/lint-deploy.sh

format:
	$(SWIFT) format format --in-place --recursive --parallel $(SWIFT_SOURCES)

clean:
	rm -rf .build .devstack
