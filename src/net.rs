//! Client addresses: CIDR sets for `server.trusted_proxies`, the client IP
//! a request is attributed to (socket peer, or the right-most untrusted
//! `X-Forwarded-For` hop when the peer is a trusted proxy), and the key
//! that per-client limits count under (IPv4-mapped IPv6 as IPv4, IPv6 per
//! /64 by default).

use std::net::{IpAddr, Ipv6Addr};

use http::HeaderMap;

/// An address block, e.g. `10.0.0.0/8` or `::1/128`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `ip` or `ip/prefix`.
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let (ip, prefix) = match text.split_once('/') {
            Some((ip, p)) => (ip, Some(p)),
            None => (text, None),
        };
        let ip: IpAddr = ip
            .trim()
            .parse()
            .map_err(|_| format!("`{text}` is not an IP address or CIDR block"))?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{text}` has a prefix outside 0..={max}"))?,
            None => max,
        };
        Ok(Cidr {
            net: mask(canonical(ip), prefix),
            prefix,
        })
    }

    /// True when `ip` lies inside the block.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        ip.is_ipv4() == self.net.is_ipv4() && mask(ip, self.prefix) == self.net
    }
}

/// IPv4-mapped IPv6 (`::ffff:a.b.c.d`) as plain IPv4; everything else as is.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let m = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(prefix.min(32)))
            };
            IpAddr::V4((bits & m).into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let m = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(prefix.min(128)))
            };
            IpAddr::V6(Ipv6Addr::from(bits & m))
        }
    }
}

/// The key per-client limits count under: IPv4 as is, IPv6 masked to
/// `v6_prefix` bits (a client owns a whole /64 and can rotate inside it).
pub fn limit_key(ip: IpAddr, v6_prefix: u8) -> IpAddr {
    match canonical(ip) {
        v4 @ IpAddr::V4(_) => v4,
        v6 => mask(v6, v6_prefix),
    }
}

/// The trusted-proxy set.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    blocks: Vec<Cidr>,
}

impl TrustedProxies {
    pub fn new(blocks: Vec<Cidr>) -> Self {
        TrustedProxies { blocks }
    }

    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.blocks.iter().any(|b| b.contains(ip))
    }

    /// True when a block has prefix 0 (`0.0.0.0/0`, `::/0`): every peer of
    /// that family may then set the client address with `X-Forwarded-For`.
    pub fn covers_everything(&self) -> bool {
        self.blocks.iter().any(|b| b.prefix == 0)
    }

    /// The address a request is attributed to. The socket peer, unless the
    /// peer is a trusted proxy: then the right-most `X-Forwarded-For` hop
    /// that is not itself trusted (all XFF headers, in order). A malformed
    /// hop stops the walk at the last good address: a client cannot use
    /// garbage to fall back to a spoofed value further left.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if self.blocks.is_empty() || !self.contains(peer) {
            return peer;
        }
        let mut current = peer;
        let values: Vec<&[u8]> = headers
            .get_all(crate::upstream::headers::X_FORWARDED_FOR)
            .iter()
            .map(|v| v.as_bytes())
            .collect();
        for value in values.iter().rev() {
            let Ok(text) = std::str::from_utf8(value) else {
                return current;
            };
            for hop in text.rsplit(',') {
                let Ok(ip) = hop.trim().parse::<IpAddr>() else {
                    return current;
                };
                let ip = canonical(ip);
                if !self.contains(ip) {
                    return ip;
                }
                current = ip;
            }
        }
        current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(values: &[&str]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for v in values {
            m.append("x-forwarded-for", v.parse().unwrap());
        }
        m
    }

    #[test]
    fn cidr_contains() {
        let c = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(c.contains("10.1.2.3".parse().unwrap()));
        assert!(!c.contains("11.1.2.3".parse().unwrap()));
        assert!(c.contains("::ffff:10.9.9.9".parse().unwrap()));
        let one = Cidr::parse("127.0.0.1").unwrap();
        assert!(one.contains("127.0.0.1".parse().unwrap()));
        assert!(!one.contains("127.0.0.2".parse().unwrap()));
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("nope").is_err());
    }

    #[test]
    fn xff_ignored_from_untrusted_peer() {
        let t = TrustedProxies::new(vec![Cidr::parse("10.0.0.1").unwrap()]);
        let peer: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(t.client_ip(peer, &h(&["1.1.1.1"])), peer);
    }

    #[test]
    fn xff_rightmost_untrusted_hop() {
        let t = TrustedProxies::new(vec![Cidr::parse("10.0.0.0/8").unwrap()]);
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        let ip = t.client_ip(peer, &h(&["6.6.6.6, 203.0.113.9", "10.0.0.2"]));
        assert_eq!(ip, "203.0.113.9".parse::<IpAddr>().unwrap());
        // garbage stops the walk at the last good hop
        let ip = t.client_ip(peer, &h(&["6.6.6.6, junk"]));
        assert_eq!(ip, peer);
    }

    #[test]
    fn limit_keys() {
        let a = limit_key("2001:db8::1".parse().unwrap(), 64);
        let b = limit_key("2001:db8::ffff:1".parse().unwrap(), 64);
        assert_eq!(a, b);
        let mapped = limit_key("::ffff:127.0.0.1".parse().unwrap(), 64);
        assert_eq!(mapped, "127.0.0.1".parse::<IpAddr>().unwrap());
    }
}
