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
//!
//! `html` writes the HTML part and `text` the text part, each from the tree; `template` cuts the
//! letter into what is rendered once and what is rendered for each person, with those two;
//! `letters` holds one such template for each language of a campaign, and picks a person's.

use crate::letter::{Fields, Letter};
use crate::unsubscribe::Unsubscribe;

mod html;
mod letters;
mod shell;
mod template;
mod text;

pub(crate) use html::{NL, sheet};
pub use letters::Template;
pub use template::FixedParts;

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
    /// Which of the campaign's letters it is (its index in [`Template`]; 0 with one letter):
    /// the subject and the footer's link go with it.
    pub letter: usize,
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

#[cfg(test)]
mod tests {
    use super::text::display_width;
    use super::*;
    use std::collections::HashMap;
    use std::path::Path;

    impl Fields for HashMap<&str, &str> {
        fn field(&self, name: &str) -> Option<&str> {
            self.get(name).copied()
        }
    }

    const LETTER: &str = "::: greeting\nBonjour[[ {{first_name}}]],\n\n::: story\n## Erreur n°1 : titre\n\nUn guide *Confidentialité non incluse* ici.\n\n::: ask\nUn don de {{amount|25}} $ ?\n\n[Je fais un don](https://dons.example.org/x)\n\n::: signature\nAshley Boyd\\\nMozilla\n";

    /// The frame the tests here and in `template` render in.
    pub(super) fn frame() -> Frame<'static> {
        Frame {
            subject: "Sujet",
            preheader: "Avant-propos",
            language: "fr",
            unsubscribe: None,
        }
    }

    /// Someone with no field but an address: whom a footer's link is made for.
    pub(super) struct Person(pub(super) &'static str);

    impl Fields for Person {
        fn field(&self, _: &str) -> Option<&str> {
            None
        }
        fn address(&self) -> Option<&str> {
            Some(self.0)
        }
    }

    /// An unsubscribe setting whose footer reads `footer`.
    pub(super) fn unsubscribe(footer: &str) -> Unsubscribe {
        Unsubscribe {
            campaign_id: "c1".into(),
            mailto: "stop@example.org".parse().unwrap(),
            url: "https://example.org/stop".parse().unwrap(),
            footer: footer.into(),
            link_text: "Se désabonner".into(),
            secret: crate::unsubscribe::Secret::new(&"k".repeat(32)).unwrap(),
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
        let unsubscribe = unsubscribe("Plus de lettres\u{202f}?");
        let letter = Letter::parse(Path::new("l.md"), LETTER, "fr").unwrap();
        let frame = Frame {
            unsubscribe: Some(&unsubscribe),
            ..frame()
        };
        let link = unsubscribe.link("zoe@example.com");
        let r = render(&letter, &frame, &Person("zoe@example.com"));
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
