//! The cluster identity source against a tiny in-test cluster (plain HTTP
//! on 127.0.0.1:0) that implements `POST /v1/users/authorize`,
//! `GET /v1/users` and `GET /v1/roles`: login, role from `role_uids`,
//! fallback to `role`, and password changes / deletions taking effect at the
//! next sync.

mod auth_common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use auth_common::{basic, conn, roles, IP, NO_LIMITS};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use regate::auth::{AuthConfig, Authenticator, ClusterClient, FailureReason};
use regate::context::IdentitySource;
use regate::error::Reject;
use serde_json::json;

#[derive(Clone)]
struct SimUser {
    uid: u64,
    password: String,
    role_uids: Vec<u64>,
    role: String,
    issued: u64,
}

#[derive(Default)]
struct Cluster {
    users: Mutex<HashMap<String, SimUser>>,
    authorize_calls: AtomicU64,
}

const SERVICE: (&str, &str) = ("svc@cluster", "svc-secret");

impl Cluster {
    fn add(&self, login: &str, uid: u64, password: &str, role_uids: Vec<u64>, role: &str) {
        let u = SimUser {
            uid,
            password: password.into(),
            role_uids,
            role: role.into(),
            issued: 1,
        };
        self.users.lock().unwrap().insert(login.into(), u);
    }

    fn set_password(&self, login: &str, password: &str) {
        let mut users = self.users.lock().unwrap();
        let u = users.get_mut(login).unwrap();
        u.password = password.into();
        u.issued += 1;
    }

    fn remove(&self, login: &str) {
        self.users.lock().unwrap().remove(login);
    }

    fn check(&self, req: &http::request::Parts) -> Option<(String, String)> {
        let v = req
            .headers
            .get(http::header::AUTHORIZATION)?
            .to_str()
            .ok()?;
        let raw = STANDARD.decode(v.strip_prefix("Basic ")?).ok()?;
        let (u, p) = std::str::from_utf8(&raw).ok()?.split_once(':')?;
        Some((u.to_owned(), p.to_owned()))
    }

    fn answer(&self, req: &http::request::Parts) -> Response<Full<Bytes>> {
        let creds = self.check(req);
        let is_service = creds
            .as_ref()
            .is_some_and(|(u, p)| (u.as_str(), p.as_str()) == SERVICE);
        let (status, body) = match (req.method.as_str(), req.uri.path()) {
            ("POST", "/v1/users/authorize") => {
                self.authorize_calls.fetch_add(1, Ordering::SeqCst);
                let users = self.users.lock().unwrap();
                let ok = creds.is_some_and(|(u, p)| users.get(&u).is_some_and(|s| s.password == p));
                if ok {
                    (StatusCode::OK, json!({"access_token": "x"}))
                } else {
                    (
                        StatusCode::UNAUTHORIZED,
                        json!({"error_code": "unauthorized"}),
                    )
                }
            }
            ("GET", "/v1/users") if is_service => {
                let users = self.users.lock().unwrap();
                let list: Vec<_> = users
                    .iter()
                    .map(|(login, u)| {
                        json!({"uid": u.uid, "name": format!("Display {login}"), "email": login,
                               "role": u.role, "role_uids": u.role_uids,
                               "password_issue_date": format!("2025-01-01T00:00:{:02}Z", u.issued),
                               "status": "active", "auth_method": "regular"})
                    })
                    .collect();
                (StatusCode::OK, json!(list))
            }
            ("GET", "/v1/roles") if is_service => (
                StatusCode::OK,
                json!([
                    {"uid": 1, "name": "Admin", "management": "admin"},
                    {"uid": 5, "name": "DB Viewer", "management": "db_viewer"},
                    {"uid": 100, "name": "Ops", "management": "db_member"}
                ]),
            ),
            _ => (StatusCode::UNAUTHORIZED, json!({})),
        };
        let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
        *resp.status_mut() = status;
        resp
    }
}

async fn start_cluster() -> (Arc<Cluster>, String) {
    let cluster = Arc::new(Cluster::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let c = cluster.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                break;
            };
            let c = c.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let c = c.clone();
                    async move {
                        let (parts, body) = req.into_parts();
                        let _ = body.collect().await;
                        Ok::<_, std::convert::Infallible>(c.answer(&parts))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (cluster, url)
}

fn cluster_auth(url: &str, extra: &str) -> (tempfile::TempDir, Authenticator) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("svc.toml"),
        format!(
            "username = \"{}\"\npassword = \"{}\"\n",
            SERVICE.0, SERVICE.1
        ),
    )
    .unwrap();
    let text = format!(
        "source = \"cluster\"\n{NO_LIMITS}{extra}\n[cluster]\ncredentials_file = \"svc.toml\"\n"
    );
    let cfg: AuthConfig = toml::from_str(&text).unwrap();
    let settings = cfg.validate(dir.path(), roles()).unwrap();
    let client = ClusterClient::plain_http_for_tests(vec![url.to_owned()]).unwrap();
    (dir, Authenticator::new(settings, Some(client)).unwrap())
}

#[tokio::test]
async fn login_and_roles_from_the_cluster() {
    let (cluster, url) = start_cluster().await;
    cluster.add("ops@x", 7, "ops-pass", vec![100], "db_viewer");
    cluster.add("legacy@x", 8, "legacy-pass", vec![], "cluster_viewer");
    let (_dir, auth) = cluster_auth(&url, "").await_sync().await;

    let p = auth
        .authenticate(&basic("ops@x", "ops-pass"), IP, conn())
        .await
        .unwrap();
    assert_eq!((&*p.user, &*p.role, p.uid), ("ops@x", "db_member", Some(7)));
    assert_eq!(p.source, IdentitySource::Cluster);
    let p = auth
        .authenticate(&basic("legacy@x", "legacy-pass"), IP, conn())
        .await
        .unwrap();
    assert_eq!(
        &*p.role, "cluster_viewer",
        "falls back to the deprecated role field"
    );
    assert_eq!(auth.role_of("ops@x").unwrap().1, Some(7));

    // Cache hit: no second authorize call.
    let calls = cluster.authorize_calls.load(Ordering::SeqCst);
    auth.authenticate(&basic("ops@x", "ops-pass"), IP, conn())
        .await
        .unwrap();
    assert_eq!(cluster.authorize_calls.load(Ordering::SeqCst), calls);

    let r = auth
        .authenticate(&basic("ops@x", "wrong"), IP, conn())
        .await;
    assert_eq!(r.unwrap_err(), Reject::Unauthorized);
    assert_eq!(auth.stats().failures(FailureReason::BadCredentials), 1);
    // The display name is not a login.
    let r = auth
        .authenticate(&basic("Display ops@x", "ops-pass"), IP, conn())
        .await;
    assert_eq!(r.unwrap_err(), Reject::Unauthorized);
}

/// A cluster user whose roles map to no regate role is refused after one
/// authorize call: a current entry without a role is not retried.
#[tokio::test]
async fn a_user_without_a_role_is_refused_after_one_authorize_call() {
    let (cluster, url) = start_cluster().await;
    cluster.add("norole@x", 11, "norole-pass", vec![], "");
    let (_dir, auth) = cluster_auth(&url, "").await_sync().await;
    let calls = cluster.authorize_calls.load(Ordering::SeqCst);
    let r = auth
        .authenticate(&basic("norole@x", "norole-pass"), IP, conn())
        .await;
    assert_eq!(r.unwrap_err(), Reject::Unauthorized);
    assert_eq!(cluster.authorize_calls.load(Ordering::SeqCst), calls + 1);
    assert_eq!(auth.stats().failures(FailureReason::NoRole), 1);
}

#[tokio::test]
async fn a_user_created_after_the_sync_is_found_on_demand() {
    let (cluster, url) = start_cluster().await;
    let (_dir, auth) = cluster_auth(&url, "").await_sync().await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    cluster.add("new@x", 9, "new-pass", vec![5], "admin");
    let p = auth
        .authenticate(&basic("new@x", "new-pass"), IP, conn())
        .await
        .unwrap();
    assert_eq!(&*p.role, "db_viewer");
}

#[tokio::test]
async fn password_change_and_deletion_take_effect_at_the_next_sync() {
    let (cluster, url) = start_cluster().await;
    cluster.add("a@x", 1, "old-pass", vec![1], "admin");
    cluster.add("b@x", 2, "b-pass", vec![5], "db_viewer");
    let (_dir, auth) = cluster_auth(&url, "").await_sync().await;
    auth.authenticate(&basic("a@x", "old-pass"), IP, conn())
        .await
        .unwrap();
    auth.authenticate(&basic("b@x", "b-pass"), IP, conn())
        .await
        .unwrap();

    cluster.set_password("a@x", "new-pass");
    cluster.remove("b@x");
    // Until the sync, the cached verifications still hold.
    assert!(auth
        .authenticate(&basic("a@x", "old-pass"), IP, conn())
        .await
        .is_ok());
    assert!(auth
        .authenticate(&basic("b@x", "b-pass"), IP, conn())
        .await
        .is_ok());

    auth.sync_now().await.unwrap();
    let r = auth
        .authenticate(&basic("a@x", "old-pass"), IP, conn())
        .await;
    assert_eq!(
        r.unwrap_err(),
        Reject::Unauthorized,
        "old password dropped at sync"
    );
    let r = auth.authenticate(&basic("b@x", "b-pass"), IP, conn()).await;
    assert_eq!(
        r.unwrap_err(),
        Reject::Unauthorized,
        "deleted user dropped at sync"
    );
    let p = auth
        .authenticate(&basic("a@x", "new-pass"), IP, conn())
        .await
        .unwrap();
    assert_eq!(&*p.role, "admin");
    assert!(auth.role_of("b@x").is_none());
}

#[tokio::test]
async fn the_background_sync_runs() {
    let (cluster, url) = start_cluster().await;
    cluster.add("a@x", 1, "pw", vec![1], "admin");
    let (_dir, auth) = cluster_auth(&url, "");
    let bg = auth.spawn_background();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while auth.stats().syncs() == 0 {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(auth.role_of("a@x").is_some());
    bg.abort();
}

#[tokio::test]
async fn an_unreachable_cluster_is_503_not_401() {
    // Bind then drop: nothing listens on this port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (_dir, auth) = cluster_auth(&format!("http://127.0.0.1:{port}"), "");
    let r = auth
        .authenticate(&basic("a@x", "pw"), IP, conn())
        .await
        .unwrap_err();
    assert_eq!(r, Reject::AuthUnavailable);
    assert_eq!(r.status(), 503);
    assert!(auth.sync_now().await.is_err());
    assert_eq!(auth.stats().sync_failures(), 1);
    // Outages do not eat the failure budget.
    assert_eq!(auth.stats().failures(FailureReason::BadCredentials), 0);
}

#[tokio::test]
async fn service_forwarding_uses_the_cluster_account() {
    let (_cluster, url) = start_cluster().await;
    let (_dir, auth) = cluster_auth(&url, "forward = \"service\"\n");
    let h = auth.upstream_authorization().unwrap();
    let expected = format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", SERVICE.0, SERVICE.1))
    );
    assert_eq!(h.to_str().unwrap(), expected);
}

trait AwaitSync {
    async fn await_sync(self) -> (tempfile::TempDir, Authenticator);
}

impl AwaitSync for (tempfile::TempDir, Authenticator) {
    async fn await_sync(self) -> (tempfile::TempDir, Authenticator) {
        self.1.sync_now().await.unwrap();
        self
    }
}
