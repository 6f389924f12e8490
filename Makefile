# camwarden — build, test, demo, package, measure.
GO        ?= go
BIN       := bin
VERSION   ?= $(shell cat VERSION 2>/dev/null || echo 0.1.0)
LDFLAGS   := -s -w -X main.version=$(VERSION)
FUZZTIME  ?= 60s
PKGS      := ./...

.PHONY: all build test lint demo bench fuzz fuzz-smoke deb soak clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/...

# The whole suite: vet, format, every package's tests (real daemon, real
# cameras, real ffprobe/GStreamer/lintian/systemd-analyze), then a short
# fuzzing smoke of every fuzz target.
test: build
	$(GO) vet $(PKGS)
	test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) test -count=1 -timeout 40m -p 2 $(PKGS)
	FUZZTIME=3s scripts/fuzz.sh

fuzz:
	FUZZTIME=$(FUZZTIME) scripts/fuzz.sh

fuzz-smoke:
	FUZZTIME=3s scripts/fuzz.sh

# Simulated cameras, the daemon, discovery, adoption and a viewer; Ctrl-C stops it.
demo: build
	scripts/demo.sh

deb: build
	packaging/build-deb.sh --version $(VERSION) --bin-dir $(BIN) --out dist

lint:
	$(GO) vet $(PKGS)
	test -z "$$(gofmt -l $$(git ls-files '*.go'))"

clean:
	rm -rf $(BIN) dist
