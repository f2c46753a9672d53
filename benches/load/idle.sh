#!/usr/bin/env bash
# benches/load/idle.sh — memory with COUNT (10000) idle TLS keep-alive
# connections: regate (candidate.sh config, limits raised) against nginx
# (the harness's nginx-cheap config with worker_connections raised), both
# pinned to SRV_CPU, the client (idle_conns.py) on LOADGEN_CPU.
# Needs the harness fixtures running (start.sh nginx-cheap prints the
# BENCH_* environment; export it first) and a release build of regate.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
: "${BENCH_RUN_DIR:?export the BENCH_* environment printed by start.sh nginx-cheap}"
: "${COUNT:=10000}" "${SRV_CPU:=0}" "${LOADGEN_CPU:=1}" "${NGINX_PORT:=19454}" "${REGATE_PORT:=9443}"
# 10k sockets per process: raise the soft limit to the hard one (sandboxes
# may not allow more; COUNT must stay below it)
ulimit -n "$(ulimit -Hn)"
nofile=$(ulimit -n)
((COUNT + 500 < nofile)) || { echo "idle.sh: COUNT=$COUNT needs ulimit -n > $((COUNT + 500)) (have $nofile)" >&2; exit 1; }
dir=$(mktemp -d /tmp/regate-idle.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

wait_port() { for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }

# nginx: the harness's nginx-cheap config, own port and pid file, room for COUNT
sed -e "s/worker_connections [0-9]*;/worker_connections $((nofile - 100));/" \
  -e "s/^worker_processes 1;/worker_processes 1;\nworker_rlimit_nofile $nofile;/" \
  -e "s#listen 127.0.0.1:[0-9]* #listen 127.0.0.1:$NGINX_PORT #" \
  -e "s#^pid .*#pid $dir/nginx.pid;#" \
  -e "s#access_log .*;#access_log off;#" \
  "$BENCH_RUN_DIR/nginx-cheap/nginx.conf" >"$dir/nginx.conf"
taskset -c "$SRV_CPU" nginx -p "$dir" -e "$dir/nginx-error.log" -c "$dir/nginx.conf" &
pids+=($!)
wait_port "$NGINX_PORT"

REGATE_DIR=$dir/regate REGATE_LISTEN=127.0.0.1:$REGATE_PORT \
  REGATE_MAX_CONN=$((COUNT + 1000)) REGATE_MAX_CONN_PER_IP=$((COUNT + 1000)) \
  REGATE_EXTRA_TOML=$'[timeouts]\nrequest_header = "300s"\nidle = "300s"' \
  taskset -c "$SRV_CPU" "$here/candidate.sh" >"$dir/regate.log" 2>&1 &
pids+=($!)
wait_port "$REGATE_PORT"

for target in "regate https://127.0.0.1:$REGATE_PORT/v1/bdbs ${pids[1]}" \
  "nginx https://127.0.0.1:$NGINX_PORT/v1/bdbs ${pids[0]}"; do
  read -r label url pid <<<"$target"
  # warm up (first TLS handshake, auth cache, upstream pool) before the baseline
  curl -sk -o /dev/null -u "$BENCH_USER:$BENCH_PASS" "$url"
  taskset -c "$LOADGEN_CPU" python3 "$here/idle_conns.py" "$url" "$COUNT" --pids "$pid" --label "$label"
done
