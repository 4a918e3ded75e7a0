//! The campaign's letters: the one letter of `letter`, `subject` and `preheader`, or with
//! `[letters.<language>]` one per language, the campaign's `language` naming the default (the
//! letter of people whose language column is empty or names no letter).
//!
//! Each letter carries its unsubscribe footer's words in its own language: those its section
//! gives, else missive's own in French or English. A language with neither is refused when the
//! campaign has an unsubscribe link, rather than a footer in the wrong language.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::CampaignError;
use super::error::line_of;
use super::file::LetterSection;
use super::value::{Language, OneLine, Preheader, Subject};
use crate::language::is_french;

/// One letter of a campaign and what goes with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LetterSettings {
    /// Its language tag, as the campaign file writes it (`fr`, `en-GB`).
    pub language: String,
    pub letter_path: PathBuf,
    pub subject: String,
    pub preheader: String,
    /// The unsubscribe footer's words before the link, and the link's, typeset for the
    /// language (used when the campaign has `[unsubscribe]`).
    pub footer: String,
    pub link_text: String,
}

/// The column that names a person's language when `language_column` names none.
pub const DEFAULT_LANGUAGE_COLUMN: &str = "language";

/// What the campaign file says of its letters, as read.
pub(super) struct LettersAsWritten {
    pub(super) language: String,
    pub(super) subject: Option<toml::Spanned<Subject>>,
    pub(super) preheader: Option<toml::Spanned<Preheader>>,
    pub(super) letter: Option<toml::Spanned<PathBuf>>,
    pub(super) letters: Option<BTreeMap<String, toml::Spanned<LetterSection>>>,
    pub(super) language_column: Option<toml::Spanned<String>>,
    /// `[unsubscribe]`'s own words, if it has any and says them.
    pub(super) unsubscribe: Option<(Option<OneLine>, Option<OneLine>)>,
}

/// The letters, the default first, and the language column when there are `[letters]`.
pub(super) fn letters(
    written: LettersAsWritten,
    path: &Path,
    text: &str,
    base: &Path,
) -> Result<(Vec<LetterSettings>, Option<String>), CampaignError> {
    let invalid = |start: usize, field: &str, problem: String| CampaignError::InvalidAt {
        path: path.to_owned(),
        line: line_of(text, start),
        field: field.to_owned(),
        problem,
    };
    let LettersAsWritten {
        language,
        subject,
        preheader,
        letter,
        letters,
        language_column,
        unsubscribe,
    } = written;
    let has_unsubscribe = unsubscribe.is_some();
    let (shared_footer, shared_link) = unsubscribe.unwrap_or_default();
    let Some(letters) = letters else {
        if let Some(column) = language_column {
            return Err(invalid(
                column.span().start,
                "language_column",
                "chooses among [letters], and the campaign has none: add [letters.<language>] \
                 sections or remove it"
                    .into(),
            ));
        }
        let missing = |field: &str| CampaignError::Syntax {
            path: path.to_owned(),
            message: format!(
                "missing field `{field}`: a campaign names its letter, subject and preheader, \
                 or one of each per language in [letters.<language>] sections"
            ),
        };
        let (footer, link_text) = words(&language, shared_footer, shared_link, true)
            .expect("English stands in for any language");
        return Ok((
            vec![LetterSettings {
                letter_path: base.join(letter.ok_or_else(|| missing("letter"))?.into_inner()),
                subject: subject.ok_or_else(|| missing("subject"))?.into_inner().0,
                preheader: preheader
                    .ok_or_else(|| missing("preheader"))?
                    .into_inner()
                    .0,
                language,
                footer,
                link_text,
            }],
            None,
        ));
    };
    // The top-level letter may stand for the default language's, when [letters] has none in it:
    // a campaign of one letter gains languages by adding [letters.en] alone.
    let mut letters = letters;
    let has_default = letters
        .keys()
        .any(|tag| tag.eq_ignore_ascii_case(&language));
    if let (false, Some(letter), Some(subject), Some(preheader)) =
        (has_default, &letter, &subject, &preheader)
    {
        let section = LetterSection {
            letter: letter.get_ref().clone(),
            subject: Subject(subject.get_ref().0.clone()),
            preheader: Preheader(preheader.get_ref().0.clone()),
            footer: None,
            link_text: None,
        };
        let span = letter.span();
        letters.insert(language.clone(), toml::Spanned::new(span, section));
    } else if let Some(start) = [
        subject.map(|s| ("subject", s.span().start)),
        preheader.map(|p| ("preheader", p.span().start)),
        letter.map(|l| ("letter", l.span().start)),
    ]
    .into_iter()
    .flatten()
    .next()
    {
        let (field, at) = start;
        return Err(invalid(
            at,
            field,
            format!("with [letters], each language has its own: move it into [letters.{language}]"),
        ));
    }
    let mut settings: Vec<LetterSettings> = Vec::with_capacity(letters.len());
    let (mut shared_footer, mut shared_link) = (shared_footer, shared_link);
    for (tag, section) in letters {
        let at = section.span().start;
        let field = format!("letters.{tag}");
        Language::try_from(tag.clone()).map_err(|problem| invalid(at, &field, problem))?;
        if let Some(same) = settings
            .iter()
            .find(|s| s.language.eq_ignore_ascii_case(&tag))
        {
            return Err(invalid(
                at,
                &field,
                format!("the same language as [letters.{}]: keep one", same.language),
            ));
        }
        let section = section.into_inner();
        let default = tag.eq_ignore_ascii_case(&language);
        // The default letter's words may come from [unsubscribe], as without [letters].
        let (own_footer, own_link) = if default {
            (
                section.footer.or_else(|| shared_footer.take()),
                section.link_text.or_else(|| shared_link.take()),
            )
        } else {
            (section.footer, section.link_text)
        };
        let (footer, link_text) =
            words(&tag, own_footer, own_link, !has_unsubscribe).ok_or_else(|| {
                invalid(
                    at,
                    &field,
                    "missive has unsubscribe words in French and English only: set `footer` \
                     and `link_text` in this section, in its language"
                        .into(),
                )
            })?;
        let letter = LetterSettings {
            language: tag,
            letter_path: base.join(section.letter),
            subject: section.subject.0,
            preheader: section.preheader.0,
            footer,
            link_text,
        };
        if default {
            settings.insert(0, letter);
        } else {
            settings.push(letter);
        }
    }
    if settings.is_empty() {
        return Err(CampaignError::Syntax {
            path: path.to_owned(),
            message: format!(
                "[letters] names no letter: add [letters.{language}] with its letter, subject \
                 and preheader, or remove [letters]"
            ),
        });
    }
    if !settings[0].language.eq_ignore_ascii_case(&language) {
        let others: Vec<&str> = settings.iter().map(|s| s.language.as_str()).collect();
        return Err(CampaignError::Syntax {
            path: path.to_owned(),
            message: format!(
                "`language = \"{language}\"` names the default letter, and [letters] has none in \
                 it ({}): add [letters.{language}] or set `language` to one of them",
                others.join(", ")
            ),
        });
    }
    let column = language_column
        .map(|c| c.into_inner())
        .unwrap_or_else(|| DEFAULT_LANGUAGE_COLUMN.to_owned());
    Ok((settings, Some(column)))
}

/// The unsubscribe footer's words in `language`, typeset: those given, else missive's own for
/// French and English (for any language when `any` is set: a campaign of one letter keeps the
/// English words it always had).
fn words(
    language: &str,
    footer: Option<OneLine>,
    link_text: Option<OneLine>,
    any: bool,
) -> Option<(String, String)> {
    let builtin = if is_french(language) {
        Some((
            "Vous ne souhaitez plus recevoir nos lettres ?",
            "Se désabonner en un clic",
        ))
    } else if any || crate::language::primary(language).eq_ignore_ascii_case("en") {
        Some((
            "No longer wish to receive our letters?",
            "Unsubscribe in one click",
        ))
    } else {
        None
    };
    let typeset = |value: Option<OneLine>, default: Option<&str>| {
        let value = value.map(|line| line.0).or(default.map(str::to_owned))?;
        Some(crate::typography::apply(language, value.trim()))
    };
    Some((
        typeset(footer, builtin.map(|b| b.0))?,
        typeset(link_text, builtin.map(|b| b.1))?,
    ))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::Campaign;

    const HEAD: &str = r#"
id = "t1"
from = "Équipe <dons@example.org>"
language = "fr"
recipients = "list.csv"
"#;

    const LETTERS: &str = r#"
[letters.en]
letter = "letter.en.md"
subject = "Our best fails"
preheader = "We make mistakes too."

[letters.fr]
letter = "letter.fr.md"
subject = "Nos meilleurs ratés"
preheader = "Nous aussi, nous faisons des erreurs."
"#;

    const UNSUBSCRIBE: &str = r#"
[unsubscribe]
mailto = "stop@example.org"
url = "https://example.org/stop"
"#;

    fn parse(text: &str) -> Result<Campaign, String> {
        Campaign::parse(Path::new("/c/campaign.toml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn the_default_letter_comes_first_and_fills_the_campaigns_fields() {
        let c = parse(&format!("{HEAD}{LETTERS}{UNSUBSCRIBE}")).unwrap();
        let languages: Vec<&str> = c.letters.iter().map(|l| l.language.as_str()).collect();
        assert_eq!(languages, ["fr", "en"]);
        assert_eq!(c.subject, "Nos meilleurs ratés");
        assert_eq!(c.letter_path, Path::new("/c/letter.fr.md"));
        assert_eq!(c.letters[1].letter_path, Path::new("/c/letter.en.md"));
        assert_eq!(c.language_column.as_deref(), Some("language"));
        // Each letter's footer in its language, French typography only in French.
        assert_eq!(
            c.letters[0].footer,
            "Vous ne souhaitez plus recevoir nos lettres\u{202f}?"
        );
        assert_eq!(
            c.letters[1].footer,
            "No longer wish to receive our letters?"
        );
        assert_eq!(c.unsubscribe.unwrap().footer, c.letters[0].footer);
    }

    #[test]
    fn one_letter_without_letters_as_before() {
        let text =
            format!("{HEAD}subject = \"S\"\npreheader = \"P\"\nletter = \"l.md\"\n{UNSUBSCRIBE}");
        let c = parse(&text).unwrap();
        assert_eq!(c.letters.len(), 1);
        assert_eq!(c.language_column, None);
        assert_eq!(c.letters[0].subject, "S");
        let missing = parse(&format!("{HEAD}subject = \"S\"\npreheader = \"P\"\n")).unwrap_err();
        assert!(missing.contains("missing field `letter`"), "{missing}");
    }

    #[test]
    fn the_top_level_letter_is_the_default_when_letters_has_none_in_its_language() {
        let english = &LETTERS[..LETTERS.find("[letters.fr]").unwrap()];
        let text =
            format!("{HEAD}subject = \"S\"\npreheader = \"P\"\nletter = \"l.md\"\n{english}");
        let c = parse(&text).unwrap();
        let languages: Vec<&str> = c.letters.iter().map(|l| l.language.as_str()).collect();
        assert_eq!(languages, ["fr", "en"]);
        assert_eq!(c.letters[0].subject, "S");
        assert_eq!(c.letter_path, Path::new("/c/l.md"));
        assert_eq!(c.language_column.as_deref(), Some("language"));
        // Half of a top-level letter is not one.
        let half = parse(&format!("{HEAD}subject = \"S\"\n{english}")).unwrap_err();
        assert!(half.contains("field `subject`"), "{half}");
    }

    #[test]
    fn mistakes_are_named_with_their_line() {
        let column = parse(&format!("{HEAD}language_column = \"lang\"\n{LETTERS}")).unwrap();
        assert_eq!(column.language_column.as_deref(), Some("lang"));
        let both = parse(&format!("{HEAD}subject = \"S\"\n{LETTERS}")).unwrap_err();
        assert!(
            both.contains(":6: field `subject`") && both.contains("[letters.fr]"),
            "{both}"
        );
        let no_default =
            parse(&format!("{}{LETTERS}", HEAD.replace("\"fr\"", "\"de\""))).unwrap_err();
        assert!(no_default.contains("add [letters.de]"), "{no_default}");
        let twice = parse(&format!(
            "{HEAD}{LETTERS}[letters.EN]\nletter = \"x\"\nsubject = \"s\"\npreheader = \"p\"\n"
        ))
        .unwrap_err();
        assert!(
            twice.contains("field `letters.en`") || twice.contains("field `letters.EN`"),
            "{twice}"
        );
        let german = format!(
            "{HEAD}{LETTERS}[letters.de]\nletter = \"x\"\nsubject = \"s\"\npreheader = \"p\"\n"
        );
        assert!(
            parse(&german).is_ok(),
            "no footer needed without [unsubscribe]"
        );
        let unworded = parse(&format!("{german}{UNSUBSCRIBE}")).unwrap_err();
        assert!(
            unworded.contains("field `letters.de`") && unworded.contains("`footer`"),
            "{unworded}"
        );
        let worded = german.replace(
            "preheader = \"p\"\n",
            "preheader = \"p\"\nfooter = \"Keine Briefe mehr?\"\nlink_text = \"Abmelden\"\n",
        );
        let c = parse(&format!("{worded}{UNSUBSCRIBE}")).unwrap();
        let de = c.letters.iter().find(|l| l.language == "de").unwrap();
        assert_eq!(de.link_text, "Abmelden");
        let empty = parse(&format!("{HEAD}[letters]\n")).unwrap_err();
        assert!(empty.contains("[letters] names no letter"), "{empty}");
        let stray =
            parse(&format!("{HEAD}language_column = \"l\"\nsubject = \"S\"\n")).unwrap_err();
        assert!(stray.contains("field `language_column`"), "{stray}");
    }
}
