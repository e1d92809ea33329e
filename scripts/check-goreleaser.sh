#!/usr/bin/env bash
# Validate goreleaser.yaml with "goreleaser check".
#
# Uses goreleaser from PATH. Without one, installs $GORELEASER_VERSION
# (default: latest) into a temporary GOBIN that is removed afterwards; when
# the latest release needs a newer Go than the local toolchain, falls back to
# $GORELEASER_FALLBACK, the newest release known to build with Go 1.26. This
# needs network access to the Go module proxy and can take several minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

version=${GORELEASER_VERSION:-latest}
fallback=${GORELEASER_FALLBACK:-v2.17.0}

goreleaser=$(command -v goreleaser || true)
if [ -z "$goreleaser" ]; then
  gobin=$(mktemp -d)
  trap 'chmod -R u+w "$gobin" 2>/dev/null; rm -rf "$gobin"' EXIT
  install() {
    echo "check-goreleaser: installing goreleaser $1 into $gobin" >&2
    GOBIN="$gobin" GOFLAGS= go install "github.com/goreleaser/goreleaser/v2@$1"
  }
  if ! install "$version"; then
    if [ "$version" = "$fallback" ]; then
      exit 1
    fi
    echo "check-goreleaser: goreleaser $version did not install with $(go env GOVERSION); trying $fallback" >&2
    install "$fallback"
  fi
  goreleaser="$gobin/goreleaser"
fi

"$goreleaser" --version >&2
"$goreleaser" check --config goreleaser.yaml
