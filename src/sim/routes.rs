//! The route templates a simulated node answers, parsed once from the
//! embedded `fixtures/routes.txt` (the documented RS REST API plus routes
//! seen live). Matching only: which template a method and path hit, and
//! the values of its `{params}`. What to answer is `api.rs`'s business.

use std::sync::OnceLock;

const ROUTES_TXT: &str = include_str!("fixtures/routes.txt");

#[derive(Debug)]
enum Seg {
    Lit(&'static str),
    Param(&'static str),
}

/// One `METHOD /path/{param}` line.
#[derive(Debug)]
pub(crate) struct Route {
    pub method: &'static str,
    pub template: &'static str,
    segs: Vec<Seg>,
}

/// A template matched by a request path.
#[derive(Debug)]
pub(crate) struct Matched<'p> {
    pub route: &'static Route,
    /// `(param name, value)` in path order.
    pub params: Vec<(&'static str, &'p str)>,
}

/// The result of looking a request up.
#[derive(Debug)]
pub(crate) enum Lookup<'p> {
    Found(Matched<'p>),
    /// The path exists, but not for this method.
    WrongMethod,
    NotFound,
}

fn table() -> &'static [Route] {
    static TABLE: OnceLock<Vec<Route>> = OnceLock::new();
    TABLE.get_or_init(|| {
        ROUTES_TXT
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(|l| l.split_once(' '))
            .map(|(method, template)| Route {
                method,
                template,
                segs: template
                    .trim_start_matches('/')
                    .split('/')
                    .map(
                        |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                            Some(name) => Seg::Param(name),
                            None => Seg::Lit(s),
                        },
                    )
                    .collect(),
            })
            .collect()
    })
}

fn match_route<'p>(route: &'static Route, segs: &[&'p str]) -> Option<Matched<'p>> {
    if route.segs.len() != segs.len() {
        return None;
    }
    let mut m = Matched {
        route,
        params: Vec::new(),
    };
    for (t, s) in route.segs.iter().zip(segs) {
        match t {
            Seg::Lit(l) if l == s => {}
            Seg::Lit(_) => return None,
            Seg::Param(_) if s.is_empty() => return None,
            Seg::Param(name) => m.params.push((name, s)),
        }
    }
    Some(m)
}

/// The most specific template (most literal segments) for `method path`.
pub(crate) fn lookup<'p>(method: &str, path: &'p str) -> Lookup<'p> {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    if !path.starts_with('/') {
        return Lookup::NotFound;
    }
    let mut path_exists = false;
    let mut best: Option<Matched<'p>> = None;
    for route in table() {
        let Some(m) = match_route(route, &segs) else {
            continue;
        };
        path_exists = true;
        if route.method != method {
            continue;
        }
        if best
            .as_ref()
            .is_none_or(|b| b.params.len() > m.params.len())
        {
            best = Some(m);
        }
    }
    match best {
        Some(m) => Lookup::Found(m),
        None if path_exists => Lookup::WrongMethod,
        None => Lookup::NotFound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(method: &str, path: &str) -> &'static str {
        match lookup(method, path) {
            Lookup::Found(m) => m.route.template,
            other => panic!("{method} {path}: {other:?}"),
        }
    }

    #[test]
    fn literal_beats_param() {
        assert_eq!(found("GET", "/v1/bdbs/stats"), "/v1/bdbs/stats");
        assert_eq!(found("GET", "/v1/bdbs/7"), "/v1/bdbs/{uid}");
        assert_eq!(found("POST", "/v1/users/authorize"), "/v1/users/authorize");
    }

    #[test]
    fn params() {
        let Lookup::Found(m) = lookup("GET", "/v1/debuginfo/all/bdb/3") else {
            panic!("no match")
        };
        assert_eq!(m.params, vec![("bdb_uid", "3")]);
    }

    #[test]
    fn misses() {
        assert!(matches!(lookup("GET", "/v1/nope"), Lookup::NotFound));
        assert!(matches!(lookup("GET", "/v1/bdbs/"), Lookup::NotFound));
        assert!(matches!(
            lookup("PATCH", "/v1/cluster"),
            Lookup::WrongMethod
        ));
        assert!(matches!(lookup("GET", "*"), Lookup::NotFound));
    }
}
