//! Files attached to a message: each made into its MIME part (content type by extension,
//! `Content-Disposition: attachment` with an RFC 2231 file name, base64 wrapped at 76) once,
//! and the `multipart/mixed` body that puts the letter's `multipart/alternative` first and the
//! attachments after it.
//!
//! A file shared by every message is encoded once per campaign and its bytes copied into each
//! message: base64 of a 200 KB report for every person would cost more than the letter itself.

use std::path::{Path, PathBuf};
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

    /// The encoded part: its headers and base64 body.
    pub fn encoded(&self) -> &[u8] {
        &self.part
    }

    /// The encoded part's size in octets.
    pub fn encoded_len(&self) -> usize {
        self.part.len()
    }
}

/// `relative` resolved against `base`, refused when it leaves `base`: by `..`, by being absolute
/// elsewhere, or through a symbolic link. A campaign names files to send to every person; one
/// that leaves its folder is a mistake or a trap (`../../.ssh/id_rsa`).
pub fn inside(base: &Path, relative: &Path) -> Result<PathBuf, String> {
    use std::path::Component;
    let refuse = || {
        format!(
            "{} leaves the campaign's folder: attach only files inside it (copy the file there)",
            relative.display()
        )
    };
    // A campaign file named without a folder has "" for its folder.
    let base = if base.as_os_str().is_empty() {
        Path::new(".")
    } else {
        base
    };
    let joined = base.join(relative);
    let absolute_base = std::path::absolute(base).unwrap_or_else(|_| base.to_owned());
    let lexical_out = relative
        .components()
        .any(|c| matches!(c, Component::ParentDir))
        || (relative.is_absolute() && !relative.starts_with(&absolute_base));
    if lexical_out {
        return Err(refuse());
    }
    // Through links: where the file really is (a missing file is reported when it is read).
    if let (Ok(real), Ok(real_base)) = (joined.canonicalize(), base.canonicalize())
        && !real.starts_with(&real_base)
    {
        return Err(refuse());
    }
    Ok(joined)
}

/// Each person's own file: the recipient column that names it, relative to `base` (the
/// campaign's folder). Read when that person's message is composed, and dropped with it.
#[derive(Debug, Clone)]
pub struct PersonalFiles {
    pub column: String,
    pub base: PathBuf,
}

impl PersonalFiles {
    /// The file the row of `recipient` names, read and encoded; why not, in words that say
    /// what to do.
    pub(super) fn read(
        &self,
        recipient: &crate::recipients::Recipient,
    ) -> Result<Attachment, String> {
        let column = &self.column;
        let value = recipient.field(column).unwrap_or("").trim();
        if value.is_empty() {
            return Err(format!(
                "column `{column}` names no file: give this person's file, or remove the row"
            ));
        }
        let path = inside(&self.base, Path::new(value))?;
        let bytes = std::fs::read(&path).map_err(|e| {
            format!(
                "cannot read its attachment {} (column `{column}`): {e}: put the file there or \
                 correct the row",
                path.display()
            )
        })?;
        let name = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(Attachment::new(&name, bytes))
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
    let size = alternative.len()
        + attachments
            .iter()
            .map(Attachment::encoded_len)
            .sum::<usize>();
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
    fn paths_stay_inside_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path();
        std::fs::create_dir(base.join("docs")).unwrap();
        assert_eq!(
            inside(base, Path::new("docs/a.pdf")).unwrap(),
            base.join("docs/a.pdf")
        );
        assert!(inside(base, &base.join("docs/a.pdf")).is_ok());
        assert!(inside(Path::new(""), Path::new("a.pdf")).is_ok());
        for out in ["../a.pdf", "docs/../../a.pdf", "/etc/passwd"] {
            let refused = inside(base, Path::new(out)).unwrap_err();
            assert!(
                refused.contains("leaves the campaign's folder"),
                "{out}: {refused}"
            );
        }
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink("/etc", base.join("docs/etc")).unwrap();
            assert!(inside(base, Path::new("docs/etc/hostname")).is_err());
        }
    }

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
