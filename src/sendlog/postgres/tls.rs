//! TLS to the database: rustls with ring, as lettre's connection to a relay, the server's
//! certificate verified for the host's name against the web's roots or the authority that
//! `sslrootcert` names (see `target` for when TLS is required).

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use super::PgTarget;
use crate::sendlog::SendLogError;

/// The certificates of the PEM file at `path`: the authority a private database's
/// certificate is signed by.
pub(super) fn read_authority(
    shown: &str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, SendLogError> {
    let refuse = |problem: String| SendLogError::DatabaseUrl {
        url: shown.to_owned(),
        problem: format!("sslrootcert {}: {problem}", path.display()),
    };
    let certificates = CertificateDer::pem_file_iter(path)
        .and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>())
        .map_err(|e| refuse(format!("cannot read its certificates ({e})")))?;
    if certificates.is_empty() {
        return Err(refuse("holds no certificate (PEM)".into()));
    }
    Ok(certificates)
}

/// The TLS connector: rustls with ring, as lettre's connection to a relay, trusting the web's
/// roots, or only the authority `sslrootcert` names.
pub(super) fn tls_connector(target: &PgTarget) -> tokio_postgres_rustls::MakeRustlsConnect {
    let mut roots = rustls::RootCertStore::empty();
    match &target.authority {
        Some(authority) => {
            roots.add_parsable_certificates(authority.iter().cloned());
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("ring supports TLS 1.2 and 1.3")
    .with_root_certificates(roots)
    .with_no_client_auth();
    tokio_postgres_rustls::MakeRustlsConnect::new(config)
}
