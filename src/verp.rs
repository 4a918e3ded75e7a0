//! VERP (variable envelope return path): an envelope sender of each message's own, so that a
//! bounce says whom it is about even when the bouncing server mangles everything else.
//!
//! A bounce goes to the envelope sender (SMTP's `MAIL FROM`, kept as `Return-Path`), not to
//! `From`. With `[bounces] return_path = "bounces@example.org"`, the message to a person goes out
//! with `MAIL FROM:<bounces+<tag>@example.org>`, where the tag is the person's
//! [`RecipientKey`] followed by a short HMAC of the campaign and that key under the
//! organization's secret. Bounce servers deliver `bounces+anything@` to `bounces@` (the `+`
//! sub-address every MTA knows), and `missive bounces` reads the person back from the address
//! the bounce was sent to. The HMAC means a forged bounce cannot suppress someone: only mail
//! that went out from missive carries a tag that verifies.
//!
//! The tag names the person by key, not by address: an address in the envelope sender would
//! be longer than a local part may be (64 octets), and would need escaping.

use lettre::Address;

use crate::address::{RecipientKey, hex, unhex};
use crate::unsubscribe::Secret;

/// Octets of the HMAC kept in the tag: 40 bits, so a forger needs ~10¹² tries per person, each a
/// bounce that must reach the organization's mailbox.
const MAC_BYTES: usize = 5;
/// Hex digits of the tag: the 16-byte key and the MAC.
const TAG_DIGITS: usize = 2 * (16 + MAC_BYTES);
/// RFC 5321 §4.5.3.1.1: a local part has at most 64 octets.
const MAX_LOCAL_PART: usize = 64;
/// The longest local part a `return_path` may have: the rest of 64 goes to `+` and the tag.
pub const MAX_BASE_CHARS: usize = MAX_LOCAL_PART - 1 - TAG_DIGITS;

/// A `return_path` that cannot take a tag.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerpError {
    #[error(
        "the local part {local:?} is {len} characters: with the per-person tag a return path's \
         local part may have at most {MAX_BASE_CHARS} (such as \"bounces\")"
    )]
    TooLong { local: String, len: usize },
    #[error("the local part {0:?} already holds a '+': give the address without a sub-address")]
    HasPlus(String),
}

/// Makes and reads the per-person envelope senders of one campaign.
#[derive(Debug, Clone)]
pub struct Verp {
    local: String,
    domain: String,
    campaign_id: String,
    secret: Secret,
}

impl Verp {
    /// Checks that `return_path` can take a tag (the campaign file calls it too, to name the
    /// line of a return path that cannot).
    pub fn check(return_path: &Address) -> Result<(), VerpError> {
        let local = return_path.user();
        if local.contains('+') {
            return Err(VerpError::HasPlus(local.to_owned()));
        }
        if local.len() > MAX_BASE_CHARS {
            return Err(VerpError::TooLong {
                local: local.to_owned(),
                len: local.len(),
            });
        }
        Ok(())
    }

    pub fn new(
        return_path: &Address,
        campaign_id: &str,
        secret: Secret,
    ) -> Result<Verp, VerpError> {
        Verp::check(return_path)?;
        Ok(Verp {
            local: return_path.user().to_owned(),
            domain: return_path.domain().to_owned(),
            campaign_id: campaign_id.to_owned(),
            secret,
        })
    }

    /// The envelope sender of the message to `address`.
    pub fn envelope_sender(&self, address: &str) -> Address {
        self.envelope_sender_of(&RecipientKey::of(address))
    }

    /// The envelope sender of the message to the person with `key` (what `send` has in hand
    /// for each recipient already, so the address is not hashed again for every message).
    pub fn envelope_sender_of(&self, key: &RecipientKey) -> Address {
        let tag = self.mac(key);
        let text = format!(
            "{}+{}{}@{}",
            self.local,
            hex(&key.0),
            hex(&tag[..MAC_BYTES]),
            self.domain
        );
        text.parse()
            .expect("a checked local part, '+' and hex digits make an address")
    }

    /// The person a bounce sent to `address` is about, when `address` is one of this campaign's
    /// envelope senders and its MAC verifies (in constant time); `None` for any other address.
    /// Case is ignored: some servers lower- or upper-case what they bounce to.
    pub fn recipient_key(&self, address: &str) -> Option<RecipientKey> {
        let tag = self.tag_of(address)?;
        if tag.len() != TAG_DIGITS {
            return None;
        }
        let bytes = unhex(tag)?;
        let (key, mac) = bytes.split_at(16);
        let key = RecipientKey(key.try_into().ok()?);
        use hmac::Mac;
        self.keyed_for(&key).verify_truncated_left(mac).ok()?;
        Some(key)
    }

    /// True when `address` has the form of this campaign's envelope senders
    /// (`<return path's local part>+…@<its domain>`), whether its tag verifies or not: a bounce
    /// sent to one that does not verify is another campaign's, or forged.
    pub fn has_form(&self, address: &str) -> bool {
        self.tag_of(address).is_some()
    }

    /// What follows the `+` of an address of this campaign's form.
    fn tag_of<'a>(&self, address: &'a str) -> Option<&'a str> {
        let (local, domain) = address.trim().rsplit_once('@')?;
        let (base, tag) = local.rsplit_once('+')?;
        (base.eq_ignore_ascii_case(&self.local) && domain.eq_ignore_ascii_case(&self.domain))
            .then_some(tag)
    }

    fn keyed_for(&self, key: &RecipientKey) -> hmac::Hmac<sha2::Sha256> {
        use hmac::Mac;
        // A campaign id holds no NUL: campaign and key cannot run into each other.
        let mut mac = self.secret.keyed(b"missive-verp-v1\0");
        mac.update(self.campaign_id.as_bytes());
        mac.update(b"\0");
        mac.update(&key.0);
        mac
    }

    fn mac(&self, key: &RecipientKey) -> Vec<u8> {
        use hmac::Mac;
        self.keyed_for(key).finalize().into_bytes().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(byte: char) -> Secret {
        Secret::new(&byte.to_string().repeat(64)).unwrap()
    }

    fn make(campaign: &str, key: char) -> Verp {
        let return_path: Address = "bounces@example.org".parse().unwrap();
        Verp::new(&return_path, campaign, secret(key)).unwrap()
    }

    #[test]
    fn the_sender_names_the_person_and_reads_back() {
        let verp = make("fails-2023-fr", 'a');
        let sender = verp.envelope_sender("Marie@Example.com");
        let text = sender.to_string();
        assert!(
            text.starts_with("bounces+") && text.ends_with("@example.org"),
            "{text}"
        );
        assert!(sender.user().len() <= MAX_LOCAL_PART);
        assert_eq!(
            verp.recipient_key(&text),
            Some(RecipientKey::of("marie@example.com"))
        );
        assert_eq!(
            verp.recipient_key(&text.to_uppercase()),
            Some(RecipientKey::of("marie@example.com")),
            "servers that change case still name the person"
        );
    }

    #[test]
    fn a_forged_or_foreign_sender_names_nobody() {
        let verp = make("fails-2023-fr", 'a');
        let text = verp.envelope_sender("marie@example.com").to_string();
        // Another campaign, another secret: the MAC does not verify.
        assert_eq!(make("other", 'a').recipient_key(&text), None);
        assert_eq!(make("fails-2023-fr", 'b').recipient_key(&text), None);
        // One digit changed in the key, or in the MAC.
        let at = text.find('+').unwrap() + 1;
        for i in [at, text.find('@').unwrap() - 1] {
            let mut bytes = text.clone().into_bytes();
            bytes[i] = if bytes[i] == b'0' { b'1' } else { b'0' };
            let altered = String::from_utf8(bytes).unwrap();
            assert_eq!(verp.recipient_key(&altered), None, "{altered}");
        }
        for other in [
            "bounces@example.org",
            "bounces+@example.org",
            "someone@example.org",
            &text.replace("example.org", "example.net"),
            &text.replace("bounces+", "other+"),
            &text[..text.len() - 14],
            "",
            "+@",
        ] {
            assert_eq!(verp.recipient_key(other), None, "{other}");
        }
    }

    #[test]
    fn return_paths_that_cannot_take_a_tag_are_refused() {
        let long: Address = format!("{}@example.org", "b".repeat(MAX_BASE_CHARS + 1))
            .parse()
            .unwrap();
        assert!(matches!(Verp::check(&long), Err(VerpError::TooLong { .. })));
        let plus: Address = "bounces+x@example.org".parse().unwrap();
        assert_eq!(
            Verp::check(&plus),
            Err(VerpError::HasPlus("bounces+x".into()))
        );
        let longest: Address = format!("{}@example.org", "b".repeat(MAX_BASE_CHARS))
            .parse()
            .unwrap();
        let verp = Verp::new(&longest, "c", secret('a')).unwrap();
        assert_eq!(verp.envelope_sender("a@b.c").user().len(), MAX_LOCAL_PART);
    }
}
