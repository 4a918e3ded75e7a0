//! A campaign's letters prepared for rendering: one [`OneLetter`] for each language, each in its
//! own frame (its subject, preheader, `lang`, footer words), and the choice of a person's.
//!
//! Every letter is prepared once, when the campaign is loaded; rendering for a person is a
//! lookup of their language column ([`Languages::choose`]) and then the one letter's work. A
//! campaign of one letter has no choice to make, and renders as it always did.

use super::template::OneLetter;
use super::{FixedParts, Frame, Rendered};
use crate::language::Languages;
use crate::letter::{Fields, Letter};

/// The letters of a campaign, prepared once (each cut into what reads the same for everyone and
/// what holds fields), and how a person's is chosen.
#[derive(Debug)]
pub struct Template {
    /// In the order of `languages`' tags; one without `languages`.
    letters: Vec<OneLetter>,
    /// With several letters, which one a person gets.
    languages: Option<Languages>,
}

impl Template {
    /// Prepares the one letter of a campaign in `frame`.
    pub fn new(letter: &Letter, frame: &Frame) -> Template {
        Template {
            letters: vec![OneLetter::new(letter, frame)],
            languages: None,
        }
    }

    /// Prepares one letter for each language of `languages`, each in its frame, in the order
    /// of its tags (`letters` must hold one for each).
    pub fn per_language(letters: &[(&Letter, Frame)], languages: Languages) -> Template {
        assert_eq!(letters.len(), languages.tags().len(), "a letter a language");
        Template {
            letters: letters
                .iter()
                .map(|(letter, frame)| OneLetter::new(letter, frame))
                .collect(),
            languages: Some(languages),
        }
    }

    /// The languages and their column, when there are several letters.
    pub fn languages(&self) -> Option<&Languages> {
        self.languages.as_ref()
    }

    /// How many letters there are (one a language).
    pub fn len(&self) -> usize {
        self.letters.len()
    }

    /// Never: a template has at least one letter.
    pub fn is_empty(&self) -> bool {
        self.letters.is_empty()
    }

    /// The index of the letter the person whose values `fields` holds gets.
    pub fn choose(&self, fields: &dyn Fields) -> usize {
        match &self.languages {
            Some(languages) => languages.choose(fields.field(languages.column())).0,
            None => 0,
        }
    }

    /// Renders the person's own letter, as [`Template::choose`] chooses it.
    pub fn render(&self, fields: &dyn Fields) -> Rendered {
        self.render_letter(self.choose(fields), fields)
    }

    /// Renders letter `index` for the person whose values `fields` holds, whatever their
    /// language (what `check` does to see every letter).
    pub fn render_letter(&self, index: usize, fields: &dyn Fields) -> Rendered {
        let mut rendered = self.letters[index].render(fields);
        rendered.letter = index;
        rendered
    }

    /// What reads the same in every person's parts of the first (the default) letter, for
    /// [`Composer::with_fixed_parts`](crate::message::Composer::with_fixed_parts).
    pub fn fixed_parts(&self) -> FixedParts {
        self.fixed_parts_of(0)
    }

    /// The same, of letter `index`.
    pub fn fixed_parts_of(&self, index: usize) -> FixedParts {
        self.letters[index].fixed_parts()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::Path;

    use super::*;

    const FRENCH: &str = "::: greeting\nBonjour[[ {{first_name}}]] !\n\n::: ask\nUn don ?\n\n[Don](https://example.org/d)\n\n::: signature\nA\n";
    const ENGLISH: &str = "::: greeting\nHello[[ {{first_name}}]] !\n\n::: ask\nA gift ?\n\n[Give](https://example.org/d)\n\n::: signature\nA\n";

    #[test]
    fn each_person_gets_the_letter_of_their_language_in_its_frame() {
        let fr = Letter::parse(Path::new("fr.md"), FRENCH, "fr").unwrap();
        let en = Letter::parse(Path::new("en.md"), ENGLISH, "en").unwrap();
        let frame = |language, subject| Frame {
            subject,
            preheader: "",
            language,
            unsubscribe: None,
        };
        let languages = Languages::new(vec!["fr".into(), "en".into()], 0, "lang".into());
        let template = Template::per_language(
            &[(&fr, frame("fr", "Sujet")), (&en, frame("en", "Subject"))],
            languages,
        );
        let person = |lang: &'static str| -> HashMap<&str, &str> {
            [("lang", lang), ("first_name", "Zoé")]
                .into_iter()
                .collect()
        };
        for (lang, letter, words, button, html_lang) in [
            ("fr", 0, "Bonjour Zoé\u{202f}!", "Don\u{a0}: https", "fr"),
            ("en-GB", 1, "Hello Zoé !", "Give: https", "en"),
            ("", 0, "Bonjour Zoé\u{202f}!", "Don\u{a0}: https", "fr"),
            ("de", 0, "Bonjour Zoé\u{202f}!", "Don\u{a0}: https", "fr"),
        ] {
            // The button's colon in the text part: French spacing in French only.
            let text = template.render(&person(lang)).text;
            assert!(text.contains(button), "{lang}: {text}");
            let rendered = template.render(&person(lang));
            assert_eq!(rendered.letter, letter, "{lang}");
            assert!(
                rendered.text.starts_with(words),
                "{lang}: {}",
                rendered.text
            );
            assert!(
                rendered
                    .html
                    .contains(&format!("<html lang=\"{html_lang}\"")),
                "{lang}"
            );
        }
        assert_eq!(template.render_letter(1, &person("fr")).letter, 1);
        assert!(
            template
                .fixed_parts_of(1)
                .text
                .concat()
                .contains("A gift ?")
        );
    }
}
