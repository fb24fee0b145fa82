//! The egress rules wired into the tool client: a DNS resolver that hands the connector
//! only permitted addresses, a redirect policy that checks every hop, and finding a
//! refusal again inside a transport error.
//!
//! The decision: the rules act inside reqwest at the two points every connection passes
//! (resolving a host name, following a redirect), not around it. The resolver's answer
//! is the only list of addresses the connector ever sees for a name, so no second
//! lookup can swap in loopback after the check; and the client uses no proxy, so the
//! name resolved is the tool's own, not a proxy's.

use std::net::SocketAddr;
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::{ClientBuilder, Response, redirect};

use super::{Denied, MAX_REDIRECTS, Rules, origin};

/// `builder` with `rules` enforced on every connection and redirect. The builder must
/// not use a proxy (the resolver would then check the proxy's address, not the tool's).
pub(crate) fn guard(builder: ClientBuilder, rules: &Arc<Rules>) -> ClientBuilder {
    builder
        .no_proxy()
        .dns_resolver(Arc::new(Resolver {
            rules: Arc::clone(rules),
        }))
        .redirect(redirect_policy(rules))
        // A Referer would carry the previous URL, query and all, to the next hop.
        .referer(false)
}

/// Resolves host names through the system resolver and keeps only the addresses the
/// rules permit for that name; none left is a [`Denied`].
struct Resolver {
    rules: Arc<Rules>,
}

impl Resolve for Resolver {
    fn resolve(&self, name: Name) -> Resolving {
        let rules = Arc::clone(&self.rules);
        let name = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let mut refused = None;
            let permitted: Vec<SocketAddr> = found
                .into_iter()
                .filter(|addr| match rules.check_resolved(&name, addr.ip()) {
                    Ok(()) => true,
                    Err(denied) => {
                        refused.get_or_insert(denied);
                        false
                    }
                })
                .collect();
            match refused {
                Some(denied) if permitted.is_empty() => Err(denied.into()),
                _ => Ok(Box::new(permitted.into_iter()) as Addrs),
            }
        })
    }
}

/// Follows no redirect when the rules say so (the 3xx comes back, and
/// [`unfollowed_redirect`] turns it into a refusal); otherwise checks every hop as a
/// first request is, up to [`MAX_REDIRECTS`].
fn redirect_policy(rules: &Arc<Rules>) -> redirect::Policy {
    if !rules.follows_redirects() {
        return redirect::Policy::none();
    }
    let rules = Arc::clone(rules);
    redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() > MAX_REDIRECTS {
            let first = attempt.previous().first().map(origin).unwrap_or_default();
            return attempt.error(Denied::TooManyRedirects { origin: first });
        }
        match rules.check(attempt.url()) {
            Ok(()) => attempt.follow(),
            Err(denied) => attempt.error(denied),
        }
    })
}

/// The refusal inside a transport error, if the rules caused it (the resolver's or the
/// redirect policy's), found by walking the error's causes.
pub(crate) fn denial(error: &reqwest::Error) -> Option<Denied> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        if let Some(denied) = e.downcast_ref::<Denied>() {
            return Some(denied.clone());
        }
        cause = e.source();
    }
    None
}

/// A redirect answer that came back to the caller, as a refusal: redirects are off, or
/// the client could not follow this one (its `Location` is not an http URL), which is
/// refused as its hop would have been.
pub(crate) fn unfollowed_redirect(rules: &Rules, response: &Response) -> Option<Denied> {
    let redirects = [301, 302, 303, 307, 308];
    if !redirects.contains(&response.status().as_u16()) {
        return None;
    }
    let location = response.headers().get(reqwest::header::LOCATION)?;
    let target = location
        .to_str()
        .ok()
        .and_then(|l| response.url().join(l).ok());
    let from = origin(response.url());
    let to = target
        .as_ref()
        .map_or_else(|| "an unreadable Location".to_owned(), origin);
    if !rules.follows_redirects() {
        return Some(Denied::Redirect { from, to });
    }
    Some(match target.map(|t| rules.check(&t)) {
        Some(Err(denied)) => denied,
        Some(Ok(())) | None => Denied::Unfollowable { from, to },
    })
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;
    use crate::egress::{Class, Pattern};

    #[tokio::test]
    async fn a_name_resolving_to_loopback_resolves_to_nothing_unless_named() {
        let resolver = Resolver {
            rules: Arc::new(Rules::default()),
        };
        let name = Name::from_str("localhost").unwrap();
        let refused = match resolver.resolve(name).await {
            Ok(addrs) => panic!("resolved to {:?}", addrs.collect::<Vec<_>>()),
            Err(e) => e,
        };
        match refused.downcast_ref::<Denied>() {
            Some(Denied::Address { classified, .. }) => {
                assert_eq!(classified.class, Class::Loopback);
            }
            other => panic!("{other:?}: {refused}"),
        }

        let named = Rules::new(
            vec![Pattern::parse("http://localhost:8080/").unwrap()],
            false,
        );
        let resolver = Resolver {
            rules: Arc::new(named),
        };
        let addrs: Vec<SocketAddr> = resolver
            .resolve(Name::from_str("localhost").unwrap())
            .await
            .unwrap()
            .collect();
        assert!(!addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback()));
    }

    /// A listener on loopback that counts the connections it accepts.
    async fn recorder() -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = Arc::clone(&seen);
        tokio::spawn(async move {
            while let Ok((_socket, _)) = listener.accept().await {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        });
        (addr, seen)
    }

    #[tokio::test]
    async fn a_refusal_in_the_resolver_is_found_in_the_transport_error() {
        let (addr, seen) = recorder().await;
        let rules = Arc::new(Rules::default());
        let client = guard(reqwest::Client::builder(), &rules).build().unwrap();
        let error = client
            .get(format!("http://localhost:{}/x", addr.port()))
            .send()
            .await
            .unwrap_err();
        let denied = denial(&error).unwrap_or_else(|| panic!("no denial in {error:?}"));
        assert!(matches!(denied, Denied::Address { .. }), "{denied}");
        // The same client reaches a public-looking name it is not asked about: only the
        // refusal is a denial.
        let other = client
            .get("http://nonexistent.invalid/")
            .send()
            .await
            .unwrap_err();
        assert_eq!(denial(&other), None, "{other:?}");
        assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 0);
    }
}
