//! HTTP calls to the cluster's REST API for the cluster identity source:
//! `POST /v1/users/authorize` with a client's credentials, and the
//! service-account reads of `GET /v1/users` and `GET /v1/roles`. Nodes are
//! tried in order until one answers. Every call has a deadline and a body
//! size cap. Errors never carry credentials.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;

use crate::auth::basic::encode_basic;
use crate::auth::Credentials;

/// Largest cluster response body read (the users list of a big cluster).
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Why a cluster call failed (no node answered usefully).
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClusterError {
    #[error("no cluster node configured")]
    NoNodes,
    #[error("cluster node {node} unreachable: {reason}")]
    Unreachable { node: String, reason: String },
    #[error("cluster node {node} did not answer within {timeout:?}")]
    Timeout { node: String, timeout: Duration },
    #[error("cluster node {node} answered {status} to {path}")]
    Status {
        node: String,
        path: &'static str,
        status: u16,
    },
    #[error("cluster node {node} sent an unreadable body for {path}: {reason}")]
    Body {
        node: String,
        path: &'static str,
        reason: String,
    },
}

/// A client for the cluster's nodes.
#[derive(Clone)]
pub struct ClusterClient {
    nodes: Arc<[Uri]>,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl std::fmt::Debug for ClusterClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterClient")
            .field("nodes", &self.nodes)
            .finish_non_exhaustive()
    }
}

impl ClusterClient {
    /// A client for `nodes` (base URLs such as `https://node1:9443`) over
    /// TLS with `tls`. Plain `http://` nodes are refused.
    pub fn new(nodes: Vec<String>, tls: Arc<rustls::ClientConfig>) -> Result<Self, String> {
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config((*tls).clone())
            .https_only()
            .enable_http1()
            .build();
        Self::with_connector(nodes, connector)
    }

    /// A client that also speaks plain HTTP: for in-process test servers only.
    pub fn plain_http_for_tests(nodes: Vec<String>) -> Result<Self, String> {
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        Self::with_connector(nodes, connector)
    }

    fn with_connector(
        nodes: Vec<String>,
        connector: HttpsConnector<HttpConnector>,
    ) -> Result<Self, String> {
        let nodes = nodes
            .iter()
            .map(|n| {
                n.trim_end_matches('/')
                    .parse::<Uri>()
                    .map_err(|e| format!("bad node URL {n}: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Ok(ClusterClient {
            nodes: nodes.into(),
            client,
        })
    }

    /// Asks the cluster whether `creds` are valid: `Ok(true)` on 200,
    /// `Ok(false)` on 401/403, an error otherwise.
    pub async fn authorize(
        &self,
        creds: &Credentials,
        timeout: Duration,
    ) -> Result<bool, ClusterError> {
        let mut auth = HeaderValue::from_str(&encode_basic(creds.user(), creds.password()))
            .map_err(|_| ClusterError::Body {
                node: String::new(),
                path: "/v1/users/authorize",
                reason: "credentials cannot form a header".into(),
            })?;
        auth.set_sensitive(true);
        let body = Bytes::from(
            serde_json::json!({ "username": creds.user(), "password": creds.password() })
                .to_string(),
        );
        let path = "/v1/users/authorize";
        let (node, status, _) = self
            .call(Method::POST, path, &auth, body, timeout, |s| {
                matches!(
                    s,
                    StatusCode::OK | StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
                )
            })
            .await?;
        match status {
            StatusCode::OK => Ok(true),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Ok(false),
            other => Err(ClusterError::Status {
                node,
                path,
                status: other.as_u16(),
            }),
        }
    }

    /// `GET path` as the service account, decoded from JSON.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        path: &'static str,
        auth: &HeaderValue,
        timeout: Duration,
    ) -> Result<T, ClusterError> {
        let (node, _, body) = self
            .call(Method::GET, path, auth, Bytes::new(), timeout, |s| {
                s == StatusCode::OK
            })
            .await?;
        serde_json::from_slice(&body).map_err(|e| ClusterError::Body {
            node,
            path,
            reason: e.to_string(),
        })
    }

    /// Tries each node in turn; returns the first answer `accept` likes, or
    /// the last error.
    async fn call(
        &self,
        method: Method,
        path: &'static str,
        auth: &HeaderValue,
        body: Bytes,
        timeout: Duration,
        accept: impl Fn(StatusCode) -> bool,
    ) -> Result<(String, StatusCode, Bytes), ClusterError> {
        let mut last = ClusterError::NoNodes;
        for node in self.nodes.iter() {
            let name = node.to_string();
            match self
                .call_one(node, &method, path, auth, body.clone(), timeout)
                .await
            {
                Ok((status, bytes)) if accept(status) => return Ok((name, status, bytes)),
                Ok((status, _)) => {
                    last = ClusterError::Status {
                        node: name,
                        path,
                        status: status.as_u16(),
                    }
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    async fn call_one(
        &self,
        node: &Uri,
        method: &Method,
        path: &'static str,
        auth: &HeaderValue,
        body: Bytes,
        timeout: Duration,
    ) -> Result<(StatusCode, Bytes), ClusterError> {
        let name = node.to_string();
        let uri = format!("{}{path}", name.trim_end_matches('/'));
        let req = Request::builder()
            .method(method.clone())
            .uri(uri)
            .header(AUTHORIZATION, auth.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .map_err(|e| ClusterError::Unreachable {
                node: name.clone(),
                reason: e.to_string(),
            })?;
        let exchange = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| ClusterError::Unreachable {
                    node: name.clone(),
                    reason: e.to_string(),
                })?;
            let status = resp.status();
            let bytes = Limited::new(resp.into_body(), MAX_BODY_BYTES)
                .collect()
                .await
                .map_err(|e| ClusterError::Body {
                    node: name.clone(),
                    path,
                    reason: e.to_string(),
                })?
                .to_bytes();
            Ok((status, bytes))
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| ClusterError::Timeout {
                node: name.clone(),
                timeout,
            })?
    }
}
