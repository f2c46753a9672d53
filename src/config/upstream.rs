//! `[upstream]`: the nodes (URL strings or `{ name, url, pin_sha256 }`
//! tables), versions, aliases, `[upstream.health]` and `[upstream.retry]`,
//! validated into [`Upstream`]. Split out of `config/mod.rs`, which keeps
//! the order of the sections and the other sections' checks.

use super::*;

pub(super) fn validate_upstream(
    u: &file::UpstreamFile,
    base: &Path,
    errs: &mut Vec<ConfigError>,
) -> Option<Upstream> {
    let before = errs.len();
    if u.nodes.is_empty() {
        errs.push(ConfigError::new(
            "upstream.nodes",
            "at least one node is required",
        ));
    }
    let mut nodes = Vec::new();
    for (i, n) in u.nodes.iter().enumerate() {
        match parse_node(n.url()).and_then(|node| node_extras(node, n, &nodes)) {
            Ok(node) => nodes.push(node),
            Err(e) => errs.push(ConfigError::new(format!("upstream.nodes[{i}]"), e)),
        }
    }
    let any_https = nodes.iter().any(|n| n.scheme == Scheme::HTTPS);
    let ca = u.ca.as_ref().map(|c| resolve(base, c));
    if any_https && ca.is_none() {
        errs.push(ConfigError::new(
            "upstream.ca",
            "required for https nodes (the CA that signed the cluster's certificates)",
        ));
    }
    let tls = crate::upstream::client::tls_config(ca.as_deref())
        .map_err(|e| errs.push(e))
        .ok();
    let verifier = match &ca {
        Some(ca) => crate::upstream::client::tls_verifier(ca)
            .map_err(|e| errs.push(e))
            .ok(),
        None => None,
    };
    let server_name = match &u.server_name {
        None => None,
        Some(n) => match rustls::pki_types::ServerName::try_from(n.clone()) {
            Ok(name) => Some(name),
            Err(_) => {
                errs.push(ConfigError::new(
                    "upstream.server_name",
                    format!("`{n}` is not a DNS name or IP address"),
                ));
                None
            }
        },
    };

    if u.pool_max_idle_per_node == 0 {
        errs.push(ConfigError::new(
            "upstream.pool_max_idle_per_node",
            "must be at least 1",
        ));
    }
    let mut versions = Vec::new();
    for (version, urls) in &u.versions {
        let key = format!("upstream.versions.{version}");
        let number = version
            .strip_prefix('v')
            .and_then(|d| d.parse::<u16>().ok())
            .filter(|_| is_version_name(version));
        if number.is_none() {
            errs.push(ConfigError::new(&key, "version names look like v1, v2"));
        }
        if urls.is_empty() {
            errs.push(ConfigError::new(&key, "lists no nodes"));
        }
        let mut idx = Vec::new();
        for (j, url) in urls.iter().enumerate() {
            match u.nodes.iter().position(|n| n.url() == url) {
                Some(p) => idx.push(p),
                None => errs.push(ConfigError::new(
                    format!("{key}[{j}]"),
                    format!("`{url}` is not one of upstream.nodes"),
                )),
            }
        }
        versions.push((number.unwrap_or(0), idx));
    }
    let mut aliases = Vec::new();
    for (alias, url) in &u.aliases {
        let key = format!("upstream.aliases.\"{alias}\"");
        let authority = match alias.parse::<Authority>() {
            Ok(a) if a.port_u16().is_some() && !alias.contains('@') => Some(a),
            _ => {
                errs.push(ConfigError::new(&key, "write it as host:port"));
                None
            }
        };
        match u.nodes.iter().position(|n| n.url() == url) {
            Some(i) => aliases.extend(authority.map(|a| (a, i))),
            None => errs.push(ConfigError::new(
                &key,
                format!("`{url}` is not one of upstream.nodes"),
            )),
        }
    }
    if u.prefer_master && (u.health.credentials_file.is_none() || !u.health.enabled) {
        errs.push(ConfigError::new(
            "upstream.prefer_master",
            "needs [upstream.health] enabled with a credentials_file (the master is read \
             from GET /v1/nodes/status)",
        ));
    }
    let health = validate_health(&u.health, base, errs);
    let retry = validate_retry(&u.retry, errs);
    if errs.len() > before {
        return None;
    }
    Some(Upstream {
        nodes,
        tls: tls?,
        pool_max_idle_per_node: u.pool_max_idle_per_node,
        versions,
        health: health?,
        retry: retry?,
        aliases,
        verifier,
        server_name,
        prefer_master: u.prefer_master,
    })
}

fn validate_health(
    h: &file::UpstreamHealthFile,
    base: &Path,
    errs: &mut Vec<ConfigError>,
) -> Option<crate::upstream::health::HealthSettings> {
    let before = errs.len();
    let interval = duration_at_least("upstream.health.interval", &h.interval, MIN_10MS, errs);
    let timeout = duration_at_least("upstream.health.timeout", &h.timeout, MIN_10MS, errs);
    for (key, v) in [("rise", h.rise), ("fall", h.fall)] {
        if v == 0 {
            errs.push(ConfigError::new(
                format!("upstream.health.{key}"),
                "must be at least 1",
            ));
        }
    }
    let account = match &h.credentials_file {
        None => None,
        Some(p) => match crate::auth::service_account::ServiceAccount::load(
            &resolve(base, p),
            "upstream.health.credentials_file",
        ) {
            Ok(a) => Some(a),
            Err(e) => {
                errs.push(e);
                None
            }
        },
    };
    if errs.len() > before {
        return None;
    }
    Some(crate::upstream::health::HealthSettings {
        enabled: h.enabled,
        interval: interval?,
        timeout: timeout?,
        rise: h.rise,
        fall: h.fall,
        account: account.map(Arc::new),
    })
}

const MIN_10MS: Duration = Duration::from_millis(10);

/// A duration of at least `min`, or an error naming `key`.
fn duration_at_least(
    key: &str,
    text: &str,
    min: Duration,
    errs: &mut Vec<ConfigError>,
) -> Option<Duration> {
    match parse_duration(text) {
        Ok(d) if d >= min => Some(d),
        Ok(_) => {
            errs.push(ConfigError::new(key, format!("must be at least {min:?}")));
            None
        }
        Err(e) => {
            errs.push(ConfigError::new(key, e));
            None
        }
    }
}

fn validate_retry(
    r: &file::UpstreamRetryFile,
    errs: &mut Vec<ConfigError>,
) -> Option<crate::upstream::retry::RetrySettings> {
    let before = errs.len();
    if r.budget_percent > 100 {
        errs.push(ConfigError::new(
            "upstream.retry.budget_percent",
            "must be between 0 and 100",
        ));
    }
    let window = duration_at_least(
        "upstream.retry.budget_window",
        &r.budget_window,
        Duration::from_secs(1),
        errs,
    );
    if errs.len() > before {
        return None;
    }
    Some(crate::upstream::retry::RetrySettings {
        percent: r.budget_percent,
        window: window?,
        min_per_window: r.min_per_window,
    })
}

fn is_version_name(v: &str) -> bool {
    v.len() >= 2 && v.starts_with('v') && v[1..].bytes().all(|b| b.is_ascii_digit())
}

/// Parses a node base URL: scheme http/https, a host, an optional port,
/// and no path, query or credentials.
fn parse_node(text: &str) -> Result<Node, String> {
    let uri: http::Uri = text
        .parse()
        .map_err(|_| format!("`{text}` is not a URL like https://node1:9443"))?;
    let scheme = uri
        .scheme()
        .cloned()
        .ok_or_else(|| format!("`{text}` needs a scheme (https:// or http://)"))?;
    if scheme != Scheme::HTTPS && scheme != Scheme::HTTP {
        return Err(format!("`{text}`: only https:// and http:// are supported"));
    }
    let authority = uri
        .authority()
        .cloned()
        .ok_or_else(|| format!("`{text}` has no host"))?;
    if authority.as_str().contains('@') {
        return Err(format!("`{}` must not carry credentials", authority.host()));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(format!("`{text}` must not have a path or query"));
    }
    Ok(Node {
        url: Arc::from(text.trim_end_matches('/')),
        scheme,
        authority,
        name: None,
        pins: Vec::new(),
    })
}

/// The `name` and `pin_sha256` of a node table: names are unique and
/// plain (`[A-Za-z0-9._-]`, as a header carries them); pins are base64
/// SHA-256 digests, on https nodes only.
fn node_extras(mut node: Node, entry: &file::NodeEntry, before: &[Node]) -> Result<Node, String> {
    let file::NodeEntry::Table(t) = entry else {
        return Ok(node);
    };
    if let Some(name) = &t.name {
        let plain = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-');
        if name.is_empty() || name.len() > 64 || !name.bytes().all(plain) {
            return Err(format!(
                "name `{name}`: 1 to 64 letters, digits, '.', '_' or '-'"
            ));
        }
        if before
            .iter()
            .any(|n| n.name.as_deref() == Some(name.as_str()))
        {
            return Err(format!("name `{name}` is given to two nodes"));
        }
        node.name = Some(Arc::from(name.as_str()));
    }
    if !t.pin_sha256.is_empty() && node.scheme != Scheme::HTTPS {
        return Err("pin_sha256 needs an https:// node".into());
    }
    for pin in &t.pin_sha256 {
        use base64::Engine;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(pin.trim())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| format!("pin_sha256 `{pin}` is not a base64 SHA-256 digest"))?;
        node.pins.push(bytes);
    }
    Ok(node)
}
