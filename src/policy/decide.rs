//! The permission decision: a [`RouteMatch`] and a [`Principal`] in, a
//! [`Permit`] or a `Reject::Forbidden` out. Order: the role's permissions
//! (with the route's built-in role restriction), then the route's
//! self-service rule, then the route's mode (dry-run turns the denial into
//! a flagged permit). Nothing here allocates unless the request is denied.

use std::borrow::Cow;
use std::sync::Arc;

use super::config::Mode;
use super::profile::{EndpointClass, SelfService};
use super::roles::{Role, RoleTable};
use super::routes::{ApiVersion, Captures, Route};
use super::self_service;
use crate::context::Principal;
use crate::error::Reject;

/// Rule names carried by a [`Permit`] (bounded audit/metrics labels).
pub const RULE_ROLE: &str = "role-permission";
pub const RULE_SELF: &str = "self-service";
pub const RULE_DRY_RUN: &str = "dry-run";

/// A matched route: what the request is, before knowing who sends it.
#[derive(Debug, Clone, Copy)]
pub struct RouteMatch<'a> {
    /// `/v1/bdbs/{uid}`: a bounded label for metrics and audit.
    pub template: &'a str,
    /// The permission the route needs.
    pub permission: &'a str,
    pub class: EndpointClass,
    pub version: ApiVersion,
    /// The route is served by the node that receives it (pick a node, do
    /// not balance).
    pub node_local: bool,
    pub(crate) route: &'a super::routes::Route,
    caps: Captures<'a>,
}

impl<'a> RouteMatch<'a> {
    /// Whether the route's documented request carries a body: POST, PUT and
    /// PATCH, plus `DELETE /v1/users/password` (its body names the user and
    /// the password to remove). The docs data lists no other GET, HEAD or
    /// DELETE route with a body.
    pub fn takes_body(&self) -> bool {
        matches!(
            self.route.method,
            http::Method::POST | http::Method::PUT | http::Method::PATCH
        ) || self.route.self_service == Some(SelfService::Password)
    }

    pub(crate) fn new(route: &'a Route, caps: Captures<'a>) -> Self {
        RouteMatch {
            template: &route.template,
            permission: &route.permission_name,
            class: route.class,
            version: route.version,
            node_local: route.node_local,
            route,
            caps,
        }
    }

    /// The value captured for `{name}`, in canonical form.
    pub fn param(&self, name: &str) -> Option<&'a str> {
        let i = self.route.param_names.iter().position(|n| &**n == name)?;
        self.caps.values().get(i).copied()
    }

    /// `(name, value)` for every parameter.
    pub fn params(&self) -> impl Iterator<Item = (&'a str, &'a str)> + '_ {
        self.route
            .param_names
            .iter()
            .map(|n| &**n)
            .zip(self.caps.values().iter().copied())
    }

    /// The route's method.
    pub fn method(&self) -> &'a http::Method {
        &self.route.method
    }

    /// The template as a shared string (cheap to keep past the policy borrow).
    pub fn template_arc(&self) -> &'a Arc<str> {
        &self.route.template
    }
}

/// Proof that a request was authorized; rate limiting, forwarding and audit
/// take it. Owned, so it outlives the policy snapshot it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permit {
    pub template: Arc<str>,
    pub permission: Arc<str>,
    pub class: EndpointClass,
    pub version: ApiVersion,
    pub node_local: bool,
    /// Which rule decided: `"role-permission"`, `"self-service"`, `"dry-run"`.
    pub rule: &'static str,
    /// In dry-run mode, the denial enforce mode would have returned; the
    /// pipeline forwards but logs and counts it.
    pub dry_run_denied: Option<Reject>,
    /// The route's effective mode.
    pub mode: Mode,
    body_check: Option<SelfService>,
}

/// Outcome of [`Permit::check_body`] when the request may go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyVerdict {
    /// The body satisfies the permit (or none was required).
    Pass,
    /// The body fails the check but the route is in dry-run mode.
    DryRunDenied(Reject),
}

impl Permit {
    /// True when the body's `username` must be checked with
    /// [`check_self_username`](super::check_self_username) before forwarding.
    pub fn requires_self_username(&self) -> bool {
        self.body_check == Some(SelfService::Password)
    }

    /// True when the pipeline must buffer the (small) body and call
    /// [`Permit::check_body`] before forwarding.
    pub fn requires_body_check(&self) -> bool {
        self.body_check.is_some()
    }

    /// Which self-service body rule applies, if any.
    pub fn body_check(&self) -> Option<SelfService> {
        self.body_check
    }

    /// Runs the permit's body requirement. `Err` ends the request (400 for a
    /// malformed body, 403 for someone else's user or a field a user may not
    /// change on themselves); in dry-run mode a 403 becomes
    /// `BodyVerdict::DryRunDenied`.
    pub fn check_body(&self, body: &[u8], who: &Principal) -> Result<BodyVerdict, Reject> {
        let result = match self.body_check {
            None | Some(SelfService::OwnUser) => Ok(()),
            Some(SelfService::Password) => self_service::check_self_username(body, who),
            Some(SelfService::OwnUserUpdate) => {
                self_service::check_own_user_fields(body, &self.permission, who)
            }
        };
        match result {
            Ok(()) => Ok(BodyVerdict::Pass),
            Err(r @ Reject::Forbidden { .. }) if self.mode == Mode::DryRun => {
                Ok(BodyVerdict::DryRunDenied(r))
            }
            Err(r) => Err(r),
        }
    }
}

/// Whether `role` passes the route on its permissions alone.
pub(crate) fn role_allows(role: &Role, route: &Route) -> bool {
    if !role.perms.has(route.permission) {
        return false;
    }
    match route.roles_mask {
        None => true,
        Some(mask) => role.explicit.has(route.permission) || role.base_bit & mask != 0,
    }
}

/// Whether `{uid}` (the last parameter) is the caller's own uid, written
/// in canonical decimal (no sign, no leading zero).
pub(crate) fn is_own_uid(m: &RouteMatch<'_>, who: &Principal) -> bool {
    let (Some(uid), Some(mine)) = (m.param("uid"), who.uid) else {
        return false;
    };
    let b = uid.as_bytes();
    let canonical =
        !b.is_empty() && b.iter().all(u8::is_ascii_digit) && (b[0] != b'0' || b.len() == 1);
    canonical && uid.parse::<u64>().ok() == Some(mine)
}

/// Which self-service rule lets `who` through, if any. Unknown roles get
/// none: a principal whose role the policy does not know is denied outright.
pub(crate) fn self_service_applies(m: &RouteMatch<'_>, who: &Principal) -> Option<SelfService> {
    let kind = m.route.self_service?;
    match kind {
        SelfService::Password => Some(kind),
        SelfService::OwnUser | SelfService::OwnUserUpdate => is_own_uid(m, who).then_some(kind),
    }
}

fn permit(
    m: &RouteMatch<'_>,
    rule: &'static str,
    denied: Option<Reject>,
    body: Option<SelfService>,
) -> Permit {
    Permit {
        template: m.route.template.clone(),
        permission: m.route.permission_name.clone(),
        class: m.class,
        version: m.version,
        node_local: m.node_local,
        rule,
        dry_run_denied: denied,
        mode: m.route.mode,
        body_check: body,
    }
}

/// The decision (see the module doc for the order).
pub(crate) fn authorize(
    roles: &RoleTable,
    m: &RouteMatch<'_>,
    who: &Principal,
) -> Result<Permit, Reject> {
    if let Some(role) = roles.get(&who.role) {
        if role_allows(role, m.route) {
            return Ok(permit(m, RULE_ROLE, None, None));
        }
        if let Some(kind) = self_service_applies(m, who) {
            let body = (kind != SelfService::OwnUser).then_some(kind);
            return Ok(permit(m, RULE_SELF, None, body));
        }
    }
    let deny = Reject::Forbidden {
        permission: Cow::Owned(m.route.permission_name.to_string()),
        role: Cow::Owned(who.role.to_string()),
    };
    match m.route.mode {
        Mode::DryRun => Ok(permit(m, RULE_DRY_RUN, Some(deny), None)),
        Mode::Enforce => Err(deny),
    }
}
