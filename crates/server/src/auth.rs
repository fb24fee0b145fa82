//! Client keys: who may call the gateway, and how fast.
//!
//! A key arrives as `Authorization: Bearer KEY` (OpenAI SDKs) or `x-api-key: KEY`
//! (Anthropic SDKs) and is compared with every configured key in constant time
//! ([`Secret::matches`]), all of them, so timing tells neither the key nor which one
//! matched. Each key has its own request and token rate limiters (the policy crate's
//! token buckets), answered with 429 and a Retry-After, and a role and a tenant, which
//! `access.rs` turns into what the caller may do and see. With no keys configured the
//! gateway is open to local callers only (`access.rs`).

use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, header};
use holdfast_config::{ClientKey, Role, Secret};
use holdfast_policy::concurrency::Priority;
use holdfast_policy::rate_limit::{Decision, RateLimiter};
use holdfast_policy::{Instant, InvalidSetting};

use crate::access::Principal;
use crate::error::ApiError;

/// The configured client keys with their limiters.
pub(crate) struct ClientKeys {
    keys: Vec<KeyState>,
}

struct KeyState {
    name: Arc<str>,
    role: Role,
    tenant: Arc<str>,
    priority: Priority,
    secret: Option<Secret>,
    limits: Mutex<Limits>,
}

struct Limits {
    requests: Option<RateLimiter>,
    tokens: Option<RateLimiter>,
}

/// Who is calling: a configured key (by index), or anyone when the gateway is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Caller {
    /// The gateway has no keys.
    Anyone,
    /// The key at this index.
    Key(usize),
}

impl ClientKeys {
    /// Keys from the configuration, their buckets full at `now`; or, when the nodes
    /// share their limits (`shared`), empty until the shared buckets grant units.
    pub(crate) fn new(
        keys: &[ClientKey],
        now: Instant,
        shared: bool,
    ) -> Result<Self, InvalidSetting> {
        let limiter = |config| {
            let mut limiter = RateLimiter::new(config, now)?;
            if shared {
                // From the first call on: a node's own full bucket would exceed the limit.
                limiter.share(holdfast_cluster::TICK);
            }
            Ok::<_, InvalidSetting>(limiter)
        };
        let keys = keys
            .iter()
            .map(|key| {
                Ok(KeyState {
                    name: Arc::from(key.name.as_str()),
                    role: key.role,
                    tenant: Arc::from(key.tenant.as_str()),
                    priority: key.priority,
                    secret: key.key.clone(),
                    limits: Mutex::new(Limits {
                        requests: key.requests.map(limiter).transpose()?,
                        tokens: key.tokens.map(limiter).transpose()?,
                    }),
                })
            })
            .collect::<Result<_, InvalidSetting>>()?;
        Ok(ClientKeys { keys })
    }

    /// Runs `f` on each key's rate limits, with the key's name and the limit's: how
    /// the nodes sharing their health hold a key's limit together.
    pub(crate) fn for_each_limit(&self, f: &mut dyn FnMut(&str, &'static str, &mut RateLimiter)) {
        for key in &self.keys {
            let mut limits = key.limits.lock().unwrap_or_else(|e| e.into_inner());
            let Limits { requests, tokens } = &mut *limits;
            for (name, limiter) in [("requests", requests), ("tokens", tokens)] {
                if let Some(limiter) = limiter {
                    f(&key.name, name, limiter);
                }
            }
        }
    }

    /// The place of `caller`'s calls at a target's concurrency limit.
    pub(crate) fn priority(&self, caller: Caller) -> Priority {
        match caller {
            Caller::Key(i) => self.keys.get(i).map_or(Priority::default(), |k| k.priority),
            Caller::Anyone => Priority::default(),
        }
    }

    /// Whether no key is configured.
    pub(crate) fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The caller behind the request's key header.
    pub(crate) fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        if self.keys.is_empty() {
            return Ok(Caller::Anyone);
        }
        let presented = presented_key(headers).ok_or_else(|| unreadable_or_missing(headers))?;
        let mut found = None;
        for (i, key) in self.keys.iter().enumerate() {
            let matches = key.secret.as_ref().is_some_and(|s| s.matches(presented));
            if matches && found.is_none() {
                found = Some(i);
            }
        }
        found.map(Caller::Key).ok_or(ApiError::InvalidApiKey)
    }

    /// Who `caller` is: its key's name, role and tenant. Anyone (no keys) is an admin
    /// of the tenant `default`; `access.rs` keeps such callers local.
    pub(crate) fn principal(&self, caller: Caller) -> Principal {
        let key = match caller {
            Caller::Key(i) => self.keys.get(i),
            Caller::Anyone => None,
        };
        match key {
            Some(key) => Principal {
                caller,
                name: Arc::clone(&key.name),
                role: key.role,
                tenant: Arc::clone(&key.tenant),
            },
            None => Principal {
                caller: Caller::Anyone,
                name: Arc::from(crate::access::OPEN_NAME),
                role: Role::Admin,
                tenant: Arc::from(crate::access::OPEN_TENANT),
            },
        }
    }

    /// Takes one request from the caller's request limit.
    pub(crate) fn admit_request(&self, caller: Caller, now: Instant) -> Result<(), ApiError> {
        self.acquire(caller, now, 1, "requests", |l| &mut l.requests)
    }

    /// Takes `tokens` from the caller's token limit; on refusal, gives the request back.
    pub(crate) fn admit_tokens(
        &self,
        caller: Caller,
        now: Instant,
        tokens: u64,
    ) -> Result<(), ApiError> {
        let result = self.acquire(caller, now, tokens, "tokens", |l| &mut l.tokens);
        if result.is_err()
            && let Caller::Key(i) = caller
            && let Some(key) = self.keys.get(i)
        {
            let mut limits = key.limits.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(requests) = &mut limits.requests {
                requests.refund(now, 1);
            }
        }
        result
    }

    fn acquire(
        &self,
        caller: Caller,
        now: Instant,
        cost: u64,
        what: &'static str,
        pick: impl FnOnce(&mut Limits) -> &mut Option<RateLimiter>,
    ) -> Result<(), ApiError> {
        let Caller::Key(i) = caller else {
            return Ok(());
        };
        let Some(key) = self.keys.get(i) else {
            return Ok(());
        };
        let mut limits = key.limits.lock().unwrap_or_else(|e| e.into_inner());
        let Some(limiter) = pick(&mut limits) else {
            return Ok(());
        };
        match limiter.try_acquire(now, cost) {
            Decision::Granted => Ok(()),
            Decision::Wait(retry_after) => Err(ApiError::RateLimited { what, retry_after }),
            Decision::TooLarge => Err(ApiError::PromptExceedsKeyLimit),
        }
    }
}

/// The key in `Authorization: Bearer KEY` or `x-api-key: KEY`, if either is readable.
fn presented_key(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    bearer
        .or_else(|| {
            headers
                .get("x-api-key")
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
        })
        .filter(|k| !k.is_empty())
}

/// The refusal for a request without a readable key: a key header that is there but
/// not text (or not a Bearer key) is an invalid key, not a missing one.
fn unreadable_or_missing(headers: &HeaderMap) -> ApiError {
    let unreadable = [header::AUTHORIZATION.as_str(), "x-api-key"]
        .iter()
        .filter_map(|name| headers.get(*name))
        .any(|value| value.to_str().is_err());
    if unreadable {
        ApiError::InvalidApiKey
    } else {
        ApiError::MissingApiKey
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use holdfast_policy::rate_limit::Config;

    fn keys() -> ClientKeys {
        let key = |name: &str, value: &str, rpm: Option<u64>| ClientKey {
            name: name.into(),
            role: Role::Agent,
            tenant: name.into(),
            key: Some(Secret::new(value)),
            requests: rpm.map(Config::per_minute),
            tokens: None,
            max_concurrent_requests: 1000,
            priority: holdfast_policy::concurrency::Priority::Interactive,
        };
        ClientKeys::new(
            &[key("a", "sk-a", Some(1)), key("b", "sk-b", None)],
            Instant::ZERO,
            false,
        )
        .unwrap()
    }

    fn with(name: &'static str, value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn bearer_and_x_api_key_both_work() {
        let keys = keys();
        assert_eq!(
            keys.authenticate(&with("authorization", "Bearer sk-a")),
            Ok(Caller::Key(0))
        );
        assert_eq!(
            keys.authenticate(&with("x-api-key", "sk-b")),
            Ok(Caller::Key(1))
        );
        assert_eq!(
            keys.authenticate(&with("x-api-key", "sk-c")),
            Err(ApiError::InvalidApiKey)
        );
        assert_eq!(
            keys.authenticate(&HeaderMap::new()),
            Err(ApiError::MissingApiKey)
        );
    }

    /// Regression: a key header of invalid UTF-8 was answered "missing API key".
    #[test]
    fn a_key_header_that_is_not_text_is_an_invalid_key_not_a_missing_one() {
        let mut headers = HeaderMap::new();
        let garbled = HeaderValue::from_bytes(b"Bearer \xff\xfe").unwrap();
        headers.insert("authorization", garbled);
        assert_eq!(keys().authenticate(&headers), Err(ApiError::InvalidApiKey));
    }

    #[test]
    fn a_key_over_its_limit_gets_a_wait() {
        let keys = keys();
        assert!(keys.admit_request(Caller::Key(0), Instant::ZERO).is_ok());
        let err = keys
            .admit_request(Caller::Key(0), Instant::ZERO)
            .unwrap_err();
        assert!(matches!(
            err,
            ApiError::RateLimited {
                what: "requests",
                ..
            }
        ));
        assert!(keys.admit_request(Caller::Key(1), Instant::ZERO).is_ok());
    }
}
