#!/usr/bin/env bash
# serve-vs-nginx.sh: requests per second of "stellaops-cli mirror serve" against
# nginx serving the same export root with the same Cache-Control headers, in
# the same run, on loopback only. Prints a Markdown table with the ratios.
#
# Then, unless SLOWLORIS=0: 10,000 clients sending request headers one byte at
# a time against serve, while wrk measures a normal request's latency; prints
# serve's peak memory and the p99 latency.
#
# Usage: bench/serve-vs-nginx.sh            (from the repository root)
# Env:   DURATION=5s  ROUNDS=2  CONNECTIONS=32  THREADS=2  SLOWLORIS=1  SLOW_CLIENTS=10000
#
# Each figure is the best of ROUNDS runs of DURATION, serve and nginx taking
# turns, so a burst of other load on the machine does not decide a ratio.
# Needs: go, nginx, wrk (installed with apt-get when missing), openssl.
set -euo pipefail

DURATION=${DURATION:-5s}
ROUNDS=${ROUNDS:-2}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
SLOWLORIS=${SLOWLORIS:-1}
SLOW_CLIENTS=${SLOW_CLIENTS:-10000}
BENCH_USER=bench
BENCH_PASS='bench-password-not-secret'

repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/serve-vs-nginx.XXXXXX")

# Every process started here records its pid in $work/*.pid (start_serve runs
# in a command substitution, so an array would not see its children).
cleanup() {
	local f p
	for f in "$work"/*.pid "$work"/nginx/nginx.pid; do
		[[ -f $f ]] || continue
		p=$(cat "$f")
		kill "$p" 2>/dev/null || true
	done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

log() { printf '%s\n' "$*" >&2; }

need() {
	local missing=()
	for c in "$@"; do command -v "$c" >/dev/null 2>&1 || missing+=("$c"); done
	if ((${#missing[@]})); then
		log "installing ${missing[*]}"
		if [[ $(id -u) -eq 0 ]]; then
			apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
		else
			sudo apt-get update -qq >/dev/null && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
		fi
	fi
}
need nginx wrk
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return
		fi
	done
}

# --- build --------------------------------------------------------------------
log "building stellaops-cli"
(cd "$repo" && go build -o "$work/stellaops-cli" ./cmd/stellaops-cli)
cli=$work/stellaops-cli

# Helper programs: bcrypt for the htpasswd file, and the slow-header clients.
mkdir -p "$work/tools"
cp "$repo/go.mod" "$repo/go.sum" "$work/tools/"
sed -i 's|^module .*|module benchtools|' "$work/tools/go.mod"
mkdir -p "$work/tools/bcrypt" "$work/tools/slowloris"
cat >"$work/tools/bcrypt/main.go" <<'EOF'
package main

import (
	"fmt"
	"os"

	"golang.org/x/crypto/bcrypt"
)

func main() {
	h, err := bcrypt.GenerateFromPassword([]byte(os.Args[2]), bcrypt.DefaultCost)
	if err != nil {
		panic(err)
	}
	fmt.Printf("%s:%s\n", os.Args[1], h)
}
EOF
cat >"$work/tools/slowloris/main.go" <<'EOF'
// slowloris keeps N connections open, each sending a request header one byte
// at a time, reconnecting when the server closes it, until the duration ends.
package main

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	addr := os.Args[1]
	n, _ := strconv.Atoi(os.Args[2])
	d, _ := time.ParseDuration(os.Args[3])
	deadline := time.Now().Add(d)
	req := []byte("GET /concelier/exports/index.json HTTP/1.1\r\nHost: x\r\nUser-Agent: slow\r\nX-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n")
	var open, reconnects atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			time.Sleep(time.Duration(i%1000) * time.Millisecond) // spread the start
			for time.Now().Before(deadline) {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					time.Sleep(100 * time.Millisecond)
					continue
				}
				open.Add(1)
				for j := 0; time.Now().Before(deadline); j++ {
					if _, err := c.Write(req[j%len(req) : j%len(req)+1]); err != nil {
						break
					}
					time.Sleep(time.Second)
				}
				c.Close()
				open.Add(-1)
				reconnects.Add(1)
			}
		}(i)
	}
	wg.Wait()
	fmt.Printf("slow clients: %d, reconnects: %d\n", n, reconnects.Load())
}
EOF
(cd "$work/tools" && GOFLAGS=-mod=mod go build -o "$work/bcrypt" ./bcrypt && GOFLAGS=-mod=mod go build -o "$work/slowloris" ./slowloris)

# --- export root ----------------------------------------------------------------
# A real export made by the export and import verbs: one domain whose
# bundle.json is a little over 1 MiB, and one VEX export.
log "exporting and importing a 1 MiB bundle"
src=$work/src/primary
mkdir -p "$src/advisories" "$src/vex/openvex"
pad=$(head -c 1000 /dev/zero | tr '\0' 'x')
for i in $(seq -w 1 1060); do
	printf '{"id":"ADV-%s","summary":"%s"}\n' "$i" "$pad" >"$src/advisories/ADV-$i.json"
done
echo '{"@context":"https://openvex.dev/ns/v0.2.0","statements":[]}' >"$src/vex/openvex/bench.json"
"$cli" -q mirror export --source "$work/src" --out "$work/bundle" --key "$repo/testdata/keys/es256.pem" >/dev/null
"$cli" -q mirror import --bundle-path "$work/bundle" --export-root "$work/root" --trust-roots "$repo/testdata/keys/es256.pub" >/dev/null
root=$work/root
bundle_bytes=$(stat -c %s "$root/latest/mirror/primary/bundle.json")
"$work/bcrypt" "$BENCH_USER" "$BENCH_PASS" >"$work/htpasswd"
auth="Authorization: Basic $(printf '%s:%s' "$BENCH_USER" "$BENCH_PASS" | base64 -w0)"

# --- serve ----------------------------------------------------------------------
start_serve() { # name, extra flags...
	local name=$1
	shift
	"$cli" -o json mirror serve --export-root "$root" --listen 127.0.0.1:0 "$@" \
		>"$work/$name.out" 2>"$work/$name.log" &
	echo $! >"$work/$name.pid"
	for _ in $(seq 1 100); do
		if grep -q '"url"' "$work/$name.out" 2>/dev/null; then
			sed -n 's/.*"url": "\([^"]*\)".*/\1/p' "$work/$name.out"
			return
		fi
		sleep 0.1
	done
	log "serve $name did not start:"
	cat "$work/$name.log" >&2
	exit 1
}
serve_open=$(start_serve open)
serve_auth=$(start_serve auth --htpasswd "$work/htpasswd" --require-authentication)

# --- nginx ----------------------------------------------------------------------
ng=$work/nginx
mkdir -p "$ng/tmp"
nginx_open_port=$(free_port)
nginx_auth_port=$(free_port)
while [[ $nginx_auth_port == "$nginx_open_port" ]]; do nginx_auth_port=$(free_port); done
locations() {
	cat <<EOF
        location = /concelier/exports/index.json {
            alias $root/latest/mirror/index.json;
            default_type application/json;
            add_header Cache-Control "public, max-age=60" always;
        }
        location ~ ^/concelier/exports/mirror/([a-z0-9-]+)/(manifest\.json|bundle\.json|bundle\.json\.jws|bundle\.json\.sig)\$ {
            alias $root/latest/mirror/\$1/\$2;
            default_type application/json;
            add_header Cache-Control "public, max-age=300, immutable" always;
        }
        location / { return 404; }
EOF
}
cat >"$ng/nginx.conf" <<EOF
worker_processes 2;
pid $ng/nginx.pid;
error_log $ng/error.log warn;
daemon off;
events { worker_connections 4096; }
http {
    access_log $ng/access.log;
    client_body_temp_path $ng/tmp/body;
    proxy_temp_path $ng/tmp/proxy;
    fastcgi_temp_path $ng/tmp/fastcgi;
    uwsgi_temp_path $ng/tmp/uwsgi;
    scgi_temp_path $ng/tmp/scgi;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    etag on;
    server {
        listen 127.0.0.1:$nginx_open_port;
$(locations)
    }
    server {
        listen 127.0.0.1:$nginx_auth_port;
        auth_basic "stellaops-mirror";
        auth_basic_user_file $work/htpasswd;
$(locations)
    }
}
EOF
nginx_args=(-c "$ng/nginx.conf" -p "$ng/" -e "$ng/error.log")
# As root, nginx would switch its workers to "nobody": keep the current user.
if [[ $(id -u) -eq 0 ]]; then nginx_args+=(-g "user $(id -un) $(id -gn);"); fi
"$NGINX" "${nginx_args[@]}" 2>>"$ng/error.log" &
echo $! >"$work/nginx-master.pid"
nginx_open="http://127.0.0.1:$nginx_open_port"
nginx_auth="http://127.0.0.1:$nginx_auth_port"
for _ in $(seq 1 100); do
	curl -fs -o /dev/null "$nginx_open/concelier/exports/index.json" && break
	sleep 0.1
done
curl -fs -o /dev/null "$nginx_open/concelier/exports/index.json" || {
	log "nginx did not start:"
	cat "$ng/error.log" >&2
	exit 1
}

# Same files, same Cache-Control on both.
for p in /concelier/exports/index.json /concelier/exports/mirror/primary/manifest.json /concelier/exports/mirror/primary/bundle.json; do
	a=$(curl -fs "$serve_open$p" | sha256sum)
	b=$(curl -fs "$nginx_open$p" | sha256sum)
	[[ $a == "$b" ]] || { log "serve and nginx differ on $p"; exit 1; }
	ca=$(curl -fsI "$serve_open$p" | tr -d '\r' | grep -i '^cache-control:')
	cb=$(curl -fsI "$nginx_open$p" | tr -d '\r' | grep -i '^cache-control:')
	[[ ${ca,,} == "${cb,,}" ]] || { log "Cache-Control differs on $p: '$ca' vs '$cb'"; exit 1; }
done
curl -fs -o /dev/null -H "$auth" "$serve_auth/concelier/exports/index.json" || { log "serve rejects the bench credentials"; exit 1; }
curl -fs -o /dev/null -H "$auth" "$nginx_auth/concelier/exports/index.json" || { log "nginx rejects the bench credentials"; exit 1; }

# --- wrk ------------------------------------------------------------------------
rps() { # url [header]
	local out
	if [[ $# -gt 1 ]]; then
		out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" -H "$2" "$1")
	else
		out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" "$1")
	fi
	if grep -q 'Non-2xx' <<<"$out"; then
		log "wrk saw non-2xx answers from $1:"
		log "$out"
	fi
	awk '/^Requests\/sec:/ {printf "%.0f", $2}' <<<"$out"
}

declare -A R
targets=(
	"index.json|/concelier/exports/index.json"
	"manifest.json|/concelier/exports/mirror/primary/manifest.json"
	"bundle.json ($((bundle_bytes / 1024)) KiB)|/concelier/exports/mirror/primary/bundle.json"
)
best() { # key value: keep the larger
	local cur=${R["$1"]:-0}
	if ((${2:-0} > cur)); then R["$1"]=$2; fi
}
for t in "${targets[@]}"; do
	name=${t%%|*}
	path=${t#*|}
	for round in $(seq 1 "$ROUNDS"); do
		log "wrk $DURATION: $name, round $round of $ROUNDS"
		best "$name|none|serve" "$(rps "$serve_open$path")"
		best "$name|none|nginx" "$(rps "$nginx_open$path")"
		best "$name|basic|serve" "$(rps "$serve_auth$path" "$auth")"
		best "$name|basic|nginx" "$(rps "$nginx_auth$path" "$auth")"
	done
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

echo
echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION, best of $ROUNDS, on 127.0.0.1, $(nproc) CPUs, $(go version | awk '{print $3}'), $("$NGINX" -v 2>&1 | sed 's|.*/||')"
echo
echo "| target | auth | serve req/s | nginx req/s | serve/nginx | serve basic/none |"
echo "| --- | --- | ---: | ---: | ---: | ---: |"
for t in "${targets[@]}"; do
	name=${t%%|*}
	for a in none basic; do
		s=${R["$name|$a|serve"]}
		n=${R["$name|$a|nginx"]}
		own=""
		if [[ $a == basic ]]; then own=$(ratio "$s" "${R["$name|none|serve"]}"); fi
		echo "| $name | $a | $s | $n | $(ratio "$s" "$n") | $own |"
	done
done
mib=$(awk -v r="${R["bundle.json ($((bundle_bytes / 1024)) KiB)|none|serve"]}" -v b="$bundle_bytes" 'BEGIN { printf "%.0f", r * b / 1048576 }')
echo
echo "bundle throughput, serve without auth: ${mib} MiB/s. nginx checks bcrypt on every request (no cache); serve checks it once per credential cache TTL."

# --- slow headers ---------------------------------------------------------------
if [[ $SLOWLORIS == 1 ]]; then
	ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
	# A fresh serve process, so its memory figures are its own.
	kill "$(cat "$work/open.pid")" 2>/dev/null || true
	serve_slow=$(start_serve slow)
	slow_pid=$(cat "$work/slow.pid")
	addr=${serve_slow#http://}
	log "slow headers: $SLOW_CLIENTS clients for 15s"
	"$work/slowloris" "$addr" "$SLOW_CLIENTS" 15s >"$work/slowloris.out" &
	lpid=$!
	echo "$lpid" >"$work/slowloris.pid"
	# Let the connections open (they are spread over the first second), then
	# measure a normal client while they hold on.
	sleep 4
	conns=$(ss -Htn state established "( sport = :${addr##*:} )" | wc -l)
	lat=$(wrk -t1 -c4 -d5s --latency "$serve_slow/concelier/exports/index.json")
	p99=$(awk '$1 == "99%" {print $2}' <<<"$lat")
	rps_slow=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' <<<"$lat")
	rss=$(awk '/^VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$slow_pid/status")
	wait "$lpid" || true
	hwm=$(awk '/^VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$slow_pid/status")
	echo
	echo "| slow-header clients | established at measurement | serve RSS now / peak | index.json p99 (wrk -c4) | req/s meanwhile |"
	echo "| ---: | ---: | ---: | ---: | ---: |"
	echo "| $SLOW_CLIENTS | $conns | ${rss} MiB / ${hwm} MiB | $p99 | $rps_slow |"
	cat "$work/slowloris.out"
fi
