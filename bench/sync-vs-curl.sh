#!/usr/bin/env bash
# sync-vs-curl.sh: how "mirror sync" compares with curl fetching the same
# files from the same "mirror serve" over loopback, and what a no-change
# run costs.
#
# It builds stellaops-cli, exports a bundle with ~1 GiB of VEX files signed
# with the TEST-ONLY key testdata/keys/es256.pem, imports it into an export
# root, serves that on 127.0.0.1, then times
#   - curl --parallel fetching every file of the export,
#   - curl fetching them one after the other on one connection,
#   - a full "mirror sync" into an empty root (download, SHA-256 of every
#     file, signature checks, fsync, atomic activation),
#   - a no-change "mirror sync" (time and request count from serve's
#     access log),
# and prints a Markdown table with the ratios measured in this run.
#
# Environment:
#   SYNC_BENCH_QUICK=1        100 MiB instead of 1 GiB
#   SYNC_BENCH_MIB=N          total size of the VEX files in MiB (default 1024, quick 100)
#   SYNC_BENCH_FILE_MIB=N     size of each VEX file in MiB (default 4)
#   SYNC_BENCH_PARALLEL=N     parallel transfers for curl and sync (default 4)
#   SYNC_BENCH_REPS=N         timed runs of each transfer (default 3; the median is shown)
#   SYNC_BENCH_NOCHANGE_RUNS  no-change runs to time (default 5; the median is shown)
#   SYNC_BENCH_KEEP=1         keep the work folder
#
# Requires: go, curl (7.66 or later for --parallel), jq, sha256sum.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
quick=${SYNC_BENCH_QUICK:-0}
if [[ $quick == 1 ]]; then
	total_mib=${SYNC_BENCH_MIB:-100}
else
	total_mib=${SYNC_BENCH_MIB:-1024}
fi
file_mib=${SYNC_BENCH_FILE_MIB:-4}
parallel=${SYNC_BENCH_PARALLEL:-4}
nochange_runs=${SYNC_BENCH_NOCHANGE_RUNS:-5}
reps=${SYNC_BENCH_REPS:-3}
# serve checks expiry against the real clock, so the export is dated an
# hour ago.
created=$(date -u -d '-1 hour' +%Y-%m-%dT%H:%M:%SZ)

for tool in go curl jq sha256sum; do
	command -v "$tool" >/dev/null || { echo "sync-vs-curl: $tool is required" >&2; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/sync-bench.XXXXXX")
serve_pid=
cleanup() {
	if [[ -n $serve_pid ]]; then
		kill "$serve_pid" 2>/dev/null || true
		wait "$serve_pid" 2>/dev/null || true
	fi
	if [[ ${SYNC_BENCH_KEEP:-0} == 1 ]]; then
		echo "sync-vs-curl: work folder kept: $work" >&2
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT

log() { echo "sync-vs-curl: $*" >&2; }
now_ns() { date +%s%N; }
secs() { awk -v ns="$1" 'BEGIN { printf "%.3f", ns / 1e9 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }

cli=$work/stellaops-cli
keys=$repo/testdata/keys
log "building stellaops-cli"
(cd "$repo" && go build -o "$cli" ./cmd/stellaops-cli)

# The source tree: one domain, one advisory, total_mib of OpenVEX files of
# file_mib each. Every file differs in its @id; the padding is random.
files=$(( (total_mib + file_mib - 1) / file_mib ))
log "writing $files VEX files of $file_mib MiB"
src=$work/src/bench
mkdir -p "$src/advisories" "$src/vex/openvex"
printf '{"displayName": "Benchmark"}\n' >"$src/domain.json"
printf '{"id": "BENCH-2026-0001", "summary": "benchmark advisory"}\n' >"$src/advisories/BENCH-2026-0001.json"
pad=$work/pad
head -c $(( file_mib * 1024 * 1024 * 3 / 4 )) /dev/urandom | base64 -w0 | head -c $(( file_mib * 1024 * 1024 - 200 )) >"$pad"
for i in $(seq -w 1 "$files"); do
	{
		printf '{"@context":"https://openvex.dev/ns/v0.2.0","@id":"https://vex.example.invalid/bench/%s","timestamp":"2026-03-01T00:00:00Z","statements":[],"pad":"' "$i"
		cat "$pad"
		printf '"}\n'
	} >"$src/vex/openvex/f-$i.json"
done

log "exporting and importing the bundle"
"$cli" mirror export -q --source "$work/src" --out "$work/bundle" --key "$keys/es256.pem" --created "$created" >/dev/null
"$cli" mirror import -q --bundle-path "$work/bundle" --export-root "$work/upstream" --trust-roots "$keys/es256.pub"
export_id=$(jq -r .exportId "$work/bundle/mirror.json")

# A free port, then serve with its JSON access log on stderr.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 18543)
access=$work/access.log
"$cli" mirror serve --export-root "$work/upstream" --listen "127.0.0.1:$port" 2>"$access" &
serve_pid=$!
base=http://127.0.0.1:$port
for _ in $(seq 1 100); do
	curl -fsS -o /dev/null "$base/readyz" 2>/dev/null && break
	sleep 0.1
done
curl -fsS -o /dev/null "$base/readyz"

requests_logged() { grep -c '"path"' "$access" || true; }
# settle waits until serve has logged every request it answered.
settle() {
	local last=-1 cur
	for _ in $(seq 1 50); do
		cur=$(requests_logged)
		[[ $cur == "$last" ]] && break
		last=$cur
		sleep 0.05
	done
}

# Every file of the export, as curl fetches them.
paths=$( (jq -r '.files[].path' "$work/bundle/mirror.json"; printf '%s\n' mirror.json mirror.dsse.json SHA256SUMS) )
nfiles=$(wc -l <<<"$paths")
bytes=$(du -sb "$work/upstream/$export_id" | cut -f1)
cfg=$work/curl.cfg
: >"$cfg"
while read -r p; do
	printf 'url = "%s/concelier/exports/%s/%s"\noutput = "%s"\n' "$base" "$export_id" "$p" "$work/curl/$p" >>"$cfg"
done <<<"$paths"

# median runs a timed command reps times, each after the page cache's
# dirty pages are written out (so no run pays for the previous one's
# writeback) and after prep, and prints the median in nanoseconds.
median() {
	local prep=$1
	shift
	local t=()
	for _ in $(seq 1 "$reps"); do
		eval "$prep"
		sync
		local s0
		s0=$(now_ns)
		"$@"
		t+=($(( $(now_ns) - s0 )))
	done
	printf '%s\n' "${t[@]}" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'
}
curl_parallel() { curl -fsS --no-progress-meter --parallel --parallel-max "$parallel" --create-dirs -K "$cfg"; }
curl_parallel_sum() { curl_parallel && (cd "$work/curl" && sha256sum --quiet -c SHA256SUMS); }
curl_sequential() { curl -fsS --create-dirs -K "$cfg"; }
sync_full() {
	"$cli" mirror sync -q --from "$base" --export-root "$work/downstream" --trust-roots "$keys/es256.pub" --parallel "$parallel"
}

log "curl --parallel --parallel-max $parallel: $nfiles files ($reps runs each)"
curl_par=$(median 'rm -rf "$work/curl"' curl_parallel)
log "curl --parallel + sha256sum -c"
curl_sum=$(median 'rm -rf "$work/curl"' curl_parallel_sum)
log "curl, one file after the other on one connection"
curl_seq=$(median 'rm -rf "$work/curl"' curl_sequential)
rm -rf "$work/curl"

log "mirror sync, full"
sync_full_ns=$(median 'rm -rf "$work/downstream"' sync_full)
cmp -s "$work/upstream/$export_id/mirror.json" "$work/downstream/$export_id/mirror.json"
# The request count of one more full run, from serve's access log.
rm -rf "$work/downstream"
settle
before=$(requests_logged)
sync_full
settle
sync_full_reqs=$(( $(requests_logged) - before ))

log "mirror sync, no change ($nochange_runs runs)"
times=()
for _ in $(seq 1 "$nochange_runs"); do
	settle
	before=$(requests_logged)
	start=$(now_ns)
	"$cli" mirror sync -q --from "$base" --export-root "$work/downstream"
	times+=($(( $(now_ns) - start )))
	settle
	reqs=$(( $(requests_logged) - before ))
	if [[ $reqs != 1 ]]; then
		echo "sync-vs-curl: a no-change sync made $reqs requests, want 1" >&2
		exit 1
	fi
done
nochange=$(printf '%s\n' "${times[@]}" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')

mib=$(awk -v b="$bytes" 'BEGIN { printf "%.0f", b / 1048576 }')
cat <<EOF

### mirror sync vs curl: $nfiles files, $mib MiB, loopback, $(nproc) CPUs, parallel $parallel, median of $reps

| run | time (s) | requests | MiB/s | vs curl --parallel |
| --- | ---: | ---: | ---: | ---: |
| curl --parallel | $(secs $curl_par) | $nfiles | $(awk -v b="$bytes" -v ns="$curl_par" 'BEGIN { printf "%.0f", b / 1048576 / (ns / 1e9) }') | 1.00 |
| curl --parallel + sha256sum -c | $(secs $curl_sum) | $nfiles | $(awk -v b="$bytes" -v ns="$curl_sum" 'BEGIN { printf "%.0f", b / 1048576 / (ns / 1e9) }') | $(ratio $curl_sum $curl_par) |
| curl, sequential | $(secs $curl_seq) | $nfiles | $(awk -v b="$bytes" -v ns="$curl_seq" 'BEGIN { printf "%.0f", b / 1048576 / (ns / 1e9) }') | $(ratio $curl_seq $curl_par) |
| mirror sync, full (verify, fsync, activate) | $(secs $sync_full_ns) | $sync_full_reqs | $(awk -v b="$bytes" -v ns="$sync_full_ns" 'BEGIN { printf "%.0f", b / 1048576 / (ns / 1e9) }') | $(ratio $sync_full_ns $curl_par) |
| mirror sync, no change (median of $nochange_runs) | $(secs $nochange) | 1 | - | - |

Targets (issue 7): full sync within 1.5x curl; no-change run under 50 ms with exactly one request.
EOF
