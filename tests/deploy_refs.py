"""Cross-references in deploy/ that no schema checks (tests/deploy.sh):
ports, names and selectors agree between the manifests, the config in
the ConfigMap agrees with the pod (ports, mounted files, grace period),
and the systemd unit's stop timeout covers the shutdown delay and drain.
Exits 1 listing every mismatch."""
import os
import re
import sys
import tomllib

import yaml

K = "deploy/kubernetes"
problems = []


def check(ok, msg):
    if not ok:
        problems.append(msg)


def load(name):
    with open(os.path.join(K, name)) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def seconds(text):
    m = re.fullmatch(r"(\d+)(ms|s|m|h)", text)
    if not m:
        raise SystemExit(f"cannot read duration {text!r}")
    n, unit = int(m.group(1)), m.group(2)
    return n * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]


def port_of(addr):
    return int(addr.rsplit(":", 1)[1])


kust = load("kustomization.yaml")[0]
yamls = sorted(f for f in os.listdir(K) if f.endswith(".yaml") and f != "kustomization.yaml")
check(sorted(kust["resources"]) == yamls, f"kustomization resources {kust['resources']} != files {yamls}")

dep = load("deployment.yaml")[0]
svc = load("service.yaml")[0]
pdb = load("pdb.yaml")[0]
hpa = load("hpa.yaml")[0]
sm = load("servicemonitor.yaml")[0]
cm = load("configmap.yaml")[0]
secrets = {s["metadata"]["name"]: s for s in load("secrets.yaml")}

pod = dep["spec"]["template"]
labels = pod["metadata"]["labels"]
c = pod["spec"]["containers"][0]
ports = {p["name"]: p["containerPort"] for p in c["ports"]}

check(dep["spec"]["replicas"] >= 2, "Deployment needs 2+ replicas")
check(dep["spec"]["selector"]["matchLabels"].items() <= labels.items(), "Deployment selector misses the pod labels")
for name, sel in [
    ("Service", svc["spec"]["selector"]),
    ("PodDisruptionBudget", pdb["spec"]["selector"]["matchLabels"]),
    ("ServiceMonitor", sm["spec"]["selector"]["matchLabels"]),
]:
    target = labels if name != "ServiceMonitor" else svc["metadata"]["labels"]
    check(sel.items() <= target.items(), f"{name} selector {sel} does not select {target}")
check(pod["spec"]["affinity"]["podAntiAffinity"] is not None, "no pod anti-affinity")
for probe in ["readinessProbe", "livenessProbe", "startupProbe"]:
    p = c[probe]["httpGet"]["port"]
    check(p == "metrics", f"{probe} is not on the metrics port")
check(c["readinessProbe"]["httpGet"]["path"] == "/readyz", "readinessProbe is not /readyz")
for sp in svc["spec"]["ports"]:
    check(sp["targetPort"] in ports, f"Service targetPort {sp['targetPort']} is no container port")
svc_ports = {p["name"] for p in svc["spec"]["ports"]}
for ep in sm["spec"]["endpoints"]:
    check(ep["port"] in svc_ports, f"ServiceMonitor port {ep['port']} is not a Service port")
ref = hpa["spec"]["scaleTargetRef"]
check((ref["kind"], ref["name"]) == ("Deployment", dep["metadata"]["name"]), "HPA does not target the Deployment")
check(hpa["spec"]["minReplicas"] >= 2, "HPA minReplicas below 2")
ann = pod["metadata"]["annotations"]
check(int(ann["prometheus.io/port"]) == ports["metrics"], "prometheus.io/port is not the metrics port")

# the config the pods run
cfg = tomllib.loads(cm["data"]["regate.toml"])
check(port_of(cfg["server"]["listen"]) == ports["https"], "server.listen port != https containerPort")
check(port_of(cfg["metrics"]["listen"]) == ports["metrics"], "metrics.listen port != metrics containerPort")
check(cfg["metrics"]["listen"].startswith("0.0.0.0:"), "metrics.listen must be reachable by the kubelet's probes")
delay = seconds(cfg["server"].get("shutdown_delay", "5s"))
drain = seconds(cfg.get("timeouts", {}).get("drain", "30s"))
grace = pod["spec"]["terminationGracePeriodSeconds"]
check(grace > delay + drain, f"terminationGracePeriodSeconds {grace} <= shutdown_delay + drain ({delay + drain})")

# regate itself reads the ConfigMap's config: the only problems allowed
# are the files that exist only inside the pod
import subprocess
import tempfile

with tempfile.TemporaryDirectory() as d:
    path = os.path.join(d, "regate.toml")
    with open(path, "w") as f:
        f.write(cm["data"]["regate.toml"])
    out = subprocess.run([sys.argv[1], "check-config", path], capture_output=True, text=True,
                         env={**os.environ, "RUST_LOG": "error"})
    mounted_only = ("tls.cert:", "tls.key:", "upstream.ca:", "auth.users:")
    for line in out.stderr.splitlines():
        problem = line.split(": ", 1)[1] if ": " in line else line
        check(problem.startswith(mounted_only), f"ConfigMap regate.toml: {problem}")
    check(out.returncode in (0, 78), f"check-config exited {out.returncode}")

# every file the config names is mounted, from a key its Secret has
mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
vols = {v["name"]: v for v in pod["spec"]["volumes"]}
files = [cfg["tls"]["cert"], cfg["tls"]["key"], cfg["upstream"]["ca"], cfg["auth"]["users"]]
for f in files:
    found = False
    for name, path in mounts.items():
        v = vols[name]
        if "secret" in v and f.startswith(path + "/"):
            s = secrets.get(v["secret"]["secretName"])
            check(s is not None, f"volume {name}: no Secret {v['secret']['secretName']}")
            key = f[len(path) + 1:]
            check(s is not None and key in s.get("stringData", {}) | s.get("data", {}),
                  f"{f}: Secret {v['secret']['secretName']} has no key {key}")
            found = True
    check(found, f"{f} (named in regate.toml) is not mounted from a Secret")

# systemd: TimeoutStopSec covers the default shutdown_delay + drain
unit = open("deploy/systemd/regate.service").read()
stop = int(re.search(r"^TimeoutStopSec=(\d+)$", unit, re.M).group(1))
check(stop > 5 + 30, f"TimeoutStopSec={stop} does not cover shutdown_delay 5s + drain 30s")
check("RestartPreventExitStatus=78" in unit, "RestartPreventExitStatus is not EX_CONFIG (78)")

# alerts: each has a runbook section, a runbook_url to it, and a firing test
rules = yaml.safe_load(open("deploy/prometheus/regate.rules.yml"))
tests = yaml.safe_load(open("deploy/prometheus/regate.rules.test.yml"))
runbook = open("deploy/prometheus/RUNBOOK.md").read()
firing = {
    case["alertname"]
    for t in tests["tests"]
    for case in t.get("alert_rule_test", [])
    if case.get("exp_alerts")
}
for group in rules["groups"]:
    for rule in group["rules"]:
        name = rule.get("alert")
        if not name:
            continue
        url = rule.get("annotations", {}).get("runbook_url", "")
        check(url.endswith("RUNBOOK.md#" + name.lower()), f"{name}: runbook_url {url!r}")
        check(f"\n## {name}\n" in runbook, f"{name}: no section in RUNBOOK.md")
        check(name in firing, f"{name}: no promtool test where it fires")

if problems:
    for p in problems:
        print(f"deploy_refs: {p}", file=sys.stderr)
    sys.exit(1)
print(f"deploy_refs: {len(yamls)} manifests and the unit agree")
