//! The compiled route table: a segment trie over canonical paths, built once
//! from the profile. Matching is exact and case-sensitive; at every node a
//! literal segment wins over a parameter (`/v1/bdbs/stats` before
//! `/v1/bdbs/{uid}`) and there is no backtracking: once a literal matched,
//! a parameter route can no longer claim that segment, so
//! `DELETE /v1/bdbs/stats` is a 404, never `DELETE /v1/bdbs/{uid}`.
//! The first segment is the API version (`v1`, `v2`, `v4`), so an unknown
//! version or a route that does not exist in that version is a 404 by
//! construction.

use std::fmt;
use std::sync::Arc;

use http::Method;

use super::config::Mode;
use super::profile::{EndpointClass, SelfService};
use super::roles::PermId;
use crate::config::ConfigError;

/// Most parameters any template has (the profile's deepest has 3).
pub const MAX_PARAMS: usize = 4;
/// The methods the profile may use, in slot order.
const METHODS: [Method; 5] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
];

/// An API version: the path's first segment, `v<N>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ApiVersion(pub u16);

impl ApiVersion {
    /// `v1` from a template's first segment.
    pub fn from_segment(seg: &str) -> Option<Self> {
        let digits = seg.strip_prefix('v')?;
        Self::from_digits(digits.as_bytes())
    }

    /// An `x-api-version` header value: `v1` or `1`, nothing else.
    pub fn from_header(value: &[u8]) -> Option<Self> {
        Self::from_digits(value.strip_prefix(b"v").unwrap_or(value))
    }

    fn from_digits(d: &[u8]) -> Option<Self> {
        if d.is_empty() || d.len() > 4 || d[0] == b'0' || !d.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(d).ok()?.parse().ok().map(ApiVersion)
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.0)
    }
}

fn method_slot(m: &Method) -> Option<usize> {
    METHODS.iter().position(|x| x == m)
}

/// One compiled route.
#[derive(Debug)]
pub(crate) struct Route {
    pub method: Method,
    pub template: Arc<str>,
    pub permission: PermId,
    pub permission_name: Arc<str>,
    pub class: EndpointClass,
    pub version: ApiVersion,
    /// Built-in roles allowed (mask), when narrower than the permission.
    pub roles_mask: Option<u16>,
    pub self_service: Option<SelfService>,
    pub node_local: bool,
    pub live: bool,
    pub mode: Mode,
    pub param_names: Vec<Box<str>>,
}

#[derive(Debug, Default)]
struct Node {
    /// Sorted by segment for binary search.
    literals: Vec<(Box<str>, usize)>,
    param: Option<usize>,
    methods: [Option<u32>; 5],
}

/// The route table.
#[derive(Debug)]
pub(crate) struct RouteTable {
    nodes: Vec<Node>,
    pub routes: Vec<Route>,
}

/// Values captured for a template's parameters, in template order.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Captures<'a> {
    values: [&'a str; MAX_PARAMS],
    len: usize,
}

impl<'a> Captures<'a> {
    pub fn values(&self) -> &[&'a str] {
        &self.values[..self.len]
    }
}

impl RouteTable {
    pub fn new() -> Self {
        RouteTable {
            nodes: vec![Node::default()],
            routes: Vec::new(),
        }
    }

    /// Adds a route; `key` names it in errors.
    pub fn insert(&mut self, key: &str, route: Route) -> Result<(), ConfigError> {
        let slot = method_slot(&route.method)
            .ok_or_else(|| ConfigError::new(key, "method not in GET/POST/PUT/PATCH/DELETE"))?;
        let mut node = 0;
        let Some(rest) = route.template.strip_prefix('/') else {
            return Err(ConfigError::new(key, "template must start with '/'"));
        };
        for seg in rest.split('/') {
            if seg.is_empty() {
                return Err(ConfigError::new(key, "empty segment in template"));
            }
            node = if seg.starts_with('{') && seg.ends_with('}') {
                match self.nodes[node].param {
                    Some(n) => n,
                    None => {
                        let n = self.push_node();
                        self.nodes[node].param = Some(n);
                        n
                    }
                }
            } else {
                let lits = &self.nodes[node].literals;
                match lits.binary_search_by(|(s, _)| (**s).cmp(seg)) {
                    Ok(i) => lits[i].1,
                    Err(i) => {
                        let n = self.push_node();
                        self.nodes[node].literals.insert(i, (seg.into(), n));
                        n
                    }
                }
            };
        }
        if self.nodes[node].methods[slot].is_some() {
            return Err(ConfigError::new(key, "route defined twice"));
        }
        let idx = u32::try_from(self.routes.len())
            .map_err(|_| ConfigError::new(key, "too many routes"))?;
        self.nodes[node].methods[slot] = Some(idx);
        self.routes.push(route);
        Ok(())
    }

    fn push_node(&mut self) -> usize {
        self.nodes.push(Node::default());
        self.nodes.len() - 1
    }

    /// Finds the route for a canonical path, or `None` (unknown path, or a
    /// method not defined for it).
    pub fn find<'a>(&'a self, method: &Method, path: &'a str) -> Option<(&'a Route, Captures<'a>)> {
        let slot = method_slot(method)?;
        let rest = path.strip_prefix('/')?;
        let mut caps = Captures {
            values: [""; MAX_PARAMS],
            len: 0,
        };
        let mut node = &self.nodes[0];
        for seg in rest.split('/') {
            let next = match node.literals.binary_search_by(|(s, _)| (**s).cmp(seg)) {
                Ok(i) => node.literals[i].1,
                Err(_) => {
                    let n = node.param?;
                    // Parameters never span or capture an empty segment.
                    if seg.is_empty() || caps.len == MAX_PARAMS {
                        return None;
                    }
                    caps.values[caps.len] = seg;
                    caps.len += 1;
                    n
                }
            };
            node = &self.nodes[next];
        }
        let idx = node.methods[slot]?;
        let route = self.routes.get(usize::try_from(idx).ok()?)?;
        Some((route, caps))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(method: Method, t: &str) -> Route {
        Route {
            method,
            template: t.into(),
            permission: PermId(0),
            permission_name: "p".into(),
            class: EndpointClass::Read,
            version: ApiVersion(1),
            roles_mask: None,
            self_service: None,
            node_local: false,
            live: false,
            mode: Mode::Enforce,
            param_names: Vec::new(),
        }
    }

    #[test]
    fn literal_wins_without_backtracking() {
        let mut t = RouteTable::new();
        t.insert("a", route(Method::GET, "/v1/bdbs/{uid}")).unwrap();
        t.insert("b", route(Method::DELETE, "/v1/bdbs/{uid}"))
            .unwrap();
        t.insert("c", route(Method::GET, "/v1/bdbs/stats")).unwrap();
        let (r, c) = t.find(&Method::GET, "/v1/bdbs/stats").unwrap();
        assert_eq!(&*r.template, "/v1/bdbs/stats");
        assert!(c.values().is_empty());
        let (r, c) = t.find(&Method::GET, "/v1/bdbs/7").unwrap();
        assert_eq!(&*r.template, "/v1/bdbs/{uid}");
        assert_eq!(c.values(), ["7"]);
        assert!(t.find(&Method::DELETE, "/v1/bdbs/stats").is_none());
        assert!(t.find(&Method::HEAD, "/v1/bdbs/7").is_none());
        assert!(t.find(&Method::GET, "/v1/bdbs").is_none());
        assert!(t.insert("d", route(Method::GET, "/v1/bdbs/{x}")).is_err());
    }

    #[test]
    fn versions_parse_strictly() {
        assert_eq!(ApiVersion::from_header(b"v2"), Some(ApiVersion(2)));
        assert_eq!(ApiVersion::from_header(b"2"), Some(ApiVersion(2)));
        for bad in [&b""[..], b"v", b"V2", b"v02", b"2.0", b" 2", b"v99999"] {
            assert_eq!(ApiVersion::from_header(bad), None, "{bad:?}");
        }
        assert_eq!(ApiVersion::from_segment("v4"), Some(ApiVersion(4)));
        assert_eq!(ApiVersion::from_segment("bdbs"), None);
    }
}
