//! Where tool calls may go: the egress rules of `http` steps (`[engine.egress]`).
//!
//! A step's URL is a template over the task's input and a tool's answer goes back to
//! whoever submitted the task, so an open tool client is a server-side request forgery
//! waiting to happen: loopback admin ports, private networks, the cloud metadata service
//! and its credentials. By default a tool call may reach any public address and nothing
//! else; an allow list narrows that to some URLs, and a pattern that names a host
//! exactly (an IP literal, or a host name) is what opens non-public addresses to it.
//!
//! The decision that shapes this module: the rule is checked on the address a
//! connection is actually made to, not on the URL's text. Host names are resolved by
//! our own resolver ([`hooks`]), which hands the connector only permitted addresses, so
//! a name cannot resolve to a public address for a check and to loopback for the
//! connection (DNS rebinding); IP literals, which skip resolution, are checked here
//! before anything is sent; every redirect hop is checked like a first request. A
//! refusal is [`Denied`], and the step fails with the class `egress_denied`.

mod address;
mod hooks;
mod pattern;
#[cfg(test)]
mod tests;

use std::fmt;
use std::net::IpAddr;

use reqwest::Url;

pub use address::{Class, Classified, Reach, classify};
pub(crate) use hooks::{denial, guard, unfollowed_redirect};
pub use pattern::{Pattern, PatternError};

/// The most redirects one tool call follows, when it follows any.
pub const MAX_REDIRECTS: usize = 5;

/// The egress rules: where tool calls may go. The default allows every public URL,
/// denies every other address and follows no redirect.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    allow: Vec<Pattern>,
    follow_redirects: bool,
}

/// Why a tool call was refused. Nothing was sent to the destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// The URL's scheme is not `http` or `https`.
    Scheme {
        /// The scheme.
        scheme: String,
    },
    /// No allow pattern matches the URL.
    NotAllowed {
        /// `scheme://host[:port]` of the URL.
        origin: String,
        /// Whether some pattern names this host exactly (then only those apply).
        host_named: bool,
    },
    /// The host is, or resolves to, an address the rules deny.
    Address {
        /// The URL's host.
        host: String,
        /// The address.
        ip: IpAddr,
        /// Its class and range.
        classified: Classified,
    },
    /// The tool answered with a redirect and redirects are off.
    Redirect {
        /// `scheme://host[:port]` of the URL that redirected.
        from: String,
        /// `scheme://host[:port]` of where it pointed.
        to: String,
    },
    /// The tool redirected somewhere the client cannot follow.
    Unfollowable {
        /// `scheme://host[:port]` of the URL that redirected.
        from: String,
        /// `scheme://host[:port]` of where it pointed, as far as it could be read.
        to: String,
    },
    /// More than [`MAX_REDIRECTS`] redirects.
    TooManyRedirects {
        /// `scheme://host[:port]` of the first URL.
        origin: String,
    },
}

impl Rules {
    /// Rules allowing the URLs `allow` matches (every public URL when it is empty), and
    /// following redirects when `follow_redirects`.
    pub fn new(allow: Vec<Pattern>, follow_redirects: bool) -> Self {
        Rules {
            allow,
            follow_redirects,
        }
    }

    /// The allow list.
    pub fn allow(&self) -> &[Pattern] {
        &self.allow
    }

    /// Whether redirects are followed (each hop checked as a first request is).
    pub fn follows_redirects(&self) -> bool {
        self.follow_redirects
    }

    /// Checks `url` before any connection: its scheme, the allow list, and the address
    /// of an IP-literal host. A host name's addresses are checked when it is resolved.
    ///
    /// Patterns naming the URL's host exactly take precedence: when some do, only they
    /// can match, so `http://*/*` never widens what `http://tools.internal:8080/*` opens.
    pub fn check(&self, url: &Url) -> Result<(), Denied> {
        let origin = origin(url);
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Denied::Scheme {
                scheme: url.scheme().to_owned(),
            });
        }
        let Some(host) = url.host() else {
            return Err(Denied::NotAllowed {
                origin,
                host_named: false,
            });
        };
        let named: Vec<&Pattern> = self.allow.iter().filter(|p| p.names(&host)).collect();
        let allowed = if named.is_empty() {
            self.allow.is_empty() || self.allow.iter().any(|p| p.matches(url))
        } else {
            named.iter().any(|p| p.matches(url))
        };
        if !allowed {
            return Err(Denied::NotAllowed {
                origin,
                host_named: !named.is_empty(),
            });
        }
        match pattern::host_ip(&host) {
            Some(ip) => admit(&ip.to_string(), ip, !named.is_empty(), true),
            // A host name's addresses are checked as it resolves.
            None => Ok(()),
        }
    }

    /// Whether the host name `name` may connect to `ip`, one of its resolved addresses.
    pub fn check_resolved(&self, name: &str, ip: IpAddr) -> Result<(), Denied> {
        let named = self.allow.iter().any(|p| p.names_host_name(name));
        admit(name, ip, named, false)
    }
}

/// Whether `host`'s address `ip` is open: `named` when a pattern names the host
/// exactly, `literal` when that host is the IP literal itself.
fn admit(host: &str, ip: IpAddr, named: bool, literal: bool) -> Result<(), Denied> {
    let classified = classify(ip);
    let open = match classified.class.reach() {
        Reach::Always => true,
        Reach::WhenNamed => named,
        Reach::WhenNamedLiterally => named && literal,
        Reach::Never => false,
    };
    if open {
        Ok(())
    } else {
        Err(Denied::Address {
            host: host.to_owned(),
            ip,
            classified,
        })
    }
}

/// `scheme://host[:port]`: what messages name, never the path or query (which may hold
/// a secret) nor user info.
pub(crate) fn origin(url: &Url) -> String {
    match url.origin() {
        origin @ url::Origin::Tuple(..) => origin.ascii_serialization(),
        url::Origin::Opaque(_) => format!("{}:", url.scheme()),
    }
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("egress denied: ")?;
        match self {
            Denied::Scheme { scheme } => write!(
                f,
                "{scheme}: URLs are refused; tools are called over http or https"
            ),
            Denied::NotAllowed { origin, host_named } if *host_named => write!(
                f,
                "{origin} matches none of the [engine.egress] allow patterns naming its host"
            ),
            Denied::NotAllowed { origin, .. } => {
                write!(f, "{origin} matches no [engine.egress] allow pattern")
            }
            Denied::Address {
                host,
                ip,
                classified,
            } => {
                let Classified { class, range } = classified;
                if *host == ip.to_string() {
                    write!(f, "{ip} is {class} ({range})")?;
                } else {
                    write!(f, "{host} resolves to {ip}, {class} ({range})")?;
                }
                match class.reach() {
                    Reach::Always => Ok(()),
                    Reach::WhenNamed => write!(
                        f,
                        "; only an [engine.egress] allow pattern naming {host} can open it"
                    ),
                    Reach::WhenNamedLiterally => write!(
                        f,
                        "; only an [engine.egress] allow pattern naming the address {ip} \
                         itself can open it"
                    ),
                    Reach::Never => f.write_str("; no rule opens it"),
                }
            }
            Denied::Redirect { from, to } => write!(
                f,
                "{from} redirected to {to}; redirects are not followed \
                 ([engine.egress] follow_redirects is off)"
            ),
            Denied::Unfollowable { from, to } => {
                write!(f, "{from} redirected to {to}, which cannot be followed")
            }
            Denied::TooManyRedirects { origin } => {
                write!(f, "more than {MAX_REDIRECTS} redirects from {origin}")
            }
        }
    }
}

impl std::error::Error for Denied {}
