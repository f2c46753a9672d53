#!/usr/bin/env bash
# benches/load/run.sh — regate side by side with nginx and HAProxy.
#
# Builds the release binary, then runs the shared harness (compare.sh) with
# regate as the candidate (benches/load/candidate.sh writes its config) in
# three modes, interleaved with the peers' cheap-hash configurations:
#   ka    HTTP/1.1 keep-alive over TLS (wrk, 32 connections)
#   h2    HTTP/2 over TLS (h2load, 32 connections)
#   full  new TCP + full TLS 1.3 handshake per request (tools/tlsload)
# plus the upstream-direct ceiling and the bcrypt peers in ka.
#
# Usage:  benches/load/run.sh            (~6 min with REPS=3)
# Env:    HARNESS (default ../shared/bench/compare.sh from the repo, or
#         /work/shared/bench/compare.sh), PLAN to override, NO_BUILD=1,
#         any compare.sh knob (REPS, DURATION, WAIT_QUIET_S, RUN_DIR, ...),
#         KEEP_AUDIT=1 to keep regate's audit files in the run dir.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

if [[ -z ${HARNESS:-} ]]; then
  for h in "$repo/../shared/bench/compare.sh" /work/shared/bench/compare.sh; do
    [[ -x $h ]] && { HARNESS=$h; break; }
  done
fi
[[ -n ${HARNESS:-} && -x $HARNESS ]] || { echo "run.sh: compare.sh not found (set HARNESS)" >&2; exit 1; }

if [[ ${NO_BUILD:-0} != 1 ]]; then
  (cd "$repo" && cargo build --release --bin regate)
fi
export REGATE_BIN=${REGATE_BIN:-${CARGO_TARGET_DIR:-$repo/target}/release/regate}

: "${PLAN:=upstream:ka nginx-bcrypt:ka haproxy-bcrypt:ka nginx-cheap:ka haproxy-cheap:ka candidate:ka \
nginx-cheap:h2 haproxy-cheap:h2 candidate:h2 \
nginx-cheap:full haproxy-cheap:full candidate:full}"
export PLAN
export CANDIDATE_URL=${CANDIDATE_URL:-https://127.0.0.1:9443/v1/bdbs}
port=$(python3 -c 'import sys,urllib.parse as u; print(u.urlsplit(sys.argv[1]).port or 443)' "$CANDIDATE_URL")
export REGATE_LISTEN=127.0.0.1:$port
export CANDIDATE_NAME=candidate
export CANDIDATE_CMD="exec '$here/candidate.sh'"
# The harness keeps its run dir (configs, logs); regate's audit trail in it
# is ~1 GB per run, removed at the end unless KEEP_AUDIT=1.
: "${RUN_DIR:=$(mktemp -d /tmp/bench.XXXXXX)}"
export RUN_DIR
rc=0
"$HARNESS" || rc=$?
if [[ ${KEEP_AUDIT:-0} != 1 ]]; then
  rm -f "$RUN_DIR"/regate/audit.jsonl*
fi
exit "$rc"
