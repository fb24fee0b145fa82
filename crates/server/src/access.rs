//! Who may call what: every route's handler takes one extractor, [`Agent`], [`Reviewer`],
//! [`Operator`] or [`Admin`], which authenticates the client key, checks that its role
//! is at least the route's, and hands the handler the [`Principal`] (the key's name,
//! role and tenant) with the gateway current for this request.
//!
//! The decision that shapes it: one place decides. A handler cannot forget the check,
//! because it cannot get at the gateway without its extractor, and the route table in
//! `handlers/mod.rs` states each route's role once, where `docs/security.md` and the
//! table-driven test (`tests/access.rs`) read it. Roles are ordered, each adding to the
//! one below it: `agent` < `reviewer` < `operator` < `admin`.
//!
//! Without client keys holdfast is a local tool: every caller is an admin of the tenant
//! `default`, so the only thing between a web page the user visits and the API is the
//! browser. [`Authorized`] then refuses what a browser would send on a page's behalf: a
//! `Host` that is not this server's loopback address (DNS rebinding), and on writes a
//! foreign `Origin` or `Sec-Fetch-Site`, and a body type a page may post without asking
//! the server first (anything but `application/json`, or `application/toml` for a
//! configuration).

use std::marker::PhantomData;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use axum::response::Response;
use holdfast_config::Role;
use holdfast_engine::Scope;

use crate::auth::Caller;
use crate::error::{ApiError, Flavor};
use crate::gateway::Gateway;
use crate::live::Live;
use crate::respond;

/// The tenant of every caller when the server has no client keys.
pub const OPEN_TENANT: &str = "default";

/// The name recorded for a caller when the server has no client keys.
pub(crate) const OPEN_NAME: &str = "local";

/// Who is calling: the client key that authenticated the request.
#[derive(Debug, Clone)]
pub(crate) struct Principal {
    /// The key (its index, for its limits), or anyone when the server has no keys.
    pub(crate) caller: Caller,
    /// The key's name: what logs and audit records show, never the key.
    pub(crate) name: Arc<str>,
    pub(crate) role: Role,
    pub(crate) tenant: Arc<str>,
}

impl Principal {
    /// Whose data the caller may read: every tenant's for an operator or an admin,
    /// else its own tenant's.
    pub(crate) fn reads(&self) -> Scope {
        if self.role >= Role::Operator {
            Scope::All
        } else {
            self.writes()
        }
    }

    /// Whose data the caller may change: its own tenant's, whatever its role.
    pub(crate) fn writes(&self) -> Scope {
        Scope::Tenant(self.tenant.to_string())
    }
}

/// The least role a route needs, as a type, so that each role is its own extractor.
pub(crate) trait Need: Send + Sync + 'static {
    /// The role.
    const ROLE: Role;
}

macro_rules! needs {
    ($($(#[$m:meta])* $marker:ident = $role:ident, $alias:ident;)*) => {$(
        $(#[$m])*
        pub(crate) struct $marker;
        impl Need for $marker {
            const ROLE: Role = Role::$role;
        }
        $(#[$m])*
        pub(crate) type $alias = Authorized<$marker>;
    )*};
}

needs! {
    /// A route for any key: model calls, its tenant's tasks, jobs and ledger.
    NeedsAgent = Agent, Agent;
    /// A route for reviewers and up: the escalation inbox.
    NeedsReviewer = Reviewer, Reviewer;
    /// A route for operators and up: drains, alerts, history, every tenant's data.
    NeedsOperator = Operator, Operator;
    /// A route for admins: configuration and workflow registration.
    NeedsAdmin = Admin, Admin;
}

/// A request whose caller holds at least `N`'s role.
pub(crate) struct Authorized<N> {
    /// The configuration current when the request arrived.
    pub(crate) gateway: Gateway,
    pub(crate) principal: Principal,
    need: PhantomData<N>,
}

impl<N: Need> FromRequestParts<Arc<Live>> for Authorized<N> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, live: &Arc<Live>) -> Result<Self, Response> {
        let gateway = Gateway::from_ref(live);
        match admit(&gateway, parts, N::ROLE) {
            Ok(principal) => Ok(Authorized {
                gateway,
                principal,
                need: PhantomData,
            }),
            Err(err) => {
                let flavor = if parts.uri.path() == "/v1/messages" {
                    Flavor::Anthropic
                } else {
                    Flavor::OpenAi
                };
                Err(respond::error(&err, flavor, &gateway.inner.reply()))
            }
        }
    }
}

/// The caller of `parts`, if it may call a route needing `needed`.
fn admit(gateway: &Gateway, parts: &Parts, needed: Role) -> Result<Principal, ApiError> {
    let keys = &gateway.inner.keys;
    if keys.is_empty() {
        guard_open(gateway.live.bound(), parts)?;
        return Ok(keys.principal(Caller::Anyone));
    }
    let principal = keys.principal(keys.authenticate(&parts.headers)?);
    if principal.role < needed {
        return Err(ApiError::Forbidden {
            needed,
            has: principal.role,
            key: principal.name.to_string(),
        });
    }
    Ok(principal)
}

/// Where the server listens, as open mode's `Host` check knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bound {
    /// Not bound through `serve` (a router driven in process): loopback names on any
    /// port are accepted.
    Unknown,
    /// Bound here: the `Host` must name this port on a loopback name or this address.
    At(SocketAddr),
    /// Started with `--insecure-no-auth` on a public address: any `Host` is accepted.
    AnyHost,
}

/// Open mode's refusals of what a browser sends on a web page's behalf.
fn guard_open(bound: Bound, parts: &Parts) -> Result<(), ApiError> {
    let host = host_of(&parts.headers);
    check_host(bound, host)?;
    if matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    check_origin(&parts.headers, host)?;
    let wanted: &[&str] = match parts.uri.path() {
        "/admin/config" => &["application/toml"],
        "/v1/workflows" => &["application/json", "application/toml"],
        _ => &["application/json"],
    };
    check_content_type(&parts.headers, wanted)
}

fn host_of(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::HOST).and_then(|h| h.to_str().ok())
}

/// Refuses a `Host` that is not this server: a page whose name was rebound to
/// 127.0.0.1 still sends its own name, which is what gives it away.
fn check_host(bound: Bound, host: Option<&str>) -> Result<(), ApiError> {
    let port = match bound {
        Bound::AnyHost => return Ok(()),
        Bound::At(addr) => Some(addr),
        Bound::Unknown => None,
    };
    let refuse = |what: String| {
        ApiError::CrossOrigin(format!(
            "{what}: without client keys holdfast answers only requests addressed to its \
             own loopback address (configure client keys to serve other hosts)"
        ))
    };
    let Some(host) = host else {
        return Err(refuse("the request has no Host header".to_owned()));
    };
    let (name, port_text) = split_host(host);
    let loopback = name.eq_ignore_ascii_case("localhost")
        || name
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback() || port.is_some_and(|a| a.ip() == ip));
    let port_matches = match (port, port_text) {
        (None, _) => true,
        (Some(addr), Some(text)) => text.parse::<u16>() == Ok(addr.port()),
        (Some(addr), None) => addr.port() == 80,
    };
    if loopback && port_matches {
        Ok(())
    } else {
        Err(refuse(format!("Host {host:?} is not this server")))
    }
}

/// `host[:port]` or `[v6]:port` split at the port.
fn split_host(host: &str) -> (&str, Option<&str>) {
    if host.starts_with('[') {
        return match host.rfind("]:") {
            Some(i) => (&host[..=i], Some(&host[i + 2..])),
            None => (host, None),
        };
    }
    match host.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    }
}

/// Refuses a write sent from another origin: a browser names the page's origin in
/// `Origin` (and `Sec-Fetch-Site`) on every cross-origin write; other clients send
/// neither.
fn check_origin(headers: &HeaderMap, host: Option<&str>) -> Result<(), ApiError> {
    let site = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if site.eq_ignore_ascii_case("cross-site") || site.eq_ignore_ascii_case("same-site") {
        return Err(ApiError::CrossOrigin(format!(
            "a write from another site (Sec-Fetch-Site: {site}) is refused"
        )));
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or("?");
    let own = host.is_some_and(|host| {
        origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .is_some_and(|o| o.eq_ignore_ascii_case(host))
    });
    if own {
        Ok(())
    } else {
        Err(ApiError::CrossOrigin(format!(
            "a write from the origin {origin:?} is refused: only holdfast's own pages may \
             write without a client key"
        )))
    }
}

/// Refuses a body type a web page may post anywhere without a preflight.
fn check_content_type(headers: &HeaderMap, wanted: &[&str]) -> Result<(), ApiError> {
    let given = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = given.split(';').next().unwrap_or("").trim();
    if wanted.iter().any(|w| essence.eq_ignore_ascii_case(w)) {
        Ok(())
    } else {
        let given = if given.is_empty() { "none" } else { given };
        Err(ApiError::UnsupportedMediaType(format!(
            "without client keys this endpoint takes Content-Type: {} (got {given})",
            wanted.join(" or ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn at(port: u16) -> Bound {
        Bound::At(SocketAddr::from(([127, 0, 0, 1], port)))
    }

    #[test]
    fn only_this_servers_loopback_names_pass_the_host_check() {
        for host in [
            "127.0.0.1:8080",
            "localhost:8080",
            "LOCALHOST:8080",
            "[::1]:8080",
        ] {
            assert!(check_host(at(8080), Some(host)).is_ok(), "{host}");
        }
        for host in [
            "evil.example:8080",
            "127.0.0.1:9090",
            "127.0.0.1",
            "10.0.0.1:8080",
            "",
        ] {
            assert!(check_host(at(8080), Some(host)).is_err(), "{host}");
        }
        assert!(check_host(at(8080), None).is_err());
        assert!(check_host(Bound::Unknown, Some("localhost:1234")).is_ok());
        assert!(check_host(Bound::Unknown, Some("rebound.example:1234")).is_err());
        assert!(check_host(Bound::AnyHost, Some("holdfast.internal")).is_ok());
    }

    #[test]
    fn a_write_must_come_from_its_own_origin_and_carry_its_body_type() {
        let mut headers = HeaderMap::new();
        assert!(check_origin(&headers, Some("127.0.0.1:8080")).is_ok());
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8080"),
        );
        assert!(check_origin(&headers, Some("127.0.0.1:8080")).is_ok());
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert!(check_origin(&headers, Some("127.0.0.1:8080")).is_err());
        headers.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(check_origin(&headers, Some("127.0.0.1:8080")).is_err());
        let mut fetch = HeaderMap::new();
        fetch.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(check_origin(&fetch, Some("127.0.0.1:8080")).is_err());

        let mut typed = HeaderMap::new();
        let json = &["application/json"];
        assert!(check_content_type(&typed, json).is_err());
        typed.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        assert!(check_content_type(&typed, json).is_err());
        typed.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("Application/JSON; charset=utf-8"),
        );
        assert!(check_content_type(&typed, json).is_ok());
    }
}
