//! Typography rules a language applies to the letter's literal text.
//!
//! Writers type ordinary spaces; French typesetting wants a non-breaking space before `: ; ! ?`,
//! inside `« »` and before a currency sign, so that a line never starts with a lone `?`. Applying
//! the rule here, once when the letter is loaded, keeps the template files easy to edit and keeps
//! recipient values untouched (rules apply to the letter's words, never to a person's data).

/// U+202F NARROW NO-BREAK SPACE: before `; ! ?` and inside guillemets.
const NARROW_NBSP: char = '\u{202F}';
/// U+00A0 NO-BREAK SPACE: before `:` and currency signs.
const NBSP: char = '\u{A0}';

/// Returns `text` with the typography of `language` (a tag such as `fr` or `fr-CA`) applied.
pub fn apply(language: &str, text: &str) -> String {
    let primary = language.split('-').next().unwrap_or("");
    if !primary.eq_ignore_ascii_case("fr") || !text.contains(' ') {
        return text.to_owned();
    }
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len() + 8);
    for (i, &c) in chars.iter().enumerate() {
        let next = chars.get(i + 1).copied();
        let previous = i.checked_sub(1).map(|p| chars[p]);
        let replacement = match (previous, c, next) {
            (_, ' ', Some(';' | '!' | '?' | '»')) => NARROW_NBSP,
            (Some('«'), ' ', _) => NARROW_NBSP,
            (_, ' ', Some(':' | '$' | '€' | '%')) => NBSP,
            _ => c,
        };
        out.push(replacement);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::apply;

    #[test]
    fn french_spaces() {
        assert_eq!(
            apply("fr", "Devinez quoi ? Eh oui ! ces « fails » : 25 $"),
            "Devinez quoi\u{202f}? Eh oui\u{202f}! ces «\u{202f}fails\u{202f}»\u{a0}: 25\u{a0}$"
        );
    }

    #[test]
    fn other_languages_untouched() {
        assert_eq!(apply("en", "What ? No !"), "What ? No !");
    }
}
