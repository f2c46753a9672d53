//! Active health checks (`[upstream.health]`): every `interval`, each node
//! of the current config is probed under `timeout`; `fall` failed checks
//! in a row take it out of rotation, `rise` passed ones (after its
//! back-off) bring it back ([`super::balance`] keeps the state). With a
//! service account the probe is an authenticated `GET /v1/cluster` and
//! only a 200 passes (401/403: the account is refused); without one it is
//! `GET /v1/bootstrap`, where 200 and 401 mean alive. A 503 means "not a
//! member of an active cluster" either way. Every change of state is
//! logged once and counted; nothing here runs per request. (Which node is
//! master is not read yet: `prefer_master` is not built.)

use std::sync::{Arc, Weak};
use std::time::Duration;

use http::{header, HeaderValue, Request, StatusCode};
use http_body_util::BodyExt;

use crate::auth::service_account::ServiceAccount;
use crate::config::Node;
use crate::gateway::{Gateway, Snapshot};

use super::balance::Change;
use super::client::{self, HttpClient};

/// `[upstream.health]`, validated.
#[derive(Debug, Clone)]
pub struct HealthSettings {
    pub enabled: bool,
    pub interval: Duration,
    pub timeout: Duration,
    pub rise: u32,
    pub fall: u32,
    /// Probes authenticate with it (and ask `/v1/cluster`).
    pub account: Option<Arc<ServiceAccount>>,
}

impl Default for HealthSettings {
    fn default() -> Self {
        HealthSettings {
            enabled: true,
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(2),
            rise: 2,
            fall: 2,
            account: None,
        }
    }
}

/// Largest probe answer read (the rest is dropped with the connection).
const PROBE_BODY_MAX: usize = 256 * 1024;

/// Probes the nodes of the gateway's current config until the gateway is
/// gone. A reload's new snapshot (new nodes, new settings) is picked up
/// at the next round.
pub async fn run(gw: Weak<Gateway>) {
    let mut client: Option<(Weak<Snapshot>, Arc<HttpClient>)> = None;
    loop {
        let interval = {
            let Some(g) = gw.upgrade() else { return };
            let snap = g.current_full();
            let settings = &snap.config.upstream.health;
            if settings.enabled {
                let c = match &client {
                    Some((of, c)) if of.upgrade().is_some_and(|s| Arc::ptr_eq(&s, &snap)) => {
                        c.clone()
                    }
                    _ => {
                        let c = Arc::new(client::build_with(
                            &snap.config.upstream,
                            settings.timeout,
                            snap.config.limits.upstream_head,
                        ));
                        client = Some((Arc::downgrade(&snap), c.clone()));
                        c
                    }
                };
                round(&g, &snap, &c).await;
                if let Some(account) = &settings.account {
                    find_master(&snap, &c, account).await;
                }
            }
            settings.interval
        };
        tokio::time::sleep(interval).await;
    }
}

/// One check of every node, concurrently.
async fn round(gw: &Gateway, snap: &Snapshot, client: &HttpClient) {
    let settings = &snap.config.upstream.health;
    let nodes = &snap.config.upstream.nodes;
    let probes = nodes.iter().map(|n| probe(client, n, settings));
    let results = futures_join(probes).await;
    for (i, (node, result)) in nodes.iter().zip(results).enumerate() {
        gw.metrics.health_checked(&node.url, result.is_ok());
        let change = snap
            .balancer
            .checked(i, result.is_ok(), settings.rise, settings.fall);
        if let Some(change) = change {
            gw.metrics.node_state_changed(&node.url, change.as_str());
            match (change, &result) {
                (Change::Up, _) => {
                    tracing::info!(
                        node = &*node.url,
                        checks = settings.rise,
                        "node up: health checks pass"
                    )
                }
                (Change::Down, Err(reason)) => tracing::warn!(
                    node = &*node.url,
                    checks = settings.fall,
                    error = %reason,
                    "node down: health checks fail"
                ),
                (Change::Down, Ok(())) => {}
            }
        }
    }
}

/// Asks a node that is up which node is master (`GET /v1/nodes/status`,
/// authenticated) and records it; a change is logged once.
async fn find_master(snap: &Snapshot, client: &HttpClient, account: &ServiceAccount) {
    let up = &snap.config.upstream;
    let Some(asked) = (0..up.nodes.len()).find(|&i| snap.balancer.is_up(i)) else {
        return;
    };
    let node = &up.nodes[asked];
    let uri = format!("{}://{}/v1/nodes/status", node.scheme, node.authority);
    let Ok(mut req) = Request::get(uri)
        .header(
            header::USER_AGENT,
            HeaderValue::from_static("regate-health-check"),
        )
        .body(client::UpstreamBody::empty())
    else {
        return;
    };
    req.headers_mut()
        .insert(header::AUTHORIZATION, account.authorization());
    let timeout = up.health.timeout;
    let body = tokio::time::timeout(timeout, async {
        let resp = client.request(req).await.ok()?;
        if resp.status() != StatusCode::OK {
            return None;
        }
        let body = http_body_util::Limited::new(resp.into_body(), PROBE_BODY_MAX)
            .collect()
            .await
            .ok()?;
        Some(body.to_bytes())
    })
    .await
    .ok()
    .flatten();
    let Some(body) = body else { return };
    let master = master_hostname(&body).and_then(|h| node_by_host(up, &h));
    if snap.balancer.set_master(master) {
        match master {
            Some(i) => tracing::info!(node = &*up.nodes[i].url, asked = &*node.url, "master node"),
            None => tracing::warn!(asked = &*node.url, "no configured node is the master"),
        }
    }
}

/// The `hostname` of the node whose `role` is `master`.
fn master_hostname(status: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(status).ok()?;
    v.as_object()?
        .values()
        .find(|n| n.get("role").and_then(|r| r.as_str()) == Some("master"))?
        .get("hostname")?
        .as_str()
        .map(str::to_owned)
}

/// The configured node whose URL host, or one of whose
/// `[upstream.aliases]` hosts, is `host`.
fn node_by_host(up: &crate::config::Upstream, host: &str) -> Option<usize> {
    up.nodes
        .iter()
        .position(|n| n.authority.host().eq_ignore_ascii_case(host))
        .or_else(|| {
            up.aliases
                .iter()
                .find(|(a, _)| a.host().eq_ignore_ascii_case(host))
                .map(|(_, i)| *i)
        })
}

/// Awaits every future, in order (a handful of nodes: no need for a set).
async fn futures_join<F: std::future::Future>(futs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut pinned: Vec<_> = futs.map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, slot) in pinned.iter_mut().zip(out.iter_mut()) {
            if slot.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *slot = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

/// Why a check failed, for the log.
type Reason = String;

/// One probe of `node`: `Ok` when it is alive and in an active cluster.
async fn probe(client: &HttpClient, node: &Node, settings: &HealthSettings) -> Result<(), Reason> {
    let path = if settings.account.is_some() {
        "/v1/cluster"
    } else {
        "/v1/bootstrap"
    };
    let uri = format!("{}://{}{}", node.scheme, node.authority, path);
    let mut req = Request::get(uri)
        .header(
            header::USER_AGENT,
            HeaderValue::from_static("regate-health-check"),
        )
        .body(client::UpstreamBody::empty())
        .map_err(|e| e.to_string())?;
    if let Some(a) = &settings.account {
        req.headers_mut()
            .insert(header::AUTHORIZATION, a.authorization());
    }
    let exchange = async {
        let resp = client.request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status();
        // read (a bounded part of) the answer so the connection is reusable
        let _ = http_body_util::Limited::new(resp.into_body(), PROBE_BODY_MAX)
            .collect()
            .await;
        Ok::<_, Reason>(status)
    };
    let status = tokio::time::timeout(settings.timeout, exchange)
        .await
        .map_err(|_| format!("no answer within {:?}", settings.timeout))??;
    judge(status, settings.account.is_some())
}

/// What a probe's status says about the node.
fn judge(status: StatusCode, authenticated: bool) -> Result<(), Reason> {
    match status {
        StatusCode::OK => Ok(()),
        // bootstrap without credentials: the node answers, it is alive
        StatusCode::UNAUTHORIZED if !authenticated => Ok(()),
        StatusCode::SERVICE_UNAVAILABLE => Err("503: not a member of an active cluster".into()),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(format!(
            "{status}: the node refused the health check credentials"
        )),
        other => Err(format!("unexpected status {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_master_is_read_from_the_documented_status() {
        let body =
            br#"{"1": {"hostname": "3d99db1fdf4b", "role": "slave", "node_status": "active"},
                        "2": {"hostname": "fc7a3d332458", "role": "master", "cores": 8}}"#;
        assert_eq!(master_hostname(body).as_deref(), Some("fc7a3d332458"));
        assert_eq!(
            master_hostname(br#"{"1": {"hostname": "a", "role": "slave"}}"#),
            None
        );
        assert_eq!(master_hostname(b"[]"), None);
    }

    #[test]
    fn what_a_probe_status_means() {
        assert!(judge(StatusCode::OK, false).is_ok());
        assert!(judge(StatusCode::UNAUTHORIZED, false).is_ok());
        assert!(judge(StatusCode::UNAUTHORIZED, true).is_err());
        assert!(judge(StatusCode::SERVICE_UNAVAILABLE, false).is_err());
        assert!(judge(StatusCode::INTERNAL_SERVER_ERROR, true).is_err());
    }
}
