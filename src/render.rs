//! Rendering: one letter and one person's fields become an HTML part (Maud) and a text part.
//!
//! Both outputs walk the same [`Letter`] tree, so they cannot drift apart. Rendering does no I/O
//! and takes everything it needs as arguments: it can run on any thread, in any order, as often
//! as needed (a resend must produce the same words). A letter is cut once into what reads the
//! same for everyone and what holds fields ([`Template`]), so that only the latter is rendered
//! for each person.
//!
//! The HTML is built for mail clients, not browsers: a table layout with inline styles, 600 px
//! wide at most, one `<style>` block only for phones (clients that drop it still get a readable
//! letter), a hidden preheader, a table-based button for the ask, and no image at all. When the
//! campaign has an unsubscribe link, a footer under the letter shows the person's own link, in
//! both parts: the one-click header is invisible, and people look for the link at the bottom.

use maud::{DOCTYPE, Markup, PreEscaped, Render, html};

use crate::letter::{
    Block, Fields, Inline, Letter, Section, SectionKind, all_present, field_value,
};
use crate::unsubscribe::Unsubscribe;

mod template;

pub use template::{FixedParts, Template};

/// What of the campaign the layout shows besides the letter.
#[derive(Debug, Clone)]
pub struct Frame<'a> {
    pub subject: &'a str,
    pub preheader: &'a str,
    pub language: &'a str,
    /// Makes each person's unsubscribe link for the footer; `None` for no footer.
    pub unsubscribe: Option<&'a Unsubscribe>,
}

/// The two bodies of one person's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub html: String,
    pub text: String,
}

/// Column at which the text part wraps (RFC 5322 advises under 78).
pub const TEXT_WIDTH: usize = 76;

/// Renders `letter` in `frame` for the one person whose values `fields` holds.
///
/// For one message (a test, a look at one person's copy): each call prepares the letter anew.
/// To render for many people, make a [`Template`] once and render with it.
pub fn render(letter: &Letter, frame: &Frame, fields: &dyn Fields) -> Rendered {
    Template::new(letter, frame).render(fields)
}

// ---- HTML ---------------------------------------------------------------------------------

const FONT: &str = "font-family:Georgia,'Times New Roman',serif;";
const INK: &str = "#1f2328";
const ACCENT: &str = "#0b3d91";
/// White on this red has a contrast ratio of 6.6:1 (WCAG AA asks 4.5).
const BUTTON: &str = "#b3261e";
const PROBLEM_RULE: &str = "#d4351c";
const LESSON_RULE: &str = "#1a7f37";
/// On the page's grey (#f3f4f6) this has a contrast ratio of 5.7:1 (WCAG AA asks 4.5).
const FOOTER_INK: &str = "#57606a";

const PHONE_CSS: &str = "@media only screen and (max-width:620px){\
.sheet{width:100%!important}.pad{padding:24px 18px!important}\
.body{font-size:17px!important}}";

/// The page: the frame around `sections`, and `footer` (with its line break) under the sheet.
fn html_document(frame: &Frame, sections: impl Render, footer: Option<impl Render>) -> Markup {
    html! {
        (DOCTYPE)
        (NL)
        html lang=(frame.language) dir="ltr" {
            (NL)
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="x-apple-disable-message-reformatting";
                meta name="color-scheme" content="light";
                title { (frame.subject) }
                style { (PreEscaped(PHONE_CSS)) }
            }
            (NL)
            body style="margin:0;padding:0;background-color:#f3f4f6;" {
                // The preheader: the line inboxes show after the subject, hidden in the letter.
                div style="display:none;max-height:0;overflow:hidden;opacity:0;mso-hide:all;" aria-hidden="true" {
                    (frame.preheader)
                }
                (NL)
                table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0"
                    style="background-color:#f3f4f6;" {
                    tr { td align="center" style="padding:24px 8px;" {
                        table.sheet role="presentation" width="600" cellpadding="0" cellspacing="0" border="0"
                            style="width:600px;max-width:600px;background-color:#ffffff;border-radius:8px;" {
                            tr { td.pad.body style={ "padding:40px 48px;" (FONT) "font-size:18px;line-height:1.6;color:" (INK) ";" } {
                                (NL)
                                (sections)
                            } }
                        }
                        @if let Some(footer) = footer {
                            (footer)
                        }
                    } }
                }
            }
        }
    }
}

/// A line break between blocks: invisible in HTML, but it keeps lines short in the message
/// source and makes golden-file diffs readable.
const NL: PreEscaped<&str> = PreEscaped("\n");

/// The person's unsubscribe link under the sheet, after a line break.
fn html_footer(unsubscribe: &Unsubscribe, link: &str) -> Markup {
    html! {
        (NL)
        table.sheet role="presentation" width="600" cellpadding="0" cellspacing="0" border="0"
            style="width:600px;max-width:600px;" {
            tr { td.pad style={ "padding:20px 48px 8px 48px;font-family:Arial,Helvetica,sans-serif;font-size:13px;line-height:1.5;color:" (FOOTER_INK) ";text-align:center;" } {
                (unsubscribe.footer) " "
                a href=(link) style={ "color:" (FOOTER_INK) ";text-decoration:underline;" } { (unsubscribe.link_text) }
            } }
        }
    }
}

/// True for the kinds [`html_section`] wraps its blocks in; the others are their blocks, one
/// after another.
fn html_wrapped(kind: SectionKind) -> bool {
    matches!(
        kind,
        SectionKind::Story | SectionKind::Problem | SectionKind::Lesson | SectionKind::Signature
    )
}

fn html_section(section: &Section, fields: &dyn Fields) -> Markup {
    let paragraph_style = "margin:0 0 18px 0;";
    let paragraphs = html! {
        @for block in &section.blocks {
            @match block {
                Block::Paragraph(inlines) => p style=(paragraph_style) { (html_inlines(inlines, fields)) },
                Block::Button { label, url } => (html_button(label, url, fields)),
            }
            (NL)
        }
    };
    match section.kind {
        SectionKind::Story => html! {
            @if let Some(title) = &section.title {
                h2 style={ "margin:36px 0 14px 0;" (FONT) "font-size:22px;line-height:1.3;color:" (ACCENT) ";" } {
                    (html_inlines(title, fields))
                }
                (NL)
            }
            (paragraphs)
        },
        SectionKind::Problem | SectionKind::Lesson => {
            let rule = if section.kind == SectionKind::Problem {
                PROBLEM_RULE
            } else {
                LESSON_RULE
            };
            html! {
                table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" style="margin:0 0 18px 0;" {
                    tr { td style={ "border-left:4px solid " (rule) ";padding:2px 0 2px 16px;" } { (NL) (paragraphs) } }
                }
                (NL)
            }
        }
        SectionKind::Signature => html! {
            div style="margin:32px 0 0 0;" { (NL) (paragraphs) }
            (NL)
        },
        _ => paragraphs,
    }
}

fn html_button(label: &[Inline], url: &str, fields: &dyn Fields) -> Markup {
    html! {
        table role="presentation" cellpadding="0" cellspacing="0" border="0" style="margin:8px 0 26px 0;" {
            tr { td align="center" bgcolor=(BUTTON) style={ "border-radius:6px;background-color:" (BUTTON) ";" } {
                a href=(url) target="_blank"
                    style={ "display:inline-block;padding:14px 30px;font-family:Arial,Helvetica,sans-serif;font-size:18px;font-weight:bold;line-height:1.2;color:#ffffff;text-decoration:none;border-radius:6px;" } {
                    (html_inlines(label, fields))
                }
            } }
        }
    }
}

fn html_inlines(inlines: &[Inline], fields: &dyn Fields) -> Markup {
    html! {
        @for inline in inlines {
            @match inline {
                Inline::Text(text) => (text),
                Inline::Field { name, fallback, .. } => (field_value(fields, name, fallback.as_deref())),
                Inline::Optional(children) => @if all_present(children, fields) { (html_inlines(children, fields)) },
                Inline::Emphasis(children) => em { (html_inlines(children, fields)) },
                Inline::Strong(children) => strong { (html_inlines(children, fields)) },
                Inline::Link { url, content } => a href=(url) style={ "color:" (ACCENT) ";text-decoration:underline;" } { (html_inlines(content, fields)) },
                Inline::LineBreak => br;
            }
        }
    }
}

// ---- screenshot page ----------------------------------------------------------------------

/// What an inbox shows above a letter: who, to whom, what, and the preheader.
#[derive(Debug, Clone)]
pub struct Envelope<'a> {
    pub from: &'a str,
    pub to: &'a str,
    pub subject: &'a str,
    pub preheader: &'a str,
}

/// The letter's HTML as a page to look at or screenshot: the same document, with a band on top
/// that shows what the inbox shows (sender, recipient, subject, preheader), since a person
/// judges a letter by those first. Nothing remote, nothing that moves: two renderings of the
/// same page are the same picture.
pub fn screenshot_page(letter_html: &str, envelope: &Envelope) -> String {
    let band = html! {
        (NL)
        table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0"
            style="background-color:#ffffff;border-bottom:1px solid #d0d7de;" {
            tr { td align="center" style="padding:14px 8px;" {
                table.sheet role="presentation" width="600" cellpadding="0" cellspacing="0" border="0"
                    style="width:600px;max-width:600px;font-family:Arial,Helvetica,sans-serif;color:#1f2328;" {
                    tr { td style="padding:0 16px;font-size:13px;line-height:1.5;color:#57606a;overflow-wrap:anywhere;" {
                        (envelope.from) " \u{2192} " (envelope.to)
                    } }
                    tr { td style="padding:2px 16px;font-size:17px;line-height:1.35;font-weight:bold;" {
                        (envelope.subject)
                    } }
                    tr { td style="padding:0 16px;font-size:14px;line-height:1.4;color:#57606a;" {
                        (envelope.preheader)
                    } }
                }
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

// ---- text ---------------------------------------------------------------------------------

/// A story's title: a blank line, the title, and a rule of `=` as wide as its longest line.
fn text_title(out: &mut String, title: &[Inline], fields: &dyn Fields) {
    let title = text_inlines(title, fields);
    out.push('\n');
    for line in wrap(&title) {
        out.push_str(&line);
        out.push('\n');
    }
    let underline = title
        .lines()
        .map(display_width)
        .max()
        .unwrap_or(0)
        .min(TEXT_WIDTH);
    out.push_str(&"=".repeat(underline));
    out.push_str("\n\n");
}

/// A paragraph (or the button, as its label and address), wrapped, then a blank line.
fn text_block(out: &mut String, block: &Block, fields: &dyn Fields) {
    let paragraph = match block {
        Block::Paragraph(inlines) => text_inlines(inlines, fields),
        Block::Button { label, url } => {
            format!("{} : {url}", text_inlines(label, fields)).replace(" : ", "\u{a0}: ")
        }
    };
    for line in wrap(&paragraph) {
        out.push_str(&line);
        out.push('\n');
    }
    out.push('\n');
}

/// Wraps each line of `paragraph` (hard breaks stay) at [`TEXT_WIDTH`], never splitting a word
/// or a link.
fn wrap(paragraph: &str) -> Vec<String> {
    // No hyphen splitting either: "rendez-vous" must not become "rendez-" / "vous".
    let options = textwrap::Options::new(TEXT_WIDTH)
        .break_words(false)
        .word_splitter(textwrap::WordSplitter::NoHyphenation);
    paragraph
        .split('\n')
        .flat_map(|line| {
            let wrapped = textwrap::wrap(line, &options);
            if wrapped.is_empty() {
                vec![String::new()]
            } else {
                wrapped.into_iter().map(|l| l.into_owned()).collect()
            }
        })
        .collect()
}

fn display_width(line: &str) -> usize {
    textwrap::core::display_width(line)
}

fn text_inlines(inlines: &[Inline], fields: &dyn Fields) -> String {
    let mut out = String::new();
    for inline in inlines {
        match inline {
            Inline::Text(text) => out.push_str(text),
            Inline::Field { name, fallback, .. } => {
                // A value's own line breaks would break the layout of the paragraph.
                let value = field_value(fields, name, fallback.as_deref());
                out.push_str(&value.replace(['\r', '\n'], " "));
            }
            Inline::Optional(children) => {
                if all_present(children, fields) {
                    out.push_str(&text_inlines(children, fields));
                }
            }
            Inline::Emphasis(children) => {
                out.push('_');
                out.push_str(&text_inlines(children, fields));
                out.push('_');
            }
            Inline::Strong(children) => out.push_str(&text_inlines(children, fields)),
            Inline::Link { url, content } => {
                let label = text_inlines(content, fields);
                if label == *url || format!("mailto:{label}") == *url {
                    out.push_str(&label);
                } else {
                    out.push_str(&format!("{label} <{url}>"));
                }
            }
            Inline::LineBreak => out.push('\n'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::path::Path;

    impl Fields for HashMap<&str, &str> {
        fn field(&self, name: &str) -> Option<&str> {
            self.get(name).copied()
        }
    }

    const LETTER: &str = "::: greeting\nBonjour[[ {{first_name}}]],\n\n::: story\n## Erreur n°1 : titre\n\nUn guide *Confidentialité non incluse* ici.\n\n::: ask\nUn don de {{amount|25}} $ ?\n\n[Je fais un don](https://dons.example.org/x)\n\n::: signature\nAshley Boyd\\\nMozilla\n";

    fn frame() -> Frame<'static> {
        Frame {
            subject: "Sujet",
            preheader: "Avant-propos",
            language: "fr",
            unsubscribe: None,
        }
    }

    fn render_for(fields: &[(&'static str, &'static str)]) -> Rendered {
        let letter = Letter::parse(Path::new("l.md"), LETTER, "fr").unwrap();
        let fields: HashMap<&str, &str> = fields.iter().copied().collect();
        render(&letter, &frame(), &fields)
    }

    #[test]
    fn personalizes_and_falls_back() {
        let named = render_for(&[("first_name", "Zoé"), ("amount", "40")]);
        assert!(named.text.starts_with("Bonjour Zoé,\n"));
        assert!(named.html.contains("Bonjour Zoé,"));
        assert!(named.text.contains("Un don de 40\u{a0}$\u{202f}?"));
        let anonymous = render_for(&[("first_name", " "), ("amount", "")]);
        assert!(anonymous.text.starts_with("Bonjour,\n"));
        assert!(anonymous.text.contains("Un don de 25\u{a0}$"));
    }

    #[test]
    fn values_are_escaped_in_html() {
        let r = render_for(&[("first_name", "<script>alert(1)</script>&")]);
        assert!(!r.html.contains("<script>"));
        assert!(
            r.html
                .contains("&lt;script&gt;alert(1)&lt;/script&gt;&amp;")
        );
        assert!(r.text.contains("Bonjour <script>alert(1)</script>&,"));
    }

    #[test]
    fn layout_essentials() {
        let r = render_for(&[]);
        assert!(r.html.starts_with("<!DOCTYPE html>\n<html lang=\"fr\""));
        assert!(r.html.contains("max-width:600px"));
        assert!(r.html.contains("Avant-propos"));
        assert!(r.html.contains("<em>Confidentialité non incluse</em>"));
        assert!(r.html.contains("href=\"https://dons.example.org/x\""));
        assert!(!r.html.contains("<img"));
        assert!(
            r.text
                .contains("Je fais un don\u{a0}: https://dons.example.org/x")
        );
        assert!(r.text.contains("_Confidentialité non incluse_"));
        assert!(r.text.contains("-- \nAshley Boyd\nMozilla\n"));
    }

    #[test]
    fn footer_shows_the_persons_unsubscribe_link_in_both_parts() {
        struct Person;
        impl Fields for Person {
            fn field(&self, _: &str) -> Option<&str> {
                None
            }
            fn address(&self) -> Option<&str> {
                Some("zoe@example.com")
            }
        }
        let unsubscribe = Unsubscribe {
            campaign_id: "c1".into(),
            mailto: "stop@example.org".parse().unwrap(),
            url: "https://example.org/stop".parse().unwrap(),
            footer: "Plus de lettres\u{202f}?".into(),
            link_text: "Se désabonner".into(),
            secret: crate::unsubscribe::Secret::new(&"k".repeat(32)).unwrap(),
        };
        let letter = Letter::parse(Path::new("l.md"), LETTER, "fr").unwrap();
        let frame = Frame {
            unsubscribe: Some(&unsubscribe),
            ..frame()
        };
        let link = unsubscribe.link("zoe@example.com");
        let r = render(&letter, &frame, &Person);
        let escaped = link.replace('&', "&amp;");
        assert!(
            r.html
                .contains(&format!("Plus de lettres\u{202f}? <a href=\"{escaped}\"")),
            "{}",
            r.html
        );
        assert!(
            r.text.ends_with(&format!(
                "Mozilla\n\nPlus de lettres\u{202f}? Se désabonner\u{a0}:\n{link}\n"
            )),
            "{}",
            r.text
        );
        // Without an address (or an unsubscribe setting) there is no footer at all.
        let r = render(&letter, &frame, &HashMap::<&str, &str>::new());
        assert!(!r.html.contains("Se désabonner") && !r.text.contains("Se désabonner"));
    }

    #[test]
    fn screenshot_page_adds_the_inbox_band_after_body() {
        let r = render_for(&[("first_name", "Zoé")]);
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

    #[test]
    fn text_never_splits_a_hyphenated_word() {
        let letter_text = LETTER.replace("Un guide", &format!("{}rendez-vous", "mot ".repeat(17)));
        let letter = Letter::parse(Path::new("l.md"), &letter_text, "fr").unwrap();
        let r = render(&letter, &frame(), &HashMap::new());
        assert!(r.text.contains("rendez-vous"), "{}", r.text);
    }

    #[test]
    fn text_wraps_within_width() {
        let long = "mot ".repeat(60);
        let letter_text = LETTER.replace("Un guide", &long);
        let letter = Letter::parse(Path::new("l.md"), &letter_text, "fr").unwrap();
        let r = render(&letter, &frame(), &HashMap::new());
        assert!(
            r.text.lines().all(|l| display_width(l) <= TEXT_WIDTH),
            "{}",
            r.text
        );
    }
}
