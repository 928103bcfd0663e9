# exportd — the front door. See README.md.
SHELL := /bin/bash
GO    ?= go
PKGS  := ./...

.PHONY: build run test lint e2e bench bench-overload fuzz clean

build:
	$(GO) build -o bin/exportd ./cmd/exportd

## run: local stack from nothing (ClickHouse, schema, demo data, API, token)
run:
	deploy/scripts/run.sh

## test: vet + unit and integration tests under -race against real ClickHouse
test:
	deploy/scripts/ensure-clickhouse.sh
	deploy/scripts/ensure-postgres.sh
	deploy/scripts/ensure-prometheus.sh
	deploy/scripts/ensure-s3.sh
	deploy/scripts/ensure-chromium.sh
	$(GO) vet $(PKGS)
	@unformatted="$$(gofmt -l $$(git ls-files '*.go'))"; if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) test -race -timeout 40m -count=1 $(PKGS)

lint:
	gofmt -l $$(git ls-files '*.go')
	$(GO) vet $(PKGS)

## e2e: the end-to-end suite only (built binary against a private ClickHouse)
e2e:
	deploy/scripts/ensure-clickhouse.sh
	deploy/scripts/ensure-chromium.sh
	$(GO) test -race -count=1 -run 'E2E' ./cmd/... ./server/...

## faults: the fault-injection suite against real processes (ClickHouse killed mid-export and at create,
## exportd SIGKILLed mid-export, ENOSPC on a tmpfs, stalled and vanishing downloads); part of make test too
.PHONY: faults
faults:
	deploy/scripts/ensure-clickhouse.sh
	$(GO) test -race -count=1 -run 'Fault' ./cmd/exportd/ ./engine/

## fuzz: each fuzz target for a bounded time
FUZZTIME ?= 20s
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for t in $$($(GO) test -list 'Fuzz.*' $$pkg 2>/dev/null | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$t"; $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 200x $$pkg; \
	  done; \
	done

## bench: exportd vs clickhouse-client / HTTP / naive Go, side by side (see bench/README.md)
BENCHFLAGS ?= -sizes 1e5,1e6,1e7 -runs 3 -out bench/results
bench: build
	deploy/scripts/ensure-clickhouse.sh
	deploy/scripts/ensure-s3.sh
	$(GO) run ./bench/throughput $(BENCHFLAGS)

## bench-quick: the same at 1e5 and 1e6 rows, one run each
.PHONY: bench-quick
bench-quick: build
	deploy/scripts/ensure-clickhouse.sh
	$(GO) run ./bench/throughput -sizes 1e5,1e6 -runs 1 -out bench/results/quick

## bench-replot: redraw every committed bench/results/**/throughput.svg from its throughput.json (measures nothing)
.PHONY: bench-replot
bench-replot:
	@set -e; for f in bench/results/throughput.json bench/results/*/throughput.json; do \
	  if [ -f "$$f" ]; then $(GO) run ./bench/throughput -replot "$$f" -out "$$(dirname "$$f")"; fi; \
	done

## bench-overload: 1x-10x of the measured capacity against admission control; bench/results/overload.{json,svg}
bench-overload: build
	deploy/scripts/ensure-clickhouse.sh
	$(GO) run ./bench/overload -out bench/results

## bench-records: the control plane at 1k and 3M export records (list/get/create p99, RSS, expiry of 1M,
## creates/s on 1 and 3 replicas); bench/results/records.{json,svg}. Not part of make test.
RECORDSFLAGS ?= -out bench/results
.PHONY: bench-records
bench-records:
	deploy/scripts/ensure-clickhouse.sh
	deploy/scripts/ensure-postgres.sh
	$(GO) run ./bench/records $(RECORDSFLAGS)

clean:
	rm -rf bin
