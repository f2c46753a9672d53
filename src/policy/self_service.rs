//! Body checks behind the self-service rules: a user may change their own
//! password (`/v1/users/password` with their own `username`) and update
//! their own record (`PUT /v1/users/{uid}`) in the fields the docs name.
//! The pipeline buffers a small body and calls these before forwarding.
//! Duplicate JSON keys are refused: a parser that keeps the last duplicate
//! upstream must not see another value than the one checked here.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};

use super::ADMIN_ONLY;
use crate::context::Principal;
use crate::error::Reject;

/// Fields a user may set on their own record ("Any user can change their
/// own name, password, or alert preferences", requests/users/_index.md).
const OWN_USER_FIELDS: &[&str] = &[
    "name",
    "password",
    "password_hash_method",
    "email_alerts",
    "bdbs_email_alerts",
    "cluster_email_alerts",
];

fn bad_body() -> Reject {
    Reject::BadRequest {
        code: "invalid_body",
        description: "self-service request body must be one JSON object without duplicate keys",
    }
}

fn forbidden(permission: &str, who: &Principal) -> Reject {
    Reject::Forbidden {
        permission: Cow::Owned(permission.to_owned()),
        role: Cow::Owned(who.role.to_string()),
    }
}

/// Passes when the JSON body is an object whose `username` is exactly the
/// caller's user name. A missing `username` is refused (the cluster would
/// read it as "the authenticated user", which behind the gateway need not
/// be the caller); another user's name needs `admin_only` (403).
pub fn check_self_username(body: &[u8], principal: &Principal) -> Result<(), Reject> {
    let keys = parse_object(body, Some("username"))?;
    match keys.wanted {
        Some(name) if name == *principal.user => Ok(()),
        _ => Err(forbidden(ADMIN_ONLY, principal)),
    }
}

/// Passes when the JSON body is an object with only [`OWN_USER_FIELDS`]
/// (and `alert_*`) keys; anything else (role, role_uids, email, ...) needs
/// `permission` (403).
pub(crate) fn check_own_user_fields(
    body: &[u8],
    permission: &str,
    who: &Principal,
) -> Result<(), Reject> {
    let keys = parse_object(body, None)?;
    let allowed = |k: &str| OWN_USER_FIELDS.contains(&k) || k.starts_with("alert_");
    if keys.names.iter().all(|k| allowed(k)) {
        Ok(())
    } else {
        Err(forbidden(permission, who))
    }
}

struct Keys {
    names: Vec<String>,
    wanted: Option<String>,
}

fn parse_object(body: &[u8], want: Option<&'static str>) -> Result<Keys, Reject> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let keys = de
        .deserialize_map(ObjectKeys { want })
        .map_err(|_| bad_body())?;
    de.end().map_err(|_| bad_body())?;
    Ok(keys)
}

/// Collects an object's keys (refusing duplicates) and the string value of
/// one wanted key.
struct ObjectKeys {
    want: Option<&'static str>,
}

impl<'de> Visitor<'de> for ObjectKeys {
    type Value = Keys;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Keys, A::Error> {
        let mut seen = HashSet::new();
        let mut names = Vec::new();
        let mut wanted = None;
        while let Some(k) = map.next_key::<String>()? {
            if !seen.insert(k.clone()) || seen.len() > 64 {
                return Err(de::Error::custom("duplicate or too many keys"));
            }
            if Some(k.as_str()) == self.want {
                // A non-string username is malformed, not "someone else".
                wanted = Some(map.next_value::<String>()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
            names.push(k);
        }
        Ok(Keys { names, wanted })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::IdentitySource;

    fn alice() -> Principal {
        Principal {
            user: "alice".into(),
            uid: Some(3),
            role: "db_viewer".into(),
            source: IdentitySource::File,
        }
    }

    #[test]
    fn username_must_be_own_and_present() {
        let p = alice();
        assert!(check_self_username(br#"{"username":"alice","new_password":"x"}"#, &p).is_ok());
        assert!(check_self_username(br#" {"username":"al\u0069ce"} "#, &p).is_ok());
        for body in [
            &br#"{"username":"bob"}"#[..],
            br#"{"new_password":"x"}"#,
            br#"{"username":"Alice"}"#,
        ] {
            assert!(
                matches!(check_self_username(body, &p), Err(Reject::Forbidden { .. })),
                "{body:?}"
            );
        }
        for body in [
            &br#"{"username":"alice","username":"bob"}"#[..],
            br#"["alice"]"#,
            br#"{"username":1}"#,
            br#"{"username":"alice"} x"#,
            b"",
            b"\xff",
        ] {
            assert!(
                matches!(
                    check_self_username(body, &p),
                    Err(Reject::BadRequest { .. })
                ),
                "{body:?}"
            );
        }
    }

    #[test]
    fn own_record_fields_are_limited() {
        let p = alice();
        assert!(check_own_user_fields(
            br#"{"name":"A","email_alerts":false,"alert_node_failed":true}"#,
            "update_user",
            &p
        )
        .is_ok());
        assert!(matches!(
            check_own_user_fields(br#"{"name":"A","role":"admin"}"#, "update_user", &p),
            Err(Reject::Forbidden { .. })
        ));
        assert!(check_own_user_fields(br#"{"role_uids":[1]}"#, "update_user", &p).is_err());
    }
}
