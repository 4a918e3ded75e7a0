//! The letter prepared for rendering: what reads the same for everyone rendered once, and
//! the parts with fields rendered for each person (see [`OneLetter`]); [`super::Template`] holds
//! one for each of a campaign's letters.
//!
//! Cutting the letter is here; filling the pieces for each person is in `fill`.

use super::Frame;
use super::html::{html_section, html_wrapped};
use super::shell::Shell;
use super::text::{text_block, text_title};
use crate::letter::{Block, Fields, Inline, Letter, Section, SectionKind};
use crate::unsubscribe::Unsubscribe;

mod fill;

pub use fill::FixedParts;

/// A letter cut once into what reads the same for everyone, rendered ahead of time, and the few
/// parts that hold fields (the greeting, the ask), rendered for each person.
///
/// Rendering a whole letter is the one thing missive does a million times; wrapping and marking
/// up the same paragraphs again for every person was most of its cost. The output is the same as
/// rendering everything for each person: the pieces made ahead are made by the same functions,
/// with no fields to look at.
///
/// A template is made for one frame (a campaign has one): the page around the sections is
/// rendered with it once, and the letter it was made from is not looked at again, so a change to
/// the letter afterwards needs a new template.
#[derive(Debug)]
pub(super) struct OneLetter {
    /// The sections of the HTML part, in order.
    html: Vec<Piece<Section>>,
    /// The sections of the text part, in order, wrapped.
    text: Vec<Piece<TextPart>>,
    /// The page around the sections, for the frame the template was made for.
    shell: Shell,
    /// Makes each person's unsubscribe link for the footer; `None` for no footer.
    unsubscribe: Option<Unsubscribe>,
}

#[derive(Debug)]
enum Piece<T> {
    /// Rendered ahead: holds no field.
    Fixed(String),
    /// Holds a field: rendered for each person.
    Personal(T),
}

#[derive(Debug)]
enum TextPart {
    Title(Vec<Inline>),
    Block(Block),
}

/// Fields of nobody: what the pieces without fields are rendered with.
struct NoFields;

impl Fields for NoFields {
    fn field(&self, _: &str) -> Option<&str> {
        None
    }
}

/// Appends a fixed piece, joined to the previous one when that is fixed too.
fn push_fixed<T>(pieces: &mut Vec<Piece<T>>, fixed: &str) {
    if let Some(Piece::Fixed(last)) = pieces.last_mut() {
        last.push_str(fixed);
    } else {
        pieces.push(Piece::Fixed(fixed.to_owned()));
    }
}
impl OneLetter {
    /// Prepares `letter` in `frame`: renders the page around it, and renders and wraps every
    /// part that holds no field.
    pub(super) fn new(letter: &Letter, frame: &Frame) -> OneLetter {
        OneLetter::with_fixed_parts(letter, frame, true)
    }

    /// Without `ahead`, every part is rendered for each person, the page around them too (what
    /// tests compare with).
    fn with_fixed_parts(letter: &Letter, frame: &Frame, ahead: bool) -> OneLetter {
        let personal = |has_fields: bool| !ahead || has_fields;
        let mut shell = Shell::new(frame);
        let colon = shell.text_colon.clone();
        let mut html = Vec::new();
        let mut text = Vec::new();
        for section in &letter.sections {
            if !personal(section_has_fields(section)) {
                push_fixed(&mut html, &html_section(section, &NoFields).into_string());
            } else if html_wrapped(section.kind) {
                html.push(Piece::Personal(section.clone()));
            } else {
                // Its blocks one after another: only those with fields are personal (in the
                // ask, the paragraph with the amount, not the button).
                for block in &section.blocks {
                    let alone = Section {
                        blocks: vec![block.clone()],
                        ..section.clone()
                    };
                    if personal(block_has_fields(block)) {
                        html.push(Piece::Personal(alone));
                    } else {
                        push_fixed(&mut html, &html_section(&alone, &NoFields).into_string());
                    }
                }
            }
            if let Some(title) = &section.title {
                if personal(has_fields(title)) {
                    text.push(Piece::Personal(TextPart::Title(title.clone())));
                } else {
                    let mut fixed = String::new();
                    text_title(&mut fixed, title, &NoFields);
                    push_fixed(&mut text, &fixed);
                }
            }
            if section.kind == SectionKind::Signature {
                push_fixed(&mut text, "-- \n");
            }
            for block in &section.blocks {
                if personal(block_has_fields(block)) {
                    text.push(Piece::Personal(TextPart::Block(block.clone())));
                } else {
                    let mut fixed = String::new();
                    text_block(&mut fixed, block, &NoFields, &colon);
                    push_fixed(&mut text, &fixed);
                }
            }
        }
        if !ahead {
            shell.page = None;
        }
        OneLetter {
            html,
            text,
            shell,
            unsubscribe: frame.unsubscribe.cloned(),
        }
    }
}

fn section_has_fields(section: &Section) -> bool {
    section.title.as_deref().is_some_and(has_fields) || section.blocks.iter().any(block_has_fields)
}

fn block_has_fields(block: &Block) -> bool {
    match block {
        Block::Paragraph(inlines) | Block::Button { label: inlines, .. } => has_fields(inlines),
    }
}

fn has_fields(inlines: &[Inline]) -> bool {
    inlines.iter().any(|inline| match inline {
        Inline::Field { .. } | Inline::Optional(_) => true,
        Inline::Emphasis(c) | Inline::Strong(c) => has_fields(c),
        Inline::Link { content, .. } => has_fields(content),
        Inline::Text(_) | Inline::LineBreak => false,
    })
}

#[cfg(test)]
mod tests {
    use super::fill::fixed_len;
    use super::*;
    use crate::render::render;
    use crate::render::tests::{Person, frame, unsubscribe};
    use std::collections::HashMap;
    use std::path::Path;

    #[test]
    fn parts_made_ahead_read_as_if_made_for_each_person() {
        // Fields in a title, a link, emphasis and the button; parts without any around them.
        let source = "::: greeting\nBonjour[[ {{first_name}}]],\n\n::: introduction\nUn texte assez long pour passer \
            à la ligne : il faut bien plus de soixante-seize colonnes pour cela, voilà.\n\n\
            ::: story\n## Pour {{first_name|vous}} : un titre\n\nVoir [le site de {{last_name}}](https://example.org/a) *ou {{amount}}*.\n\n\
            ::: ask\nUn don de {{amount|25}} $ ?\n\n[Je donne {{amount}} $](https://dons.example.org/x)\n\n\
            ::: signature\nAshley Boyd\\\nMozilla\n";
        let letter = Letter::parse(Path::new("l.md"), source, "fr").unwrap();
        let frame = frame();
        let ahead = OneLetter::new(&letter, &frame);
        let each = OneLetter::with_fixed_parts(&letter, &frame, false);
        let made_ahead = |t: &OneLetter| fixed_len(&t.html) > 0 && fixed_len(&t.text) > 0;
        assert!(made_ahead(&ahead) && !made_ahead(&each));
        for person in [
            vec![
                ("first_name", "Zoé"),
                ("last_name", "Durand"),
                ("amount", "40"),
            ],
            vec![
                ("first_name", "<b>&"),
                (
                    "amount",
                    "un montant bien plus long que prévu, sur des lignes",
                ),
            ],
            vec![],
        ] {
            let fields: HashMap<&str, &str> = person.into_iter().collect();
            assert_eq!(ahead.render(&fields), each.render(&fields));
            assert_eq!(render(&letter, &frame, &fields), each.render(&fields));
        }
        // Another frame gets its own page around the same sections.
        let other = Frame {
            subject: "Autre <sujet>",
            ..frame
        };
        let fields = HashMap::from([("first_name", "Zoé")]);
        let r = OneLetter::new(&letter, &other).render(&fields);
        assert!(
            r.html.contains("<title>Autre &lt;sujet&gt;</title>"),
            "{}",
            r.html
        );
        assert_eq!(
            r,
            OneLetter::with_fixed_parts(&letter, &other, false).render(&fields)
        );
    }

    #[test]
    fn the_footer_made_ahead_reads_as_if_made_for_each_person() {
        let unsubscribe = unsubscribe("Plus de lettres <b>&</b>\u{202f}?");
        let frame = Frame {
            unsubscribe: Some(&unsubscribe),
            ..frame()
        };
        let source = "::: greeting\nBonjour,\n\n::: ask\n[Je donne](https://dons.example.org/x)\n\n::: signature\nAshley\n";
        let letter = Letter::parse(Path::new("l.md"), source, "fr").unwrap();
        let ahead = OneLetter::new(&letter, &frame);
        let each = OneLetter::with_fixed_parts(&letter, &frame, false);
        for person in [Person("zoe@example.com"), Person("o'hara&co@example.com")] {
            let r = ahead.render(&person);
            let link = unsubscribe.link(person.0);
            let escaped = link.replace('&', "&amp;");
            assert!(escaped != link, "{link}");
            assert!(
                r.html.contains(&format!("<a href=\"{escaped}\"")),
                "{}",
                r.html
            );
            assert_eq!(r, each.render(&person));
        }
    }
}
