//! Is this POST body the one-click form? RFC 8058 §3.2: the body holds `List-Unsubscribe=
//! One-Click`, sent as `application/x-www-form-urlencoded` (what the confirmation page's form
//! and most mailbox providers send) or as `multipart/form-data` (which the RFC allows too).
//!
//! Only that one field is looked for, in a body already bounded in size. Multipart is read here
//! rather than with a crate (multer would bring a streaming parser and its dependencies for a
//! body of a few hundred bytes held whole): split at the boundary, find the part named
//! `List-Unsubscribe`, compare its value. Anything else is not the form, and unsubscribes nobody.

use crate::unsubscribe::ONE_CLICK;

/// True when `body`, of the given `Content-Type` (absent: taken as urlencoded, as curl's `-d`
/// without a type would be read by most servers), carries `List-Unsubscribe=One-Click`.
pub fn is_one_click(content_type: Option<&str>, body: &[u8]) -> bool {
    let (name, value) = ONE_CLICK.split_once('=').expect("name=value");
    let media = content_type
        .map(|t| {
            t.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    match media.as_str() {
        "" | "application/x-www-form-urlencoded" => {
            url::form_urlencoded::parse(body).any(|(k, v)| k == name && v == value)
        }
        "multipart/form-data" => content_type.and_then(boundary).is_some_and(|boundary| {
            multipart_field(body, &boundary, name) == Some(value.as_bytes())
        }),
        _ => false,
    }
}

/// The `boundary` parameter of a multipart content type, unquoted.
fn boundary(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|parameter| {
        let (key, value) = parameter.split_once('=')?;
        if !key.trim().eq_ignore_ascii_case("boundary") {
            return None;
        }
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        // RFC 2046: 1 to 70 characters.
        (1..=70).contains(&value.len()).then(|| value.to_owned())
    })
}

/// The value of the part named `name` in a multipart body, if there is exactly such a part.
fn multipart_field<'a>(body: &'a [u8], boundary: &str, name: &str) -> Option<&'a [u8]> {
    let delimiter = format!("--{boundary}");
    let delimiter = delimiter.as_bytes();
    let mut found = None;
    // The first delimiter may open the body; every later one follows a CRLF.
    let mut rest = body.strip_prefix(delimiter).or_else(|| {
        let at = find(body, &[b"\r\n", delimiter].concat())?;
        Some(&body[at + 2 + delimiter.len()..])
    })?;
    loop {
        if rest.starts_with(b"--") {
            return found;
        }
        let part_start = rest.strip_prefix(b"\r\n")?;
        let end = find(part_start, &[b"\r\n", delimiter].concat())?;
        let part = &part_start[..end];
        rest = &part_start[end + 2 + delimiter.len()..];
        let (headers, value) = match find(part, b"\r\n\r\n") {
            Some(at) => (&part[..at], &part[at + 4..]),
            None => continue,
        };
        if names(headers, name) {
            if found.is_some() {
                // Two fields of that name: not a form we can read one way only.
                return None;
            }
            found = Some(value);
        }
    }
}

/// True when a part's headers have `Content-Disposition: form-data; name="<name>"`.
fn names(headers: &[u8], name: &str) -> bool {
    let Ok(headers) = std::str::from_utf8(headers) else {
        return false;
    };
    headers.split("\r\n").any(|line| {
        let Some((key, value)) = line.split_once(':') else {
            return false;
        };
        key.trim().eq_ignore_ascii_case("content-disposition")
            && value.split(';').skip(1).any(|parameter| {
                parameter.split_once('=').is_some_and(|(k, v)| {
                    k.trim().eq_ignore_ascii_case("name") && v.trim().trim_matches('"') == name
                })
            })
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    const URLENCODED: Option<&str> = Some("application/x-www-form-urlencoded");

    #[test]
    fn urlencoded_bodies() {
        assert!(is_one_click(URLENCODED, b"List-Unsubscribe=One-Click"));
        assert!(is_one_click(None, b"List-Unsubscribe=One-Click"));
        assert!(is_one_click(
            Some("Application/X-WWW-Form-Urlencoded; charset=utf-8"),
            b"x=1&List-Unsubscribe=One-Click"
        ));
        assert!(!is_one_click(URLENCODED, b""));
        assert!(!is_one_click(URLENCODED, b"List-Unsubscribe=Two-Clicks"));
        assert!(!is_one_click(
            Some("text/plain"),
            b"List-Unsubscribe=One-Click"
        ));
        assert!(!is_one_click(URLENCODED, &[0xff, 0xfe, b'=', 0]));
    }

    /// As curl -F writes it.
    const CURL: &[u8] = b"--------------------------d74496d66958873e\r\n\
Content-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\n\
One-Click\r\n\
--------------------------d74496d66958873e--\r\n";

    #[test]
    fn multipart_bodies() {
        let ct = "multipart/form-data; boundary=------------------------d74496d66958873e";
        assert!(is_one_click(Some(ct), CURL));
        let quoted = "multipart/form-data; boundary=\"------------------------d74496d66958873e\"";
        assert!(is_one_click(Some(quoted), CURL));
        // A preamble, another field first, and the field with a filename-less extra parameter.
        let body = b"preamble\r\n--XyZ\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\n\
1\r\n--XyZ\r\ncontent-disposition: form-data; name=List-Unsubscribe\r\n\
Content-Type: text/plain\r\n\r\nOne-Click\r\n--XyZ--";
        assert!(is_one_click(Some("multipart/form-data;boundary=XyZ"), body));
        // Wrong boundary, wrong value, the field twice, cut short, no boundary at all.
        assert!(!is_one_click(
            Some("multipart/form-data; boundary=other"),
            CURL
        ));
        let two_clicks = String::from_utf8_lossy(CURL).replace("One-Click", "Two-Clicks");
        assert!(!is_one_click(Some(ct), two_clicks.as_bytes()));
        let twice = String::from_utf8_lossy(CURL).replacen(
            "--------------------------d74496d66958873e--",
            "--------------------------d74496d66958873e\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\nOne-Click\r\n--------------------------d74496d66958873e--",
            1,
        );
        assert!(!is_one_click(Some(ct), twice.as_bytes()));
        assert!(!is_one_click(Some(ct), &CURL[..CURL.len() - 50]));
        assert!(!is_one_click(Some("multipart/form-data"), CURL));
        for cut in 0..CURL.len() {
            // No panic on any prefix.
            let _ = is_one_click(Some(ct), &CURL[..cut]);
        }
    }
}
