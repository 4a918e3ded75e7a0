//! The letter's syntax tree: its sections, their blocks, and the inline runs in them, recipient
//! fields among them. Plain data: parsing builds it once a campaign, rendering walks it for every
//! person.

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
    pub(super) const ALL: [(&'static str, SectionKind); 9] = [
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

    pub(super) fn from_name(name: &str) -> Option<SectionKind> {
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
