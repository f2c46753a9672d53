//! What a simulated node answers once a request has been read: Basic auth
//! against the shared user table, routing over the documented RS routes,
//! captured fixtures for reads, plausible bodies (with an `action_uid`) for
//! writes, and errors shaped like the cluster's. Pure: takes a request
//! head and a body digest, returns a [`Reply`]; no I/O and no fault modes.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{json, Map, Value};

use super::debuginfo;
use super::fixtures;
use super::head::Head;
use super::ids::{access_token, action_uid};
use super::reply::{Payload, Reply};
use super::routes::{self, Lookup, Matched};
use super::users::{SimUser, UserTable};

/// Routes RS answers without credentials once the node is in a cluster
/// (bootstrap actions, per the REST API docs).
const UNAUTHENTICATED: [(&str, &str); 2] = [
    ("POST", "/v1/bootstrap/{action}"),
    ("POST", "/v1/bootstrap/validate/{action}"),
];

/// A request as the API sees it: the head and the start of the body.
pub(crate) struct Call<'a> {
    pub head: &'a Head,
    pub body_len: u64,
    pub body_prefix: &'a [u8],
}

/// Cluster-wide answering state, shared by every node of a cluster.
pub(crate) struct Api {
    pub users: UserTable,
    debuginfo_bytes: u64,
    next_bdb_uid: AtomicU64,
    /// Nodes in the cluster, and which one (0-based) is master.
    nodes: usize,
    pub master: AtomicU64,
}

#[derive(Clone, Copy)]
enum Resource {
    Bdb,
    Node,
    User,
    Role,
}

impl Api {
    pub(crate) fn new(users: UserTable, debuginfo_bytes: u64, nodes: usize) -> Api {
        Api {
            users,
            debuginfo_bytes,
            next_bdb_uid: AtomicU64::new(2),
            nodes,
            master: AtomicU64::new(0),
        }
    }

    /// `GET /v1/nodes/status`: each node's hostname (`sim-node-N`, N =
    /// uid = index + 1) and role, as the REST API documents it (generated:
    /// no capture exists).
    fn nodes_status(&self) -> Value {
        let master = self.master.load(Ordering::Relaxed);
        let mut out = Map::new();
        for i in 0..self.nodes as u64 {
            let role = if i == master { "master" } else { "slave" };
            out.insert(
                (i + 1).to_string(),
                json!({ "hostname": format!("sim-node-{}", i + 1), "role": role, "node_status": "active" }),
            );
        }
        Value::Object(out)
    }

    /// The answer of a node in normal mode.
    pub(crate) fn answer(&self, call: &Call) -> Reply {
        let path = path_of(&call.head.target);
        let method = match call.head.method.as_str() {
            "HEAD" => "GET",
            m => m,
        };
        // authorize checks credentials itself: from the header or the body.
        if method == "POST" && path == "/v1/users/authorize" {
            return self.authorize(call);
        }
        let found = routes::lookup(method, path);
        let open = matches!(&found, Lookup::Found(m)
            if UNAUTHENTICATED.contains(&(m.route.method, m.route.template)));
        let user = self
            .users
            .authenticate(call.head.header_all("authorization"));
        match (found, user) {
            (Lookup::Found(m), user) if open => self.handle(method, path, &m, call, user.as_ref()),
            (_, None) => unauthorized(),
            (Lookup::NotFound, Some(_)) => Reply::error(404, "not_found", "Path not found"),
            (Lookup::WrongMethod, Some(_)) => {
                Reply::error(405, "method_not_allowed", "Method not allowed on this path")
            }
            (Lookup::Found(m), Some(u)) => self.handle(method, path, &m, call, Some(&u)),
        }
    }

    fn handle(
        &self,
        method: &str,
        path: &str,
        m: &Matched,
        call: &Call,
        user: Option<&SimUser>,
    ) -> Reply {
        if let Some(missing) = self.missing_uid(m) {
            return missing;
        }
        let uid = m.params.first().map(|(_, v)| *v).unwrap_or_default();
        match (method, m.route.template) {
            ("GET", t) if t.contains("debuginfo") => Reply {
                status: 200,
                headers: vec![
                    ("Content-Type", "application/x-gzip".into()),
                    (
                        "Content-Disposition",
                        format!("attachment; filename={}", debuginfo::filename()),
                    ),
                ],
                payload: Payload::Generated(self.debuginfo_bytes),
            },
            ("GET", "/v1/users") => Reply::json(200, &self.users.users_json()),
            ("GET", "/v1/users/{uid}") => json_or_404(self.users.user_json(uid), Resource::User),
            ("GET", "/v1/roles") => Reply::json(200, &self.users.roles_json()),
            ("GET", "/v1/roles/{uid}") => json_or_404(self.users.role_json(uid), Resource::Role),
            ("GET", "/v1/users/role") => {
                Reply::json(200, &json!({ "role": user.map(|u| u.role.as_str()) }))
            }
            ("GET", "/v1/nodes/status") => Reply::json(200, &self.nodes_status()),
            // Documented reads without a capture answer an empty object.
            ("GET", _) => fixtures::get(path)
                .map(Reply::fixture)
                .unwrap_or_else(|| Reply::json(200, &json!({}))),
            ("POST", "/v1/bdbs") => Reply::json(200, &self.write_bdb(None, body_object(call))),
            ("POST", "/v2/bdbs") => {
                let mut bdb =
                    self.write_bdb(None, body_object(call).and_then(|b| b.get("bdb").cloned()));
                let action = bdb.as_object_mut().and_then(|b| b.remove("action_uid"));
                Reply::json(200, &json!({ "action_uid": action, "bdb": bdb }))
            }
            ("PUT", "/v1/bdbs/{uid}") => {
                Reply::json(200, &self.write_bdb(Some(uid), body_object(call)))
            }
            ("POST", "/v1/modules") => Reply::json(200, &uploaded_module()),
            ("POST", "/v2/modules") => {
                let module = uploaded_module();
                Reply::json(
                    200,
                    &json!({ "action_uid": action_uid(), "uid": module.get("uid") }),
                )
            }
            _ => Reply::json(200, &json!({ "action_uid": action_uid() })),
        }
    }

    /// A 404 if a uid in the path names a bdb, node, user or role that
    /// does not exist.
    fn missing_uid(&self, m: &Matched) -> Option<Reply> {
        for (name, value) in &m.params {
            let Some(kind) = resource_of(m.route.template, name) else {
                continue;
            };
            let exists = match kind {
                Resource::Bdb => fixtures::BDB_UIDS.contains(value),
                Resource::Node => fixtures::NODE_UIDS.contains(value),
                Resource::User => self.users.user_json(value).is_some(),
                Resource::Role => self.users.role_json(value).is_some(),
            };
            if !exists {
                return Some(not_exist(kind));
            }
        }
        None
    }

    /// A database object: the captured bdb 1, with the request's fields on
    /// top, a uid and an action uid. Nothing is stored.
    fn write_bdb(&self, uid: Option<&str>, fields: Option<Value>) -> Value {
        let mut bdb: Map<String, Value> = serde_json::from_str(fixtures::BDB_1).unwrap_or_default();
        if let Some(Value::Object(fields)) = fields {
            bdb.extend(fields);
        }
        let uid = match uid.and_then(|u| u.parse::<u64>().ok()) {
            Some(u) => u,
            None => self.next_bdb_uid.fetch_add(1, Ordering::Relaxed),
        };
        bdb.insert("uid".into(), uid.into());
        bdb.insert("action_uid".into(), action_uid().into());
        Value::Object(bdb)
    }

    /// `POST /v1/users/authorize`: credentials from a JSON body
    /// `{"username", "password"}` if it has them, else from Basic auth.
    fn authorize(&self, call: &Call) -> Reply {
        let body = body_object(call);
        let from_body = body
            .as_ref()
            .and_then(|b| Some((b.get("username")?.as_str()?, b.get("password")?.as_str()?)));
        let user = match from_body {
            Some((name, password)) => self.users.check(name, password),
            None => self
                .users
                .authenticate(call.head.header_all("authorization")),
        };
        let ttl = body
            .as_ref()
            .and_then(|b| b.get("ttl")?.as_u64())
            .unwrap_or(300)
            .clamp(1, 86_400);
        match user {
            Some(u) => Reply::json(
                200,
                &json!({ "access_token": access_token(&u.name, u.uid, ttl) }),
            ),
            None => unauthorized(),
        }
    }
}

/// The answer of a node that is not a member of an active cluster. The
/// exact error code RS uses here is not captured; this one is a guess.
pub(crate) fn not_in_cluster() -> Reply {
    Reply::error(
        503,
        "node_not_in_cluster",
        "This node is not a member of an active cluster",
    )
}

/// The answer of a node forced to `Mode::Status(status)`.
pub(crate) fn forced_status(status: u16) -> Reply {
    Reply::error(
        status,
        "sim_forced_status",
        "Status forced by the simulator",
    )
}

fn unauthorized() -> Reply {
    Reply::error(401, "unauthorized", "Authentication required")
        .with_header("WWW-Authenticate", "Basic realm=\"regate-sim\"")
}

fn not_exist(kind: Resource) -> Reply {
    let (code, what) = match kind {
        Resource::Bdb => ("db_not_exist", "Database"),
        Resource::Node => ("node_not_exist", "Node"),
        Resource::User => ("user_not_exist", "User"),
        Resource::Role => ("role_not_exist", "Role"),
    };
    Reply::error(404, code, &format!("{what} does not exist"))
}

fn json_or_404(v: Option<Value>, kind: Resource) -> Reply {
    v.map(|v| Reply::json(200, &v))
        .unwrap_or_else(|| not_exist(kind))
}

/// Which resource a path param names: `bdb_uid`/`node_uid` say so; a plain
/// `uid` belongs to the nearest resource segment before it.
fn resource_of(template: &str, param: &str) -> Option<Resource> {
    match param {
        "bdb_uid" => return Some(Resource::Bdb),
        "node_uid" => return Some(Resource::Node),
        "uid" => {}
        _ => return None,
    }
    let before = template.split("{uid}").next()?;
    before.split('/').rev().find_map(|seg| match seg {
        "bdbs" | "bdb" => Some(Resource::Bdb),
        "nodes" => Some(Resource::Node),
        "users" => Some(Resource::User),
        "roles" => Some(Resource::Role),
        _ => None,
    })
}

/// The path of an origin-form or absolute-form target, without the query.
fn path_of(target: &str) -> &str {
    let rest = match target.split_once("://") {
        Some((_, after)) => after.find('/').map_or("/", |i| &after[i..]),
        None => target,
    };
    rest.split(['?', '#']).next().unwrap_or_default()
}

/// The request body as a JSON value, if it was short enough to be kept.
fn body_object(call: &Call) -> Option<Value> {
    if call.body_len == 0 || call.body_len != call.body_prefix.len() as u64 {
        return None;
    }
    serde_json::from_slice(call.body_prefix).ok()
}

/// A module object as `POST /v1/modules` returns: the first captured
/// module under a fresh uid. The multipart upload itself is not parsed.
fn uploaded_module() -> Value {
    let mut module: Map<String, Value> = serde_json::from_str::<Value>(fixtures::MODULES)
        .ok()
        .and_then(|m| m.get(0)?.as_object().cloned())
        .unwrap_or_default();
    module.insert("uid".into(), action_uid().replace('-', "").into());
    Value::Object(module)
}
