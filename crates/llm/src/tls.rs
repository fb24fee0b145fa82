//! The certificates a provider's or a tool's TLS chain may end in, beyond Mozilla's
//! roots: those in the PEM file `SSL_CERT_FILE` names, as OpenSSL, curl and Python
//! read it, so that a self-hosted model or an internal tool behind a private CA works
//! without a flag. Read where a client is built, by the provider client and by the
//! engine's tool client alike, so the two trust the same roots.

/// The PEM file `SSL_CERT_FILE` names, read.
#[derive(Debug, Clone)]
pub struct CertFile {
    /// The file, as named.
    pub path: String,
    /// Its bytes: one or more PEM certificates.
    pub pem: Vec<u8>,
}

impl CertFile {
    /// `problem` with the file it concerns, for an error message.
    pub fn problem(&self, problem: &str) -> String {
        format!("SSL_CERT_FILE {}: {problem}", self.path)
    }
}

/// The file `SSL_CERT_FILE` names, if it names one (an empty value names none); an
/// error, naming the file, when it cannot be read.
pub fn ssl_cert_file() -> Result<Option<CertFile>, String> {
    let Some(path) = std::env::var_os("SSL_CERT_FILE").filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    let path = path.to_string_lossy().into_owned();
    match std::fs::read(&path) {
        Ok(pem) => Ok(Some(CertFile { path, pem })),
        Err(e) => Err(format!("SSL_CERT_FILE {path}: cannot be read: {e}")),
    }
}
