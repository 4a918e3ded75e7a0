//! Cutting the letter file into sections at its `::: kind` lines, and the rules sections keep:
//! one greeting first, one ask with its one button, one signature last, a title only on a story,
//! problems and lessons only after a story.

use super::{Block, Inline, Problem, Section, SectionKind, problem};

/// One section of the file before its Markdown is read: its kind, its `::: kind` line, and its
/// body with the line the body starts on.
pub(super) struct RawSection<'a> {
    pub(super) kind: SectionKind,
    pub(super) line: usize,
    pub(super) first_body_line: usize,
    pub(super) body: &'a str,
}

/// Cuts the file at its `::: kind` lines. The body of an unknown section is dropped (and
/// reported), not glued to the section before it.
pub(super) fn split_sections<'a>(
    text: &'a str,
    problems: &mut Vec<Problem>,
) -> Vec<RawSection<'a>> {
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

/// The section made of `raw`'s parsed `title` and `blocks`, with the rules that depend on its
/// kind: only a story has a title, and only the ask has a button.
pub(super) fn section(
    raw: &RawSection,
    title: Option<Vec<Inline>>,
    mut blocks: Vec<Block>,
    problems: &mut Vec<Problem>,
) -> Section {
    if (raw.kind == SectionKind::Story) != title.is_some() {
        problems.push(problem(
            raw.line,
            "a story, and only a story, starts with its title: `## Title`",
        ));
    }
    if raw.kind != SectionKind::Ask && blocks.iter().any(|b| matches!(b, Block::Button { .. })) {
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
    Section {
        kind: raw.kind,
        line: raw.line,
        title,
        blocks,
    }
}

/// The rules of the sections' order and number, each broken one a problem at its line.
pub(super) fn check_structure(sections: &[Section], problems: &mut Vec<Problem>) {
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
