//! The text part: the same tree as the HTML, as plain text wrapped at [`TEXT_WIDTH`] columns,
//! with `_italic_`, titles underlined with `=`, links written out after their words, and the
//! signature after `-- `.

use super::TEXT_WIDTH;
use crate::letter::{Block, Fields, Inline, all_present, field_value};

/// A story's title: a blank line, the title, and a rule of `=` as wide as its longest line.
pub(super) fn text_title(out: &mut String, title: &[Inline], fields: &dyn Fields) {
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

/// A paragraph (or the button, as its label, `colon` and address), wrapped, then a blank line.
/// `colon` is the language's (`\u{a0}:` in French, `:` in English).
pub(super) fn text_block(out: &mut String, block: &Block, fields: &dyn Fields, colon: &str) {
    let paragraph = match block {
        Block::Paragraph(inlines) => text_inlines(inlines, fields),
        Block::Button { label, url } => format!("{}{colon} {url}", text_inlines(label, fields)),
    };
    for line in wrap(&paragraph) {
        out.push_str(&line);
        out.push('\n');
    }
    out.push('\n');
}

/// Wraps each line of `paragraph` (hard breaks stay) at [`TEXT_WIDTH`], never splitting a word
/// or a link.
pub(super) fn wrap(paragraph: &str) -> Vec<String> {
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

pub(super) fn display_width(line: &str) -> usize {
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
