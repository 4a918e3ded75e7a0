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

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd};

use sha2::{Digest, Sha256};

use crate::error::{Classify, ErrorKind};
use crate::render::Template;
use crate::typography;

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(2 * bytes.len());
    for &byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
    out
}

/// What part a section plays in the letter; the layout styles each kind its own way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SectionKind {
    Greeting,
    Introduction,
    /// Opens with a `## title` heading.
    Story,
    /// "What went wrong" of the story before it.
    Problem,
    /// "What we learned" of the story before it.
    Lesson,
    Closing,
    /// The call to action: holds the donation button.
    Ask,
    Farewell,
    Signature,
}

impl SectionKind {
    const ALL: [(&'static str, SectionKind); 9] = [
        ("greeting", SectionKind::Greeting),
        ("introduction", SectionKind::Introduction),
        ("story", SectionKind::Story),
        ("problem", SectionKind::Problem),
        ("lesson", SectionKind::Lesson),
        ("closing", SectionKind::Closing),
        ("ask", SectionKind::Ask),
        ("farewell", SectionKind::Farewell),
        ("signature", SectionKind::Signature),
    ];

    fn from_name(name: &str) -> Option<SectionKind> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, k)| *k)
    }

    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, k)| *k == self)
            .map(|(n, _)| *n)
            .unwrap_or("?")
    }
}

/// A parsed letter, ready to render for any recipient.
#[derive(Debug, Clone)]
pub struct Letter {
    pub path: PathBuf,
    pub sections: Vec<Section>,
    /// SHA-256 of the source text, hex: tells whether the letter changed between two runs.
    pub source_sha256: String,
    /// Every link's address with its line, in order: what `check`'s lints look at.
    pub links: Vec<(String, usize)>,
    /// The sections prepared for rendering, made on the first render: change a letter's
    /// sections before rendering it, not after.
    template: TemplateCell,
}

/// Holds a letter's [`Template`] once made. A clone starts empty and makes its own from its
/// own sections, which the clone's owner may have changed.
#[derive(Default)]
struct TemplateCell(OnceLock<Template>);

impl Clone for TemplateCell {
    fn clone(&self) -> Self {
        TemplateCell::default()
    }
}

impl fmt::Debug for TemplateCell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = if self.0.get().is_some() {
            "made"
        } else {
            "not yet made"
        };
        write!(f, "TemplateCell({state})")
    }
}

#[derive(Debug, Clone)]
pub struct Section {
    pub kind: SectionKind,
    /// The `::: kind` line, for error messages.
    pub line: usize,
    /// Only stories have a title.
    pub title: Option<Vec<Inline>>,
    pub blocks: Vec<Block>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    Paragraph(Vec<Inline>),
    /// A paragraph of the ask that holds only a link: rendered as a button.
    Button {
        label: Vec<Inline>,
        url: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Inline {
    Text(String),
    /// A recipient field; `fallback` stands in when the value is empty.
    Field {
        name: String,
        fallback: Option<String>,
        line: usize,
    },
    /// `[[ … ]]`: shown only when every field inside has a value.
    Optional(Vec<Inline>),
    Emphasis(Vec<Inline>),
    Strong(Vec<Inline>),
    Link {
        url: String,
        content: Vec<Inline>,
    },
    LineBreak,
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
            write!(f, "{}:{}: {}", self.path.display(), p.line, p.message)?;
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
            let mut blocks = parser.blocks;
            let title = parser.title;
            if (raw.kind == SectionKind::Story) != title.is_some() {
                problems.push(problem(
                    raw.line,
                    "a story, and only a story, starts with its title: `## Title`",
                ));
            }
            if raw.kind != SectionKind::Ask
                && blocks.iter().any(|b| matches!(b, Block::Button { .. }))
            {
                // Only the ask turns a lone link into a button; elsewhere it stays a link.
                for block in &mut blocks {
                    if let Block::Button { label, url } = block {
                        *block = Block::Paragraph(vec![Inline::Link {
                            url: std::mem::take(url),
                            content: std::mem::take(label),
                        }]);
                    }
                }
            }
            sections.push(Section {
                kind: raw.kind,
                line: raw.line,
                title,
                blocks,
            });
        }
        check_structure(&sections, &mut problems);
        if problems.is_empty() {
            Ok(Letter {
                path: path.to_owned(),
                sections,
                source_sha256: hex(&Sha256::digest(text.as_bytes())),
                links,
                template: TemplateCell::default(),
            })
        } else {
            problems.sort_by_key(|p| p.line);
            Err(LetterError {
                path: path.to_owned(),
                problems,
            })
        }
    }

    /// The letter prepared for rendering (see [`Template`]), made on the first call.
    pub fn template(&self) -> &Template {
        self.template.0.get_or_init(|| Template::new(self))
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

struct RawSection<'a> {
    kind: SectionKind,
    line: usize,
    first_body_line: usize,
    body: &'a str,
}

/// Cuts the file at its `::: kind` lines. The body of an unknown section is dropped (and
/// reported), not glued to the section before it.
fn split_sections<'a>(text: &'a str, problems: &mut Vec<Problem>) -> Vec<RawSection<'a>> {
    let mut sections: Vec<RawSection<'a>> = Vec::new();
    // The section whose body is being read, and where that body starts.
    let mut open: Option<(usize, usize)> = None;
    let mut offset = 0;
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let number = index + 1;
        if let Some(name) = line.trim_end().strip_prefix(":::") {
            match open {
                Some((i, start)) => sections[i].body = &text[start..offset],
                None if sections.is_empty() && !text[..offset].trim().is_empty() => {
                    problems.push(problem(1, "text before the first `::: greeting` line"));
                }
                None => {}
            }
            let name = name.trim();
            open = match SectionKind::from_name(name) {
                Some(kind) => {
                    sections.push(RawSection {
                        kind,
                        line: number,
                        first_body_line: number + 1,
                        body: "",
                    });
                    Some((sections.len() - 1, offset + line.len()))
                }
                None => {
                    problems.push(problem(
                        number,
                        format!(
                            "unknown section `{name}`; the sections are: {}",
                            SectionKind::ALL.map(|(n, _)| n).join(", ")
                        ),
                    ));
                    None
                }
            };
        }
        offset += line.len();
    }
    if let Some((i, start)) = open {
        sections[i].body = &text[start..];
    }
    if sections.is_empty() {
        problems.push(problem(
            1,
            "no sections: the letter starts with a line `::: greeting`",
        ));
    }
    sections
}

fn check_structure(sections: &[Section], problems: &mut Vec<Problem>) {
    use SectionKind::*;
    let count = |kind| sections.iter().filter(|s| s.kind == kind).count();
    if let Some(first) = sections.first()
        && first.kind != Greeting
    {
        problems.push(problem(first.line, "the letter starts with `::: greeting`"));
    }
    if count(Greeting) > 1 || count(Ask) != 1 || count(Signature) != 1 {
        let line = sections.first().map_or(1, |s| s.line);
        problems.push(problem(
            line,
            "a letter has exactly one `greeting`, one `ask` and one `signature`",
        ));
    }
    if let Some(last) = sections.last()
        && last.kind != Signature
    {
        problems.push(problem(last.line, "the letter ends with `::: signature`"));
    }
    for pair in sections.windows(2) {
        let follows_story = matches!(pair[0].kind, Story | Problem | Lesson);
        if matches!(pair[1].kind, Problem | Lesson) && !follows_story {
            problems.push(problem(
                pair[1].line,
                format!(
                    "`{}` belongs to a story: put it after a `::: story`",
                    pair[1].kind.name()
                ),
            ));
        }
    }
    for section in sections {
        if section.blocks.is_empty() && section.title.is_none() {
            problems.push(problem(
                section.line,
                format!("section `{}` is empty", section.kind.name()),
            ));
        }
        if section.kind == Ask {
            let buttons = section
                .blocks
                .iter()
                .filter(|b| matches!(b, Block::Button { .. }))
                .count();
            if buttons != 1 {
                problems.push(problem(
                    section.line,
                    "the ask holds exactly one button: a paragraph that is only a link, `[Je fais un don](https://…)`",
                ));
            }
        }
    }
}

/// Walks pulldown-cmark's events for one section body and builds its blocks.
struct SectionParser<'l> {
    first_line: usize,
    language: &'l str,
    title: Option<Vec<Inline>>,
    blocks: Vec<Block>,
    problems: Vec<Problem>,
    links: Vec<(String, usize)>,
    /// Open inline containers: (tag, children). The bottom one is the current block.
    stack: Vec<(Open, Vec<Inline>)>,
    /// Consecutive text events, joined before fields are parsed (pulldown splits text at `[`).
    text: String,
    text_line: usize,
}

enum Open {
    Block,
    Emphasis,
    Strong,
    Link(String),
}

impl<'l> SectionParser<'l> {
    fn new(first_line: usize, language: &'l str) -> Self {
        SectionParser {
            first_line,
            language,
            title: None,
            blocks: Vec::new(),
            problems: Vec::new(),
            links: Vec::new(),
            stack: Vec::new(),
            text: String::new(),
            text_line: first_line,
        }
    }

    fn parse(&mut self, body: &str) {
        let first_line = self.first_line;
        let line_of = |offset: usize| first_line + body[..offset].matches('\n').count();
        let mut heading = false;
        // An HTML block arrives line by line; only a whole comment is allowed (a writer's note).
        let mut html_block: Option<(usize, String)> = None;
        for (event, range) in Parser::new_ext(body, Options::empty()).into_offset_iter() {
            let line = line_of(range.start);
            if !matches!(event, Event::Text(_)) {
                self.flush_text();
            }
            match event {
                Event::Start(Tag::Paragraph) => self.stack.push((Open::Block, Vec::new())),
                Event::Start(Tag::Heading { level, .. }) => {
                    if level != HeadingLevel::H2 || self.title.is_some() || !self.blocks.is_empty() {
                        self.problems.push(problem(
                            line,
                            "the only heading is a story's title, `## Title`, on the story's first line",
                        ));
                    }
                    heading = true;
                    self.stack.push((Open::Block, Vec::new()));
                }
                Event::End(TagEnd::Paragraph | TagEnd::Heading(_)) => {
                    if let Some((_, inlines)) = self.stack.pop() {
                        self.finish_block(inlines, std::mem::take(&mut heading));
                    }
                }
                Event::Start(Tag::Emphasis) => self.stack.push((Open::Emphasis, Vec::new())),
                Event::Start(Tag::Strong) => self.stack.push((Open::Strong, Vec::new())),
                Event::Start(Tag::Link { dest_url, .. }) => {
                    if let Err(message) = check_url(&dest_url) {
                        self.problems.push(problem(line, message));
                    }
                    self.links.push((dest_url.to_string(), line));
                    self.stack.push((Open::Link(dest_url.into_string()), Vec::new()));
                }
                Event::End(TagEnd::Emphasis | TagEnd::Strong | TagEnd::Link) => {
                    if let Some((open, children)) = self.stack.pop() {
                        let inline = match open {
                            Open::Emphasis => Inline::Emphasis(children),
                            Open::Strong => Inline::Strong(children),
                            Open::Link(url) => Inline::Link { url, content: children },
                            Open::Block => unreachable!("blocks end with End(Paragraph)"),
                        };
                        self.push(inline);
                    }
                }
                Event::Text(text) | Event::Code(text) => {
                    if self.text.is_empty() {
                        self.text_line = line;
                    }
                    self.text.push_str(&text);
                }
                Event::SoftBreak => self.push(Inline::Text(" ".into())),
                Event::HardBreak => self.push(Inline::LineBreak),
                Event::Start(Tag::HtmlBlock) => html_block = Some((line, String::new())),
                Event::Html(html) => match &mut html_block {
                    Some((_, block)) => block.push_str(&html),
                    None => self.problems.push(raw_html(line)),
                },
                Event::End(TagEnd::HtmlBlock) => {
                    if let Some((start, block)) = html_block.take()
                        && !is_comment(&block)
                    {
                        self.problems.push(raw_html(start));
                    }
                }
                Event::InlineHtml(html) if is_comment(&html) => {}
                Event::InlineHtml(_) => self.problems.push(raw_html(line)),
                Event::Start(Tag::Image { .. }) => self.problems.push(problem(
                    line,
                    "images are not allowed: the letter carries no remote content and no tracking pixel",
                )),
                Event::Start(tag) => self.problems.push(problem(
                    line,
                    format!("{tag:?} is not supported in a letter: use paragraphs, *italic*, **bold** and links"),
                )),
                _ => {}
            }
        }
        self.flush_text();
    }

    fn push(&mut self, inline: Inline) {
        if let Some((_, children)) = self.stack.last_mut() {
            children.push(inline);
        }
    }

    fn flush_text(&mut self) {
        if self.text.is_empty() {
            return;
        }
        let text = std::mem::take(&mut self.text);
        match parse_fields(&text, self.text_line, self.language) {
            Ok(inlines) => {
                for inline in inlines {
                    self.push(inline);
                }
            }
            Err(message) => self.problems.push(problem(self.text_line, message)),
        }
    }

    fn finish_block(&mut self, inlines: Vec<Inline>, heading: bool) {
        if heading {
            self.title = Some(inlines);
            return;
        }
        let meaningful: Vec<&Inline> = inlines
            .iter()
            .filter(|i| !matches!(i, Inline::Text(t) if t.trim().is_empty()))
            .collect();
        let block = match meaningful.as_slice() {
            [Inline::Link { url, content }] => Block::Button {
                label: content.clone(),
                url: url.clone(),
            },
            _ => Block::Paragraph(inlines),
        };
        self.blocks.push(block);
    }
}

fn raw_html(line: usize) -> Problem {
    problem(
        line,
        "raw HTML is not allowed in the letter: write Markdown (`*italic*`, `**bold**`, `[link](https://…)`)",
    )
}

/// True when `html` is one `<!-- … -->` comment and nothing else.
fn is_comment(html: &str) -> bool {
    let html = html.trim();
    html.starts_with("<!--") && html.ends_with("-->") && html.matches("-->").count() == 1
}

fn check_url(url: &str) -> Result<(), String> {
    if url.contains("{{") {
        return Err(format!(
            "fields are not allowed inside a link address: {url}"
        ));
    }
    match url::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "https" | "http" | "mailto") => Ok(()),
        _ => Err(format!(
            "{url:?} is not an absolute https:// (or mailto:) link"
        )),
    }
}

/// Splits template text into literal text and fields: `{{name}}`, `{{name|fallback}}`, and
/// `[[ … ]]` optional runs (not nested). Literal text gets the language's typography.
fn parse_fields(text: &str, line: usize, language: &str) -> Result<Vec<Inline>, String> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let next_field = rest.find("{{");
        let next_optional = rest.find("[[");
        let stray_close = ["}}", "]]"].into_iter().filter_map(|c| rest.find(c)).min();
        let next = [next_field, next_optional].into_iter().flatten().min();
        if let Some(close) = stray_close
            && next.is_none_or(|n| close < n)
        {
            return Err(format!("`{}` without its opening", &rest[close..close + 2]));
        }
        let Some(start) = next else {
            out.push(Inline::Text(typography::apply(language, rest)));
            break;
        };
        if start > 0 {
            out.push(Inline::Text(typography::apply(language, &rest[..start])));
        }
        if Some(start) == next_field {
            let end = rest[start..]
                .find("}}")
                .ok_or("`{{` without its closing `}}`")?
                + start;
            out.push(parse_field(&rest[start + 2..end], line, language)?);
            rest = &rest[end + 2..];
        } else {
            let end = rest[start..]
                .find("]]")
                .ok_or("`[[` without its closing `]]`")?
                + start;
            let inner = &rest[start + 2..end];
            if inner.contains("[[") {
                return Err("`[[ … ]]` cannot be nested".into());
            }
            let inner = parse_fields(inner, line, language)?;
            if !inner.iter().any(|i| matches!(i, Inline::Field { .. })) {
                return Err("`[[ … ]]` holds no `{{field}}`: it would always show".into());
            }
            out.push(Inline::Optional(inner));
            rest = &rest[end + 2..];
        }
    }
    Ok(out)
}

fn parse_field(inside: &str, line: usize, language: &str) -> Result<Inline, String> {
    let (name, fallback) = match inside.split_once('|') {
        Some((name, fallback)) => (name.trim(), Some(typography::apply(language, fallback))),
        None => (inside.trim(), None),
    };
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!(
            "`{{{{{inside}}}}}`: a field name is letters, digits and `_`, like `{{{{first_name}}}}`"
        ));
    }
    Ok(Inline::Field {
        name: name.to_owned(),
        fallback,
        line,
    })
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
    fn unbalanced_markers_are_errors() {
        for text in ["{{first_name", "a }} b", "[[ x ]]", "[[ {{a}}"] {
            assert!(parse_fields(text, 1, "fr").is_err(), "{text}");
        }
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
