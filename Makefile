# Quire — see README.md. `make run` starts a local broker, `make test` runs
# every test CI runs.
GO        ?= go
BIN       := bin/quire
PKGS      := ./...
# Static binary: the deploy image is FROM scratch.
export CGO_ENABLED ?= 0

.PHONY: build run test test-race-procs test-short lint bench fuzz chaos clean

build:
	$(GO) build -buildvcs=auto -trimpath -ldflags='-s -w' -o $(BIN) ./cmd/quire

run: build
	./$(BIN) dev --nodes 3 --data ./data/dev

# Race detection needs cgo; the tests build their own quire binary.
test:
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 20m $(PKGS)

# The process tests with the brokers they start raced too (much slower).
test-race-procs:
	QUIRE_RACE_PROCS=1 CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 40m ./cmd/quire

test-short:
	$(GO) test -short -count=1 $(PKGS)

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet $(PKGS)

# Short fuzz passes over every parser; longer runs: FUZZTIME=10m make fuzz
FUZZTIME ?= 30s
fuzz:
	$(GO) test -run='^$$' -fuzz=FuzzRecoverTail -fuzztime=$(FUZZTIME) ./partition/
	$(GO) test -run='^$$' -fuzz=FuzzSplitBatches -fuzztime=$(FUZZTIME) ./partition/
	$(GO) test -run='^$$' -fuzz=FuzzKafkaRequest -fuzztime=$(FUZZTIME) ./cluster/

# Throughput and latency against a local broker the bench starts itself;
# method and recorded numbers: docs/benchmarks.md. BENCHTIME=30s for longer.
BENCHTIME ?= 10s
bench: build
	./$(BIN) bench --duration $(BENCHTIME) --partitions 8
	./$(BIN) bench --duration $(BENCHTIME) --partitions 1
	./$(BIN) bench --duration $(BENCHTIME) --nodes 3 --partitions 8 --producers 1 --inflight 1,8,64 --failovers 10
	./$(BIN) bench --duration $(BENCHTIME) --nodes 3 --partitions 1 --producers 1 --sizes 1024 --rate 40000
	./$(BIN) bench --duration $(BENCHTIME) --nodes 3 --partitions 1 --producers 1 --sizes 100 --rate 150000
	./$(BIN) bench scale --nodes 3 --partitions 100,1000,10000 --settle 60s --idle-window 60s
	./$(BIN) bench failover --rounds 20
	./$(BIN) bench txn --duration 20s
	./$(BIN) bench storage

# Every chaos scenario against a fresh local 3-node cluster, CHAOSTIME each,
# then kill and partition faults on a 1,000-partition topic, the
# transactional workload and the compacted-topic workload (5m by default); results and reports under chaos-results/. docs/chaos.md
# explains them. CHAOSSEED replays a run.
CHAOSTIME ?= 5m
CHAOSSEED ?= 0
chaos: build
	./$(BIN) chaos run --scenario all --duration $(CHAOSTIME) --seed $(CHAOSSEED) --nodes 3
	./$(BIN) chaos run --scenario kill,partition --partitions 1000 --duration $(CHAOSTIME) --seed $(CHAOSSEED) --nodes 3
	./$(BIN) chaos run --workload txn --scenario all --duration $(CHAOSTIME) --seed $(CHAOSSEED) --nodes 3
	./$(BIN) chaos run --workload compact --scenario kill,corrupt,power-loss,partition,pause --duration $(CHAOSTIME) --seed $(CHAOSSEED) --nodes 3

clean:
	rm -rf bin data
