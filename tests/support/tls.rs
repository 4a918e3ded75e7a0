//! Certificates for tests: an authority and a server certificate for 127.0.0.1 it signed, made
//! at test time with `openssl` (never a key anyone relies on), and the test SMTP server's TLS
//! acceptor over them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A certificate authority and the server certificate it signed, as PEM files.
pub struct TestCa {
    /// The authority's certificate: what a client trusts.
    pub ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
}

impl TestCa {
    /// Makes, in `dir`, an authority named `name` and a certificate for 127.0.0.1 it signed.
    pub fn generate(dir: &Path, name: &str) -> TestCa {
        TestCa::generate_for(dir, name, &[])
    }

    /// [`TestCa::generate`], the certificate naming the addresses `also` too.
    pub fn generate_for(dir: &Path, name: &str, also: &[std::net::Ipv4Addr]) -> TestCa {
        let file = |suffix: &str| dir.join(format!("{name}-{suffix}"));
        let (ca, ca_key) = (file("ca.pem"), file("ca-key.pem"));
        let (server_cert, server_key, request) = (
            file("server.pem"),
            file("server-key.pem"),
            file("server.csr"),
        );
        let extensions = file("server.ext");
        let names: String = also.iter().map(|ip| format!(", IP:{ip}")).collect();
        std::fs::write(
            &extensions,
            format!(
                "subjectAltName = IP:127.0.0.1{names}\nbasicConstraints = critical, CA:FALSE\n\
                 keyUsage = critical, digitalSignature\nextendedKeyUsage = serverAuth\n"
            ),
        )
        .unwrap();
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        openssl(
            &[
                &["req", "-x509"][..],
                &ec,
                &["-days", "2", "-subj", &format!("/CN={name} test authority")],
                &["-addext", "basicConstraints=critical,CA:TRUE"],
                &["-addext", "keyUsage=critical,keyCertSign,cRLSign"],
            ]
            .concat(),
            &[("-keyout", &ca_key), ("-out", &ca)],
        );
        openssl(
            &[&["req"][..], &ec, &["-subj", "/CN=127.0.0.1"]].concat(),
            &[("-keyout", &server_key), ("-out", &request)],
        );
        openssl(
            &["x509", "-req", "-days", "2", "-set_serial", "2"],
            &[
                ("-in", &request),
                ("-CA", &ca),
                ("-CAkey", &ca_key),
                ("-extfile", &extensions),
                ("-out", &server_cert),
            ],
        );
        TestCa {
            ca,
            server_cert,
            server_key,
        }
    }

    /// The server certificate and its key, as PEM files: for a server of its own (PostgreSQL).
    pub fn server_files(&self) -> (&Path, &Path) {
        (&self.server_cert, &self.server_key)
    }

    /// A TLS acceptor presenting the server certificate.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        let certs = CertificateDer::pem_file_iter(&self.server_cert)
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(&self.server_key).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    }
}

fn openssl(args: &[&str], files: &[(&str, &PathBuf)]) {
    let mut command = Command::new("openssl");
    command.args(args);
    for (flag, path) in files {
        command.arg(flag).arg(path);
    }
    super::openssl(&mut command, &format!("openssl {args:?}"));
}
