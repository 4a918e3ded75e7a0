//! The `{{field}}` mini-language inside the letter's text: `{{name}}`, `{{name|fallback}}`, and
//! `[[ … ]]` runs shown only when every field inside has a value. Fields are cut out of the
//! literal text into nodes of the tree, never spliced into Markdown or HTML source. What the
//! language means, a value or its fallback and when a run shows, is here too; the renderer only
//! writes what these say.

use super::Inline;
use crate::typography;

/// Splits template text into literal text and fields: `{{name}}`, `{{name|fallback}}`, and
/// `[[ … ]]` optional runs (not nested). Literal text gets the language's typography.
pub(super) fn parse_fields(text: &str, line: usize, language: &str) -> Result<Vec<Inline>, String> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let next_field = rest.find("{{");
        let next_optional = rest.find("[[");
        let stray_close = ["}}", "]]"].into_iter().filter_map(|c| rest.find(c)).min();
        let next = [next_field, next_optional].into_iter().flatten().min();
        if let Some(close) = stray_close
            && next.is_none_or(|n| close < n)
        {
            return Err(format!("`{}` without its opening", &rest[close..close + 2]));
        }
        let Some(start) = next else {
            out.push(Inline::Text(typography::apply(language, rest)));
            break;
        };
        if start > 0 {
            out.push(Inline::Text(typography::apply(language, &rest[..start])));
        }
        if Some(start) == next_field {
            let end = rest[start..]
                .find("}}")
                .ok_or("`{{` without its closing `}}`")?
                + start;
            out.push(parse_field(&rest[start + 2..end], line, language)?);
            rest = &rest[end + 2..];
        } else {
            let end = rest[start..]
                .find("]]")
                .ok_or("`[[` without its closing `]]`")?
                + start;
            let inner = &rest[start + 2..end];
            if inner.contains("[[") {
                return Err("`[[ … ]]` cannot be nested".into());
            }
            let inner = parse_fields(inner, line, language)?;
            if !inner.iter().any(|i| matches!(i, Inline::Field { .. })) {
                return Err("`[[ … ]]` holds no `{{field}}`: it would always show".into());
            }
            out.push(Inline::Optional(inner));
            rest = &rest[end + 2..];
        }
    }
    Ok(out)
}

fn parse_field(inside: &str, line: usize, language: &str) -> Result<Inline, String> {
    let (name, fallback) = match inside.split_once('|') {
        Some((name, fallback)) => (name.trim(), Some(typography::apply(language, fallback))),
        None => (inside.trim(), None),
    };
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!(
            "`{{{{{inside}}}}}`: a field name is letters, digits and `_`, like `{{{{first_name}}}}`"
        ));
    }
    Ok(Inline::Field {
        name: name.to_owned(),
        fallback,
        line,
    })
}

/// Where a letter's fields get their values: a recipient's row, or anything else with names.
pub trait Fields {
    /// The value of field `name`; `None` or `Some("")` both mean "no value" (the fallback shows).
    fn field(&self, name: &str) -> Option<&str>;

    /// The address the message goes to, for the unsubscribe footer; `None` shows no footer.
    fn address(&self) -> Option<&str> {
        None
    }
}

/// The value `fields` gives field `name`, trimmed, or `fallback` (or nothing) when it has none.
pub(crate) fn field_value<'a>(
    fields: &'a dyn Fields,
    name: &str,
    fallback: Option<&'a str>,
) -> &'a str {
    match fields.field(name).map(str::trim) {
        Some(value) if !value.is_empty() => value,
        _ => fallback.unwrap_or(""),
    }
}

/// True when every field in `inlines` has a value: an `[[ … ]]` run shows only then.
pub(crate) fn all_present(inlines: &[Inline], fields: &dyn Fields) -> bool {
    inlines.iter().all(|inline| match inline {
        Inline::Field { name, .. } => fields.field(name).is_some_and(|v| !v.trim().is_empty()),
        Inline::Optional(c) | Inline::Emphasis(c) | Inline::Strong(c) => all_present(c, fields),
        Inline::Link { content, .. } => all_present(content, fields),
        Inline::Text(_) | Inline::LineBreak => true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unbalanced_markers_are_errors() {
        for text in ["{{first_name", "a }} b", "[[ x ]]", "[[ {{a}}"] {
            assert!(parse_fields(text, 1, "fr").is_err(), "{text}");
        }
    }
}
