//! One-click unsubscribe (RFC 2369 and RFC 8058): the per-recipient link, its token, and the
//! check the organization's web endpoint makes when someone follows it.
//!
//! Every message carries `List-Unsubscribe` (a `mailto:` address and an HTTPS link) and
//! `List-Unsubscribe-Post: List-Unsubscribe=One-Click`; the same link shows in the letter's
//! footer. The link names the campaign and the address, and holds a token: an HMAC-SHA256 of
//! both under a secret that only the environment variable [`SECRET_VAR`] holds. Whoever holds
//! the secret can tell a real link from a forged one ([`verify_link`], or
//! `missive unsubscribe-token verify URL`), so nobody can unsubscribe someone else by guessing.
//!
//! The link carries the address itself: the endpoint needs no database to know whom to remove.
//! It only travels in that person's own mail and to the organization's endpoint, over HTTPS.

use lettre::Address;

mod secret;

pub use secret::{MIN_SECRET_BYTES, Secret, SecretError, token, verify};

/// The environment variable holding the token key; never read from a file, never printed.
pub const SECRET_VAR: &str = "MISSIVE_UNSUBSCRIBE_SECRET";
/// Query parameters of the link: campaign id, address, token.
const CAMPAIGN_PARAM: &str = "c";
const ADDRESS_PARAM: &str = "e";
const TOKEN_PARAM: &str = "t";
/// The parameters each link adds to the endpoint's URL, which must not have them already.
pub const LINK_PARAMS: [&str; 3] = [CAMPAIGN_PARAM, ADDRESS_PARAM, TOKEN_PARAM];
/// The reader's language, which the links of a campaign with `[letters]` carry before the
/// others (`?lang=en&c=…`), so that the pages `serve` shows speak the letter's language. It is
/// not signed: it changes the words of a page, and nothing else.
pub const LANGUAGE_PARAM: &str = "lang";

/// A campaign's unsubscribe settings with the secret: makes every person's link and headers.
#[derive(Debug, Clone)]
pub struct Unsubscribe {
    pub campaign_id: String,
    /// Where unsubscribe requests by mail go.
    pub mailto: Address,
    /// The HTTPS endpoint; each person's link adds the campaign, the address and the token.
    pub url: url::Url,
    /// Words of the footer before the link, and the link's own words.
    pub footer: String,
    pub link_text: String,
    pub secret: Secret,
}

impl Unsubscribe {
    /// The HTTPS link of `address`: `url?c=<campaign>&e=<address>&t=<token>`.
    pub fn link(&self, address: &str) -> String {
        let mut url = self.url.clone();
        url.query_pairs_mut()
            .append_pair(CAMPAIGN_PARAM, &self.campaign_id)
            .append_pair(ADDRESS_PARAM, address)
            .append_pair(
                TOKEN_PARAM,
                &token(&self.secret, &self.campaign_id, address),
            );
        url.into()
    }

    /// These settings for the letter in `language`: the footer's words in it, and links that
    /// name it ([`LANGUAGE_PARAM`], in place of one the endpoint's URL may have).
    pub fn in_language(&self, language: &str, footer: &str, link_text: &str) -> Unsubscribe {
        let mut url = self.url.clone();
        let kept: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(key, _)| key != LANGUAGE_PARAM)
            .map(|(key, value)| (key.into_owned(), value.into_owned()))
            .collect();
        url.query_pairs_mut()
            .clear()
            .extend_pairs(kept)
            .append_pair(LANGUAGE_PARAM, language);
        Unsubscribe {
            url,
            footer: footer.to_owned(),
            link_text: link_text.to_owned(),
            ..self.clone()
        }
    }

    /// The value of `List-Unsubscribe` for `address`: the mailto first, then the link (RFC 2369
    /// lists them in order of preference; RFC 8058 clients pick the HTTPS one for one click).
    pub fn header(&self, address: &str) -> String {
        format!(
            "<mailto:{}?subject=unsubscribe>, <{}>",
            self.mailto,
            self.link(address)
        )
    }
}

/// The language a link's query names ([`LANGUAGE_PARAM`]), when it names one that looks like a
/// language tag.
pub fn link_language(query: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == LANGUAGE_PARAM)
        .map(|(_, value)| value.into_owned())
        .filter(|tag| {
            (1..=35).contains(&tag.len())
                && tag.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// The value of `List-Unsubscribe-Post` (RFC 8058): the link accepts a one-click POST.
pub const ONE_CLICK: &str = "List-Unsubscribe=One-Click";

/// Why a link did not verify.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("{0:?} is not a URL")]
    NotAUrl(String),
    #[error("the link has no `{0}` parameter")]
    Missing(&'static str),
    /// A second `e` (or `c`, `t`): the endpoint's framework may read the other one, and
    /// unsubscribe someone the token does not name.
    #[error("the link has more than one `{0}` parameter: it was altered")]
    Repeated(&'static str),
    #[error(
        "the link has a `{0}` parameter where missive's links end with `c`, `e` and `t`, in \
         that order: it was altered"
    )]
    Unexpected(String),
    #[error("the token does not match campaign {campaign} and address {address}")]
    BadToken { campaign: String, address: String },
}

/// Who a verified link unsubscribes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub campaign_id: String,
    pub address: String,
}

/// Checks a link as the endpoint received it (the whole URL; a query string alone also works).
///
/// The link must be as [`Unsubscribe::link`] writes it: the endpoint's own parameters, if its
/// URL has any, then `c`, `e` and `t`, once each, last. A parameter repeated or added is refused
/// even when the token matches, since the endpoint's framework may read another value than the
/// one verified here.
pub fn verify_link(secret: &Secret, link: &str) -> Result<Verified, VerifyError> {
    let parsed = url::Url::parse(link)
        .or_else(|_| {
            url::Url::parse(&format!(
                "https://x.invalid/?{}",
                link.trim_start_matches('?')
            ))
        })
        .map_err(|_| VerifyError::NotAUrl(link.to_owned()))?;
    // Decoded, as the endpoint's framework decodes them: `%65` is `e`.
    let pairs: Vec<(String, String)> = parsed.query_pairs().into_owned().collect();
    let ours = LINK_PARAMS;
    for name in ours {
        match pairs.iter().filter(|(key, _)| key == name).count() {
            0 => return Err(VerifyError::Missing(name)),
            1 => {}
            _ => return Err(VerifyError::Repeated(name)),
        }
    }
    // Ours are the last three, in order; whatever stands before them is the endpoint's own.
    let first = pairs
        .iter()
        .position(|(key, _)| ours.contains(&key.as_str()))
        .expect("each is present");
    let tail = &pairs[first..];
    if let Some((_, (key, _))) = tail
        .iter()
        .enumerate()
        .find(|(i, (key, _))| ours.get(*i) != Some(&key.as_str()))
    {
        return Err(VerifyError::Unexpected(key.clone()));
    }
    let [(_, campaign), (_, address), (_, token)] = tail else {
        unreachable!("three parameters, checked above")
    };
    if verify(secret, campaign, address, token) {
        Ok(Verified {
            campaign_id: campaign.clone(),
            address: address.clone(),
        })
    } else {
        Err(VerifyError::BadToken {
            campaign: campaign.clone(),
            address: address.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> Secret {
        Secret::new("0123456789abcdef0123456789abcdef").unwrap()
    }

    fn settings() -> Unsubscribe {
        Unsubscribe {
            campaign_id: "c1".into(),
            mailto: "desabonnement@example.org".parse().unwrap(),
            url: "https://dons.example.org/desabonnement?lang=fr"
                .parse()
                .unwrap(),
            footer: "f".into(),
            link_text: "l".into(),
            secret: secret(),
        }
    }

    #[test]
    fn link_round_trips_through_verification() {
        let u = settings();
        let link = u.link("zoé+dons@example.com");
        assert!(
            link.starts_with("https://dons.example.org/desabonnement?lang=fr&c=c1&e=zo%C3%A9%2Bdons%40example.com&t="),
            "{link}"
        );
        let verified = verify_link(&u.secret, &link).unwrap();
        assert_eq!(verified.address, "zoé+dons@example.com");
        assert_eq!(verified.campaign_id, "c1");
        let query = link.split_once('?').unwrap().1;
        assert!(verify_link(&u.secret, query).is_ok());

        let forged = link.replace("zo%C3%A9", "eve");
        assert!(matches!(
            verify_link(&u.secret, &forged),
            Err(VerifyError::BadToken { .. })
        ));
        assert_eq!(
            verify_link(&u.secret, "https://x.example/?c=c1&e=a%40b"),
            Err(VerifyError::Missing("t"))
        );
    }

    #[test]
    fn repeated_or_unknown_parameters_make_a_link_invalid() {
        let u = settings();
        let link = u.link("zoe@example.com");
        // Valid: as written, and as its query string alone.
        assert!(verify_link(&u.secret, &link).is_ok());
        let other = u.link("eve@example.com");
        let eve_token = other.rsplit_once("t=").unwrap().1;
        let altered = [
            // A second address, after or before: frameworks differ on which one they keep.
            (
                format!("{link}&e=eve%40example.com"),
                VerifyError::Repeated("e"),
            ),
            (
                link.replace("?lang=fr&", "?lang=fr&e=eve%40example.com&"),
                VerifyError::Repeated("e"),
            ),
            // The same name, percent-encoded, is the same parameter to the endpoint.
            (
                format!("{link}&%65=eve%40example.com"),
                VerifyError::Repeated("e"),
            ),
            (format!("{link}&t={eve_token}"), VerifyError::Repeated("t")),
            (format!("{link}&c=c2"), VerifyError::Repeated("c")),
            (
                format!("{link}&next=https://evil.example"),
                VerifyError::Unexpected("next".into()),
            ),
            (
                link.replace("&e=", "&x=1&e="),
                VerifyError::Unexpected("x".into()),
            ),
        ];
        for (link, expected) in altered {
            assert_eq!(verify_link(&u.secret, &link), Err(expected), "{link}");
        }
        // Parameters in another order than missive writes them.
        let query = link.split_once('?').unwrap().1;
        let mut pairs: Vec<&str> = query.split('&').collect();
        pairs.swap(2, 3);
        assert_eq!(
            verify_link(&u.secret, &pairs.join("&")),
            Err(VerifyError::Unexpected("t".into()))
        );
    }

    #[test]
    fn a_letters_links_name_its_language_and_still_verify() {
        let u = settings().in_language("en", "No more?", "Unsubscribe");
        let link = u.link("zoe@example.com");
        assert!(
            link.starts_with("https://dons.example.org/desabonnement?lang=en&c=c1&e="),
            "{link}"
        );
        assert!(verify_link(&u.secret, &link).is_ok());
        assert_eq!(
            (u.footer.as_str(), u.link_text.as_str()),
            ("No more?", "Unsubscribe")
        );
        let query = link.split_once('?').unwrap().1;
        assert_eq!(link_language(query).as_deref(), Some("en"));
        assert_eq!(link_language("c=c1&e=a"), None);
        assert_eq!(link_language("lang=%22%3E%3Cb&c=c1"), None);
    }

    #[test]
    fn header_has_mailto_then_https() {
        let h = settings().header("a@example.com");
        assert!(
            h.starts_with("<mailto:desabonnement@example.org?subject=unsubscribe>, <https://"),
            "{h}"
        );
        assert!(h.ends_with('>'));
    }
}
