//! `regate explain`: runs the same canonicalize -> resolve -> authorize
//! path as a request and reports which rule decided, for operators. Never
//! used on the request path, so it may allocate freely.

use std::fmt;
use std::sync::Arc;

use http::Method;

use super::decide::{RULE_DRY_RUN, RULE_ROLE, RULE_SELF};
use super::{canonicalize, Policy};
use crate::context::{IdentitySource, Principal};
use crate::error::Reject;

/// The outcome of [`Policy::explain`], printable with `Display`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    pub method: String,
    pub path: String,
    /// The canonical path, when canonicalization passed.
    pub canonical: Option<String>,
    /// `GET /v1/bdbs/{uid}`-style route, when one matched.
    pub template: Option<String>,
    pub permission: Option<String>,
    pub class: Option<&'static str>,
    pub version: Option<String>,
    pub role: String,
    pub user: String,
    /// `Ok(rule)` when permitted, the rejection otherwise.
    pub decision: Result<&'static str, Reject>,
    /// Set for a dry-run permit: what enforce mode would have answered.
    pub dry_run_denied: Option<Reject>,
    /// A body requirement the pipeline would still check.
    pub body_requirement: Option<&'static str>,
    /// Human-readable reason.
    pub reason: String,
}

impl Policy {
    /// Explains the decision for `method path` sent by `user` with `role`
    /// (and cluster `uid`, for self-service). `path` may carry a query,
    /// which is ignored as on the request path.
    pub fn explain(
        &self,
        role: &str,
        uid: Option<u64>,
        user: &str,
        method: &str,
        path: &str,
    ) -> Explanation {
        let mut ex = Explanation {
            method: method.to_owned(),
            path: path.to_owned(),
            canonical: None,
            template: None,
            permission: None,
            class: None,
            version: None,
            role: role.to_owned(),
            user: user.to_owned(),
            decision: Err(Reject::NotFound),
            dry_run_denied: None,
            body_requirement: None,
            reason: String::new(),
        };
        let path_only = path.split_once('?').map_or(path, |(p, _)| p);
        let canonical = match canonicalize(path_only) {
            Ok(c) => c.into_owned(),
            Err(r) => {
                ex.reason = format!("path refused before routing: {}", r.parts().description);
                ex.decision = Err(r);
                return ex;
            }
        };
        ex.canonical = Some(canonical.clone());
        let Ok(m) = Method::from_bytes(method.as_bytes()) else {
            ex.decision = Err(Reject::MethodNotAllowed);
            ex.reason = "not an HTTP method".into();
            return ex;
        };
        let matched = match self.resolve(&m, &canonical, None) {
            Ok(r) => r,
            Err(r) => {
                ex.reason =
                    "no route of the profile matches this method and path: denied by default"
                        .into();
                ex.decision = Err(r);
                return ex;
            }
        };
        ex.template = Some(format!("{} {}", m, matched.template));
        ex.permission = Some(matched.permission.to_owned());
        ex.class = Some(matched.class.as_str());
        ex.version = Some(matched.version.to_string());
        let who = Principal {
            user: Arc::from(user),
            uid,
            role: Arc::from(role),
            source: IdentitySource::File,
        };
        let known = self.has_role(role);
        match self.authorize(&matched, &who) {
            Ok(p) => {
                ex.reason = match p.rule {
                    RULE_ROLE => format!("role '{role}' holds '{}'", p.permission),
                    RULE_SELF => format!("role '{role}' lacks '{}', but the route's self-service rule applies to the caller's own account", p.permission),
                    RULE_DRY_RUN => format!("denied ('{role}' lacks '{}'), but the route is in dry_run mode: forwarded and logged", p.permission),
                    other => other.to_owned(),
                };
                ex.body_requirement = match p.body_check() {
                    Some(super::SelfService::Password) => {
                        Some("body `username` must equal the caller's user name")
                    }
                    Some(super::SelfService::OwnUserUpdate) => {
                        Some("body may only set name, password and alert preferences")
                    }
                    _ => None,
                };
                ex.dry_run_denied = p.dry_run_denied.clone();
                ex.decision = Ok(p.rule);
            }
            Err(r) => {
                ex.reason = if !known {
                    format!("role '{role}' is not defined in this policy")
                } else if self.role_holds(role, matched.permission) {
                    format!("role '{role}' holds '{}' but the route's documentation restricts it to other built-in roles", matched.permission)
                } else {
                    format!(
                        "role '{role}' does not hold '{}' and no self-service rule applies",
                        matched.permission
                    )
                };
                ex.decision = Err(r);
            }
        }
        ex
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.decision {
            Ok(rule) => writeln!(f, "decision:   PERMIT (rule: {rule})")?,
            Err(r) => {
                let p = r.parts();
                writeln!(f, "decision:   DENY {} {}", p.status.as_u16(), p.error_code)?
            }
        }
        writeln!(f, "request:    {} {}", self.method, self.path)?;
        if let Some(c) = &self.canonical {
            writeln!(f, "canonical:  {c}")?;
        }
        writeln!(
            f,
            "route:      {}",
            self.template.as_deref().unwrap_or("(none)")
        )?;
        if let (Some(v), Some(c)) = (&self.version, self.class) {
            writeln!(f, "version:    {v}  class: {c}")?;
        }
        writeln!(
            f,
            "permission: {}",
            self.permission.as_deref().unwrap_or("(none)")
        )?;
        writeln!(f, "principal:  user '{}', role '{}'", self.user, self.role)?;
        writeln!(f, "rule:       {}", self.reason)?;
        if let Some(b) = self.body_requirement {
            writeln!(f, "body:       {b}")?;
        }
        if let Some(d) = &self.dry_run_denied {
            writeln!(
                f,
                "dry-run:    enforce mode would answer {}",
                d.parts().status.as_u16()
            )?;
        }
        Ok(())
    }
}
