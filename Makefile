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

## swift format (checked-in .swift-format) and the deployment files (YAML, Compose schema, manifests, Dockerfile).
lint:
	$(SWIFT) format lint --strict --recursive --parallel $(SWIFT_SOURCES)
	scripts/lint-deploy.sh

format:
	$(SWIFT) format format --in-place --recursive --parallel $(SWIFT_SOURCES)

clean:
	rm -rf .build .devstack
