//! Files attached to a message: each made into its MIME part (content type by extension,
//! `Content-Disposition: attachment` with an RFC 2231 file name, base64 wrapped at 76) once,
//! and the `multipart/mixed` body that puts the letter's `multipart/alternative` first and the
//! attachments after it.
//!
//! A file shared by every message is encoded once per campaign and its bytes copied into each
//! message: base64 of a 200 KB report for every person would cost more than the letter itself.

use std::sync::Arc;

use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Body, MultiPart};

/// One attached file as a finished MIME part: its headers, blank line and base64 body.
#[derive(Debug, Clone)]
pub struct Attachment {
    part: Arc<[u8]>,
}

impl Attachment {
    /// The part for a file named `filename` (its last path component is what the reader sees)
    /// holding `bytes`.
    pub fn new(filename: &str, bytes: Vec<u8>) -> Attachment {
        let content_type = ContentType::parse(content_type(filename))
            .expect("the table holds only valid media types");
        // Always base64: lettre would pick 7bit for an ASCII file, whose line ends a relay may
        // rewrite; base64 keeps every file byte for byte.
        let body = Body::new_with_encoding(bytes, ContentTransferEncoding::Base64)
            .expect("any bytes can be base64");
        let part = lettre::message::Attachment::new(filename.to_owned())
            .body(body, content_type)
            .formatted();
        Attachment { part: part.into() }
    }

    /// The encoded part's size in octets.
    pub fn encoded_len(&self) -> usize {
        self.part.len()
    }
}

/// The media type of a file by its extension: the types a letter's attachments are made of
/// (documents, images, archives, calendar invitations). Anything else is
/// `application/octet-stream`, which every client offers to save. A table of a few lines
/// rather than a crate of thousands: the reader's client, not this type, decides what opens it.
pub fn content_type(filename: &str) -> &'static str {
    let extension = filename
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase())
        .unwrap_or_default();
    match extension.as_str() {
        "pdf" => "application/pdf",
        "txt" => "text/plain; charset=utf-8",
        "csv" => "text/csv; charset=utf-8",
        "html" | "htm" => "text/html; charset=utf-8",
        "ics" => "text/calendar; charset=utf-8",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "svg" => "image/svg+xml",
        "zip" => "application/zip",
        "odt" => "application/vnd.oasis.opendocument.text",
        "ods" => "application/vnd.oasis.opendocument.spreadsheet",
        "doc" => "application/msword",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xls" => "application/vnd.ms-excel",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "pptx" => "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "mp3" => "audio/mpeg",
        "mp4" => "video/mp4",
        _ => "application/octet-stream",
    }
}

/// True for the file types mailbox providers refuse to deliver (executables and scripts).
pub fn blocked_type(filename: &str) -> bool {
    const BLOCKED: &[&str] = &[
        "exe", "bat", "cmd", "com", "js", "jse", "vbs", "vbe", "scr", "jar", "msi", "ps1", "pif",
        "wsf", "wsh", "hta", "cpl", "lnk", "reg", "apk", "app", "dll",
    ];
    filename
        .rsplit_once('.')
        .is_some_and(|(_, ext)| BLOCKED.contains(&ext.to_ascii_lowercase().as_str()))
}

/// The `multipart/mixed` body around `alternative` (a formatted `multipart/alternative` body
/// with its boundary `inner`) and `attachments`, and its `Content-Type`.
pub(super) fn mixed_body(
    inner: &str,
    alternative: &[u8],
    attachments: &[Attachment],
) -> (ContentType, Vec<u8>) {
    // An empty multipart/mixed: its Content-Type, with a fresh boundary.
    let multipart = MultiPart::mixed().build();
    let outer = multipart.boundary();
    let content_type = multipart
        .headers()
        .get::<ContentType>()
        .expect("a multipart has a Content-Type");
    let size = alternative.len() + attachments.iter().map(Attachment::encoded_len).sum::<usize>();
    let mut out = Vec::with_capacity(size + 8 * outer.len() + 256);
    let boundary = |out: &mut Vec<u8>| {
        out.extend_from_slice(b"--");
        out.extend_from_slice(outer.as_bytes());
        out.extend_from_slice(b"\r\n");
    };
    boundary(&mut out);
    out.extend_from_slice(b"Content-Type: multipart/alternative;\r\n boundary=\"");
    out.extend_from_slice(inner.as_bytes());
    out.extend_from_slice(b"\"\r\n\r\n");
    out.extend_from_slice(alternative);
    for attachment in attachments {
        out.extend_from_slice(b"\r\n");
        boundary(&mut out);
        out.extend_from_slice(&attachment.part);
    }
    out.extend_from_slice(b"\r\n--");
    out.extend_from_slice(outer.as_bytes());
    out.extend_from_slice(b"--\r\n");
    (content_type, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::MimeHeaders;

    #[test]
    fn types_by_extension() {
        assert_eq!(content_type("rapport-annuel.PDF"), "application/pdf");
        assert_eq!(content_type("photo.jpeg"), "image/jpeg");
        assert_eq!(content_type("sans-extension"), "application/octet-stream");
        assert_eq!(content_type("archive.tar.xz"), "application/octet-stream");
        assert!(blocked_type("setup.EXE"));
        assert!(blocked_type("a.js"));
        assert!(!blocked_type("reçu.pdf"));
        assert!(!blocked_type("exe"));
    }

    #[test]
    fn mixed_body_parses_back_with_the_bytes_and_names() {
        let pdf: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
        let attachments = [
            Attachment::new("reçu fiscal 2026.pdf", pdf.clone()),
            Attachment::new("notes.txt", b"ligne\nsans CR\r\n".to_vec()),
        ];
        // Every base64 line within 76 characters.
        let part = String::from_utf8(attachments[0].part.to_vec()).unwrap();
        let body = &part[part.find("\r\n\r\n").unwrap() + 4..];
        assert!(body.lines().all(|line| line.len() <= 76), "{body}");
        assert!(part.contains("filename*"), "RFC 2231 name: {part}");

        let inner = "INNERBOUNDARY";
        let alternative = b"--INNERBOUNDARY\r\nContent-Type: text/plain; charset=utf-8\r\n\
            Content-Transfer-Encoding: 7bit\r\n\r\nBonjour\r\n--INNERBOUNDARY\r\n\
            Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n\
            <p>Bonjour</p>\r\n--INNERBOUNDARY--\r\n";
        let (content_type, body) = mixed_body(inner, alternative, &attachments);
        let mut headers = lettre::message::header::Headers::new();
        headers.set(content_type);
        let mut message =
            format!("From: a@example.org\r\nMIME-Version: 1.0\r\n{headers}\r\n").into_bytes();
        message.extend_from_slice(&body);
        let parsed = mail_parser::MessageParser::default()
            .parse(&message)
            .unwrap();
        assert_eq!(parsed.body_text(0).as_deref(), Some("Bonjour"));
        assert_eq!(parsed.body_html(0).as_deref(), Some("<p>Bonjour</p>"));
        let found: Vec<_> = parsed.attachments().collect();
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].attachment_name(), Some("reçu fiscal 2026.pdf"));
        assert_eq!(found[0].contents(), pdf.as_slice());
        let ct = found[0].content_type().unwrap();
        assert_eq!((ct.ctype(), ct.subtype()), ("application", Some("pdf")));
        assert_eq!(found[1].attachment_name(), Some("notes.txt"));
        assert_eq!(found[1].contents(), b"ligne\nsans CR\r\n");
    }
}
