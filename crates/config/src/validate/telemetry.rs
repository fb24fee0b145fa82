//! Checks `[telemetry]`: an endpoint the exporter can reach without TLS (none is built
//! in, to keep OpenSSL and a second TLS stack out of the binary), a ratio that is a
//! probability, a service name and a queue that holds at least one span.

use super::Checker;
use crate::path::FieldPath;
use crate::resolved::Telemetry;
use crate::schema::{self, OtlpProtocol};

/// The resolved settings, or `None` when nothing is exported (or a problem was noted).
pub(super) fn telemetry(c: &mut Checker<'_>, raw: &schema::Telemetry) -> Option<Telemetry> {
    let path = FieldPath::root("telemetry");
    let endpoint = raw
        .otlp_endpoint
        .as_deref()
        .map(|text| endpoint(c, &path, text, raw.protocol));
    if !(0.0..=1.0).contains(&raw.sampling_ratio) {
        c.invalid(
            path.key("sampling_ratio"),
            format!("{} is not between 0.0 and 1.0", raw.sampling_ratio),
        );
    }
    if raw.service_name.trim().is_empty() {
        c.invalid(
            path.key("service_name"),
            "must not be empty (try \"holdfast\")",
        );
    }
    if !(1..=1_000_000).contains(&raw.queue_size) {
        c.invalid(path.key("queue_size"), "must be between 1 and 1000000");
    }
    Some(Telemetry {
        endpoint: endpoint??,
        protocol: raw.protocol,
        sampling_ratio: raw.sampling_ratio,
        service_name: raw.service_name.clone(),
        queue_size: raw.queue_size,
    })
}

fn endpoint(
    c: &mut Checker<'_>,
    path: &FieldPath,
    text: &str,
    protocol: OtlpProtocol,
) -> Option<String> {
    let path = path.key("otlp_endpoint");
    let mut url = match url::Url::parse(text) {
        Ok(url) if url.scheme() == "http" && url.host().is_some() => url,
        Ok(_) => {
            c.invalid(
                path,
                format!("{text:?} is not an http:// URL with a host (TLS to the collector is not built in)"),
            );
            return None;
        }
        Err(e) => {
            c.invalid(
                path,
                format!("{text:?} is not a URL ({e}); try \"http://127.0.0.1:4317\""),
            );
            return None;
        }
    };
    if protocol == OtlpProtocol::Http && url.path() == "/" {
        url.set_path("/v1/traces");
    }
    let mut text = url.to_string();
    if protocol == OtlpProtocol::Grpc {
        // tonic takes the address as written; the URL type adds a trailing slash.
        text = text.trim_end_matches('/').to_owned();
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use crate::{Config, OtlpProtocol};

    fn load(text: &str) -> Result<Config, String> {
        Config::from_toml_str(text, "t.toml", &|_| None).map_err(|e| e.to_string())
    }

    #[test]
    fn constructor_names_the_bad_field() {
        let bad = "[telemetry]\notlp_endpoint = \"https://collector:4317\"\n\
                   sampling_ratio = 1.5\nservice_name = \"\"\nqueue_size = 0\n";
        let out = load(bad).err().unwrap_or_default();
        for field in [
            "t.toml:2:17: telemetry.otlp_endpoint",
            "telemetry.sampling_ratio",
            "telemetry.service_name",
            "telemetry.queue_size",
        ] {
            assert!(out.contains(field), "{field} not named in: {out}");
        }
    }

    #[test]
    fn off_by_default_and_http_gets_its_traces_path() {
        assert_eq!(load("").map(|c| c.telemetry), Ok(None));
        let http = "[telemetry]\notlp_endpoint = \"http://127.0.0.1:4318\"\nprotocol = \"http\"\n";
        let telemetry = load(http).ok().and_then(|c| c.telemetry);
        assert_eq!(
            telemetry
                .as_ref()
                .map(|t| (t.endpoint.as_str(), t.protocol)),
            Some(("http://127.0.0.1:4318/v1/traces", OtlpProtocol::Http))
        );
        let grpc = "[telemetry]\notlp_endpoint = \"http://127.0.0.1:4317\"\n";
        let telemetry = load(grpc).ok().and_then(|c| c.telemetry);
        assert_eq!(
            telemetry.map(|t| t.endpoint),
            Some("http://127.0.0.1:4317".to_owned())
        );
    }
}
