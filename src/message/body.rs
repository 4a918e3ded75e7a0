//! The transfer encoding of a text part: exactly the bytes lettre's `Body::new` makes of a
//! `String`, made in one pass.
//!
//! lettre chooses 7bit, quoted-printable or base64 the way `email-encoding` does, turns bare LFs
//! into CRLF by inserting a byte before each one (moving the rest of the text every time), then
//! quoted-printable-encodes one character at a time. On a 14 KB letter that was a quarter of the
//! cost of each message. This module makes the same choice and the same bytes (the tests compare
//! them with lettre's on the shipped letter and on generated text), converting line endings as it
//! encodes. Base64, which a letter in Latin script never gets, is left to lettre.
//!
//! Why this file is over 400 lines: a third of it is the tests that prove the encoder byte for byte
//! against lettre's (the shipped letter, the edges of lines and escapes, known pieces, generated
//! text). Hand-written code earns its place that way; the proof stays beside what it proves, so
//! that whoever changes the encoder sees it. The encoder itself (the choice, the line walk, the
//! escapes) is one idea, under 300 lines.

use lettre::message::Body;
use lettre::message::header::ContentTransferEncoding;

/// Quoted-printable lines, soft breaks' `=` included, are at most this long (RFC 2045).
const QP_LINE: usize = 76;
/// email-encoding counts a line as too long for 7bit from this many bytes, line break included.
const SEVEN_BIT_LINE: usize = 76;

/// Whole lines every body of a campaign holds (the letter's paragraphs without fields), each
/// with its quoted-printable encoding, made once.
///
/// Quoted-printable starts afresh at each line break, so a piece that begins and ends a line
/// has the same encoding wherever it stands: a body is encoded by copying the encodings of the
/// known pieces it holds, in order, and encoding only what lies between them. Any text can be
/// encoded with any pieces: one that is not found where a line starts is simply not used.
#[derive(Debug, Clone, Default)]
pub struct Known {
    /// In the order bodies hold them.
    pieces: Vec<KnownPiece>,
}

#[derive(Debug, Clone)]
struct KnownPiece {
    text: String,
    /// `text` in quoted-printable.
    encoded: Vec<u8>,
    /// What choosing the encoding counts in `text`.
    ascii: bool,
    escaped: usize,
}

impl Known {
    /// Known `pieces`, in the order bodies hold them; those that do not end a line, or are
    /// empty, are left out.
    pub fn new<'a>(pieces: impl IntoIterator<Item = &'a str>) -> Known {
        let pieces = pieces
            .into_iter()
            .filter(|piece| piece.ends_with('\n'))
            .map(|piece| KnownPiece {
                text: piece.to_owned(),
                encoded: quoted_printable(piece.as_bytes()),
                ascii: piece.is_ascii(),
                escaped: count_escaped(piece.as_bytes()),
            })
            .collect();
        Known { pieces }
    }

    /// `text` as the body of a part: the encoding and the bytes of `Body::new(text)`.
    pub fn encode(&self, text: String) -> Body {
        // Where the known pieces stand; what the choice of encoding needs is counted only
        // between them.
        let bytes = text.as_bytes();
        let mut found = Vec::with_capacity(self.pieces.len());
        let mut done = 0;
        let (mut ascii, mut escaped) = (true, 0);
        for piece in &self.pieces {
            let Some(at) = find_at_line_start(bytes, done, piece.text.as_bytes()) else {
                continue;
            };
            let between = &bytes[done..at];
            ascii &= piece.ascii && between.is_ascii();
            escaped += piece.escaped + count_escaped(between);
            found.push((at, piece));
            done = at + piece.text.len();
        }
        ascii &= bytes[done..].is_ascii();
        escaped += count_escaped(&bytes[done..]);
        match choose(ascii, escaped, bytes.len(), || {
            seven_bit_line_too_long(bytes)
        }) {
            ContentTransferEncoding::SevenBit => {
                Body::dangerous_pre_encoded(crlf(bytes), ContentTransferEncoding::SevenBit)
            }
            ContentTransferEncoding::QuotedPrintable => Body::dangerous_pre_encoded(
                quoted_printable_with(bytes, &found),
                ContentTransferEncoding::QuotedPrintable,
            ),
            _ => Body::new(text),
        }
    }
}

/// `text` in quoted-printable, copying the encodings of the pieces `found` where they stand.
fn quoted_printable_with(text: &[u8], found: &[(usize, &KnownPiece)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + text.len() / 8 + 64);
    let mut done = 0;
    for &(at, piece) in found {
        quoted_printable_into(&mut out, &text[done..at]);
        out.extend_from_slice(&piece.encoded);
        done = at + piece.text.len();
    }
    quoted_printable_into(&mut out, &text[done..]);
    out
}

/// Where `piece` first stands in `text` from `from` (a line start) on, at the start of a line.
fn find_at_line_start(text: &[u8], from: usize, piece: &[u8]) -> Option<usize> {
    let mut at = from;
    loop {
        if text[at..].starts_with(piece) {
            return Some(at);
        }
        at += text[at..].iter().position(|&b| b == b'\n')? + 1;
    }
}

/// The encoding email-encoding chooses for UTF-8 text when the server is not known to take
/// 8-bit: 7bit for short ASCII lines, else quoted-printable unless over a third of the bytes
/// would need escaping (line breaks count), else base64.
fn choose(
    ascii: bool,
    escaped: usize,
    len: usize,
    line_too_long: impl FnOnce() -> bool,
) -> ContentTransferEncoding {
    if ascii && !line_too_long() {
        ContentTransferEncoding::SevenBit
    } else if escaped <= len / 3 {
        ContentTransferEncoding::QuotedPrintable
    } else {
        ContentTransferEncoding::Base64
    }
}

/// The bytes that count against quoted-printable when choosing: all but tab and printable ASCII.
fn count_escaped(text: &[u8]) -> usize {
    text.iter()
        .filter(|&&b| !matches!(b, b'\t' | b' '..=b'~'))
        .count()
}

/// email-encoding's measure: from one LF to the next (the first line from the start), and from
/// the last LF to the end.
fn seven_bit_line_too_long(text: &[u8]) -> bool {
    let mut last = 0;
    let mut lfs = text
        .iter()
        .enumerate()
        .filter_map(|(i, &b)| (b == b'\n').then_some(i));
    lfs.any(|i| i - std::mem::replace(&mut last, i) >= SEVEN_BIT_LINE)
        || text.len() - last >= SEVEN_BIT_LINE
}

/// `text` with every LF not already after a CR made a CRLF.
fn crlf(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + text.len() / 32 + 2);
    for line in lines(text) {
        out.extend_from_slice(line.content);
        if line.ends_with_break {
            out.extend_from_slice(b"\r\n");
        }
    }
    out
}

/// One line of text: what is before its line break (the break's CR excluded), and whether one
/// follows.
struct Line<'a> {
    content: &'a [u8],
    ends_with_break: bool,
}

/// The lines of `text` as CRLF conversion makes them: a LF ends a line, and a CR just before it
/// belongs to that break. The last line is the text after the last LF, even empty.
fn lines(text: &[u8]) -> impl Iterator<Item = Line<'_>> + '_ {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let current = rest?;
        match current.iter().position(|&b| b == b'\n') {
            Some(lf) => {
                rest = Some(&current[lf + 1..]);
                let content = &current[..lf];
                let content = content.strip_suffix(b"\r").unwrap_or(content);
                Some(Line {
                    content,
                    ends_with_break: true,
                })
            }
            None => {
                rest = None;
                Some(Line {
                    content: current,
                    ends_with_break: false,
                })
            }
        }
    })
}

/// True for the bytes quoted-printable writes as `=XX`: `=`, controls but tab, and non-ASCII.
fn needs_escape(byte: u8) -> bool {
    !matches!(byte, b'\t' | b' '..=b'<' | b'>'..=b'~')
}

/// `text` in quoted-printable, line breaks made CRLF: what `quoted_printable::encode` makes of
/// `text` after lettre's CRLF conversion, soft breaks in the same places.
fn quoted_printable(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + text.len() / 8 + 64);
    quoted_printable_into(&mut out, text);
    out
}

/// Appends `text` in quoted-printable to `out`, which is empty or ends a line.
fn quoted_printable_into(out: &mut Vec<u8>, text: &[u8]) {
    for line in lines(text) {
        let mut encoder = QpLine {
            out: &mut *out,
            on_line: 0,
            last_start: 0,
        };
        encoder.line(line.content);
        if line.ends_with_break {
            out.extend_from_slice(b"\r\n");
        }
    }
}

/// Encodes one line into `out`, with the `quoted_printable` crate's rules for soft breaks.
struct QpLine<'o> {
    out: &'o mut Vec<u8>,
    /// Bytes on the current output line.
    on_line: usize,
    /// Where the last thing appended starts: a soft break that would not fit after it goes
    /// before it instead.
    last_start: usize,
}

impl QpLine<'_> {
    fn line(&mut self, content: &[u8]) {
        let mut i = 0;
        while i < content.len() {
            let byte = content[i];
            if QP_LINE - self.on_line >= 3 && !needs_escape(byte) {
                // A run of plain bytes, as long as fits before a soft break.
                let room = QP_LINE - self.on_line - 2;
                let run = content[i..]
                    .iter()
                    .take(room)
                    .take_while(|&&b| !needs_escape(b))
                    .count();
                self.out.extend_from_slice(&content[i..i + run]);
                self.on_line += run;
                self.last_start = self.out.len();
                i += run;
                continue;
            }
            if needs_escape(byte) {
                self.append(&escape(byte));
            } else {
                self.append(&[byte]);
            }
            i += 1;
        }
        // A space or tab must not end an encoded line: the last one is escaped.
        if let Some(&last @ (b' ' | b'\t')) = self.out.last() {
            self.out.pop();
            self.on_line -= 1;
            self.append(&escape(last));
        }
    }

    fn append(&mut self, encoded: &[u8]) {
        if self.on_line + encoded.len() > QP_LINE {
            if self.on_line == QP_LINE {
                // No room for the `=`: the soft break goes before the last thing appended.
                self.on_line = self.out.len() - self.last_start;
                self.out
                    .splice(self.last_start..self.last_start, b"=\r\n".iter().copied());
            } else {
                self.out.extend_from_slice(b"=\r\n");
                self.on_line = 0;
            }
        }
        self.out.extend_from_slice(encoded);
        self.on_line += encoded.len();
        self.last_start = self.out.len() - encoded.len();
    }
}

fn escape(byte: u8) -> [u8; 3] {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    [
        b'=',
        HEX[usize::from(byte >> 4)],
        HEX[usize::from(byte & 0xf)],
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lettre(text: &str) -> (ContentTransferEncoding, Vec<u8>) {
        let body = Body::new(text.to_owned());
        (body.encoding(), body.into_vec())
    }

    fn ours(text: &str) -> (ContentTransferEncoding, Vec<u8>) {
        let body = Known::default().encode(text.to_owned());
        (body.encoding(), body.into_vec())
    }

    fn same_as_lettre(text: &str) {
        let (encoding, bytes) = ours(text);
        let (expected_encoding, expected) = lettre(text);
        assert_eq!(encoding, expected_encoding, "{text:?}");
        assert!(
            bytes == expected,
            "{text:?}\nours:   {:?}\nlettre: {:?}",
            String::from_utf8_lossy(&bytes),
            String::from_utf8_lossy(&expected)
        );
    }

    #[test]
    fn the_shipped_letter_in_both_parts() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        for golden in ["tests/golden/letter.fr.txt", "tests/golden/letter.fr.html"] {
            let text = std::fs::read_to_string(root.join(golden)).unwrap();
            same_as_lettre(&text);
            same_as_lettre(&text.replace('\n', "\r\n"));
        }
    }

    #[test]
    fn edges_of_lines_and_escapes() {
        let cases = [
            "",
            "a",
            "\n",
            "\n\n",
            "court\n",
            "trailing space \nand tab\t\nend ",
            "é",
            "lone \r cr, cr at end\r",
            "cr before crlf\r\r\nx",
            "= signs == everywhere =",
            &"x".repeat(75),
            &"x".repeat(76),
            &"x".repeat(77),
            &format!("{}é", "x".repeat(73)),
            &format!("{}é", "x".repeat(74)),
            &format!("{} \n", "x".repeat(75)),
            &format!("{}=\n{}", "x".repeat(74), "y".repeat(200)),
            &format!("ascii\n{}\nshort", "z".repeat(75)),
            "Привет, мир! Привет, мир! Привет, мир!",
        ];
        for case in cases {
            same_as_lettre(case);
        }
    }

    #[test]
    fn known_pieces_give_the_same_bytes() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let html = std::fs::read_to_string(root.join("tests/golden/letter.fr.html")).unwrap();
        // Pieces as a template cuts them: whole lines, in order, with text between them.
        let lines: Vec<&str> = html.split_inclusive('\n').collect();
        let pieces: Vec<String> = lines.chunks(3).map(|c| c[1..].concat()).collect();
        let known = Known::new(pieces.iter().map(String::as_str));
        let (_, expected) = lettre(&html);
        assert_eq!(known.encode(html.clone()).into_vec(), expected);
        // Pieces that are not there, or not at a line start, or out of order, are not used.
        let odd = [
            "absent\n".to_owned(),
            "=\"0\" border=\"0\"\n".to_owned(),
            lines[9..12].concat(),
            lines[3..5].concat(),
        ];
        let odd = Known::new(odd.iter().map(String::as_str));
        assert_eq!(odd.encode(html.clone()).into_vec(), expected);
        for text in ["", "x", "absent\n", "é\nabsent\nabsent\n\nabsent\n "] {
            assert_eq!(
                odd.encode(text.to_owned()).into_vec(),
                lettre(text).1,
                "{text:?}"
            );
        }
    }

    #[test]
    fn generated_text() {
        let pieces = [
            "a",
            "mot ",
            " ",
            "\t",
            "=",
            "é",
            "\u{a0}",
            "\u{202f}",
            "€",
            "\n",
            "\r\n",
            "\r",
            "<p>",
            "&amp;",
            "~",
            "\u{1f4ec}",
        ];
        let mut rng = fastrand::Rng::with_seed(4);
        for _ in 0..3000 {
            let len = rng.usize(0..400);
            let text: String = (0..len)
                .map(|_| {
                    // Mostly letters, so that long lines and runs are common.
                    if rng.u8(..) < 170 {
                        "abcdefghij"
                    } else {
                        pieces[rng.usize(..pieces.len())]
                    }
                })
                .collect();
            same_as_lettre(&text);
        }
    }
}
