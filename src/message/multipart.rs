//! The body of a message: a `multipart/alternative` of the text and HTML parts (inside a
//! `multipart/mixed` with the attachments when there are some, see [`super::attachment`]), formatted here
//! so that its `Content-Type` is a header of the message (and under its DKIM signature), with
//! the parts every person shares encoded once ([`KnownParts`]). Both are proved against lettre:
//! the same bytes as its own multipart, and the same message with or without the known parts.

use lettre::Message;
use lettre::message::header::{ContentTransferEncoding, ContentType, MIME_VERSION_1_0};
use lettre::message::{Body, MultiPart, SinglePart};

use super::attachment::{self, Attachment};
use super::body;
use crate::render::{FixedParts, Rendered};

#[derive(Debug, Default)]
pub(super) struct KnownParts {
    text: body::Known,
    html: body::Known,
}

impl KnownParts {
    /// The parts of the letter that read the same for everyone, encoded once.
    pub(super) fn new(parts: &FixedParts) -> Self {
        KnownParts {
            text: body::Known::new(parts.text.iter().map(String::as_str)),
            html: body::Known::new(parts.html.iter().map(String::as_str)),
        }
    }
}

/// The message with a `multipart/alternative` body (text first, HTML last), its `Content-Type`
/// a header of the message itself.
///
/// lettre writes a multipart's `Content-Type` with the body, out of the headers its DKIM signer
/// sees, so the signature could never cover it. Formatting the multipart first and attaching it
/// as a raw 7-bit body (its parts are quoted-printable or base64) makes the same bytes with every
/// header signable.
pub(super) fn multipart_alternative(
    builder: lettre::message::MessageBuilder,
    rendered: Rendered,
    known: &KnownParts,
    attachments: &[Attachment],
) -> Result<Message, lettre::error::Error> {
    let text = known.text.encode(rendered.text);
    let html = known.html.encode(rendered.html);
    // An empty multipart/alternative: its Content-Type, with a fresh boundary.
    let multipart = MultiPart::alternative().build();
    let boundary = multipart.boundary();
    // RFC 2045 allows only 7bit, 8bit or binary for a multipart; its parts are already encoded,
    // so it is ASCII with short lines: 7bit. (lettre's own 7-bit check wants lines under 76
    // characters, which quoted-printable's 76-character lines miss by one.)
    let content_type = multipart
        .headers()
        .get::<ContentType>()
        .filter(|_| text.as_ref().is_ascii() && html.as_ref().is_ascii());
    match content_type {
        Some(content_type) if attachments.is_empty() => builder
            .header(MIME_VERSION_1_0)
            .header(content_type)
            .body(Body::dangerous_pre_encoded(
                alternative_body(&boundary, &text, &html),
                ContentTransferEncoding::SevenBit,
            )),
        // With attachments, the alternative goes first in a multipart/mixed, its Content-Type
        // a header of the message in the same way. Not by lettre's fallback below: the
        // attachments are parts already formatted, and a message never leaves without them.
        _ if !attachments.is_empty() => {
            let (content_type, body) = attachment::mixed_body(
                &boundary,
                &alternative_body(&boundary, &text, &html),
                attachments,
            );
            builder
                .header(MIME_VERSION_1_0)
                .header(content_type)
                .body(Body::dangerous_pre_encoded(
                    body,
                    ContentTransferEncoding::SevenBit,
                ))
        }
        // Not expected (every part is encoded to ASCII); the message is still right, only its
        // Content-Type stays out of the signature.
        _ => builder.multipart(
            multipart
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_PLAIN)
                        .body(text),
                )
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_HTML)
                        .body(html),
                ),
        ),
    }
}

/// The body of a multipart/alternative of `text` and `html` (already encoded), as lettre's
/// `MultiPart::formatted` writes it after the headers, written once into a buffer of its size.
fn alternative_body(boundary: &str, text: &Body, html: &Body) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + html.len() + 4 * boundary.len() + 256);
    for (content_type, body) in [
        (ContentType::TEXT_PLAIN, text),
        (ContentType::TEXT_HTML, html),
    ] {
        out.extend_from_slice(b"--");
        out.extend_from_slice(boundary.as_bytes());
        out.extend_from_slice(b"\r\n");
        // The part's headers and blank line, as lettre formats them: an empty part, less the
        // line break that ends its (empty) body.
        let empty = SinglePart::builder()
            .header(content_type)
            .body(Body::dangerous_pre_encoded(Vec::new(), body.encoding()))
            .formatted();
        out.extend_from_slice(&empty[..empty.len() - 2]);
        out.extend_from_slice(body.as_ref());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"--");
    out.extend_from_slice(boundary.as_bytes());
    out.extend_from_slice(b"--\r\n");
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::SystemTime;

    use super::*;
    use crate::message::Composer;
    use crate::unsubscribe::Unsubscribe;

    #[test]
    fn alternative_body_is_what_lettre_formats() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let read = |name| std::fs::read_to_string(root.join("tests/golden").join(name)).unwrap();
        for (text, html) in [
            (read("letter.fr.txt"), read("letter.fr.html")),
            ("short ascii\n".to_owned(), "<p>é</p>".to_owned()),
        ] {
            let boundary = "0oVZ2r6AoLAhLlb0gPNSKy6BEqdS2IfwxrcbUuo1";
            let lettre = MultiPart::alternative()
                .boundary(boundary)
                .singlepart(SinglePart::plain(text.clone()))
                .singlepart(SinglePart::html(html.clone()))
                .formatted();
            let start = lettre.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
            let known = body::Known::default();
            let ours = alternative_body(boundary, &known.encode(text), &known.encode(html));
            assert_eq!(
                String::from_utf8_lossy(&ours),
                String::from_utf8_lossy(&lettre[start..])
            );
        }
    }

    #[test]
    fn fixed_parts_change_no_byte_of_the_messages() {
        use crate::campaign::Campaign;
        use crate::letter::Letter;
        use crate::recipients::{RecipientReader, Row};
        use crate::render::{Frame, Template};
        use crate::unsubscribe::Secret;

        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let campaign = Campaign::load(&root.join("campaign.toml")).unwrap();
        let letter = Letter::load(&campaign.letter_path, &campaign.language).unwrap();
        let settings = campaign.unsubscribe.clone().unwrap();
        let unsubscribe = Arc::new(Unsubscribe {
            campaign_id: campaign.id.clone(),
            mailto: settings.mailto,
            url: settings.url,
            footer: settings.footer,
            link_text: settings.link_text,
            secret: Secret::new(&"k".repeat(32)).unwrap(),
        });
        let csv = "email,first_name,last_name,amount\nzoe@example.com,Zoé,Durand,40\n\
                   a@example.com,,,\nb@example.com,<script>,X,\"1\n000\"\n";
        let date = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
        // Both parts' boundaries are random: the same for comparing.
        let formatted = |message: Message| {
            let text = String::from_utf8(message.formatted()).unwrap();
            let start = text.find("boundary=\"").unwrap() + "boundary=\"".len();
            text.replace(&text[start..start + 40], "BOUNDARY")
        };
        for with_unsubscribe in [false, true] {
            let frame = Frame {
                subject: &campaign.subject,
                preheader: &campaign.preheader,
                language: &campaign.language,
                unsubscribe: with_unsubscribe.then_some(&*unsubscribe),
            };
            let mut plain = Composer::new(
                &campaign.id,
                campaign.from.clone(),
                campaign.reply_to.clone(),
                &campaign.subject,
            );
            if with_unsubscribe {
                plain = plain.with_unsubscribe(Arc::clone(&unsubscribe));
            }
            let template = Template::new(&letter, &frame);
            let prepared = plain.clone().with_fixed_parts(&template.fixed_parts());
            let mut reader = RecipientReader::from_reader(
                std::path::Path::new("t.csv"),
                Box::new(std::io::Cursor::new(csv.as_bytes().to_vec())),
                &campaign.name_columns,
            )
            .unwrap();
            let mut people = 0;
            while let Some(row) = reader.next_row().unwrap() {
                let Row::Valid(person) = row else {
                    panic!("{row:?}")
                };
                let rendered = template.render(&person);
                let a = plain.compose(&person, rendered.clone(), date).unwrap();
                let b = prepared.compose(&person, rendered, date).unwrap();
                assert_eq!(formatted(a), formatted(b));
                people += 1;
            }
            assert_eq!(people, 3);
        }
    }
}
