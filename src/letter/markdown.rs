//! The walk over pulldown-cmark's events that turns one section's Markdown into the tree's
//! blocks and inlines: paragraphs, a story's `## title`, emphasis, links, and a lone link as the
//! ask's button. Anything else (raw HTML, images, lists, code blocks) is a problem at its line;
//! a writer's `<!-- note -->` is let through and dropped.

use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd};

use super::fields::parse_fields;
use super::{Block, Inline, Problem, problem};

/// Walks pulldown-cmark's events for one section body and builds its blocks.
pub(super) struct SectionParser<'l> {
    first_line: usize,
    language: &'l str,
    pub(super) title: Option<Vec<Inline>>,
    pub(super) blocks: Vec<Block>,
    pub(super) problems: Vec<Problem>,
    pub(super) links: Vec<(String, usize)>,
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
    pub(super) fn new(first_line: usize, language: &'l str) -> Self {
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

    pub(super) fn parse(&mut self, body: &str) {
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
