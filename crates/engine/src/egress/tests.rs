//! The pattern grammar and the rules, as plain function calls.

use std::net::IpAddr;

use reqwest::Url;

use super::*;

fn pattern(text: &str) -> Pattern {
    Pattern::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn rules(allow: &[&str], follow_redirects: bool) -> Rules {
    Rules::new(allow.iter().map(|p| pattern(p)).collect(), follow_redirects)
}

fn url(text: &str) -> Url {
    Url::parse(text).unwrap()
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

#[test]
fn patterns_are_spelled_as_request_urls_are() {
    let cases = [
        ("https://api.example.com/*", "https://api.example.com/*"),
        ("HTTPS://API.Example.COM", "https://api.example.com/*"),
        ("http://example.com:80/v1/", "http://example.com/v1/"),
        ("http://127.0.0.1:8080/*", "http://127.0.0.1:8080/*"),
        ("http://0x7f.1:8080/", "http://127.0.0.1:8080/"),
        ("http://[::1]:9000/v1/*", "http://[::1]:9000/v1/*"),
        ("http://[0:0::1]", "http://[::1]/*"),
        ("https://*.example.com/*", "https://*.example.com/*"),
        ("https://*:*", "https://*:*/*"),
        (
            "https://bücher.example/x",
            "https://xn--bcher-kva.example/x",
        ),
        ("http://h/a/../b/*", "http://h/b/*"),
        ("http://h/a b", ""),
    ];
    for (text, expected) in cases {
        match Pattern::parse(text) {
            Ok(p) => assert_eq!(p.to_string(), expected, "{text}"),
            Err(e) => assert!(expected.is_empty(), "{text}: {e}"),
        }
    }
}

#[test]
fn bad_patterns_say_what_is_wrong() {
    let cases = [
        ("api.example.com/*", "must start with http:// or https://"),
        (
            "ftp://files.example.com/",
            "must start with http:// or https://",
        ),
        ("http:///x", "has no host"),
        ("http://:80/x", "has no host"),
        ("http://user:pw@example.com/", "user name or password"),
        ("http://example.com/?q=1", "query"),
        ("http://example.com/#top", "fragment"),
        ("http://example.com:0/", "1..=65535"),
        ("http://example.com:65536/", "1..=65535"),
        ("http://example.com:+80/", "1..=65535"),
        ("http://example.com:/", "1..=65535"),
        ("http://a*.example.com/", "`*` must be the whole host"),
        ("http://*.*.example.com/", "`*` must be the whole host"),
        ("http://*.10.0.0.1/", "not an address"),
        ("http://0.0.0.0/", "no rule can open"),
        ("http://[::]:8080/", "no rule can open"),
        ("http://224.0.0.1/", "no rule can open"),
        ("http://255.255.255.255/", "no rule can open"),
        ("http://[ff02::1]/", "no rule can open"),
        ("http://[::1/", "closing ]"),
        ("http://[::1]x/", "after the host"),
        ("http://exa mple.com/", "spaces"),
        ("http://a\\b.example.com/", "backslashes"),
        ("http://exa%zzmple.com/", "host"),
    ];
    for (text, expected) in cases {
        match Pattern::parse(text) {
            Ok(p) => panic!("{text} parsed as {p}"),
            Err(e) => assert!(e.to_string().contains(expected), "{text}: {e}"),
        }
    }
}

#[test]
fn patterns_match_scheme_host_port_and_path() {
    let p = pattern("https://api.example.com/v1/*");
    assert!(p.matches(&url("https://api.example.com/v1/")));
    assert!(p.matches(&url("https://API.example.com:443/v1/a/b?key=1")));
    assert!(!p.matches(&url("https://api.example.com/v1")), "no slash");
    assert!(!p.matches(&url("https://api.example.com/v2/x")));
    assert!(!p.matches(&url("http://api.example.com/v1/x")), "scheme");
    assert!(
        !p.matches(&url("https://api.example.com:8443/v1/x")),
        "port"
    );
    assert!(!p.matches(&url("https://api.example.com.evil.test/v1/x")));
    assert!(
        !p.matches(&url("https://api.example.com/v1/../admin")),
        "dot segments are resolved before matching"
    );

    let any_port = pattern("http://tools.internal:*");
    assert!(any_port.matches(&url("http://tools.internal:9000/x")));
    assert!(any_port.matches(&url("http://tools.internal/")));

    let subdomains = pattern("https://*.example.com");
    assert!(subdomains.matches(&url("https://a.example.com/")));
    assert!(subdomains.matches(&url("https://a.b.example.com/x")));
    assert!(
        !subdomains.matches(&url("https://example.com/")),
        "not the apex"
    );
    assert!(!subdomains.matches(&url("https://badexample.com/")));

    let anything = pattern("https://*");
    assert!(anything.matches(&url("https://8.8.8.8/")));
    assert!(!anything.matches(&url("https://8.8.8.8:8443/")));

    let middle = pattern("http://h/a*/z");
    assert!(middle.matches(&url("http://h/a/z")));
    assert!(middle.matches(&url("http://h/abc/d/z")));
    assert!(!middle.matches(&url("http://h/abc/d/zz")));
}

#[test]
fn only_exact_hosts_name_a_host() {
    let named = |p: &str, u: &str| pattern(p).names(&url(u).host().unwrap());
    assert!(named("http://localhost:8080/x", "http://localhost/"));
    assert!(named("http://127.0.0.1:1/", "http://127.0.0.1:2/"));
    assert!(named("http://[::1]/", "http://[0::1]/"));
    assert!(!named("http://*.internal/", "http://a.internal/"));
    assert!(!named("http://*/", "http://127.0.0.1/"));
    assert!(!named("http://127.0.0.1/", "http://[::ffff:127.0.0.1]/"));
}

#[test]
fn by_default_public_urls_go_and_nothing_else_does() {
    let rules = Rules::default();
    assert!(!rules.follows_redirects());
    for ok in [
        "https://api.example.com/x",
        "http://8.8.8.8/",
        "http://[2606:4700::1]/",
    ] {
        assert_eq!(rules.check(&url(ok)), Ok(()), "{ok}");
    }
    for (denied, class) in [
        ("http://127.0.0.1:8080/", Class::Loopback),
        ("http://0x7f000001/", Class::Loopback),
        ("http://[::1]/", Class::Loopback),
        ("http://[::ffff:127.0.0.1]/", Class::Loopback),
        ("http://10.0.0.1/", Class::Private),
        ("http://192.168.1.1/", Class::Private),
        ("http://100.64.1.1/", Class::Private),
        ("http://[fd00::1]/", Class::Private),
        ("http://169.254.1.1/", Class::LinkLocal),
        ("http://[fe80::1]/", Class::LinkLocal),
        ("http://169.254.169.254/latest/meta-data/", Class::Metadata),
        ("http://[fd00:ec2::254]/", Class::Metadata),
        ("http://100.100.100.200/", Class::Metadata),
        ("http://[::ffff:169.254.169.254]/", Class::Metadata),
        ("http://0.0.0.0:8080/", Class::Unspecified),
        ("http://[::]/", Class::Unspecified),
        ("http://239.1.1.1/", Class::Multicast),
        ("http://192.0.2.1/", Class::Reserved),
    ] {
        match rules.check(&url(denied)) {
            Err(Denied::Address { classified, .. }) => {
                assert_eq!(classified.class, class, "{denied}");
            }
            other => panic!("{denied}: {other:?}"),
        }
    }
    assert!(matches!(
        rules.check(&url("file:///etc/passwd")),
        Err(Denied::Scheme { .. })
    ));
}

#[test]
fn host_names_may_resolve_only_to_public_addresses_unless_named() {
    let rules = Rules::default();
    assert!(
        rules
            .check_resolved("example.com", ip("93.184.215.14"))
            .is_ok()
    );
    assert!(rules.check_resolved("localhost", ip("127.0.0.1")).is_err());
    assert!(rules.check_resolved("localhost", ip("::1")).is_err());
    assert!(
        rules
            .check_resolved("evil.test", ip("::ffff:10.0.0.1"))
            .is_err()
    );

    let allowed = rules_for(&["http://localhost:8080/*", "https://*.internal/*"]);
    assert!(allowed.check_resolved("localhost", ip("127.0.0.1")).is_ok());
    assert!(allowed.check_resolved("localhost", ip("::1")).is_ok());
    assert!(allowed.check_resolved("localhost", ip("0.0.0.0")).is_err());
    assert!(
        allowed
            .check_resolved("elsewhere", ip("127.0.0.1"))
            .is_err()
    );
    assert!(
        allowed
            .check_resolved("a.internal", ip("10.0.0.1"))
            .is_err(),
        "a wildcard never opens a private address"
    );
}

fn rules_for(allow: &[&str]) -> Rules {
    rules(allow, false)
}

#[test]
fn a_private_address_opens_only_to_a_pattern_naming_it() {
    let rules = rules_for(&["http://127.0.0.1:8080/*", "http://10.1.2.3:*/api/*"]);
    assert_eq!(rules.check(&url("http://127.0.0.1:8080/x")), Ok(()));
    assert_eq!(rules.check(&url("http://10.1.2.3:9/api/v1")), Ok(()));
    for denied in [
        "http://127.0.0.1:9090/",
        "http://10.1.2.3:9/other",
        "http://10.1.2.4:9/api/",
        "https://api.example.com/",
        "http://[::ffff:127.0.0.1]:8080/",
    ] {
        assert!(rules.check(&url(denied)).is_err(), "{denied}");
    }
}

#[test]
fn patterns_naming_a_host_take_precedence_over_wildcards() {
    let rules = rules_for(&["http://127.0.0.1:8080/*", "http://*:*"]);
    assert_eq!(rules.check(&url("http://8.8.8.8:9999/")), Ok(()));
    assert_eq!(
        rules.check(&url("http://127.0.0.1:9999/")),
        Err(Denied::NotAllowed {
            origin: "http://127.0.0.1:9999".into(),
            host_named: true
        })
    );
    assert!(matches!(
        rules.check(&url("http://10.0.0.1:8080/")),
        Err(Denied::Address { .. })
    ));
}

#[test]
fn metadata_addresses_open_only_to_their_own_ip_literal() {
    let by_address = rules_for(&["http://169.254.169.254/*"]);
    assert_eq!(
        by_address.check(&url("http://169.254.169.254/latest")),
        Ok(())
    );
    let by_name = rules_for(&["http://metadata.internal/*"]);
    assert!(by_name.check(&url("http://metadata.internal/x")).is_ok());
    let denied = by_name
        .check_resolved("metadata.internal", ip("169.254.169.254"))
        .unwrap_err();
    assert!(
        denied
            .to_string()
            .contains("naming the address 169.254.169.254 itself"),
        "{denied}"
    );
}

#[test]
fn refusals_name_the_host_and_the_rule_but_not_the_path() {
    let rules = Rules::default();
    let message = rules
        .check(&url("http://10.0.0.1/secret?token=s3cr3t"))
        .unwrap_err()
        .to_string();
    assert_eq!(
        message,
        "egress denied: 10.0.0.1 is a private address (10.0.0.0/8); \
         only an [engine.egress] allow pattern naming 10.0.0.1 can open it"
    );
    let message = rules
        .check_resolved("localhost", ip("127.0.0.1"))
        .unwrap_err()
        .to_string();
    assert!(
        message.starts_with("egress denied: localhost resolves to 127.0.0.1, a loopback"),
        "{message}"
    );
    let narrow = rules_for(&["https://api.example.com/*"]);
    let message = narrow
        .check(&url("https://user:pw@other.example.com/path?token=s3cr3t"))
        .unwrap_err()
        .to_string();
    assert_eq!(
        message,
        "egress denied: https://other.example.com matches no [engine.egress] allow pattern"
    );
    assert!(!message.contains("s3cr3t") && !message.contains("pw"));
}
