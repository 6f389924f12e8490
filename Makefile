# camwarden — build, test, demo, package, measure.
GO        ?= go
BIN       := bin
VERSION   ?= $(shell cat VERSION 2>/dev/null || echo 0.1.0)
LDFLAGS   := -s -w -X main.version=$(VERSION)
FUZZTIME  ?= 60s
PKGS      := ./...
# Packages with goroutines of their own run their tests under the race
# detector; the rest (CLI, packaging, e2e driving built binaries) run
# without it, which keeps the suite within CI's time on two cores.
# The race pass runs one package at a time: timing-sensitive tests of two
# packages racing side by side on two cores miss their deadlines.
RACE_PKGS := ./daemon/... ./store/... ./onvif/... ./internal/camsim/...
# staticcheck, pinned; go run fetches it through the module proxy once.
STATICCHECK := $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: all build test lint demo bench fuzz fuzz-smoke deb soak clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/...

# The whole suite: vet, format, every package's tests (real daemon, real
# cameras, real ffprobe/GStreamer/lintian/systemd-analyze), then a short
# fuzzing smoke of every fuzz target.
test: build lint
	@# Every log the tests capture through testutil.LogFile, and the go test
	@# output itself, are scanned for the test secrets afterwards.
	logdir=$$(mktemp -d /tmp/camwarden-test-logs.XXXXXX); \
	race=$$($(GO) list $(RACE_PKGS)); rest=$$($(GO) list $(PKGS) | grep -vxF "$$race"); \
	{ rc=0; \
	  CAMWARDEN_TEST_LOGDIR=$$logdir $(GO) test -race -count=1 -timeout 40m -p 1 $$race || rc=1; \
	  CAMWARDEN_TEST_LOGDIR=$$logdir $(GO) test -count=1 -timeout 40m -p 2 $$rest || rc=1; \
	  echo $$rc >$$logdir/go-test.rc; } 2>&1 | tee $$logdir/go-test.out; \
	rc=$$(cat $$logdir/go-test.rc); \
	scripts/scan-secrets.sh $$logdir || rc=1; \
	exit $$rc
	FUZZTIME=20000x scripts/fuzz.sh

fuzz:
	FUZZTIME=$(FUZZTIME) scripts/fuzz.sh

fuzz-smoke:
	FUZZTIME=20000x scripts/fuzz.sh

# Simulated cameras, the daemon, discovery, adoption and a viewer; Ctrl-C stops it.
demo: build
	scripts/demo.sh

# The benchmark table (fan-out, policy, revocation, start-up, discovery,
# time to first frame); figures also in bench/results/latest.json.
bench: build
	$(GO) run ./bench/cmd/benchrun --bin-dir $(BIN) --out bench/results

# Cameras, churning readers and admin edits together; fails if threads,
# fds or RSS grow. make soak DURATION=10m
DURATION  ?= 10m
soak: build
	scripts/soak.sh $(DURATION)

deb: build
	packaging/build-deb.sh --version $(VERSION) --bin-dir $(BIN) --out dist

lint:
	$(GO) vet $(PKGS)
	test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	$(STATICCHECK) $(PKGS)

clean:
	rm -rf $(BIN) dist
