//! Lints: what `check` finds wrong with a campaign before a mailbox provider or a reader does.
//!
//! Each [`Finding`] is an error (the campaign should not go out as it is: `check` exits 65) or a
//! warning (worth a look), names where it is (the campaign's field, the letter's line, or the
//! rendered HTML), and says how to fix it. Three families:
//!
//! - deliverability: the HTML part Gmail clips (over 102 KB), a missing text part, an empty or
//!   overlong subject, a missing preheader, no one-click unsubscribe, no DKIM, DKIM not aligned
//!   with the From domain (DMARC);
//! - privacy: remote or 1×1 images (both tell the sender who opened the letter), tracking
//!   parameters in links (`utm_*` only when `[lints] allow_utm = true`), link shorteners, links
//!   that are not `https`;
//! - links: each absolute and well-formed, and the ask's link present.
//!
//! The lints are pure functions of what was loaded and rendered: no I/O, no network.

use std::fmt;

use crate::campaign::Campaign;
use crate::letter::{Block, Letter, SectionKind};
use crate::render::Rendered;

mod links;

pub use links::link;

/// Gmail shows "[Message clipped]" past this many bytes of HTML and hides the rest, unsubscribe
/// link included.
pub const GMAIL_CLIP_BYTES: usize = 102 * 1024;
/// Most inboxes cut a subject near here; phones much sooner.
pub const MAX_SUBJECT_CHARS: usize = 80;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

/// One thing found, where, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    /// `campaign.toml: field `subject``, `letter.md:12`, `rendered HTML`…
    pub place: String,
    pub message: String,
    pub fix: String,
}

impl Finding {
    pub fn error(
        place: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self::new(Severity::Error, place.into(), message.into(), fix.into())
    }

    pub fn warning(
        place: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self::new(Severity::Warning, place.into(), message.into(), fix.into())
    }

    fn new(severity: Severity, place: String, message: String, fix: String) -> Self {
        Finding {
            severity,
            place,
            message,
            fix,
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let label = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{label}: {}: {}\n  fix: {}",
            self.place, self.message, self.fix
        )
    }
}

/// The campaign's settings: subject, preheader, unsubscribe, DKIM and its alignment.
pub fn campaign(campaign: &Campaign) -> Vec<Finding> {
    let file = campaign.path.display();
    let field = |name: &str| format!("{file}: field `{name}`");
    let mut found = Vec::new();
    // Each letter's subject and preheader; named as the file names them.
    for letter in &campaign.letters {
        let key = |name: &str| match &campaign.language_column {
            Some(_) => field(&format!("letters.{}.{name}", letter.language)),
            None => field(name),
        };
        let subject_chars = letter.subject.trim().chars().count();
        if subject_chars == 0 {
            found.push(Finding::error(
                key("subject"),
                "the subject is empty",
                "write a subject: it is what people decide on",
            ));
        } else if subject_chars > MAX_SUBJECT_CHARS {
            found.push(Finding::warning(
                key("subject"),
                format!("the subject is {subject_chars} characters; inboxes cut it near {MAX_SUBJECT_CHARS}, phones near 40"),
                "shorten it, with the words that matter first",
            ));
        }
        if letter.preheader.trim().is_empty() {
            found.push(Finding::warning(
                key("preheader"),
                "no preheader: inboxes show the letter's first words after the subject instead",
                "set `preheader` to one line that makes people open the letter",
            ));
        }
    }
    if campaign.unsubscribe.is_none() {
        found.push(Finding::warning(
            format!("{file}"),
            "no [unsubscribe] section: Gmail and Yahoo refuse or bin bulk mail without a one-click unsubscribe (RFC 8058)",
            "add [unsubscribe] with `mailto` and an https `url` (see the README)",
        ));
    }
    let from_domain = campaign.from.email.domain();
    match &campaign.dkim {
        None => found.push(Finding::warning(
            format!("{file}"),
            "messages are not DKIM-signed: Gmail and Yahoo require authenticated bulk mail",
            "add [dkim] with domain, selector and key, unless your relay signs for your domain",
        )),
        Some(dkim) if !crate::dkim::aligned(from_domain, &dkim.domain) => {
            found.push(Finding::warning(
                field("dkim.domain"),
                format!(
                    "the DKIM domain {} is not aligned with the From domain {from_domain}: DMARC \
                     fails, and receivers enforcing it reject or bin the letter",
                    dkim.domain
                ),
                format!("sign with a key of {from_domain} (or a subdomain), or send from an address at {}", dkim.domain),
            ));
        }
        Some(_) => {}
    }
    found
}

/// The letter's own links (with their lines) and the ask's link.
pub fn letter(letter: &Letter, allow_utm: bool) -> Vec<Finding> {
    let file = letter.path.display();
    let mut found: Vec<Finding> = letter
        .links
        .iter()
        .flat_map(|(url, line)| link(url, allow_utm, &format!("{file}:{line}")))
        .collect();
    let ask_link = letter
        .sections
        .iter()
        .filter(|s| s.kind == SectionKind::Ask)
        .flat_map(|s| &s.blocks)
        .any(|b| matches!(b, Block::Button { url, .. } if url.starts_with("https://")));
    if !ask_link {
        let line = letter
            .sections
            .iter()
            .find(|s| s.kind == SectionKind::Ask)
            .map_or(1, |s| s.line);
        found.push(Finding::error(
            format!("{file}:{line}"),
            "the ask has no https link: the reader has nowhere to act",
            "end the ask with a paragraph that is only a link: `[Je fais un don](https://…)`",
        ));
    }
    found
}

/// One person's rendered message: the HTML's size and content, the text part, and every link
/// the layout added (the letter's own links are checked by [`letter`], with their lines).
pub fn rendered(
    rendered: &Rendered,
    letter_links: &[(String, usize)],
    allow_utm: bool,
    place: &str,
) -> Vec<Finding> {
    let mut found = Vec::new();
    if let Some(finding) = html_size(rendered.html.len(), place) {
        found.push(finding);
    }
    if rendered.text.trim().is_empty() {
        found.push(Finding::error(
            place,
            "the text part is empty: some readers and spam filters only read text",
            "the text part comes from the letter: check the letter has words",
        ));
    }
    let html = &rendered.html;
    for tag in tags(html, "img") {
        let src = attribute(tag, "src").unwrap_or_default();
        if src.starts_with("http:") || src.starts_with("https:") || src.starts_with("//") {
            found.push(Finding::error(
                place,
                format!("remote image {src}: loading it tells the sender who opened the letter, when, and from where"),
                "remove it: the letter needs no image",
            ));
        }
        let one = |name| attribute(tag, name).is_some_and(|v| v.trim_end_matches("px") == "1");
        if one("width") || one("height") {
            found.push(Finding::error(
                place,
                format!("a 1×1 image ({src}) is a tracking pixel"),
                "remove it",
            ));
        }
    }
    let lower = html.to_lowercase();
    if lower.contains("url(http") || lower.contains("url(//") || lower.contains("@import") {
        found.push(Finding::error(
            place,
            "the HTML loads remote content from its CSS (url(…) or @import)",
            "inline the style; the letter needs nothing remote",
        ));
    }
    for tag in tags(html, "a") {
        let Some(href) = attribute(tag, "href") else {
            continue;
        };
        if !letter_links.iter().any(|(url, _)| *url == href) {
            found.extend(link(&href, allow_utm, place));
        }
    }
    found
}

/// The size lint alone, cheap enough to run on every message.
pub fn html_size(bytes: usize, place: &str) -> Option<Finding> {
    (bytes > GMAIL_CLIP_BYTES).then(|| {
        Finding::error(
            place,
            format!(
                "the HTML part is {} KB: Gmail clips messages over {} KB and hides the rest, unsubscribe link included",
                bytes.div_ceil(1024),
                GMAIL_CLIP_BYTES / 1024
            ),
            "shorten the letter",
        )
    })
}

/// The attribute text of every `<name …>` tag of `html`.
fn tags<'a>(html: &'a str, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    let open = format!("<{name}");
    let lower = html.to_ascii_lowercase();
    let starts: Vec<usize> = lower
        .match_indices(&open)
        .map(|(i, _)| i + open.len())
        .filter(|&i| html[i..].starts_with(|c: char| c.is_whitespace() || c == '>' || c == '/'))
        .collect();
    starts.into_iter().map(move |start| {
        let end = html[start..].find('>').map_or(html.len(), |e| start + e);
        &html[start..end]
    })
}

/// The value of attribute `name` in a tag's text, unescaped; quoted or not.
fn attribute(tag: &str, name: &str) -> Option<String> {
    let lower = tag.to_ascii_lowercase();
    let mut from = 0;
    while let Some(found) = lower[from..].find(name) {
        let i = from + found;
        from = i + name.len();
        let before_ok = i == 0 || lower.as_bytes()[i - 1].is_ascii_whitespace();
        let rest = tag[from..].trim_start();
        if !before_ok || !rest.starts_with('=') {
            continue;
        }
        let rest = rest[1..].trim_start();
        let value = match rest.chars().next() {
            Some(quote @ ('"' | '\'')) => rest[1..].split(quote).next().unwrap_or(""),
            _ => rest.split(|c: char| c.is_whitespace()).next().unwrap_or(""),
        };
        return Some(
            value
                .replace("&quot;", "\"")
                .replace("&#39;", "'")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&amp;", "&"),
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn messages(found: &[Finding]) -> Vec<(Severity, &str)> {
        found
            .iter()
            .map(|f| (f.severity, f.message.as_str()))
            .collect()
    }

    #[test]
    fn html_images_pixels_size_and_text() {
        let html = r#"<p><img src="https://t.example.org/p.gif" width="1" height=1><img src=cid:logo></p><a href="http://example.org/?a=1&amp;b=2">x</a><a href="https://ok.example.org/">y</a>"#;
        let r = Rendered {
            html: html.into(),
            text: " \n".into(),
            letter: 0,
        };
        let found = rendered(&r, &[("https://ok.example.org/".into(), 4)], false, "HTML");
        let found = messages(&found);
        assert!(
            found
                .iter()
                .any(|(_, m)| m.starts_with("remote image https://t.example.org/p.gif")),
            "{found:?}"
        );
        assert!(found.iter().any(|(_, m)| m.contains("1×1")), "{found:?}");
        assert!(
            found.iter().any(|(_, m)| m.contains("text part is empty")),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|(_, m)| m.starts_with("http://example.org/?a=1&b=2 is not https")),
            "{found:?}"
        );
        assert_eq!(found.len(), 4, "{found:?}");

        assert!(html_size(GMAIL_CLIP_BYTES, "h").is_none());
        let big = html_size(GMAIL_CLIP_BYTES + 1, "h").unwrap();
        assert!(big.message.contains("103 KB") && big.severity == Severity::Error);
    }

    #[test]
    fn the_ask_needs_its_link() {
        let source = "::: greeting\nBonjour,\n\n::: ask\nDonnez.\n\n[Don](https://dons.example.org/d?utm_medium=email)\n\n::: signature\nA\n";
        let mut l = Letter::parse(Path::new("l.md"), source, "fr").unwrap();
        let found = letter(&l, false);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].place, "l.md:7");
        assert!(letter(&l, true).is_empty());
        // A letter always has its button once parsed; a layout change that lost it is caught.
        for section in &mut l.sections {
            section
                .blocks
                .retain(|b| !matches!(b, Block::Button { .. }));
        }
        let found = letter(&l, true);
        assert!(
            found[0].message.contains("the ask has no https link"),
            "{found:?}"
        );
        assert_eq!(found[0].place, "l.md:4");
    }

    #[test]
    fn campaign_subject_preheader_unsubscribe_dkim_alignment() {
        let base = "id = \"t\"\nsubject = \"S\"\nfrom = \"A <a@example.org>\"\nlanguage = \"fr\"\npreheader = \"\"\nletter = \"l.md\"\nrecipients = \"r.csv\"\n";
        let c = Campaign::parse(Path::new("c.toml"), base).unwrap();
        let found = campaign(&c);
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found.iter().all(|f| f.severity == Severity::Warning));
        let long = base.replace(
            "subject = \"S\"",
            &format!("subject = \"{}\"", "x".repeat(81)),
        ) + "[unsubscribe]\nmailto = \"u@example.org\"\nurl = \"https://example.org/u\"\n"
            + "[dkim]\ndomain = \"mailer.example.net\"\nselector = \"s\"\nkey = \"k.pem\"\n";
        let c = Campaign::parse(Path::new("c.toml"), &long).unwrap();
        let found = campaign(&c);
        let found = messages(&found);
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found[0].1.contains("81 characters"));
        assert!(found[2].1.contains("not aligned"));
    }
}
