//! The lints of one link: where it leads (https, a real host, no shortener) and what it tells
//! about the reader (tracking parameters). The letter's links and those the layout adds go
//! through the same checks.

use super::Finding;

/// Query parameters that exist to follow a reader across sites (ad and mail-marketing click ids).
const TRACKING_PARAMETERS: [&str; 16] = [
    "fbclid",
    "gclid",
    "dclid",
    "gbraid",
    "wbraid",
    "msclkid",
    "yclid",
    "twclid",
    "igshid",
    "mc_cid",
    "mc_eid",
    "_hsenc",
    "_hsmi",
    "mkt_tok",
    "vero_id",
    "oly_enc_id",
];

/// Hosts that only redirect elsewhere: the reader cannot see where a link goes, the shortener
/// sees every click, and spam filters distrust them.
const SHORTENERS: [&str; 18] = [
    "bit.ly",
    "bitly.com",
    "tinyurl.com",
    "t.co",
    "goo.gl",
    "ow.ly",
    "buff.ly",
    "is.gd",
    "v.gd",
    "rebrand.ly",
    "cutt.ly",
    "shorturl.at",
    "rb.gy",
    "tiny.cc",
    "lnkd.in",
    "t.ly",
    "bl.ink",
    "s.id",
];

/// What is wrong with one link, if anything; `place` says where it is.
pub fn link(url: &str, allow_utm: bool, place: &str) -> Vec<Finding> {
    let parsed = match url::Url::parse(url) {
        Ok(parsed) => parsed,
        Err(e) => {
            return vec![Finding::error(
                place,
                format!("{url:?} is not an absolute, well-formed link ({e})"),
                "write the whole address, starting with https://",
            )];
        }
    };
    match parsed.scheme() {
        "mailto" => return Vec::new(),
        "https" => {}
        "http" => {
            return vec![Finding::error(
                place,
                format!(
                    "{url} is not https: anyone on the reader's network can read or change what it opens"
                ),
                "use the https:// address",
            )];
        }
        other => {
            return vec![Finding::error(
                place,
                format!(
                    "{url}: a `{other}:` link; only https:// and mailto: links belong in a letter"
                ),
                "link to an https:// page",
            )];
        }
    }
    let Some(host) = parsed.host_str().filter(|h| !h.is_empty()) else {
        return vec![Finding::error(
            place,
            format!("{url} has no host"),
            "write the whole address, https://example.org/…",
        )];
    };
    let mut found = Vec::new();
    let host = host.trim_start_matches("www.").to_lowercase();
    if SHORTENERS.contains(&host.as_str()) {
        found.push(Finding::error(
            place,
            format!("{url}: {host} is a link shortener: the reader cannot see where it leads, it counts every click, and spam filters distrust it"),
            "link to the full address",
        ));
    }
    for (key, _) in parsed.query_pairs() {
        let key = key.to_lowercase();
        if key.starts_with("utm_") && !allow_utm {
            found.push(Finding::error(
                place,
                format!("{url}: tracking parameter `{key}`: it tells the site where the reader came from"),
                "remove it, or set `allow_utm = true` under [lints] if the campaign means to measure",
            ));
        } else if TRACKING_PARAMETERS.contains(&key.as_str()) {
            found.push(Finding::error(
                place,
                format!("{url}: tracking parameter `{key}`: it follows the reader across sites"),
                "remove it",
            ));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lint::Severity;

    #[test]
    fn links_https_only_no_tracking_no_shortener() {
        assert!(link("https://dons.example.org/x?amount=25", false, "l:1").is_empty());
        assert!(link("mailto:a@example.org", false, "l:1").is_empty());
        let http = link("http://example.org/", false, "l:3");
        assert_eq!(http.len(), 1);
        assert!(http[0].message.contains("not https"));
        assert_eq!(http[0].place, "l:3");
        let utm = link(
            "https://example.org/?utm_source=mail&fbclid=x",
            false,
            "l:1",
        );
        assert_eq!(utm.len(), 2, "{utm:?}");
        let utm_allowed = link("https://example.org/?utm_source=mail", true, "l:1");
        assert!(utm_allowed.is_empty());
        let short = link("https://bit.ly/abc", false, "l:1");
        assert!(short[0].message.contains("link shortener"));
        assert!(
            link("javascript:alert(1)", false, "l:1")[0]
                .message
                .contains("`javascript:`")
        );
        assert!(
            link("/relative", false, "l:1")[0]
                .message
                .contains("not an absolute")
        );
        assert!(link("https://", false, "l:1")[0].severity == Severity::Error);
    }
}
