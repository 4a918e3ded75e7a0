//! The endpoint's pages, in the reader's language (French, else English): the confirmation a
//! GET shows, the page after the unsubscribe, and the plain refusal. Maud escapes every value.
//!
//! They must work for anyone on any device: no script, no image, no font or style sheet from
//! elsewhere (the CSP forbids it anyway), one column that reads at 375 px, text and button at
//! a contrast WCAG AA accepts, a real `<form>` whose button a keyboard or a screen reader
//! reaches. Nothing here learns anything about the reader: no cookie, no counter, no referrer.

use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::language::is_french;
use crate::typography;
use crate::unsubscribe::ONE_CLICK;

/// What the pages need to know of a campaign.
#[derive(Debug, Clone)]
pub struct PageText {
    /// A language tag (`fr`, `fr-CA`, `en`): the campaign's, or the one the link names. French
    /// and English have their words; any other language gets the English ones.
    pub language: String,
    /// Who sends the letters (the From display name, or its address).
    pub organization: String,
    /// Where to write to be mailed again (the campaign's reply-to, else its From address).
    pub contact: String,
}

/// Ink on white: 15.9:1. The button: white on this blue, 8.6:1 (WCAG AA asks 4.5).
const CSS: &str = "\
*{box-sizing:border-box}\
body{margin:0;background:#f3f4f6;color:#1f2328;font:18px/1.55 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif}\
main{max-width:34rem;margin:0 auto;padding:24px 16px}\
.card{background:#fff;border-radius:8px;padding:28px 24px;overflow-wrap:anywhere}\
h1{font-size:1.5rem;line-height:1.25;margin:0 0 16px}\
p{margin:0 0 16px}\
button{font:inherit;font-weight:600;color:#fff;background:#0b3d91;border:0;border-radius:6px;\
padding:12px 20px;min-height:48px;width:100%;cursor:pointer}\
button:focus-visible,a:focus-visible{outline:3px solid #b3261e;outline-offset:2px}\
a{color:#0b3d91}\
.note{font-size:.9rem;color:#4b5563;margin:16px 0 0}";

struct Words {
    confirm_title: &'static str,
    confirm_lead: &'static str,
    confirm_of: &'static str,
    button: &'static str,
    nothing_yet: &'static str,
    done_title: &'static str,
    done_lead: &'static str,
    undo: &'static str,
    invalid_title: &'static str,
    invalid_text: &'static str,
    failed_title: &'static str,
    failed_text: &'static str,
}

const FRENCH: Words = Words {
    confirm_title: "Ne plus recevoir nos lettres ?",
    confirm_lead: "Vous êtes sur le point de désabonner l’adresse",
    confirm_of: "des lettres de",
    button: "Me désabonner",
    nothing_yet: "Rien ne change tant que vous n’avez pas appuyé sur ce bouton.",
    done_title: "C’est fait",
    done_lead: "ne recevra plus nos lettres. Il peut arriver qu’une lettre déjà en route vous parvienne encore.",
    undo: "Vous avez changé d’avis ? Écrivez-nous à",
    invalid_title: "Ce lien ne fonctionne pas",
    invalid_text: "Ce lien de désabonnement n’est pas valide : il a peut-être été coupé. Ouvrez à nouveau le lien de la lettre, ou répondez à la lettre pour vous désabonner.",
    failed_title: "Un instant",
    failed_text: "Votre demande n’a pas pu être enregistrée. Veuillez réessayer dans quelques minutes.",
};

const ENGLISH: Words = Words {
    confirm_title: "Stop receiving our letters?",
    confirm_lead: "You are about to unsubscribe",
    confirm_of: "from the letters of",
    button: "Unsubscribe me",
    nothing_yet: "Nothing changes until you press this button.",
    done_title: "Done",
    done_lead: "will receive no more of our letters. A letter already on its way may still arrive.",
    undo: "Changed your mind? Write to us at",
    invalid_title: "This link does not work",
    invalid_text: "This unsubscribe link is not valid: it may have been cut. Open the link in the letter again, or reply to the letter to unsubscribe.",
    failed_title: "One moment",
    failed_text: "Your request could not be recorded. Please try again in a few minutes.",
};

impl PageText {
    fn words(&self) -> &'static Words {
        if is_french(&self.language) {
            &FRENCH
        } else {
            &ENGLISH
        }
    }

    /// The page's language: the campaign's when its words are ours, else English.
    fn lang(&self) -> &str {
        if is_french(&self.language) {
            &self.language
        } else {
            "en"
        }
    }

    fn typeset(&self, text: &str) -> String {
        typography::apply(self.lang(), text)
    }
}

/// The page a GET shows: whom the link unsubscribes, and one button that POSTs the one-click
/// form back to `action` (the path and query the page was fetched at).
pub fn confirm(text: &PageText, address: &str, action: &str) -> Markup {
    let words = text.words();
    let (name, value) = ONE_CLICK.split_once('=').expect("name=value");
    page(
        text,
        &text.typeset(words.confirm_title),
        html! {
            p { (text.typeset(words.confirm_lead)) " " strong { (address) } " " (text.typeset(words.confirm_of)) " " (text.organization) "." }
            form method="post" action=(action) {
                input type="hidden" name=(name) value=(value);
                button type="submit" { (text.typeset(words.button)) }
            }
            p.note { (text.typeset(words.nothing_yet)) }
        },
    )
}

/// The page after the POST: it is done, and how to undo it.
pub fn done(text: &PageText, address: &str) -> Markup {
    let words = text.words();
    page(
        text,
        &text.typeset(words.done_title),
        html! {
            p { strong { (address) } " " (text.typeset(words.done_lead)) }
            p { (text.typeset(words.undo)) " " a href={ "mailto:" (text.contact) } { (text.contact) } "." }
        },
    )
}

/// The refusal of a link that is not one of ours: the same words whatever was wrong with it.
pub fn invalid(text: &PageText) -> Markup {
    let words = text.words();
    page(
        text,
        &text.typeset(words.invalid_title),
        html! { p { (text.typeset(words.invalid_text)) } },
    )
}

/// The answer when the address could not be written: the person should try again.
pub fn failed(text: &PageText) -> Markup {
    let words = text.words();
    page(
        text,
        &text.typeset(words.failed_title),
        html! { p { (text.typeset(words.failed_text)) } },
    )
}

fn page(text: &PageText, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang=(text.lang()) dir="ltr" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="robots" content="noindex";
                title { (title) " · " (text.organization) }
                style { (PreEscaped(CSS)) }
            }
            body {
                main {
                    div.card {
                        h1 { (title) }
                        (body)
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(language: &str) -> PageText {
        PageText {
            language: language.into(),
            organization: "Mozilla".into(),
            contact: "reponses@example.org".into(),
        }
    }

    #[test]
    fn the_confirmation_posts_the_one_click_form_back_to_the_same_link() {
        let page = confirm(
            &text("fr"),
            "zoé<x>@example.com",
            "/desabonnement?c=a&e=b&t=c",
        )
        .into_string();
        assert!(page.contains(r#"<html lang="fr""#), "{page}");
        assert!(page.contains(
            r#"<form method="post" action="/desabonnement?c=a&amp;e=b&amp;t=c"><input type="hidden" name="List-Unsubscribe" value="One-Click"><button type="submit">Me désabonner</button>"#
        ), "{page}");
        // Escaped, and French typography on our own words.
        assert!(page.contains("zoé&lt;x&gt;@example.com"), "{page}");
        assert!(page.contains("lettres\u{202f}?"), "{page}");
        assert!(
            !page.contains("<script") && !page.contains("http"),
            "{page}"
        );
    }

    #[test]
    fn other_languages_fall_back_to_english() {
        let page = done(&text("de"), "a@example.com").into_string();
        assert!(page.contains(r#"<html lang="en""#), "{page}");
        assert!(
            page.contains(
                "Changed your mind? Write to us at <a href=\"mailto:reponses@example.org\">"
            ),
            "{page}"
        );
        let page = invalid(&text("fr-CA")).into_string();
        assert!(page.contains(r#"lang="fr-CA""#) && page.contains("n’est pas valide"));
    }
}
