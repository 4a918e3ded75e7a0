//! The page around a letter's sections, made once a template: the HTML document rendered with
//! marks where the sections, the footer and the footer's link go, then cut at them, so that
//! each person's page is the pieces joined around their own parts.

use maud::PreEscaped;

use super::Frame;
use super::html::{html_document, html_footer};

/// What surrounds the letter's sections, made once per template: the HTML page cut where the
/// sections and the footer go, the footer cut where the person's link goes, and the text
/// footer's colon.
#[derive(Debug)]
pub(super) struct Shell {
    /// The frame's words, for rendering a page whole (see `page`).
    subject: String,
    preheader: String,
    language: String,
    /// `None` if the page could not be cut (it always can: the marks cannot come out of escaped
    /// text); each person's page is then rendered whole.
    pub(super) page: Option<Page>,
    /// `:` with the language's typography, before the link in the text footer.
    pub(super) text_colon: String,
}

/// The page cut at the marks: what goes before, between and after each person's parts.
#[derive(Debug)]
pub(super) struct Page {
    /// Up to the sections.
    pub(super) head: String,
    /// From the sections to the footer.
    pub(super) middle: String,
    /// The footer before and after the person's link, when the frame has an unsubscribe link.
    pub(super) footer: Option<(String, String)>,
    /// After the footer.
    pub(super) end: String,
}

/// Where the sections, the footer and the footer's link go in a page rendered to be cut.
/// Escaped text never holds a `<`, so these cannot come from the frame's words.
const SECTIONS_MARK: &str = "<missive-sections>";
const FOOTER_MARK: &str = "<missive-footer>";
const LINK_MARK: &str = "<missive-link>";

impl Shell {
    pub(super) fn new(frame: &Frame) -> Shell {
        let marked = html_document(
            frame,
            PreEscaped(SECTIONS_MARK),
            Some(PreEscaped(FOOTER_MARK)),
        )
        .into_string();
        let page = marked.split_once(SECTIONS_MARK).and_then(|(head, rest)| {
            let (middle, end) = rest.split_once(FOOTER_MARK)?;
            let footer = match frame.unsubscribe {
                Some(unsubscribe) => {
                    let footer = html_footer(unsubscribe, PreEscaped(LINK_MARK)).into_string();
                    let (before, after) = footer.split_once(LINK_MARK)?;
                    Some((before.to_owned(), after.to_owned()))
                }
                None => None,
            };
            Some(Page {
                head: head.to_owned(),
                middle: middle.to_owned(),
                footer,
                end: end.to_owned(),
            })
        });
        let colon = crate::typography::apply(frame.language, " :");
        Shell {
            subject: frame.subject.to_owned(),
            preheader: frame.preheader.to_owned(),
            language: frame.language.to_owned(),
            page,
            text_colon: if colon == " :" { ":".to_owned() } else { colon },
        }
    }

    /// The frame the shell was made from, without its unsubscribe link (the page has none).
    pub(super) fn frame(&self) -> Frame<'_> {
        Frame {
            subject: &self.subject,
            preheader: &self.preheader,
            language: &self.language,
            unsubscribe: None,
        }
    }
}
