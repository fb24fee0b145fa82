//! Who may call what, route by route: `docs/security.md`'s table is the router's own
//! (both ways, so a route added without a rule, or a rule left for a route removed,
//! fails here), and every route answers every role, and no key, as its rule says. Over
//! real sockets, against a gateway with the engine and the configuration history.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;

use holdfast_config::Role;
use holdfast_server::Rule;
use serde_json::Value;
use support::{Gw, Mock, Scratch, openai_provider, target};

/// The table of `docs/security.md`: `(method, path, role)` rows, `None` for `public`.
fn documented() -> BTreeSet<(String, String, Option<Role>)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/security.md");
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line
                .trim()
                .trim_matches('|')
                .split('|')
                .map(str::trim)
                .collect();
            let [method, path, role] = cells.as_slice() else {
                return None;
            };
            if !["GET", "POST"].contains(method) {
                return None;
            }
            let role = match *role {
                "public" => None,
                named => Some(
                    Role::ALL
                        .into_iter()
                        .find(|r| r.as_str() == named)
                        .unwrap_or_else(|| panic!("docs/security.md: unknown role {named:?}")),
                ),
            };
            Some(((*method).to_owned(), (*path).to_owned(), role))
        })
        .collect()
}

fn served() -> BTreeSet<(String, String, Option<Role>)> {
    holdfast_server::rules()
        .into_iter()
        .map(|Rule { method, path, role }| (method.to_uppercase(), path.to_owned(), role))
        .collect()
}

#[test]
fn the_documented_table_is_the_routers_own() {
    let (docs, router) = (documented(), served());
    assert!(router.len() > 30, "{router:?}");
    let undocumented: Vec<_> = router.difference(&docs).collect();
    let unserved: Vec<_> = docs.difference(&router).collect();
    assert!(
        undocumented.is_empty() && unserved.is_empty(),
        "routes without their rule in docs/security.md: {undocumented:?}\n\
         rules in docs/security.md for routes not served as written: {unserved:?}"
    );
}

/// The callers: one key per role, all of the tenant `acme`.
const KEYS: [(Role, &str); 4] = [
    (Role::Agent, "key-agent"),
    (Role::Reviewer, "key-reviewer"),
    (Role::Operator, "key-operator"),
    (Role::Admin, "key-admin"),
];

async fn gateway(dir: &Scratch) -> (Gw, Mock) {
    let mock = Mock::openai("").await;
    let mut toml = format!(
        "{}{}[routes.smart]\ntargets = [\"a\"]\n",
        openai_provider("p", &mock),
        target("a", "p", 100_000)
    );
    for (role, key) in KEYS {
        toml.push_str(&format!(
            "[[client_keys]]\nname = \"{role}\"\nkey_env = \"{}\"\nrole = \"{role}\"\ntenant = \"acme\"\n",
            key.to_uppercase().replace('-', "_")
        ));
    }
    let env: Vec<(String, String)> = KEYS
        .iter()
        .map(|(_, key)| (key.to_uppercase().replace('-', "_"), (*key).to_owned()))
        .collect();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    (Gw::start_with_engine(&toml, &env, dir).await, mock)
}

/// A request on `rule`'s route that changes nothing whoever sends it: ids that do not
/// exist, bodies that do not validate.
fn request(gw: &Gw, rule: &Rule, key: Option<&str>) -> reqwest::RequestBuilder {
    let path = rule
        .path
        .replace("{id}", "no-such-id")
        .replace("{name}", "no-such-name")
        .replace("{version}", "999")
        .replace("{file}", "app.js");
    let builder = match rule.method {
        "get" => gw.client.get(gw.url(&path)),
        _ if path == "/admin/config" => gw
            .client
            .post(gw.url(&path))
            .header("content-type", "application/toml")
            .body(""),
        _ => gw
            .client
            .post(gw.url(&path))
            .header("content-type", "application/json")
            .body("{\"not\": \"valid\"}"),
    };
    match key {
        Some(key) => builder.bearer_auth(key),
        None => builder,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_every_role_as_its_rule_says() {
    let dir = Scratch::new("access");
    let (gw, mock) = gateway(&dir).await;
    let mut wrong = Vec::new();
    for rule in holdfast_server::rules() {
        let callers = std::iter::once((None, None)).chain(KEYS.map(|(r, k)| (Some(r), Some(k))));
        for (role, key) in callers {
            let response = request(&gw, &rule, key).send().await.unwrap();
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            let code = body["error"]["code"].as_str().unwrap_or("").to_owned();
            let message = body["error"]["message"].as_str().unwrap_or("");
            if message.starts_with("no route for") {
                wrong.push(format!("{} {}: not served", rule.method, rule.path));
                continue;
            }
            let expected = match (rule.role, role) {
                (None, _) => "served",
                (Some(_), None) => "401",
                (Some(needed), Some(has)) if has >= needed => "served",
                (Some(_), Some(_)) => "403",
            };
            let got = match (status, code.as_str()) {
                (401, "missing_api_key") => "401",
                (403, "forbidden") => "403",
                (401 | 403, _) => "refused otherwise",
                _ => "served",
            };
            if got != expected {
                wrong.push(format!(
                    "{} {} as {}: expected {expected}, got {status} {code}",
                    rule.method,
                    rule.path,
                    role.map_or("no key", Role::as_str)
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert_eq!(mock.calls(), 0, "no request above may reach a provider");
}
