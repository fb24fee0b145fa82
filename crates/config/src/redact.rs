//! What of a stored configuration text an operator may read: every URL in it with its
//! secrets blanked.
//!
//! Keys come from the environment and are never in the text, but a URL may carry a
//! secret of its own: a password or a token as user info (`postgres://app:PW@db`,
//! `https://TOKEN@host`), a token in the query (`?key=…`, `&sig=…`), or a token as a path
//! segment (a Slack or Discord webhook). The decision: blank by shape, not by a list of
//! services. User info and query values always go; a path segment goes when its name
//! says secret (`token`, `secret`, `key`, `sig`, `password`) or when it is long and
//! random-looking (24+ characters mixing letters and digits), which is how generated
//! tokens look and how names people choose (`v1`, `chat`, `gpt-4o-mini`) do not. The
//! store keeps the text verbatim, so a rollback applies the real one.

/// What a blanked secret reads as.
const REDACTED: &str = "**REDACTED**";

/// `text` with the secrets of every URL in it replaced by `**REDACTED**`.
pub fn redact_config_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (before, after) = rest.split_at(at + 3);
        out.push_str(before);
        let end = after
            .find(|c: char| c == '"' || c == '\'' || c.is_whitespace())
            .unwrap_or(after.len());
        out.push_str(&url(&after[..end]));
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// A URL after its `scheme://`, its secrets blanked.
fn url(rest: &str) -> String {
    let (before_fragment, fragment) = match rest.split_once('#') {
        Some((url, fragment)) => (url, Some(fragment)),
        None => (rest, None),
    };
    let (before_query, query) = match before_fragment.split_once('?') {
        Some((url, query)) => (url, Some(query)),
        None => (before_fragment, None),
    };
    let (authority, path) = match before_query.find('/') {
        Some(slash) => before_query.split_at(slash),
        None => (before_query, ""),
    };
    let mut out = match authority.rfind('@') {
        Some(at) => format!("{REDACTED}{}", &authority[at..]),
        None => authority.to_owned(),
    };
    let segments: Vec<String> = path
        .split('/')
        .map(|segment| {
            if is_secret_segment(segment) {
                REDACTED.to_owned()
            } else {
                segment.to_owned()
            }
        })
        .collect();
    out.push_str(&segments.join("/"));
    if let Some(query) = query {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) => format!("{name}={REDACTED}"),
                None => pair.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&pairs.join("&"));
    }
    if fragment.is_some() {
        out.push('#');
        out.push_str(REDACTED);
    }
    out
}

fn is_secret_segment(segment: &str) -> bool {
    let lower = segment.to_ascii_lowercase();
    let named = ["token", "secret", "key", "sig", "password"]
        .iter()
        .any(|word| lower.contains(word));
    let random = segment.len() >= 24
        && segment.chars().any(|c| c.is_ascii_digit())
        && segment.chars().any(|c| c.is_ascii_alphabetic());
    named || random
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_info_query_values_and_token_segments_are_blanked() {
        let text = "[store]\nurl = \"postgres://app:s3cret@db:5432/h?sslmode=require\"\n\
            [providers.a]\nbase_url = \"https://api.openai.com/v1\"\n\
            [providers.b]\nbase_url = \"https://tok3n@proxy.example/openai/deployments/gpt-4o-mini\"\n\
            [[alerts.webhooks]]\nurl = \"https://hooks.slack.com/services/T0AAAA1/B0BBBB2/abcDEF123ghiJKL456mnoPQR7\"\n\
            [[alerts.webhooks]]\nurl = \"https://hooks.example/notify?channel=ops&api_key=k-998877#frag\"\n\
            [[alerts.webhooks]]\nurl = 'https://hooks.example/x_token_abc/send'\n";
        let shown = redact_config_text(text);
        for secret in [
            "s3cret",
            "tok3n",
            "abcDEF123ghiJKL456mnoPQR7",
            "k-998877",
            "x_token_abc",
            "require",
            "frag",
        ] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        for kept in [
            "postgres://**REDACTED**@db:5432/h?sslmode=**REDACTED**",
            "https://api.openai.com/v1\"",
            "https://**REDACTED**@proxy.example/openai/deployments/gpt-4o-mini\"",
            "https://hooks.slack.com/services/T0AAAA1/B0BBBB2/**REDACTED**\"",
            "?channel=**REDACTED**&api_key=**REDACTED**#**REDACTED**",
        ] {
            assert!(shown.contains(kept), "{kept} not in {shown}");
        }
        assert_eq!(redact_config_text("no urls here"), "no urls here");
    }
}
