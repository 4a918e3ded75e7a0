//! The token key and the tokens it signs: an HMAC-SHA256 of the campaign and the person, cut
//! to 128 bits, checked in constant time. The key comes from [`SECRET_VAR`] only, and neither
//! it nor anything derived from it ever shows in a log line or an error.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::SECRET_VAR;
use crate::address;

/// Shorter secrets can be guessed; `openssl rand -hex 32` makes a good one.
pub const MIN_SECRET_BYTES: usize = 32;
/// Bytes of the HMAC kept in a token: 128 bits, as hard to forge as to guess.
const TOKEN_BYTES: usize = 16;

/// The token key. Its `Debug` never shows the value, so it cannot leak through a log line.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// Why the secret cannot be used (the message never contains the secret itself).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error(
        "{SECRET_VAR} is unset or empty; set it to a random value, e.g. `export {SECRET_VAR}=$(openssl rand -hex 32)`"
    )]
    Missing,
    #[error(
        "{SECRET_VAR} is {0} bytes long; use at least {MIN_SECRET_BYTES} random bytes, e.g. `openssl rand -hex 32`"
    )]
    TooShort(usize),
}

impl Secret {
    /// A secret from its text, refused when too short to resist guessing.
    pub fn new(text: &str) -> Result<Secret, SecretError> {
        match text.len() {
            0 => Err(SecretError::Missing),
            n if n < MIN_SECRET_BYTES => Err(SecretError::TooShort(n)),
            _ => Ok(Secret(text.as_bytes().to_vec())),
        }
    }

    /// The secret in [`SECRET_VAR`].
    pub fn from_env() -> Result<Secret, SecretError> {
        Secret::new(&std::env::var(SECRET_VAR).unwrap_or_default())
    }

    /// A random secret for a dry run or a preview: links made with it never verify later.
    pub fn throwaway() -> Secret {
        let bytes: Vec<u8> = std::iter::repeat_with(|| fastrand::u8(..))
            .take(MIN_SECRET_BYTES)
            .collect();
        Secret(bytes)
    }
}

impl Secret {
    /// An HMAC-SHA256 under this secret, already fed `label`: each use of the secret (the
    /// unsubscribe token, the VERP return path) has a label of its own, so a value made for one
    /// never verifies as the other.
    pub fn keyed(&self, label: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(label);
        mac
    }
}

fn mac(secret: &Secret, campaign_id: &str, person: &str) -> Hmac<Sha256> {
    // The campaign id cannot hold a NUL and an address cannot either: the input is unambiguous.
    let mut mac = secret.keyed(b"missive-unsubscribe-v1\0");
    mac.update(campaign_id.as_bytes());
    mac.update(b"\0");
    mac.update(person.as_bytes());
    mac
}

/// The token of `address` in campaign `campaign_id`: 32 hex digits. It covers the person, not
/// the spelling ([`crate::address::normalize`]): `Marie@…` and `marie@…` have one token, as
/// they have one entry in the send log and on a suppression list.
pub fn token(secret: &Secret, campaign_id: &str, address: &str) -> String {
    let tag = mac(secret, campaign_id, &address::normalize(address))
        .finalize()
        .into_bytes();
    address::hex(&tag[..TOKEN_BYTES])
}

/// The form tokens hashed before missive had one address identity: the local part as written,
/// the domain in lower case. For an address whose local part is in lower case (nearly all) it
/// is the same as today's, so those tokens never changed; it is kept so that a link already in
/// someone's mailbox for `Marie@…` still unsubscribes them.
fn issued_before_identity(address: &str) -> Option<String> {
    let (local, domain) = address.rsplit_once('@')?;
    let form = format!("{local}@{}", domain.to_lowercase());
    (form != address::normalize(address)).then_some(form)
}

/// True when `token` is the token of (`campaign_id`, `address`), as issued now or by an earlier
/// version of missive; compares in constant time.
pub fn verify(secret: &Secret, campaign_id: &str, address: &str, token: &str) -> bool {
    let Some(bytes) = address::unhex(token) else {
        return false;
    };
    let matches = |person: &str| {
        mac(secret, campaign_id, person)
            .verify_truncated_left(&bytes)
            .is_ok()
    };
    bytes.len() == TOKEN_BYTES
        && (matches(&address::normalize(address))
            || issued_before_identity(address).is_some_and(|form| matches(&form)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> Secret {
        Secret::new("0123456789abcdef0123456789abcdef").unwrap()
    }

    #[test]
    fn token_depends_on_campaign_person_and_secret() {
        let t = token(&secret(), "c1", "Zoe@Example.COM");
        assert_eq!(t.len(), 32);
        assert_eq!(t, token(&secret(), "c1", "Zoe@example.com"), "domain case");
        assert_eq!(
            t,
            token(&secret(), "c1", "zoe@example.com"),
            "local part case"
        );
        assert_ne!(t, token(&secret(), "c1", "zoe.x@example.com"));
        assert_ne!(t, token(&secret(), "c2", "Zoe@example.com"));
        let other = Secret::new(&"x".repeat(40)).unwrap();
        assert_ne!(t, token(&other, "c1", "Zoe@example.com"));
        assert!(verify(&secret(), "c1", "Zoe@example.com", &t));
        assert!(verify(&secret(), "c1", "zoe@EXAMPLE.com", &t));
        assert!(!verify(&other, "c1", "Zoe@example.com", &t));
        assert!(!verify(&secret(), "c1", "Zoe@example.com", &t[..30]));
        assert!(!verify(&secret(), "c1", "Zoe@example.com", "zz"));
    }

    /// What `token` computed before addresses had one identity: the local part as written.
    fn token_issued_before_identity(secret: &Secret, campaign_id: &str, address: &str) -> String {
        let (local, domain) = address.rsplit_once('@').unwrap();
        let form = format!("{local}@{}", domain.to_lowercase());
        let tag = mac(secret, campaign_id, &form).finalize().into_bytes();
        address::hex(&tag[..TOKEN_BYTES])
    }

    #[test]
    fn tokens_already_issued_still_verify() {
        // A lower-case local part: the token is the very one issued before.
        let old = token_issued_before_identity(&secret(), "c1", "zoe@Example.com");
        assert_eq!(old, token(&secret(), "c1", "zoe@Example.com"));
        // Known bytes, so that a change of the formula cannot pass unnoticed.
        assert_eq!(
            old,
            address::hex(
                &Hmac::<Sha256>::new_from_slice(&secret().0)
                    .unwrap()
                    .chain_update(b"missive-unsubscribe-v1\0c1\0zoe@example.com")
                    .finalize()
                    .into_bytes()[..16]
            )
        );
        // A capital in the local part: today's token differs, and the old one still verifies,
        // for that spelling only.
        let old = token_issued_before_identity(&secret(), "c1", "Marie@example.com");
        assert_ne!(old, token(&secret(), "c1", "Marie@example.com"));
        assert!(verify(&secret(), "c1", "Marie@example.com", &old));
        assert!(verify(&secret(), "c1", "Marie@EXAMPLE.com", &old));
        assert!(!verify(&secret(), "c1", "marie@example.com", &old));
        assert!(!verify(&secret(), "c2", "Marie@example.com", &old));
    }

    #[test]
    fn secrets_are_checked_and_never_shown() {
        assert_eq!(Secret::new("").unwrap_err(), SecretError::Missing);
        assert_eq!(Secret::new("short").unwrap_err(), SecretError::TooShort(5));
        let s = Secret::new(&"s3cr3t".repeat(8)).unwrap();
        assert!(!format!("{s:?}").contains("s3cr3t"));
    }
}
