//! Why a PostgreSQL connection failed, in words an operator can act on.
//!
//! sqlx reads `sslmode` and `sslrootcert` from the URL and does the TLS itself (rustls,
//! the public web roots plus the CA in `sslrootcert`), but says little when it fails: a
//! refused certificate is an I/O error reading "invalid peer certificate:
//! UnknownIssuer", and neither error names the setting that asked for the check. The
//! store's first connection goes through [`Tls::explain`], which names the cause, the
//! `sslmode` and the `sslrootcert` behind it, and the URL with its password removed. The
//! one decision: only that first connection is explained (it is where a wrong URL, CA or
//! server shows); the pool's later reconnects report the driver's error as it is.

use sqlx::postgres::{PgConnectOptions, PgSslMode};

use crate::StoreError;

/// What a PostgreSQL URL asked of TLS.
#[derive(Debug)]
pub(super) struct Tls {
    mode: PgSslMode,
    /// `sslrootcert` as given (a path, or inline PEM), from the URL or `PGSSLROOTCERT`.
    root_cert: Option<String>,
    host: String,
}

impl Tls {
    /// Reads what `url` (parsed into `options`) asks of TLS.
    pub(super) fn of(url: &str, options: &PgConnectOptions) -> Tls {
        let root_cert = query_value(url, &["sslrootcert", "ssl-root-cert", "ssl-ca"])
            .or_else(|| std::env::var("PGSSLROOTCERT").ok())
            .filter(|v| !v.is_empty());
        Tls {
            mode: options.get_ssl_mode(),
            root_cert,
            host: options.get_host().to_owned(),
        }
    }

    /// Refuses, before connecting, an `sslrootcert` file that cannot be read or holds no
    /// PEM certificate (the driver would report a bare "No such file or directory").
    pub(super) fn check_root_cert(&self, url: &str) -> Result<(), StoreError> {
        let Some(path) = self.root_cert.as_deref().filter(|v| !is_inline_pem(v)) else {
            return Ok(());
        };
        let reason = match std::fs::read(path) {
            Err(e) => format!("cannot read sslrootcert {path}: {e}"),
            Ok(pem) if !contains(&pem, b"-----BEGIN CERTIFICATE-----") => {
                format!("sslrootcert {path} holds no PEM certificate")
            }
            Ok(_) => return Ok(()),
        };
        Err(refused(url, reason))
    }

    /// The error to report for `err`, met while connecting to `url`.
    pub(super) fn explain(&self, url: &str, err: sqlx::Error) -> StoreError {
        let reason = match &err {
            sqlx::Error::Tls(inner) => match inner.downcast_ref::<rustls::Error>() {
                Some(tls) => self.handshake(tls),
                None if inner.to_string() == "server does not support TLS" => format!(
                    "the server does not accept TLS connections, but sslmode={} asks for TLS \
                     (turn `ssl` on in the server's configuration, or use sslmode=prefer to \
                     fall back to an unencrypted connection)",
                    self.mode_name()
                ),
                None => format!(
                    "TLS could not be set up (sslmode={}): {inner}",
                    self.mode_name()
                ),
            },
            sqlx::Error::Io(io) => {
                match io.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
                    Some(tls) => self.handshake(tls),
                    None => err.to_string(),
                }
            }
            _ => err.to_string(),
        };
        refused(url, reason)
    }

    /// A refused TLS handshake: which check failed, against what.
    fn handshake(&self, err: &rustls::Error) -> String {
        use rustls::CertificateError as Cert;
        let mode = self.mode_name();
        let why = match err {
            rustls::Error::InvalidCertificate(Cert::UnknownIssuer) => format!(
                "the server's certificate is not signed by {}",
                self.trusted()
            ),
            rustls::Error::InvalidCertificate(
                Cert::NotValidForName | Cert::NotValidForNameContext { .. },
            ) => format!(
                "the server's certificate is not issued for the host {:?} (verify-full checks \
                 the name; verify-ca does not): {err}",
                self.host
            ),
            rustls::Error::InvalidCertificate(cert) => {
                format!("the server's certificate was refused: {cert}")
            }
            other => format!("the TLS handshake failed: {other}"),
        };
        format!("{why} (sslmode={mode})")
    }

    /// The CAs the handshake trusted, in words.
    fn trusted(&self) -> String {
        match self.root_cert.as_deref() {
            Some(pem) if is_inline_pem(pem) => "the CA given inline in sslrootcert".to_owned(),
            Some(path) => format!("the CA in sslrootcert {path} (nor by a public web root)"),
            None => "a public web root, and no sslrootcert names the server's own CA".to_owned(),
        }
    }

    fn mode_name(&self) -> &'static str {
        match self.mode {
            PgSslMode::Disable => "disable",
            PgSslMode::Allow => "allow",
            PgSslMode::Prefer => "prefer",
            PgSslMode::Require => "require",
            PgSslMode::VerifyCa => "verify-ca",
            PgSslMode::VerifyFull => "verify-full",
        }
    }
}

fn refused(url: &str, reason: String) -> StoreError {
    StoreError::Connect {
        url: crate::redact(url),
        reason,
    }
}

/// The first value of any of `names` in `url`'s query string, percent-decoded.
fn query_value(url: &str, names: &[&str]) -> Option<String> {
    let (_, query) = url.split_once('?')?;
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| names.contains(&key.as_ref()))
        .map(|(_, value)| value.into_owned())
}

/// sqlx's own rule: an `sslrootcert` that looks like PEM is the certificate itself.
fn is_inline_pem(value: &str) -> bool {
    let value = value.trim();
    value.starts_with("-----BEGIN") && value.ends_with("-----")
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls(url: &str) -> Tls {
        Tls::of(url, &url.parse().unwrap())
    }

    #[test]
    fn sslrootcert_is_read_from_the_url_under_any_of_its_names() {
        let t = tls("postgres://u@h/db?sslmode=verify-full&sslrootcert=%2Fetc%2Fca%20x.pem");
        assert_eq!(t.root_cert.as_deref(), Some("/etc/ca x.pem"));
        assert_eq!(t.mode_name(), "verify-full");
        let t = tls("postgres://u@h/db?ssl-ca=/ca.pem&sslmode=verify-ca");
        assert_eq!(t.root_cert.as_deref(), Some("/ca.pem"));
        assert_eq!(t.host, "h");
    }

    #[test]
    fn an_unreadable_or_empty_sslrootcert_is_refused_by_name_before_connecting() {
        let url = "postgres://u:hunter2@h/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem";
        let err = tls(url).check_root_cert(url).unwrap_err().to_string();
        assert!(
            err.contains("cannot read sslrootcert /nonexistent/ca.pem"),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "{err}");

        let empty = std::env::temp_dir().join(format!("hf-empty-ca-{}.pem", std::process::id()));
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let url = format!(
            "postgres://u@h/db?sslmode=verify-ca&sslrootcert={}",
            empty.display()
        );
        let err = tls(&url).check_root_cert(&url).unwrap_err().to_string();
        assert!(err.contains("holds no PEM certificate"), "{err}");
        let _ = std::fs::remove_file(&empty);
    }

    #[test]
    fn a_refused_certificate_names_the_ca_and_the_mode() {
        let t = tls("postgres://u@h/db?sslmode=verify-full&sslrootcert=/ca.pem");
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        let err = t
            .explain("postgres://u@h/db", sqlx::Error::Io(io))
            .to_string();
        assert!(
            err.contains("not signed by the CA in sslrootcert /ca.pem"),
            "{err}"
        );
        assert!(err.contains("sslmode=verify-full"), "{err}");
    }
}
