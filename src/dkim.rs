//! DKIM signing: every message of a campaign with a `[dkim]` section is signed (RFC 6376) with
//! the organization's key, so receiving servers can check it really comes from its domain and
//! was not altered on the way.
//!
//! lettre computes the signature; this module reads the key the way `openssl genpkey` writes it
//! (PKCS#8 PEM, RSA or Ed25519; an RSA key may also be PKCS#1), and chooses what is signed:
//! relaxed canonicalization for headers and body (a relay that re-folds a header does not break
//! the signature) over the headers that say who, what and when, the MIME structure, and the
//! unsubscribe headers (Gmail requires `List-Unsubscribe` and `List-Unsubscribe-Post` to be
//! covered). The public key is published in DNS by the organization; missive never needs it.

use std::path::PathBuf;

use lettre::message::dkim::{
    DkimCanonicalization, DkimCanonicalizationType, DkimConfig, DkimSigningAlgorithm,
    DkimSigningKey,
};
use lettre::message::header::HeaderName;

use crate::error::{Classify, ErrorKind};

/// The headers the signature covers, when the message has them.
pub const SIGNED_HEADERS: [&str; 11] = [
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "Reply-To",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
];

/// Receivers refuse RSA keys shorter than this (RFC 8301).
const MIN_RSA_BITS: usize = 1024;
/// Verifiers need not take larger keys (RFC 8301), and a larger key's signature (`b=`) is one
/// base64 word that could not be folded within a header line's 998 octets.
const MAX_RSA_BITS: usize = 4096;

/// Who signs, and where the private key is: the campaign's `[dkim]` section, checked (a domain
/// and a selector DNS can hold); the key is read only when a command needs it, by [`signer`].
#[derive(Debug, Clone)]
pub struct DkimSettings {
    pub domain: String,
    pub selector: String,
    pub key: PathBuf,
}

/// The key cannot be used: nothing is sent unsigned by surprise.
#[derive(Debug, thiserror::Error)]
pub enum DkimError {
    #[error("cannot read the DKIM key {path} (campaign field `dkim.key`): {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} (campaign field `dkim.key`): {problem}")]
    Key { path: PathBuf, problem: String },
}

impl Classify for DkimError {
    fn kind(&self) -> ErrorKind {
        match self {
            DkimError::Read { .. } | DkimError::Key { .. } => ErrorKind::Invalid,
        }
    }
}

/// A key read from a file, with its algorithm.
pub struct Key {
    pub algorithm: DkimSigningAlgorithm,
    signing_key: DkimSigningKey,
}

impl std::fmt::Debug for Key {
    /// The algorithm only: a private key has no business in a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({})", self.algorithm)
    }
}

/// Reads the key of `settings` and makes lettre's signing configuration.
pub fn signer(settings: &DkimSettings) -> Result<DkimConfig, DkimError> {
    let pem = std::fs::read_to_string(&settings.key).map_err(|source| DkimError::Read {
        path: settings.key.clone(),
        source,
    })?;
    let key = parse_key(&pem).map_err(|problem| DkimError::Key {
        path: settings.key.clone(),
        problem,
    })?;
    Ok(DkimConfig::new(
        settings.selector.clone(),
        settings.domain.clone(),
        key.signing_key,
        SIGNED_HEADERS
            .iter()
            .map(|name| HeaderName::new_from_ascii_str(name))
            .collect(),
        DkimCanonicalization {
            header: DkimCanonicalizationType::Relaxed,
            body: DkimCanonicalizationType::Relaxed,
        },
    ))
}

/// The DER prefix of an Ed25519 private key in PKCS#8 (RFC 8410): the 32-byte seed follows.
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// Parses a PEM private key: `RSA PRIVATE KEY` (PKCS#1) or `PRIVATE KEY` (PKCS#8, RSA or Ed25519).
pub fn parse_key(pem: &str) -> Result<Key, String> {
    use base64::Engine;
    use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
    use rsa::pkcs8::DecodePrivateKey;
    use rsa::traits::PublicKeyParts;

    let hint = "make one with `openssl genpkey -algorithm ed25519 -out dkim.pem` or \
                `openssl genpkey -algorithm rsa -pkeyopt rsa_keygen_bits:2048 -out dkim.pem`";
    let rsa_key = if pem.contains("-----BEGIN RSA PRIVATE KEY-----") {
        rsa::RsaPrivateKey::from_pkcs1_pem(pem)
            .map_err(|e| format!("not a readable PKCS#1 RSA key ({e}); {hint}"))?
    } else if pem.contains("-----BEGIN PRIVATE KEY-----") {
        let body: String = pem
            .lines()
            .skip_while(|l| !l.starts_with("-----BEGIN PRIVATE KEY-----"))
            .skip(1)
            .take_while(|l| !l.starts_with("-----END"))
            .collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body.trim())
            .map_err(|e| format!("the PEM body is not base64 ({e}); {hint}"))?;
        if der.len() == 48 && der[..16] == ED25519_PKCS8_PREFIX {
            let seed = base64::engine::general_purpose::STANDARD.encode(&der[16..]);
            let signing_key = DkimSigningKey::new(&seed, DkimSigningAlgorithm::Ed25519)
                .map_err(|e| format!("not a usable Ed25519 key ({e})"))?;
            return Ok(Key {
                algorithm: DkimSigningAlgorithm::Ed25519,
                signing_key,
            });
        }
        rsa::RsaPrivateKey::from_pkcs8_der(&der)
            .map_err(|e| format!("neither an Ed25519 nor an RSA PKCS#8 key ({e}); {hint}"))?
    } else {
        return Err(format!(
            "not a PEM private key (no `-----BEGIN PRIVATE KEY-----` line); {hint}"
        ));
    };
    let bits = rsa_key.size() * 8;
    if bits < MIN_RSA_BITS {
        return Err(format!(
            "the RSA key has {bits} bits; receivers refuse fewer than {MIN_RSA_BITS} (use 2048)"
        ));
    }
    if bits > MAX_RSA_BITS {
        return Err(format!(
            "the RSA key has {bits} bits; verifiers need not take more than {MAX_RSA_BITS} \
             (RFC 8301), and its signature would not fit in a header line (use 2048)"
        ));
    }
    let pkcs1 = rsa_key
        .to_pkcs1_pem(rsa::pkcs1::LineEnding::LF)
        .map_err(|e| format!("cannot re-encode the RSA key ({e})"))?;
    let signing_key = DkimSigningKey::new(&pkcs1, DkimSigningAlgorithm::Rsa)
        .map_err(|e| format!("not a usable RSA key ({e})"))?;
    Ok(Key {
        algorithm: DkimSigningAlgorithm::Rsa,
        signing_key,
    })
}

/// True when the From domain and the signing domain are aligned in DMARC's relaxed sense: the
/// same, or one a subdomain of the other (an approximation of "same organizational domain"
/// that needs no public-suffix list).
pub fn aligned(from_domain: &str, dkim_domain: &str) -> bool {
    let from = from_domain.trim_end_matches('.').to_lowercase();
    let signer = dkim_domain.trim_end_matches('.').to_lowercase();
    from == signer || from.ends_with(&format!(".{signer}")) || signer.ends_with(&format!(".{from}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `openssl genpkey -algorithm ed25519`, made for this test only.
    const ED25519_PEM: &str = "-----BEGIN PRIVATE KEY-----\n\
        MC4CAQAwBQYDK2VwBCIEICXGLCsh83hQ/HuZ+QSJ20rIiBzzfsw0IiSiTNruu1JM\n\
        -----END PRIVATE KEY-----\n";

    #[test]
    fn reads_an_ed25519_pkcs8_key() {
        let key = parse_key(ED25519_PEM).unwrap();
        assert!(matches!(key.algorithm, DkimSigningAlgorithm::Ed25519));
    }

    #[test]
    fn refuses_what_is_not_a_key_with_a_hint() {
        let err = parse_key("hello").unwrap_err();
        assert!(err.contains("openssl genpkey"), "{err}");
        let err = parse_key("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
            .unwrap_err();
        assert!(err.contains("neither"), "{err}");
    }

    #[test]
    fn alignment_is_relaxed() {
        assert!(aligned("example.org", "example.org"));
        assert!(aligned("dons.example.org", "Example.org"));
        assert!(aligned("example.org", "mail.example.org"));
        assert!(!aligned("example.org", "example.net"));
        assert!(!aligned("badexample.org", "example.org"));
    }
}
