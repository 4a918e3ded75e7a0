//! The HTML part: the page around the letter, each kind of section in its style, the ask's
//! button and the unsubscribe footer, in the tables and inline styles mail clients need (see
//! [`render`](super)). Values only ever enter as text, which Maud escapes.

use maud::{DOCTYPE, Markup, PreEscaped, Render, html};

use super::Frame;
use crate::letter::{Block, Fields, Inline, Section, SectionKind, all_present, field_value};
use crate::unsubscribe::Unsubscribe;

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
pub(super) fn html_document(
    frame: &Frame,
    sections: impl Render,
    footer: Option<impl Render>,
) -> Markup {
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
                        (sheet("background-color:#ffffff;border-radius:8px;", html! {
                            tr { td.pad.body style={ "padding:40px 48px;" (FONT) "font-size:18px;line-height:1.6;color:" (INK) ";" } {
                                (NL)
                                (sections)
                            } }
                        }))
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
pub(crate) const NL: PreEscaped<&str> = PreEscaped("\n");

/// A column of the page, 600 px wide at most (the whole width on a phone, through the `sheet`
/// class of `PHONE_CSS`), holding `rows`; `style` adds to the width.
///
/// The letter's sheet, the footer under it and the band on the preview page line up because
/// they are all this table.
pub(crate) fn sheet(style: &str, rows: impl Render) -> Markup {
    html! {
        table.sheet role="presentation" width="600" cellpadding="0" cellspacing="0" border="0"
            style={ "width:600px;max-width:600px;" (style) } {
            (rows)
        }
    }
}

/// The person's unsubscribe `link` under the sheet, after a line break.
///
/// A template renders it once, with a mark for the link, and puts each person's link in its
/// place: markup for every message would be most of the footer's cost.
pub(super) fn html_footer(unsubscribe: &Unsubscribe, link: impl Render) -> Markup {
    html! {
        (NL)
        (sheet("", html! {
            tr { td.pad style={ "padding:20px 48px 8px 48px;font-family:Arial,Helvetica,sans-serif;font-size:13px;line-height:1.5;color:" (FOOTER_INK) ";text-align:center;" } {
                (unsubscribe.footer) " "
                a href=(link) style={ "color:" (FOOTER_INK) ";text-decoration:underline;" } { (unsubscribe.link_text) }
            } }
        }))
    }
}

/// True for the kinds [`html_section`] wraps its blocks in; the others are their blocks, one
/// after another.
pub(super) fn html_wrapped(kind: SectionKind) -> bool {
    matches!(
        kind,
        SectionKind::Story | SectionKind::Problem | SectionKind::Lesson | SectionKind::Signature
    )
}

pub(super) fn html_section(section: &Section, fields: &dyn Fields) -> Markup {
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
