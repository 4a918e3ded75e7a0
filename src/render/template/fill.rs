//! A template filled for one person: the pieces made ahead copied as they are, the others
//! rendered with the person's fields, and the footer with the person's own unsubscribe link,
//! into buffers sized once. Also what reads the same for everyone ([`FixedParts`]), which the
//! message's encoder prepares once too.

use maud::{Markup, Render, html};

use super::{OneLetter, Piece, TextPart};
use crate::letter::{Fields, Section};
use crate::render::Rendered;
use crate::render::html::{html_document, html_footer, html_section};
use crate::render::text::{text_block, text_title, wrap};
use crate::unsubscribe::Unsubscribe;

pub(super) fn fixed_len<T>(pieces: &[Piece<T>]) -> usize {
    pieces
        .iter()
        .map(|piece| match piece {
            Piece::Fixed(fixed) => fixed.len(),
            Piece::Personal(_) => 0,
        })
        .sum()
}

/// Room for what a person's fields and footer add to the fixed pieces, so a part is written
/// without growing its buffer.
const PERSONAL_ROOM: usize = 2048;
impl OneLetter {
    /// Renders the letter for the person whose values `fields` holds.
    pub(in crate::render) fn render(&self, fields: &dyn Fields) -> Rendered {
        let footer = self.footer(fields);
        Rendered {
            html: self.html(footer.as_ref(), fields),
            text: self.text(footer, fields),
            letter: 0,
        }
    }

    /// What reads the same in every person's parts, in order, for
    /// [`Composer::with_fixed_parts`](crate::message::Composer::with_fixed_parts).
    pub(in crate::render) fn fixed_parts(&self) -> FixedParts {
        fn fixed<T>(pieces: &[Piece<T>]) -> impl Iterator<Item = String> + '_ {
            pieces.iter().filter_map(|piece| match piece {
                Piece::Fixed(fixed) => Some(fixed.clone()),
                Piece::Personal(_) => None,
            })
        }
        let head = self.shell.page.as_ref().map(|page| page.head.clone());
        let mut text: Vec<String> = fixed(&self.text).collect();
        // The last piece as it ends the text when no footer follows: one line break at the end.
        if let Some(Piece::Fixed(last)) = self.text.last() {
            text.push(format!("{}\n", last.trim_end_matches('\n')));
        }
        FixedParts {
            html: head.into_iter().chain(fixed(&self.html)).collect(),
            text,
        }
    }

    /// The footer's words and the person's link, when the campaign has one.
    fn footer(&self, fields: &dyn Fields) -> Option<(&Unsubscribe, String)> {
        let unsubscribe = self.unsubscribe.as_ref()?;
        Some((unsubscribe, unsubscribe.link(fields.address()?)))
    }

    fn html(&self, footer: Option<&(&Unsubscribe, String)>, fields: &dyn Fields) -> String {
        let Some(page) = &self.shell.page else {
            let footer = footer.map(|(unsubscribe, link)| html_footer(unsubscribe, link.as_str()));
            let sections = html! { @for piece in &self.html { (self.html_piece(piece, fields)) } };
            return html_document(&self.shell.frame(), sections, footer).into_string();
        };
        let mut out = String::with_capacity(
            page.head.len()
                + fixed_len(&self.html)
                + page.middle.len()
                + page.end.len()
                + PERSONAL_ROOM,
        );
        out.push_str(&page.head);
        for piece in &self.html {
            self.html_piece(piece, fields).render_to(&mut out);
        }
        out.push_str(&page.middle);
        if let (Some((_, link)), Some((before, after))) = (footer, &page.footer) {
            out.push_str(before);
            // Escaped as Maud escapes an attribute's value.
            link.as_str().render_to(&mut out);
            out.push_str(after);
        }
        out.push_str(&page.end);
        out
    }

    fn html_piece<'p>(&self, piece: &'p Piece<Section>, fields: &dyn Fields) -> PieceHtml<'p> {
        match piece {
            Piece::Fixed(fixed) => PieceHtml::Fixed(fixed),
            Piece::Personal(section) => PieceHtml::Personal(html_section(section, fields)),
        }
    }

    fn text(&self, footer: Option<(&Unsubscribe, String)>, fields: &dyn Fields) -> String {
        let mut out = String::with_capacity(fixed_len(&self.text) + PERSONAL_ROOM);
        for piece in &self.text {
            match piece {
                Piece::Fixed(fixed) => out.push_str(fixed),
                Piece::Personal(TextPart::Title(title)) => text_title(&mut out, title, fields),
                Piece::Personal(TextPart::Block(block)) => {
                    text_block(&mut out, block, fields, &self.shell.text_colon)
                }
            }
        }
        if let Some((unsubscribe, link)) = footer {
            let colon = &self.shell.text_colon;
            for line in wrap(&format!(
                "{} {}{colon} {link}",
                unsubscribe.footer, unsubscribe.link_text
            )) {
                out.push_str(&line);
                out.push('\n');
            }
        }
        // No blank line at either end, and one line break at the very end.
        out.truncate(out.trim_end_matches('\n').len());
        let leading = out.len() - out.trim_start_matches('\n').len();
        out.drain(..leading);
        out.push('\n');
        out
    }
}

/// The text that reads the same for everyone in the two parts, piece by piece, in order.
#[derive(Debug, Clone, Default)]
pub struct FixedParts {
    pub html: Vec<String>,
    pub text: Vec<String>,
}

/// One section of the HTML part: ready, or rendered for the person.
enum PieceHtml<'p> {
    Fixed(&'p str),
    Personal(Markup),
}

impl Render for PieceHtml<'_> {
    fn render_to(&self, buffer: &mut String) {
        match self {
            PieceHtml::Fixed(fixed) => buffer.push_str(fixed),
            PieceHtml::Personal(markup) => buffer.push_str(&markup.0),
        }
    }
}
