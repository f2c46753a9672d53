//! `regate healthcheck`: one `GET /readyz` on the admin listener with a
//! deadline, for container HEALTHCHECKs and probes that have no shell or
//! curl. Plain blocking std I/O: it runs once and exits.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// The address to probe: an unspecified bind address (`0.0.0.0`, `::`)
/// is reached through loopback.
pub fn probe_address(listen: SocketAddr) -> SocketAddr {
    match listen.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), listen.port())
        }
        IpAddr::V6(v6) if v6.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), listen.port())
        }
        _ => listen,
    }
}

/// Reads `[metrics] listen` from a config file without validating the rest
/// (the probe must work while certificates are being renewed). Missing
/// key: the default `127.0.0.1:9464`.
pub fn metrics_listen_of(config: &std::path::Path) -> Result<SocketAddr, String> {
    #[derive(serde::Deserialize, Default)]
    struct Partial {
        #[serde(default)]
        metrics: PartialMetrics,
    }
    #[derive(serde::Deserialize, Default)]
    struct PartialMetrics {
        listen: Option<String>,
    }
    let text = std::fs::read_to_string(config)
        .map_err(|e| format!("cannot read {}: {e}", config.display()))?;
    let p: Partial =
        toml::from_str(&text).map_err(|e| format!("{}: {}", config.display(), e.message()))?;
    let listen = p.metrics.listen.unwrap_or_else(|| "127.0.0.1:9464".into());
    listen
        .parse()
        .map_err(|_| format!("metrics.listen: `{listen}` is not an IP:port address"))
}

/// `GET /readyz` on `addr`: `Ok(())` on 200, else what went wrong.
pub fn check(addr: &str, timeout: Duration) -> Result<(), String> {
    let target = addr
        .to_socket_addrs()
        .map_err(|e| format!("{addr}: {e}"))?
        .next()
        .ok_or_else(|| format!("{addr}: no address"))?;
    let target = probe_address(target);
    let mut tcp = TcpStream::connect_timeout(&target, timeout)
        .map_err(|e| format!("cannot connect to {target}: {e}"))?;
    let io = |e: std::io::Error| format!("{target}: {e}");
    tcp.set_read_timeout(Some(timeout)).map_err(io)?;
    tcp.set_write_timeout(Some(timeout)).map_err(io)?;
    let req = format!("GET /readyz HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n");
    tcp.write_all(req.as_bytes()).map_err(io)?;
    let mut head = Vec::with_capacity(256);
    let mut buf = [0u8; 256];
    while !head.windows(2).any(|w| w == b"\r\n") && head.len() < 4096 {
        let n = tcp.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let status = line.lines().next().unwrap_or("").trim();
    match status.split_whitespace().nth(1) {
        Some("200") => Ok(()),
        Some(_) => Err(format!("{target}/readyz: {status}")),
        None => Err(format!("{target}/readyz: no HTTP answer")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unspecified_addresses_are_probed_on_loopback() {
        let a: SocketAddr = "0.0.0.0:9464".parse().unwrap();
        assert_eq!(probe_address(a), "127.0.0.1:9464".parse().unwrap());
        let a: SocketAddr = "[::]:9464".parse().unwrap();
        assert_eq!(probe_address(a), "[::1]:9464".parse().unwrap());
        let a: SocketAddr = "10.1.2.3:9464".parse().unwrap();
        assert_eq!(probe_address(a), a);
    }

    #[test]
    fn a_closed_port_is_a_failure_naming_the_address() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let e = check(&addr.to_string(), Duration::from_secs(2)).unwrap_err();
        assert!(e.contains(&addr.to_string()), "{e}");
    }
}
