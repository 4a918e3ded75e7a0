//! Which of a campaign's letters a person gets: the value of their language column (`fr`,
//! `en-GB`, `FR_ca`, or nothing) matched against the languages the campaign has a letter in.
//!
//! The match is RFC 4647's "lookup", loosened for what lists hold: case does not count, `_`
//! reads as `-`, and a tag is shortened from the right until a letter's tag is found (`fr-CA`
//! → `fr`); failing that, a letter of the same primary language serves (`en-GB` gets `en-US`).
//! An empty or unknown value gets the default letter. Choosing never fails: a row is never
//! rejected for its language (`check` reports the values it did not know).
//!
//! Pure and small: a lookup per person, made once per message, with no allocation.

/// The languages a campaign has a letter in, and the column that chooses among them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Languages {
    /// Each letter's tag, as the campaign file writes it, in the campaign's order.
    tags: Vec<String>,
    /// The index in `tags` of the letter for empty and unknown values.
    default: usize,
    /// The recipient column holding each person's language.
    column: String,
}

/// How a value found its letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Match {
    /// The value is a letter's tag (case and `_` aside).
    Exact,
    /// The value, shortened or by its primary language, matched a letter (`fr-CA` → `fr`).
    Fallback,
    /// No value: the default letter.
    Empty,
    /// A value no letter matches: the default letter.
    Unknown,
}

impl Languages {
    /// `tags` must hold at least one tag, and `default` be one of its indexes.
    pub fn new(tags: Vec<String>, default: usize, column: String) -> Languages {
        assert!(default < tags.len(), "the default is one of the letters");
        Languages {
            tags,
            default,
            column,
        }
    }

    /// The recipient column that chooses the letter.
    pub fn column(&self) -> &str {
        &self.column
    }

    /// Each letter's tag, in the campaign's order.
    pub fn tags(&self) -> &[String] {
        &self.tags
    }

    /// The index of the default letter.
    pub fn default(&self) -> usize {
        self.default
    }

    /// The index of the letter for a person whose language column holds `value`, and how it
    /// was found.
    pub fn choose(&self, value: Option<&str>) -> (usize, Match) {
        let value = value.map(str::trim).unwrap_or("");
        if value.is_empty() {
            return (self.default, Match::Empty);
        }
        // Shorten from the right: `zh-Hant-TW`, `zh-Hant`, `zh`.
        let mut candidate = value;
        let mut kind = Match::Exact;
        loop {
            if let Some(index) = self.tags.iter().position(|tag| same_tag(tag, candidate)) {
                return (index, kind);
            }
            kind = Match::Fallback;
            match candidate.rfind(['-', '_']) {
                Some(at) => candidate = &candidate[..at],
                None => break,
            }
        }
        // A letter of the same primary language, whatever its region.
        let wanted = primary(value);
        match self
            .tags
            .iter()
            .position(|tag| primary(tag).eq_ignore_ascii_case(wanted))
        {
            Some(index) => (index, Match::Fallback),
            None => (self.default, Match::Unknown),
        }
    }
}

/// The primary language of a tag: `fr` of `fr-CA`.
pub fn primary(tag: &str) -> &str {
    tag.split(['-', '_']).next().unwrap_or("")
}

/// True when `tag` is French (`fr`, `fr-CA`, `FR`): French typography and words.
pub fn is_french(tag: &str) -> bool {
    primary(tag).eq_ignore_ascii_case("fr")
}

/// Two tags are the same when they differ only by case and by `_` for `-`.
fn same_tag(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes().zip(b.bytes()).all(|(x, y)| {
            let norm = |c: u8| {
                if c == b'_' {
                    b'-'
                } else {
                    c.to_ascii_lowercase()
                }
            };
            norm(x) == norm(y)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fr_en() -> Languages {
        Languages::new(vec!["fr".into(), "en".into()], 0, "language".into())
    }

    #[test]
    fn exact_tags_in_any_case() {
        let languages = fr_en();
        assert_eq!(languages.choose(Some("fr")), (0, Match::Exact));
        assert_eq!(languages.choose(Some("en")), (1, Match::Exact));
        assert_eq!(languages.choose(Some(" EN ")), (1, Match::Exact));
        assert_eq!(languages.choose(Some("Fr")), (0, Match::Exact));
    }

    #[test]
    fn a_region_falls_back_to_its_language() {
        let languages = fr_en();
        assert_eq!(languages.choose(Some("fr-CA")), (0, Match::Fallback));
        assert_eq!(languages.choose(Some("en-GB")), (1, Match::Fallback));
        assert_eq!(languages.choose(Some("en_us")), (1, Match::Fallback));
        assert_eq!(languages.choose(Some("EN-Latn-GB")), (1, Match::Fallback));
    }

    #[test]
    fn empty_and_unknown_values_get_the_default() {
        let languages = Languages::new(vec!["en".into(), "fr".into()], 1, "lang".into());
        assert_eq!(languages.choose(None), (1, Match::Empty));
        assert_eq!(languages.choose(Some("  ")), (1, Match::Empty));
        assert_eq!(languages.choose(Some("de")), (1, Match::Unknown));
        assert_eq!(languages.choose(Some("english")), (1, Match::Unknown));
        assert_eq!(languages.choose(Some("-")), (1, Match::Unknown));
        assert_eq!(languages.column(), "lang");
    }

    #[test]
    fn the_longest_matching_tag_wins() {
        let languages = Languages::new(
            vec!["fr".into(), "fr-CA".into(), "en-US".into()],
            0,
            "language".into(),
        );
        assert_eq!(languages.choose(Some("fr-ca")), (1, Match::Exact));
        assert_eq!(languages.choose(Some("fr-CA-x-qc")), (1, Match::Fallback));
        assert_eq!(languages.choose(Some("fr-BE")), (0, Match::Fallback));
        // No `en`: the same primary language serves.
        assert_eq!(languages.choose(Some("en-GB")), (2, Match::Fallback));
        assert_eq!(languages.choose(Some("en")), (2, Match::Fallback));
    }

    #[test]
    fn french_is_told_by_its_primary_language() {
        assert!(is_french("fr") && is_french("FR-ca") && is_french("fr_BE"));
        assert!(!is_french("en") && !is_french("fro") && !is_french(""));
    }
}
