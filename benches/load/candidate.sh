#!/usr/bin/env bash
# benches/load/candidate.sh — regate as the candidate of the shared bench
# harness (compare.sh CANDIDATE_CMD). Writes a realistic config from the
# harness's BENCH_* environment and execs the release binary:
#   16 users with bcrypt cost-10 hashes (from BENCH_HTPASSWD_BCRYPT), role admin
#   the redis-enterprise policy enforced
#   rate limits enabled, evaluated on every request, quotas too high to trigger
#   audit records to a file in the run dir (fsync default), metrics enabled
#   TLS from BENCH_CERT/BENCH_KEY, upstream BENCH_UPSTREAM_URL (plain HTTP)
# Knobs: REGATE_BIN (default target/release/regate of this checkout, or
# $CARGO_TARGET_DIR/release/regate), REGATE_LISTEN (127.0.0.1:9443),
# REGATE_DIR (where the config, users file and audit trail go),
# REGATE_MAX_CONN (10000) and REGATE_MAX_CONN_PER_IP (256; the
# idle-connection memory test raises both), REGATE_EXTRA_TOML (tables
# appended to the config, e.g. a [timeouts] section).
set -euo pipefail
: "${BENCH_CERT:?run me from compare.sh/start.sh (BENCH_* unset)}"
: "${BENCH_KEY:?}" "${BENCH_UPSTREAM_URL:?}" "${BENCH_HTPASSWD_BCRYPT:?}"

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
if [[ -z ${REGATE_BIN:-} ]]; then
  REGATE_BIN=${CARGO_TARGET_DIR:-$repo/target}/release/regate
fi
[[ -x $REGATE_BIN ]] || { echo "candidate.sh: no binary at $REGATE_BIN (run benches/load/run.sh or cargo build --release)" >&2; exit 1; }
: "${REGATE_LISTEN:=127.0.0.1:9443}" "${REGATE_MAX_CONN_PER_IP:=256}" "${REGATE_MAX_CONN:=10000}"
: "${REGATE_DIR:=${BENCH_RUN_DIR:-$(mktemp -d /tmp/regate-bench.XXXXXX)}/regate}"
mkdir -p "$REGATE_DIR"

# htpasswd "user:$2y$10$..." -> [[users]] entries
users=$REGATE_DIR/users.toml
: >"$users"
while IFS=: read -r name hash; do
  [[ -n $name && -n $hash ]] || continue
  printf '[[users]]\nname = "%s"\npassword_hash = "%s"\nrole = "admin"\n\n' "$name" "$hash" >>"$users"
done <"$BENCH_HTPASSWD_BCRYPT"

cfg=$REGATE_DIR/regate.toml
cat >"$cfg" <<TOML
[server]
listen = "$REGATE_LISTEN"

[tls]
cert = "$BENCH_CERT"
key = "$BENCH_KEY"

[upstream]
nodes = ["$BENCH_UPSTREAM_URL"]

# The bench upstream is nginx answering /v1/bdbs, not a cluster node: its
# 404 for the health probe (GET /v1/bootstrap) would mark it down. The
# peers run no active checks either; passive ejection stays on.
[upstream.health]
enabled = false

[limits]
max_connections = $REGATE_MAX_CONN
max_connections_per_ip = $REGATE_MAX_CONN_PER_IP

[auth]
source = "file"
users = "$users"

[policy]
profile = "redis-enterprise"
mode = "enforce"

# Evaluated on every request, never triggered by the bench.
[rate_limit]
enabled = true
backend = "local"
per_ip = { rate = "1000000/s", burst = 1000000 }
per_user = { rate = "1000000/s", burst = 1000000 }

[rate_limit.classes]
read = { rate = "1000000/s", burst = 1000000 }
write = { rate = "1000000/s", burst = 1000000 }
destructive = { rate = "1000000/s", burst = 1000000 }

[audit]
enabled = true
sink = "file"
path = "$REGATE_DIR/audit.jsonl"

[metrics]
enabled = true
listen = "127.0.0.1:0"

${REGATE_EXTRA_TOML:-}
TOML

exec "$REGATE_BIN" run --config "$cfg"
