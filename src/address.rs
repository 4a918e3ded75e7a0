//! Who "the same person" is: the one definition of address identity that the whole of missive
//! shares.
//!
//! An address names one person whatever its case: `Marie@Example.com` and `marie@example.com`
//! are deduplicated as one row, share one history in the send log and one Message-ID, are
//! suppressed together and carry the same unsubscribe token. RFC 5321 lets a server tell local
//! parts apart by case, but mailbox providers do not, and the two errors are not alike: treating
//! one person as two mails someone who unsubscribed, or mails them twice; treating two as one
//! at worst leaves out someone whose address differs from another's only by case.
//!
//! Everything that compares, keys or hashes an address goes through [`normalize`] or
//! [`RecipientKey`]; nothing else lower-cases an address. This module imports nothing of
//! missive's own, so that any module may import it.

use std::borrow::Cow;

use sha2::{Digest, Sha256};

/// An address as missive compares it: the whole of it in lower case (Unicode's, so that `É`
/// and `é` are one letter too). Callers trim whitespace first.
///
/// Send logs store addresses in this form and Message-IDs hash it: changing it would make a
/// running campaign mail people again, so it never changes.
pub fn normalize(address: &str) -> Cow<'_, str> {
    if address.is_ascii() {
        if address.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(address.to_ascii_lowercase())
        } else {
            // The common case (and every address read back from a send log): no copy.
            Cow::Borrowed(address)
        }
    } else {
        // Not `chars().any(is_uppercase)`: a title-case letter such as `ǅ` is not upper case but
        // still has a lower-case form.
        Cow::Owned(address.to_lowercase())
    }
}

/// True when `a` and `b` name the same person.
pub fn same_person(a: &str, b: &str) -> bool {
    normalize(a) == normalize(b)
}

/// A stable 128-bit key of a person: the first half of the SHA-256 of the [`normalize`]d
/// address. Duplicates in the list, entries of the send log and suppression lists are matched
/// by it, in constant memory per person whatever the address's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecipientKey(pub [u8; 16]);

impl RecipientKey {
    /// The key of `address`; case does not matter.
    pub fn of(address: &str) -> RecipientKey {
        let digest = Sha256::digest(normalize(address).as_bytes());
        let mut key = [0; 16];
        key.copy_from_slice(&digest[..16]);
        RecipientKey(key)
    }
}

/// Lower-case hex of `bytes` (keys, tokens and fingerprints are written this way).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(2 * bytes.len());
    for &byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
    out
}

/// Bytes of hex digits of either case (what [`hex`] writes, or a server's upper-cased copy of
/// it); `None` for anything else.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_does_not_matter_anywhere_in_the_address() {
        assert_eq!(normalize("Marie@Example.COM"), "marie@example.com");
        assert_eq!(normalize("ÉVE@Exemple.fr"), "éve@exemple.fr");
        assert!(same_person("Marie@Example.com", "marie@example.com"));
        assert!(!same_person("marie@example.com", "marie@example.org"));
        assert_eq!(
            RecipientKey::of("A@Example.COM"),
            RecipientKey::of("a@example.com")
        );
        assert_ne!(
            RecipientKey::of("a@example.com"),
            RecipientKey::of("b@example.com")
        );
    }

    #[test]
    fn a_lower_case_address_is_not_copied() {
        assert!(matches!(normalize("zoe@example.com"), Cow::Borrowed(_)));
    }

    #[test]
    fn a_normalized_address_keeps_its_key() {
        // The send log stores the normalized form and keys it again on replay: both keys must
        // be the list's, or the person would be mailed again on every run. `ǅ` is a title-case
        // letter, not upper case, and `Σ` lower-cases by its position.
        for address in [
            "Zoé@Example.com",
            "ǅemal@example.com",
            "ΣΟΦΙΑΣ@example.gr",
            "İ@x.tr",
        ] {
            let stored = normalize(address).into_owned();
            assert_eq!(normalize(&stored), stored, "{address}");
            assert_eq!(RecipientKey::of(&stored), RecipientKey::of(address));
        }
    }

    #[test]
    fn keys_are_the_ones_send_logs_were_written_with() {
        // The first 16 bytes of SHA-256("a@example.com"): a new formula would break old logs.
        assert_eq!(
            hex(&RecipientKey::of("A@example.com").0),
            hex(&Sha256::digest(b"a@example.com")[..16])
        );
        assert_eq!(hex(&[0x00, 0x9f, 0xff]), "009fff");
    }
}
