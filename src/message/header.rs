//! Header lines within RFC 5322's 998 octets, whatever the recipient file or the campaign holds.
//!
//! lettre folds a header only at the spaces of its value (and RFC 2047 encoded-words, which it
//! cuts to 76 characters): a word longer than a line stays whole, so a display name of 1000
//! letters without a space, or a long link, would make a line a server refuses on every
//! connection. This module finds those cases before lettre formats the message: a display name
//! with such a word is written as encoded-words instead (which fold anywhere), and a header whose
//! words cannot fit (a link, which must not be cut) makes the message unbuildable, named, rather
//! than unsendable. Everything else keeps lettre's own bytes.

use std::fmt::Write as _;

use email_encoding::headers::{rfc2047, writer::EmailWriter};
use lettre::message::Mailbox;
use lettre::message::header::{HeaderName, HeaderValue};

use super::MAX_LINE;

/// The longest word of a display name (with the spaces before it) left to lettre: one that fits on a folded line of its own
/// with room to spare (RFC 5322 advises lines under 78 characters). Quoting at most doubles it
/// and the address adds at most 256 octets, so such a name never comes near [`MAX_LINE`].
const LONGEST_PLAIN_WORD: usize = 76;

/// The `header` (From, To, Reply-To) of `mailbox`, folded by us, when lettre's own encoding
/// could leave a line over [`MAX_LINE`]: its display name has a word too long to fold. `None`
/// when lettre's is safe (the usual case), so the message keeps lettre's bytes.
pub fn mailbox(header: &'static str, mailbox: &Mailbox) -> Option<HeaderValue> {
    let name = mailbox.name.as_deref()?;
    if longest_fold(name) <= LONGEST_PLAIN_WORD {
        return None;
    }
    let mut encoded = String::with_capacity(name.len() * 2 + 300);
    {
        // Writing to a `String` cannot fail.
        let mut writer = EmailWriter::new(&mut encoded, header.len() + ": ".len(), 0, false);
        let _ = rfc2047::encode(name, &mut writer);
        writer.space();
        let _ = writer.folding().write_str(&format!("<{}>", mailbox.email));
    }
    Some(HeaderValue::dangerous_new_pre_encoded(
        HeaderName::new_from_ascii_str(header),
        // What lettre parses back (`Headers::get`): the mailbox as text.
        mailbox.to_string(),
        encoded,
    ))
}

/// The longest piece lettre cannot cut in `text`: a word with the spaces before it, which lettre
/// carries onto the new line when it folds there (and trailing spaces, before the closing quote).
fn longest_fold(text: &str) -> usize {
    let (mut longest, mut spaces) = (0, 0);
    for (i, word) in text.split(' ').enumerate() {
        spaces += usize::from(i > 0);
        if !word.is_empty() {
            longest = longest.max(spaces + word.len());
            spaces = 0;
        }
    }
    longest.max(spaces)
}

/// How long the longest line lettre writes for an ASCII header `name: value` can be, once
/// over 76 octets: lettre folds before a word that would not fit in 76, so such a line is one
/// word, after the folding space (or after the name, when first).
pub fn longest_line(name: &str, value: &str) -> usize {
    let mut words = value.split(' ');
    let first = name.len() + ": ".len() + words.next().map_or(0, str::len);
    words.map(|word| 1 + word.len()).fold(first, usize::max)
}

/// True when lettre would write `name: value` within [`MAX_LINE`].
pub fn fits(name: &str, value: &str) -> bool {
    longest_line(name, value) <= MAX_LINE
}

#[cfg(test)]
mod tests {
    use super::*;

    fn formatted(value: HeaderValue) -> String {
        let mut headers = lettre::message::header::Headers::new();
        headers.insert_raw(value);
        headers.to_string()
    }

    #[test]
    fn ordinary_names_are_left_to_lettre() {
        for name in ["Zoé Durand", "Marie \"la grande\" Curie", &"a ".repeat(400)] {
            let to = Mailbox::new(Some(name.to_owned()), "z@example.com".parse().unwrap());
            assert!(mailbox("To", &to).is_none(), "{name}");
        }
    }

    #[test]
    fn pieces_lettre_cannot_cut() {
        assert_eq!(longest_fold("Zoé Durand"), 7);
        assert_eq!(longest_fold(&format!("a{}bc", " ".repeat(5))), 7);
        assert_eq!(longest_fold("a   "), 3);
        assert_eq!(longest_fold(""), 0);
    }

    #[test]
    fn a_long_word_is_encoded_and_folded() {
        let name = format!("Zoé {}", "\"x".repeat(600));
        let to = Mailbox::new(Some(name.clone()), "z@example.com".parse().unwrap());
        let text = formatted(mailbox("To", &to).unwrap());
        assert!(text.starts_with("To: =?utf-8?b?"), "{text}");
        assert!(text.ends_with(" <z@example.com>\r\n"), "{text}");
        assert!(text.lines().all(|line| line.len() <= 78), "{text}");
    }

    #[test]
    fn longest_line_is_what_lettre_writes() {
        for value in [
            "<mailto:a@example.org?subject=unsubscribe>, <https://example.org/x>".to_owned(),
            format!(
                "<mailto:a@example.org?subject=unsubscribe>, <https://example.org/{}>",
                "p".repeat(1200)
            ),
            format!("{} {}", "w".repeat(90), "v".repeat(30)),
        ] {
            let name = "List-Unsubscribe";
            let text = formatted(HeaderValue::new(
                HeaderName::new_from_ascii_str(name),
                value.clone(),
            ));
            let longest = text.split("\r\n").map(str::len).max().unwrap();
            assert_eq!(longest_line(name, &value), longest, "{text}");
        }
    }
}
