//! The page `preview` writes for a person (or a headless browser taking screenshots) to look at:
//! the letter's HTML as sent, with a band on top that shows what an inbox shows of it.

use maud::html;

use crate::render::{NL, sheet};

/// What an inbox shows above a letter: who, to whom, what, and the preheader.
#[derive(Debug, Clone)]
pub(super) struct Envelope<'a> {
    pub(super) from: &'a str,
    pub(super) to: &'a str,
    pub(super) subject: &'a str,
    pub(super) preheader: &'a str,
}

/// The letter's HTML as a page to look at or screenshot: the same document, with a band on top
/// that shows what the inbox shows (sender, recipient, subject, preheader), since a person
/// judges a letter by those first. Nothing remote, nothing that moves: two renderings of the
/// same page are the same picture.
pub(super) fn screenshot_page(letter_html: &str, envelope: &Envelope) -> String {
    let band = html! {
        (NL)
        table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0"
            style="background-color:#ffffff;border-bottom:1px solid #d0d7de;" {
            tr { td align="center" style="padding:14px 8px;" {
                (sheet("font-family:Arial,Helvetica,sans-serif;color:#1f2328;", html! {
                    tr { td style="padding:0 16px;font-size:13px;line-height:1.5;color:#57606a;overflow-wrap:anywhere;" {
                        (envelope.from) " \u{2192} " (envelope.to)
                    } }
                    tr { td style="padding:2px 16px;font-size:17px;line-height:1.35;font-weight:bold;" {
                        (envelope.subject)
                    } }
                    tr { td style="padding:0 16px;font-size:14px;line-height:1.4;color:#57606a;" {
                        (envelope.preheader)
                    } }
                }))
            } }
        }
    };
    match letter_html
        .find("<body")
        .and_then(|start| letter_html[start..].find('>').map(|end| start + end + 1))
    {
        Some(at) => format!(
            "{}{}{}",
            &letter_html[..at],
            band.into_string(),
            &letter_html[at..]
        ),
        None => letter_html.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::letter::{Fields, Letter};
    use crate::render::{Frame, render};

    #[test]
    fn screenshot_page_adds_the_inbox_band_after_body() {
        struct Zoe;
        impl Fields for Zoe {
            fn field(&self, name: &str) -> Option<&str> {
                (name == "first_name").then_some("Zoé")
            }
        }
        let source = "::: greeting\nBonjour {{first_name}},\n\n::: ask\n[Je donne](https://dons.example.org/x)\n\n::: signature\nAshley\n";
        let letter = Letter::parse(Path::new("l.md"), source, "fr").unwrap();
        let frame = Frame {
            subject: "Sujet",
            preheader: "Avant-propos",
            language: "fr",
            unsubscribe: None,
        };
        let r = render(&letter, &frame, &Zoe);
        let page = screenshot_page(
            &r.html,
            &Envelope {
                from: "Mozilla <dons@example.org>",
                to: "zoe@example.com",
                subject: "Sujet <b>",
                preheader: "Avant-propos",
            },
        );
        let body = page.find("<body").unwrap();
        let band = page
            .find("Mozilla &lt;dons@example.org&gt; \u{2192} zoe@example.com")
            .unwrap();
        assert!(body < band && band < page.find("Bonjour Zoé").unwrap());
        assert!(page.contains("Sujet &lt;b&gt;"));
    }
}
