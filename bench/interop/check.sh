#!/usr/bin/env bash
# Interoperability check: bundles written by stellaops-cli, verified by tools
# that are not this project's code (sha256sum, joserfc, the Python
# `cryptography` package, cosign). See docs/interop.md.
#
#   bench/interop/check.sh            # everything; cosign checks when cosign is on PATH
#   COSIGN=/path/to/cosign bench/interop/check.sh
#   KEEP=1 bench/interop/check.sh     # keep the work folder
#
# Exit status 0 when every check passed (skipped checks do not fail), 1 otherwise.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
KEYS=$ROOT/testdata/keys # TEST-ONLY keys
CREATED=2026-03-01T12:00:00Z
NOW=2026-03-01T13:00:00Z
WORK=$(mktemp -d "${TMPDIR:-/tmp}/stellaops-interop.XXXXXX")
RESULTS=$WORK/results.tsv
: >"$RESULTS"
if [ -z "${KEEP:-}" ]; then
	trap 'rm -rf "$WORK"' EXIT
else
	echo "work folder: $WORK"
fi

COSIGN=${COSIGN:-$(command -v cosign || true)}
if [ -z "$COSIGN" ] && [ -x "$(go env GOPATH 2>/dev/null)/bin/cosign" ]; then
	COSIGN=$(go env GOPATH)/bin/cosign
fi
# cosign tries to reach the public Sigstore TUF repository; run it without a
# network so that the check proves offline verification (and keep its cache here).
export TUF_ROOT=$WORK/tuf
if unshare -n true 2>/dev/null; then
	OFFLINE=(unshare -n)
elif unshare -rn true 2>/dev/null; then
	OFFLINE=(unshare -rn)
else
	OFFLINE=()
	echo "warning: unshare is not available; cosign runs with the network" >&2
fi

# record KEY CHECK STATUS DETAIL
record() {
	printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$RESULTS"
	printf '%-16s %-22s %-4s %s\n' "$1" "$2" "$3" "$4"
}

echo "== build"
go build -C "$ROOT" -o "$WORK/stellaops-cli" ./cmd/stellaops-cli || exit 1
CLI=$WORK/stellaops-cli
cp -r "$ROOT/internal/samplefeed/feed" "$WORK/src"
python3 -c 'import cryptography' 2>/dev/null || echo "warning: python3 cannot import cryptography" >&2
HAVE_JOSERFC=yes
python3 -c 'import joserfc' 2>/dev/null || HAVE_JOSERFC=

if [ -n "$COSIGN" ]; then
	echo "cosign: $("$COSIGN" version 2>/dev/null | awk '/^GitVersion/ {print $2}') ($COSIGN)"
	# A key pair made by cosign itself.
	mkdir -p "$WORK/cosign-gen"
	if (cd "$WORK/cosign-gen" && COSIGN_PASSWORD=interop-password "${OFFLINE[@]}" "$COSIGN" generate-key-pair >/dev/null 2>&1); then
		:
	else
		record cosign-generated generate-key-pair FAIL "cosign generate-key-pair failed"
	fi
else
	echo "cosign: not found; cosign checks are skipped"
fi

# check_key NAME KEYFILE PUBFILE ALG [PASSWORD]
check_key() {
	local name=$1 key=$2 pub=$3 alg=$4 password=${5:-}
	local out=$WORK/out-$name
	echo "== $name ($alg)"
	local algflag=()
	case $alg in RS384) algflag=(--alg RS384) ;; esac
	if ! STELLAOPS_KEY_PASSWORD=$password "$CLI" mirror export --source "$WORK/src" --out "$out" --key "$key" "${algflag[@]}" \
		--created "$CREATED" --sequence 1 -q >"$WORK/$name.export.log" 2>&1; then
		record "$name" export FAIL "$(tail -1 "$WORK/$name.export.log")"
		return
	fi

	# Our own verify with the public key as trust root (not independent; shows the trust root works).
	if "$CLI" mirror verify --bundle-path "$out" --trust-roots "$pub" --now "$NOW" -q >"$WORK/$name.verify.log" 2>&1; then
		record "$name" stellaops-verify ok "trust root $(basename "$pub")"
	else
		record "$name" stellaops-verify FAIL "$(tail -1 "$WORK/$name.verify.log")"
	fi

	# coreutils
	if (cd "$out" && sha256sum --strict -c SHA256SUMS) >"$WORK/$name.sha256sum.log" 2>&1; then
		record "$name" "sha256sum -c" ok "$(grep -c ': OK$' "$WORK/$name.sha256sum.log") files"
	else
		record "$name" "sha256sum -c" FAIL "$(grep -v ': OK$' "$WORK/$name.sha256sum.log" | head -1)"
	fi

	# JOSE: joserfc, and the cryptography package alone.
	if [ -n "$HAVE_JOSERFC" ]; then
		if python3 "$ROOT/bench/interop/verify.py" jws-joserfc "$out" "$pub" "$alg" >"$WORK/$name.joserfc.log" 2>&1; then
			record "$name" jws-joserfc ok "$(grep -c '^ok' "$WORK/$name.joserfc.log") domains"
		else
			record "$name" jws-joserfc FAIL "$(grep -v '^ok' "$WORK/$name.joserfc.log" | head -1)"
		fi
	else
		record "$name" jws-joserfc skip "python3 cannot import joserfc"
	fi
	if python3 "$ROOT/bench/interop/verify.py" jws-raw "$out" "$pub" "$alg" >"$WORK/$name.jwsraw.log" 2>&1; then
		record "$name" jws-cryptography ok "$(grep -c '^ok' "$WORK/$name.jwsraw.log") domains"
	else
		record "$name" jws-cryptography FAIL "$(grep -v '^ok' "$WORK/$name.jwsraw.log" | head -1)"
	fi

	# DSSE over PAE with the cryptography package.
	if python3 "$ROOT/bench/interop/verify.py" dsse "$out" "$pub" "$alg" >"$WORK/$name.dsse.log" 2>&1; then
		record "$name" dsse-cryptography ok "mirror.dsse.json"
	else
		record "$name" dsse-cryptography FAIL "$(grep -v '^ok' "$WORK/$name.dsse.log" | head -1)"
	fi

	# cosign verify-blob, offline.
	if [ -z "$COSIGN" ]; then
		record "$name" cosign-verify-blob skip "cosign not on PATH"
		return
	fi
	local d ok=0 fail=0 msg=""
	for d in "$out"/mirror/*/; do
		d=${d%/}
		if "${OFFLINE[@]}" "$COSIGN" verify-blob --key "$pub" --signature "$d/bundle.json.sig" \
			--insecure-ignore-tlog=true "$d/bundle.json" >"$WORK/$name.cosign.log" 2>&1 &&
			grep -q '^Verified OK' "$WORK/$name.cosign.log"; then
			ok=$((ok + 1))
		else
			fail=$((fail + 1))
			msg=$(grep -v '^WARNING' "$WORK/$name.cosign.log" | tail -1)
		fi
	done
	if [ "$fail" -eq 0 ]; then
		record "$name" cosign-verify-blob ok "Verified OK for $ok domains"
	else
		record "$name" cosign-verify-blob FAIL "$fail refused: $msg"
	fi
	# The same signature over a changed bundle.json must be refused.
	d=$(ls -d "$out"/mirror/*/ | head -1)
	d=${d%/}
	cp "$d/bundle.json" "$WORK/tampered.json"
	printf ' ' >>"$WORK/tampered.json"
	if "${OFFLINE[@]}" "$COSIGN" verify-blob --key "$pub" --signature "$d/bundle.json.sig" \
		--insecure-ignore-tlog=true "$WORK/tampered.json" >"$WORK/$name.cosign-neg.log" 2>&1; then
		record "$name" cosign-refuses-tamper FAIL "cosign verified a changed bundle.json"
	else
		record "$name" cosign-refuses-tamper ok "$(grep -v '^WARNING' "$WORK/$name.cosign-neg.log" | tail -1 | cut -c1-60)"
	fi
}

# cosign_digest_probe NAME KEY PUB DIGEST: does cosign accept a signature
# made with DIGEST instead of SHA-256? (informational: shows which digest
# cosign verify-blob --key expects for the curve)
cosign_digest_probe() {
	local name=$1 key=$2 pub=$3 digest=$4
	[ -n "$COSIGN" ] || return
	local blob
	blob=$(ls -d "$WORK/out-$name"/mirror/*/ | head -1)bundle.json
	[ -f "$blob" ] || return
	openssl dgst "-$digest" -sign "$key" "$blob" | base64 -w0 >"$WORK/$name.$digest.sig"
	if "${OFFLINE[@]}" "$COSIGN" verify-blob --key "$pub" --signature "$WORK/$name.$digest.sig" \
		--insecure-ignore-tlog=true "$blob" >"$WORK/$name.probe.log" 2>&1; then
		record "$name" "probe: $digest sig" info "cosign ACCEPTS an ECDSA/$digest signature"
	else
		record "$name" "probe: $digest sig" info "cosign refuses ECDSA/$digest: $(grep -v '^WARNING' "$WORK/$name.probe.log" | tail -1 | cut -c1-70)"
	fi
}

check_key es256 "$KEYS/es256.pem" "$KEYS/es256.pub" ES256
check_key es256-sec1 "$KEYS/es256-sec1.pem" "$KEYS/es256.pub" ES256
check_key es384 "$KEYS/es384.pem" "$KEYS/es384.pub" ES384
check_key es512 "$KEYS/es512.pem" "$KEYS/es512.pub" ES512
check_key rsa2048-rs256 "$KEYS/rsa2048.pem" "$KEYS/rsa2048.pub" RS256
check_key rsa2048-rs384 "$KEYS/rsa2048-pkcs1.pem" "$KEYS/rsa2048.pub" RS384
check_key ed25519 "$KEYS/ed25519.pem" "$KEYS/ed25519.pub" EdDSA
check_key cosign-testdata "$KEYS/cosign.key" "$KEYS/cosign.pub" ES256 test-password
if [ -f "$WORK/cosign-gen/cosign.key" ]; then
	check_key cosign-generated "$WORK/cosign-gen/cosign.key" "$WORK/cosign-gen/cosign.pub" ES256 interop-password
elif [ -z "$COSIGN" ]; then
	record cosign-generated export skip "cosign not on PATH"
fi
cosign_digest_probe es384 "$KEYS/es384.pem" "$KEYS/es384.pub" sha384
cosign_digest_probe es512 "$KEYS/es512.pem" "$KEYS/es512.pub" sha512

echo
echo "== summary"
awk -F'\t' '{n[$3]++} END {printf "ok %d, FAIL %d, skip %d, info %d\n", n["ok"], n["FAIL"], n["skip"], n["info"]}' "$RESULTS"
if grep -q $'\tFAIL\t' "$RESULTS"; then
	exit 1
fi
exit 0
