# tollgate — an Envoy ext_proc service that authenticates, rate-limits and
# meters LLM traffic by tokens. `make help` lists the targets.

GO       ?= go
BIN      ?= bin/tollgate
CONFIG   ?= envoy/tollgate.yaml
PKGS     ?= ./...
FUZZTIME ?= 30s

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets.
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build bin/tollgate.
	$(GO) build -trimpath -o $(BIN) ./cmd/tollgate

.PHONY: run
run: build ## Run tollgate with the in-memory store and the example config (no Redis needed).
	./$(BIN) serve --config $(CONFIG)

.PHONY: demo
demo: ## Try tollgate by hand: an emulated Envoy on :8080, tollgate and a fake LLM (Ctrl-C stops).
	$(GO) run ./e2e/demo

.PHONY: deps
deps: ## Install what the tests need (redis-server; promtool when available).
	@scripts/need.sh redis-server redis-server
	@scripts/need.sh promtool prometheus optional
	@scripts/need.sh chromium chromium

.PHONY: test
test: deps ## Vet, then run every test (unit tests with -race, Redis tests, e2e).
	$(GO) vet $(PKGS)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) test -race -count=1 -timeout 30m $(PKGS)

.PHONY: e2e
e2e: deps ## Run only the end-to-end suite.
	$(GO) test -race -count=1 -timeout 20m ./e2e/...

.PHONY: bench
bench: deps ## Run the Go benchmarks.
	$(GO) test -run '^$$' -bench . -benchmem -count=1 $(PKGS)

.PHONY: bench-load
bench-load: ## Load tollgate (Redis store) and the do-nothing ext_proc floor alike; print the table (LOAD_FLAGS=… to change).
	@scripts/need.sh redis-server redis-server
	$(GO) run ./e2e/load bench $(LOAD_FLAGS)

.PHONY: bench-hold
bench-hold: ## Hold 10,000 streams mid-response on tollgate and the floor; print RSS per stream (LOAD_FLAGS=…).
	@scripts/need.sh redis-server redis-server
	$(GO) run ./e2e/load hold -streams 10000 $(LOAD_FLAGS)

.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME each.
	@for pkg in $$($(GO) list $(PKGS)); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 2s $$pkg || exit 1; \
	  done; \
	done

.PHONY: screenshot
screenshot: deps ## Retake docs/console.png with the console's browser test.
	TOLLGATE_UPDATE_SCREENSHOT=1 $(GO) test -count=1 -run '^TestConsole$$' ./e2e/

.PHONY: proto
proto: ## Regenerate the Go code of proto/ (installs protoc when missing).
	scripts/gen-proto.sh

.PHONY: lint
lint: ## gofmt and go vet.
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet $(PKGS)
