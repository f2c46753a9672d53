#!/usr/bin/env python3
"""Generate config/policy/redis-enterprise.toml from the published docs.

Inputs (copies with attribution live in tests/data/, see tests/data/SOURCES.md):
  endpoints.json                 method + path -> permission, section role table, flags
  roles.json                     built-in role -> permissions (two tables that disagree)
  live_non_inventory_routes.json routes real clusters serve that the docs omit

Usage:  python3 tools/gen_policy.py [--src tests/data] [--out config/policy/redis-enterprise.toml]
        python3 tools/gen_policy.py --check     # exit 1 if the committed file is stale

Stdlib only. Every place where the docs contradict themselves is resolved the
stricter way and written as a comment into the generated file, next to the
route it concerns, and summarised in the header.
"""
import argparse
import json
import os
import re
import sys

ADMIN_ONLY = "admin_only"
ANY_ROLE = "any_role"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")

# Words in a path segment or permission name that make a route destructive
# (rate-limit class); see classify().
DESTRUCTIVE_WORDS = ("delete", "flush", "purge", "reset", "cancel", "restore_default",
                     "stop_traffic", "remove")
# Non-GET routes that can take nodes or services down or re-create a cluster.
DESTRUCTIVE_TEMPLATES = {
    "POST /v1/services", "POST /v1/local/services",
    "POST /v1/bootstrap/{action}",
    "POST /v1/cluster/actions/{action}", "POST /v1/nodes/{node_uid}/actions/{action}",
}
# Self-service: what any authenticated user may do to themselves (docs:
# requests/users/password.md, requests/users/_index.md).
SELF_SERVICE = {
    "PUT /v1/users/password": "password",
    "POST /v1/users/password": "password",
    "DELETE /v1/users/password": "password",
    "GET /v1/users/{uid}": "own_user",
    "PUT /v1/users/{uid}": "own_user_update",
}
SELF_NOTES = {
    "password": "self-service: any authenticated user may change their own password; stricter: "
                "the body must carry `username` equal to the caller's (the docs let an absent "
                "username mean 'the authenticated user', which behind a gateway need not be the "
                "caller); anyone else's needs admin",
    "own_user": "self-service: any authenticated user may read their own record "
                "({uid} == the caller's uid, canonical decimal)",
    "own_user_update": "self-service: any authenticated user may update their own record; "
                       "stricter: only the fields the docs name (name, password, "
                       "password_hash_method, email_alerts, bdbs_email_alerts, "
                       "cluster_email_alerts, alert_*), never role or role_uids",
}
# Routes where the docs give no permission but say who may call them.
ANY_ROLE_TEMPLATES = {"GET /v1/users/permissions", "GET /v1/users/permissions/{role}",
                      "GET /v1/users/role"}
# A permission the docs do not state, taken from an explicit cross-reference.
CROSS_REFERENCED = {"POST /v2/bdbs"}
# A state-changing route documented with a view_* permission: require the
# permission its sibling actions need.
WRITE_WITH_VIEW_PERMISSION = {"PUT /v1/bdbs/{uid}/actions/rebalance": "update_bdb_with_action"}


def load(src, name):
    with open(os.path.join(src, name), encoding="utf-8") as f:
        return json.load(f)


def q(s):
    return json.dumps(s, ensure_ascii=True)


def strict_roles(roles):
    """A role holds a permission only if both tables of permissions.md agree."""
    out = {}
    for role, perms in roles["roles"].items():
        other = set(roles["roles_from_permission_table"].get(role, []))
        out[role] = sorted(set(perms) & other)
    return out


def classify(method, path, permission):
    if method == "GET":
        return "read"
    words = [s for s in path.split("/") if s and not s.startswith("{")] + [permission]
    if method == "DELETE" or f"{method} {path}" in DESTRUCTIVE_TEMPLATES or any(
            w in word for word in words for w in DESTRUCTIVE_WORDS):
        return "destructive"
    return "write"


def live_template(key, documented_paths):
    """`GET /v1/nodes/{}/wd_status` -> `/v1/nodes/{uid}/wd_status`, reusing the
    parameter names of a documented route with the same shape when there is one."""
    method, path = key.split(" ", 1)
    shape = re.sub(r"\{[^}]*\}", "{}", path)
    for p in documented_paths:
        if re.sub(r"\{[^}]*\}", "{}", p) == shape:
            return method, p
    names = iter(["uid", "snapshot_name", "name3", "name4"])
    return method, re.sub(r"\{\}", lambda _: "{" + next(names) + "}", path)


def build(src):
    endpoints = load(src, "endpoints.json")
    roles = load(src, "roles.json")
    live = load(src, "live_non_inventory_routes.json")
    strict = strict_roles(roles)
    holders = {}
    for role, perms in strict.items():
        for p in perms:
            holders.setdefault(p, set()).add(role)
    choices = []  # (template or "*", text) for the header
    routes = {}   # "METHOD /path" -> dict

    for role, d in roles.get("table_disagreements", {}).items():
        for p in d.get("only_in_permission_table", []) + d.get("only_in_role_table", []):
            choices.append(("*", f"role {role} does NOT hold {p}: only one of the two "
                                  "permissions.md tables grants it"))

    for e in endpoints:
        key = f"{e['method']} {e['path']}"
        notes = []
        perm = e.get("permission")
        flags = e.get("flags") or []
        if key in routes:
            prev = routes[key]
            if prev["permission"] != perm:
                sys.exit(f"conflicting duplicate {key}: {prev['permission']} vs {perm}")
            continue
        if key in WRITE_WITH_VIEW_PERMISSION:
            new = WRITE_WITH_VIEW_PERMISSION[key]
            notes.append(f"docs give {perm} for a state-changing {e['method']}; stricter: {new}")
            perm = new
        if perm is None:
            inferred = e.get("permission_inferred")
            if key in CROSS_REFERENCED and inferred:
                perm = inferred
                notes.append(f"no permission documented; {e.get('permission_inferred_basis')}")
            elif key in ANY_ROLE_TEMPLATES:
                perm = ANY_ROLE
                notes.append("openapi.json security Auth: [] (any authenticated user); "
                             "stricter: every built-in role except `none`")
            else:
                perm = ADMIN_ONLY
                why = "no permission documented; admin-only"
                if inferred:
                    why += f" (name-match guess {inferred} not used: {e.get('permission_inferred_basis')})"
                notes.append(why)
        if e.get("openapi_permission") is None and any("security lists None" in f for f in flags):
            notes.append("openapi.json lists no permission but the request page gives "
                         f"{perm}; stricter: {perm}")
        section = e.get("permission_roles") or []
        route_roles = None
        if section and perm not in (ADMIN_ONLY, ANY_ROLE):
            have = holders.get(perm, set())
            narrower = sorted(have & set(section))
            if set(narrower) != have:
                route_roles = narrower
                notes.append(f"section table allows only {narrower}; role table also grants "
                             f"{sorted(have - set(section))}: not granted here")
            broader = sorted(set(section) - have)
            if broader:
                notes.append(f"section table also lists {broader} but the role tables do not "
                             f"grant {perm}: not granted")
        if key in SELF_SERVICE:
            notes.append(SELF_NOTES[SELF_SERVICE[key]])
        if e.get("node_local"):
            notes.append("node-local: served by the node that receives it")
        routes[key] = {
            "method": e["method"], "path": e["path"], "permission": perm,
            "class": classify(e["method"], e["path"], perm),
            "roles": route_roles, "node_local": bool(e.get("node_local")),
            "self": SELF_SERVICE.get(key), "notes": notes, "source": "docs",
        }

    documented_paths = sorted({e["path"] for e in endpoints})
    for key, info in sorted(live["routes"].items()):
        method, path = live_template(key, documented_paths)
        full = f"{method} {path}"
        if full in routes:
            continue
        routes[full] = {
            "method": method, "path": path, "permission": ADMIN_ONLY,
            "class": classify(method, path, ADMIN_ONLY), "roles": None, "node_local": False,
            "self": SELF_SERVICE.get(full), "source": "live",
            "notes": [f"live but undocumented ({info['disposition']}, seen on "
                      f"{', '.join(info['present_versions'])}); permission unknown: admin-only"],
        }

    for r in routes.values():
        for n in r["notes"]:
            if not n.startswith("node-local"):
                choices.append((f"{r['method']} {r['path']}", n))
    return roles, strict, routes, choices, live


def render(roles, strict, routes, choices, live):
    src = roles["source"]
    perms = sorted(roles["all_permissions"]) + [ADMIN_ONLY, ANY_ROLE]
    out = []
    w = out.append
    w("# Built-in policy profile `redis-enterprise`: route -> version -> permission -> class.")
    w("# GENERATED by tools/gen_policy.py from tests/data/*.json; do not edit by hand.")
    w("#")
    w("# Attribution:")
    w(f"#   roles.json: {src['repo']} @ {src['commit']}, {src['doc']}")
    w(f"#   endpoints.json: request pages and api-reference/openapi.json of {src['repo']}")
    w("#     (per-route `doc` fields), same docset as roles.json.")
    w("#   live_non_inventory_routes.json: crates.io redis-enterprise 0.10.0 =")
    w("#     redis-developer/redis-enterprise-rs @ bcf2a92284de1b69adeba21781f27d4b59d649db,")
    w(f"#     tests/fixtures/ (MIT OR Apache-2.0), verified {live['verified_at']} by {live['evidence']}.")
    w("#")
    w("# Synthetic permissions (not in the docs):")
    w(f"#   {ADMIN_ONLY}: held by `admin` only; routes whose permission the docs do not give.")
    w(f"#   {ANY_ROLE}: held by every built-in role except `none`; routes documented as")
    w("#     open to any authenticated user.")
    w("# Route `roles`: the request page's own role table is narrower than permissions.md;")
    w("#   only these built-in roles (and custom roles granted the permission explicitly) pass.")
    w("# Route `self`: self-service rule (password: body username must be the caller's own;")
    w("#   own_user / own_user_update: {uid} must be the caller's uid).")
    w("#")
    w("# Stricter-reading choices (each also sits next to its route below):")
    for tmpl, text in choices:
        w(f"#   - {tmpl}: {text}")
    w("")
    w('profile = "redis-enterprise"')
    w("")
    w("permissions = [")
    for p in perms:
        w(f"  {q(p)},")
    w("]")
    w("")
    w("routes = [")
    for key in sorted(routes, key=lambda k: (routes[k]["path"], METHODS.index(routes[k]["method"]))):
        r = routes[key]
        for n in r["notes"]:
            w(f"  # {n}")
        fields = [f"method = {q(r['method'])}", f"path = {q(r['path'])}",
                  f"permission = {q(r['permission'])}", f"class = {q(r['class'])}"]
        if r["roles"] is not None:
            fields.append("roles = [" + ", ".join(q(x) for x in r["roles"]) + "]")
        if r["self"]:
            fields.append(f"self = {q(r['self'])}")
        if r["node_local"]:
            fields.append("node_local = true")
        if r["source"] != "docs":
            fields.append(f"source = {q(r['source'])}")
        w("  { " + ", ".join(fields) + " },")
    w("]")
    w("")
    w("# Built-in roles: a permission is held only where both tables of permissions.md agree.")
    w("[roles]")
    for role in roles["roles"]:
        extra = [ADMIN_ONLY] if role == "admin" else []
        extra += [ANY_ROLE] if role != "none" else []
        w(f"{role} = [" + ", ".join(q(p) for p in strict[role] + extra) + "]")
    return "\n".join(out) + "\n"


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", default=os.path.join(root, "tests", "data"))
    ap.add_argument("--out", default=os.path.join(root, "config", "policy", "redis-enterprise.toml"))
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args()
    text = render(*build(a.src))
    if a.check:
        with open(a.out, encoding="utf-8") as f:
            if f.read() != text:
                sys.exit(f"{a.out} is stale: run tools/gen_policy.py")
        return
    with open(a.out, "w", encoding="utf-8") as f:
        f.write(text)


if __name__ == "__main__":
    main()
