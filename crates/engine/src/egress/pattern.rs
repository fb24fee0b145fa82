//! The allow-list pattern: which URLs a tool call may go to.
//!
//! ```text
//! pattern = scheme "://" host [ ":" port ] [ path ]
//! scheme  = "http" | "https"
//! host    = "*"              any host (public addresses only)
//!         | "*." name        any name ending in ".name", not name itself (public only)
//!         | name             exactly this host name, case-insensitive
//!         | IPv4 | "[" IPv6 "]"   exactly this address
//! port    = 1..=65535 | "*"  default: the scheme's own port (80, 443)
//! path    = "/" …            a glob: `*` matches any run of characters, `/` included;
//!                            everything else matches itself; default: any path
//! ```
//!
//! The decision: a pattern is normalised the way a request's URL is (the same parser:
//! host names lowercased and IDNA-encoded, IPv4 shorthands such as `0x7f.1` read as
//! the address they mean, paths percent-encoded with dot segments resolved), so a
//! pattern and a URL are compared in one spelling and no alternative spelling slips
//! past. No user info, query or fragment: the query is never matched.

use std::fmt;
use std::net::IpAddr;

use reqwest::Url;
use url::Host;

use super::address::{Reach, classify};

/// One parsed allow-list pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    scheme: Scheme,
    host: HostPattern,
    port: Option<u16>,
    path: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Http,
    Https,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    /// `*`.
    Any,
    /// `*.suffix`: the suffix, without its leading dot.
    Subdomains(String),
    /// An exact host name, normalised.
    Name(String),
    /// An exact IP address.
    Ip(IpAddr),
}

/// Why a pattern does not parse: a message for the configuration's error at the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PatternError(String);

fn err<T>(message: impl Into<String>) -> Result<T, PatternError> {
    Err(PatternError(message.into()))
}

impl Pattern {
    /// Parses `text` (see the module's grammar).
    pub fn parse(text: &str) -> Result<Pattern, PatternError> {
        if text
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '\\')
        {
            return err("must not contain spaces, backslashes or control characters");
        }
        let (scheme, rest) = match text.split_once("://") {
            Some((s, rest)) if s.eq_ignore_ascii_case("http") => (Scheme::Http, rest),
            Some((s, rest)) if s.eq_ignore_ascii_case("https") => (Scheme::Https, rest),
            _ => return err("must start with http:// or https://"),
        };
        if rest.contains(['?', '#']) {
            return err(
                "must not contain a query (?) or a fragment (#): queries are never matched",
            );
        }
        let (authority, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
        if authority.contains('@') {
            return err("must not contain a user name or password (@)");
        }
        let (host, port) = split_port(authority)?;
        let host = parse_host(scheme, host)?;
        let port = match port {
            None => Some(scheme.default_port()),
            Some("*") => None,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => Some(n),
                _ => return err(format!("port {p:?} must be 1..=65535 or *")),
            },
        };
        Ok(Pattern {
            scheme,
            host,
            port,
            path: normalise_path(path)?,
        })
    }

    /// Whether `url` matches: scheme, host, port (the scheme's default when the URL
    /// gives none) and path.
    pub fn matches(&self, url: &Url) -> bool {
        let scheme = match url.scheme() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            _ => return false,
        };
        scheme == self.scheme
            && url.host().is_some_and(|h| self.host.matches(&h))
            && self
                .port
                .is_none_or(|p| url.port_or_known_default() == Some(p))
            && glob(self.path.as_bytes(), url.path().as_bytes())
    }

    /// Whether this pattern names `host` exactly (an exact name or IP, not a wildcard):
    /// what opens non-public addresses to it.
    pub fn names(&self, host: &Host<&str>) -> bool {
        match &self.host {
            HostPattern::Any | HostPattern::Subdomains(_) => false,
            HostPattern::Name(_) | HostPattern::Ip(_) => self.host.matches(host),
        }
    }

    /// Whether this pattern names the host name `name` exactly.
    pub(super) fn names_host_name(&self, name: &str) -> bool {
        matches!(&self.host, HostPattern::Name(n) if n == name)
    }
}

impl Scheme {
    fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

impl HostPattern {
    fn matches(&self, host: &Host<&str>) -> bool {
        match self {
            HostPattern::Any => true,
            HostPattern::Subdomains(suffix) => matches!(host, Host::Domain(d)
                if d.strip_suffix(suffix.as_str())
                    .is_some_and(|head| head.len() > 1 && head.ends_with('.'))),
            HostPattern::Name(name) => matches!(host, Host::Domain(d) if d == name),
            HostPattern::Ip(ip) => host_ip(host) == Some(*ip),
        }
    }
}

/// The address of an IP-literal host.
pub(super) fn host_ip(host: &Host<&str>) -> Option<IpAddr> {
    match host {
        Host::Domain(_) => None,
        Host::Ipv4(v4) => Some(IpAddr::V4(*v4)),
        Host::Ipv6(v6) => Some(IpAddr::V6(*v6)),
    }
}

/// `host[:port]` → (host, port), keeping an IPv6 literal's brackets.
fn split_port(authority: &str) -> Result<(&str, Option<&str>), PatternError> {
    if authority.starts_with('[') {
        let Some(end) = authority.find(']') else {
            return err("IPv6 address has no closing ]");
        };
        let (host, rest) = authority.split_at(end + 1);
        return match rest.strip_prefix(':') {
            Some(port) => Ok((host, Some(port))),
            None if rest.is_empty() => Ok((host, None)),
            None => err(format!("unexpected {rest:?} after the host")),
        };
    }
    Ok(match authority.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    })
}

fn parse_host(scheme: Scheme, host: &str) -> Result<HostPattern, PatternError> {
    if host.is_empty() {
        return err("has no host");
    }
    if host == "*" {
        return Ok(HostPattern::Any);
    }
    let (wild, exact) = match host.strip_prefix("*.") {
        Some(suffix) => (true, suffix),
        None => (false, host),
    };
    if exact.contains('*') {
        return err("`*` must be the whole host or its first label (`*.example.com`)");
    }
    // The request URL's own parser, so that both are spelled alike.
    let url = Url::parse(&format!("{}://{exact}/", scheme.as_str()))
        .map_err(|e| PatternError(format!("host {exact:?}: {e}")))?;
    let parsed = match url.host() {
        Some(Host::Domain(d)) if wild => return Ok(HostPattern::Subdomains(d.to_owned())),
        Some(Host::Domain(d)) => return Ok(HostPattern::Name(d.to_owned())),
        Some(_) if wild => return err("`*.` must be followed by a host name, not an address"),
        Some(Host::Ipv4(v4)) => IpAddr::V4(v4),
        Some(Host::Ipv6(v6)) => IpAddr::V6(v6),
        None => return err("has no host"),
    };
    let class = classify(parsed).class;
    if class.reach() == Reach::Never {
        return err(format!(
            "{parsed} is {class}, which no rule can open (a connection there is never a tool)"
        ));
    }
    Ok(HostPattern::Ip(parsed))
}

/// The path as a request URL would spell it; any path when empty.
fn normalise_path(path: &str) -> Result<String, PatternError> {
    if path.is_empty() {
        return Ok("/*".to_owned());
    }
    let url = Url::parse(&format!("http://h{path}"))
        .map_err(|e| PatternError(format!("path {path:?}: {e}")))?;
    Ok(url.path().to_owned())
}

/// Whether `text` matches `glob`, where `*` matches any run of bytes.
fn glob(glob: &[u8], text: &[u8]) -> bool {
    let (mut g, mut t) = (0, 0);
    // The last `*` seen and the text position it was tried at, to backtrack to.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match glob.get(g) {
            Some(b'*') => {
                star = Some((g, t));
                g += 1;
            }
            Some(&c) if c == text[t] => {
                g += 1;
                t += 1;
            }
            _ => match star {
                Some((sg, st)) => {
                    g = sg + 1;
                    t = st + 1;
                    star = Some((sg, st + 1));
                }
                None => return false,
            },
        }
    }
    glob[g..].iter().all(|&c| c == b'*')
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://", self.scheme.as_str())?;
        match &self.host {
            HostPattern::Any => f.write_str("*")?,
            HostPattern::Subdomains(s) => write!(f, "*.{s}")?,
            HostPattern::Name(n) => f.write_str(n)?,
            HostPattern::Ip(IpAddr::V4(v4)) => write!(f, "{v4}")?,
            HostPattern::Ip(IpAddr::V6(v6)) => write!(f, "[{v6}]")?,
        }
        match self.port {
            None => f.write_str(":*")?,
            Some(p) if p == self.scheme.default_port() => {}
            Some(p) => write!(f, ":{p}")?,
        }
        f.write_str(&self.path)
    }
}
