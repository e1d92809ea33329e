#!/usr/bin/env bash
# bench/hostile/fuzz.sh: run every fuzz target of the parsers of untrusted
# input for FUZZTIME each (default 20s), one after the other. A crasher is
# written by go test to the package's testdata/fuzz/<Target>/; fix it and
# keep the file as a regression seed.
set -euo pipefail
cd "$(dirname "$0")/../.."
fuzztime=${FUZZTIME:-20s}
targets=(
	./pkg/bundle:FuzzManifest
	./pkg/bundle:FuzzParseChecksums
	./pkg/sign:FuzzParseJWSHeader
	./pkg/sign:FuzzVerifyJWS
	./pkg/sign:FuzzParseEnvelope
	./pkg/sign:FuzzVerifyDSSE
	./pkg/trust:FuzzTrustParse
	./pkg/archive:FuzzWalk
	./pkg/archive:FuzzPartsManifest
	./pkg/serve:FuzzParseHtpasswd
	./pkg/rotation:FuzzApply
	./internal/strictjson:FuzzStrictJSON
	./internal/hostiletest:FuzzVerifyMutatedBundle
)
status=0
for t in "${targets[@]}"; do
	pkg=${t%%:*} name=${t##*:}
	printf '%-24s %-26s ' "$pkg" "$name"
	if out=$(go test "$pkg" -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" -fuzzminimizetime 1s 2>&1); then
		echo "ok   $(grep -o 'execs: [0-9]*' <<<"$out" | tail -1)"
	else
		echo "FAIL"
		echo "$out" | tail -20
		status=1
	fi
done
exit $status
