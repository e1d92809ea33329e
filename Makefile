# Long-running checks. `go test ./...` runs the fast tests, the hostile
# corpus included; these targets run what takes minutes.
GO ?= go
FUZZTIME ?= 20s
SOAK_BIN ?= $(or $(TMPDIR),/tmp)/stellaops-cli-soak

.PHONY: hostile-corpus hostile soak fuzz

# Regenerate testdata/hostile from the TEST-ONLY keys of testdata/keys.
hostile-corpus:
	$(GO) run ./internal/hostilegen

# The corpus through verify and import, write faults, crash points, SIGTERM.
hostile:
	$(GO) test -count=1 ./internal/hostilegen ./internal/hostiletest

# Slow clients, password floods, forged X-Forwarded-For, budget exhaustion,
# the latest-flipping soak and SIGTERM against mirror serve (about 4 minutes).
soak:
	$(GO) build -o $(SOAK_BIN) ./cmd/stellaops-cli
	$(GO) run ./bench/hostile -bin $(SOAK_BIN)

# Every fuzz target for FUZZTIME each.
fuzz:
	FUZZTIME=$(FUZZTIME) bench/hostile/fuzz.sh
