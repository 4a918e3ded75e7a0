//! The letter: its sections and the recipient fields they mention.
//!
//! A writer edits the letter as one Markdown file cut into sections by lines of the form
//! `::: kind` (see the README for the syntax). This module parses that file once per campaign into
//! a small tree ([`Letter`] → [`Section`] → [`Block`] → [`Inline`]) that rendering walks for every
//! recipient. Recipient fields stay *nodes* of the tree (`{{first_name}}`, `{{amount|25}}`,
//! optional `[[ … ]]` runs) and are never spliced into Markdown or HTML source: their values only
//! ever become text, which the renderer escapes.
//!
//! Raw HTML and images are refused: the letter carries no tracking pixel and needs no remote
//! content (the seed letter's first lesson).
//!
//! The files follow the parse: `sections` cuts the file at its `::: kind` lines and checks the
//! rules sections keep, `markdown` walks each section's Markdown, `fields` reads the
//! `{{field}}` language inside its text, and `tree` is what comes out.

use std::fmt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::address::hex;
use crate::error::{Classify, ErrorKind};

mod fields;
mod markdown;
mod sections;
mod tree;

pub use fields::Fields;
pub(crate) use fields::{all_present, field_value};
pub use tree::{Block, Inline, Section, SectionKind};

use markdown::SectionParser;
use sections::{check_structure, section, split_sections};

/// A parsed letter, ready to render for any recipient.
#[derive(Debug, Clone)]
pub struct Letter {
    pub path: PathBuf,
    pub sections: Vec<Section>,
    /// SHA-256 of the source text, hex: tells whether the letter changed between two runs.
    pub source_sha256: String,
    /// Every link's address with its line, in order: what `check`'s lints look at.
    pub links: Vec<(String, usize)>,
}

/// One thing wrong in the letter file, at a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: usize,
    pub message: String,
}

/// Why the letter could not be loaded: every problem found, each with its line.
#[derive(Debug, thiserror::Error)]
pub struct LetterError {
    pub path: PathBuf,
    pub problems: Vec<Problem>,
}

impl fmt::Display for LetterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            // Line 0: about the whole file (it cannot be read), not a line of it.
            match p.line {
                0 => write!(f, "{}: {}", self.path.display(), p.message)?,
                line => write!(f, "{}:{line}: {}", self.path.display(), p.message)?,
            }
        }
        Ok(())
    }
}

impl Classify for LetterError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Invalid
    }
}

impl Letter {
    /// Reads and parses the letter at `path`; `language` selects typography rules.
    pub fn load(path: &Path, language: &str) -> Result<Letter, LetterError> {
        let text = std::fs::read_to_string(path).map_err(|e| LetterError {
            path: path.to_owned(),
            problems: vec![Problem {
                line: 0,
                message: format!("cannot read the letter: {e}"),
            }],
        })?;
        Self::parse(path, &text, language)
    }

    /// Parses letter source `text` (named `path` in errors).
    pub fn parse(path: &Path, text: &str, language: &str) -> Result<Letter, LetterError> {
        let mut problems = Vec::new();
        let mut sections = Vec::new();
        let mut links = Vec::new();
        for raw in split_sections(text, &mut problems) {
            let mut parser = SectionParser::new(raw.first_body_line, language);
            parser.parse(raw.body);
            problems.append(&mut parser.problems);
            links.append(&mut parser.links);
            sections.push(section(&raw, parser.title, parser.blocks, &mut problems));
        }
        check_structure(&sections, &mut problems);
        if problems.is_empty() {
            Ok(Letter {
                path: path.to_owned(),
                sections,
                source_sha256: hex(&Sha256::digest(text.as_bytes())),
                links,
            })
        } else {
            problems.sort_by_key(|p| p.line);
            Err(LetterError {
                path: path.to_owned(),
                problems,
            })
        }
    }

    /// Every field the letter mentions, with the line it is on (repeats included).
    pub fn fields(&self) -> Vec<(&str, usize)> {
        fn walk<'a>(inlines: &'a [Inline], out: &mut Vec<(&'a str, usize)>) {
            for inline in inlines {
                match inline {
                    Inline::Field { name, line, .. } => out.push((name, *line)),
                    Inline::Optional(c) | Inline::Emphasis(c) | Inline::Strong(c) => walk(c, out),
                    Inline::Link { content, .. } => walk(content, out),
                    Inline::Text(_) | Inline::LineBreak => {}
                }
            }
        }
        let mut out = Vec::new();
        for section in &self.sections {
            if let Some(title) = &section.title {
                walk(title, &mut out);
            }
            for block in &section.blocks {
                match block {
                    Block::Paragraph(c) | Block::Button { label: c, .. } => walk(c, &mut out),
                }
            }
        }
        out
    }
}

fn problem(line: usize, message: impl Into<String>) -> Problem {
    Problem {
        line,
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "::: greeting\nBonjour[[ {{first_name}}]],\n\n::: story\n## Titre\n\nTexte *ici*.\n\n::: problem\n**Ce qui a coincé :** ça.\n\n::: ask\nUn don de {{amount|25}} $ ?\n\n[Je donne](https://dons.example.org/x)\n\n::: signature\nA\\\nB\n";

    fn parse(text: &str) -> Result<Letter, LetterError> {
        Letter::parse(Path::new("letter.md"), text, "fr")
    }

    #[test]
    fn parses_sections_fields_and_button() {
        let letter = parse(GOOD).unwrap();
        let kinds: Vec<_> = letter.sections.iter().map(|s| s.kind.name()).collect();
        assert_eq!(kinds, ["greeting", "story", "problem", "ask", "signature"]);
        assert_eq!(
            letter.sections[0].blocks[0],
            Block::Paragraph(vec![
                Inline::Text("Bonjour".into()),
                Inline::Optional(vec![
                    Inline::Text(" ".into()),
                    Inline::Field {
                        name: "first_name".into(),
                        fallback: None,
                        line: 2
                    }
                ]),
                Inline::Text(",".into()),
            ])
        );
        assert_eq!(
            letter.sections[1].title,
            Some(vec![Inline::Text("Titre".into())])
        );
        assert!(
            matches!(&letter.sections[3].blocks[1], Block::Button { url, .. } if url == "https://dons.example.org/x")
        );
        let fields: Vec<_> = letter.fields();
        assert_eq!(fields, [("first_name", 2), ("amount", 13)]);
    }

    #[test]
    fn french_typography_in_text_not_in_fields() {
        let letter = parse(GOOD).unwrap();
        let Block::Paragraph(ask) = &letter.sections[3].blocks[0] else {
            panic!()
        };
        assert_eq!(ask[2], Inline::Text("\u{a0}$\u{202f}?".into()));
    }

    #[test]
    fn every_problem_has_its_line() {
        let bad = "::: greeting\nBonjour {{first name}},\n\n<b>gras</b>\n\n::: stroy\nx\n\n::: ask\n![pixel](https://t.example.org/p.gif)\n\n::: signature\nA\n";
        let err = parse(bad).unwrap_err();
        let lines: Vec<usize> = err.problems.iter().map(|p| p.line).collect();
        assert!(lines.contains(&2), "{err}");
        assert!(lines.contains(&4), "{err}");
        assert!(lines.contains(&6), "{err}");
        assert!(lines.contains(&10), "{err}");
        assert!(
            err.to_string()
                .contains("letter.md:6: unknown section `stroy`"),
            "{err}"
        );
    }

    #[test]
    fn writer_comments_are_ignored_but_html_after_them_is_not() {
        let with_note = GOOD.replace(
            "Bonjour[[",
            "<!-- une note\n   sur deux lignes -->\n\nBonjour[[",
        );
        assert!(parse(&with_note).is_ok());
        let sneaky = GOOD.replace("Bonjour[[", "<!-- note --><img src=x>\n\nBonjour[[");
        assert!(parse(&sneaky).is_err());
    }

    #[test]
    fn structure_is_checked() {
        let err = parse("::: greeting\nBonjour\n\n::: lesson\nx\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("belongs to a story"), "{err}");
        assert!(err.contains("exactly one"), "{err}");
    }
}
