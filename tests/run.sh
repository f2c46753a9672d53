#!/usr/bin/env bash
# The project's test command (README "Run the tests"; .ci/run calls it).
# Installs what the tests need on a fresh Debian machine, then runs them.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v redis-server >/dev/null || need_apt+=(redis-server)
# systemd-analyze (tests/deploy.sh) and systemd-socket-activate (tests/operations.rs)
command -v systemd-socket-activate >/dev/null || need_apt+=(systemd)
# the prometheus package brings both: promtool (format checks) and the
# server the gateway_metrics test scrapes with
{ command -v promtool && command -v prometheus; } >/dev/null || need_apt+=(prometheus)
command -v python3 >/dev/null || need_apt+=(python3)
python3 -m pip --version >/dev/null 2>&1 || need_apt+=(python3-pip)
command -v curl >/dev/null || need_apt+=(curl)
command -v openssl >/dev/null || need_apt+=(openssl)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "tests/run.sh: installing ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
# real clients: the redis-enterprise client, requests and httpx[http2]
# (tests/early_answers.rs)
if ! python3 -c 'import redis_enterprise, requests, httpx, h2' 2>/dev/null; then
  echo "tests/run.sh: installing the Python clients"
  python3 -m pip install -q redis-enterprise requests 'httpx[http2]' 2>/dev/null \
    || python3 -m pip install -q --break-system-packages redis-enterprise requests 'httpx[http2]'
fi
if ! python3 -c 'import sslyze' 2>/dev/null; then
  echo "tests/run.sh: installing sslyze (the TLS profile check in tests/listener.rs)"
  python3 -m pip install -q sslyze 2>/dev/null \
    || python3 -m pip install -q --break-system-packages sslyze
fi

cargo test --locked --all-targets
# deploy/: systemd units, Kubernetes manifests, Dockerfile, alert rules
bash tests/deploy.sh
