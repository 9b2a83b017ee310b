//! The one rule for NUL (U+0000) in outside text: it is stored as U+FFFD.
//!
//! PostgreSQL text cannot hold a NUL and SQLite can, so the stores would differ, and a
//! webhook refused for one is lost (a platform takes a 4xx as final). Both entry points
//! apply this rule before anything reaches a store: ingress to the events an adapter
//! parsed, the API to every JSON body. Nothing here knows about stores.

use std::borrow::Cow;

use serde_json::Value;

use super::{ContactPart, Identifier, LocationPart, Media, MediaPart, Part, UnsupportedPart};

/// What a NUL becomes: the character Unicode sets aside for one that could not be kept.
pub const REPLACEMENT: char = '\u{FFFD}';

/// Replaces every NUL in the texts a value holds with [`REPLACEMENT`].
pub trait ReplaceNul {
    /// Replaces in place; a value without a NUL is left untouched (and not copied).
    fn replace_nul(&mut self);
}

impl ReplaceNul for String {
    fn replace_nul(&mut self) {
        if self.contains('\0') {
            *self = self.replace('\0', "\u{FFFD}");
        }
    }
}

impl<T: ReplaceNul> ReplaceNul for Option<T> {
    fn replace_nul(&mut self) {
        if let Some(value) = self {
            value.replace_nul();
        }
    }
}

impl<T: ReplaceNul> ReplaceNul for Vec<T> {
    fn replace_nul(&mut self) {
        self.iter_mut().for_each(ReplaceNul::replace_nul);
    }
}

impl ReplaceNul for Value {
    fn replace_nul(&mut self) {
        match self {
            Value::String(s) => s.replace_nul(),
            Value::Array(items) => items.replace_nul(),
            Value::Object(map) => {
                if map.keys().any(|k| k.contains('\0')) {
                    *map = std::mem::take(map)
                        .into_iter()
                        .map(|(mut k, v)| {
                            k.replace_nul();
                            (k, v)
                        })
                        .collect();
                }
                map.values_mut().for_each(ReplaceNul::replace_nul);
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
}

impl ReplaceNul for Identifier {
    fn replace_nul(&mut self) {
        self.kind.replace_nul();
        self.value.replace_nul();
    }
}

impl ReplaceNul for Media {
    fn replace_nul(&mut self) {
        let Media {
            platform_ref,
            url,
            mime_type,
            size_bytes: _,
            filename,
            duration_s: _,
        } = self;
        [platform_ref, url, mime_type, filename]
            .into_iter()
            .for_each(ReplaceNul::replace_nul);
    }
}

impl ReplaceNul for Part {
    fn replace_nul(&mut self) {
        match self {
            Part::Text(t) => t.text.replace_nul(),
            Part::Image(m)
            | Part::Video(m)
            | Part::Audio(m)
            | Part::VoiceNote(m)
            | Part::Sticker(m)
            | Part::File(m) => {
                let MediaPart { media, caption } = m;
                media.replace_nul();
                caption.replace_nul();
            }
            Part::Location(LocationPart { name, address, .. }) => {
                name.replace_nul();
                address.replace_nul();
            }
            Part::Contact(ContactPart {
                name,
                phones,
                emails,
            }) => {
                name.replace_nul();
                phones.replace_nul();
                emails.replace_nul();
            }
            Part::Unsupported(UnsupportedPart { platform_type, raw }) => {
                platform_type.replace_nul();
                raw.replace_nul();
            }
        }
    }
}

/// A JSON document with every NUL it holds (JSON can only spell one `\u0000`) replaced by
/// [`REPLACEMENT`], in keys and values alike; borrowed when there is none.
pub fn replace_nul_in_json(json: &[u8]) -> Cow<'_, [u8]> {
    const NUL: &[u8] = br"\u0000";
    if !json.windows(NUL.len()).any(|w| w == NUL) {
        return Cow::Borrowed(json);
    }
    let mut out = json.to_vec();
    let mut i = 0;
    while i < out.len() {
        if out[i] == b'\\' {
            if out[i + 1..].starts_with(b"u0000") {
                out[i + 2..i + 6].copy_from_slice(b"FFFD");
            }
            // The escaped character is never the start of another escape (`\\u0000` is a
            // backslash and the text "u0000").
            i += 2;
        } else {
            i += 1;
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_text_in_a_part_loses_its_nul() {
        let mut parts = Part::parse_list(
            &json!([
                {"type": "text", "text": "a\u{0}b"},
                {"type": "file", "caption": "c\u{0}", "media": {"url": "https://x/\u{0}",
                 "platform_ref": "\u{0}", "mime_type": "a/\u{0}", "filename": "f\u{0}.pdf"}},
                {"type": "location", "latitude": 1, "longitude": 2, "name": "\u{0}", "address": "\u{0}"},
                {"type": "contact", "name": "\u{0}", "phones": ["\u{0}"], "emails": ["\u{0}"]},
                {"type": "po\u{0}ll", "q\u{0}": ["\u{0}", {"\u{0}": "\u{0}"}]}
            ]),
            "parts",
        )
        .unwrap();
        parts.replace_nul();
        let text = serde_json::to_string(&parts).unwrap();
        assert!(!text.contains(r"\u0000"), "{text}");
        assert_eq!(text.matches(REPLACEMENT).count(), 17, "{text}");
    }

    #[test]
    fn a_json_nul_becomes_the_replacement_character_and_nothing_else_changes() {
        let cases: [(&str, &str); 5] = [
            (r#"{"a":"x"}"#, "x"),
            (r#"{"a":"x\u0000y"}"#, "x\u{FFFD}y"),
            // An escaped backslash followed by the text u0000: no NUL at all.
            (r#"{"a":"\\u0000"}"#, r"\u0000"),
            (r#"{"a":"\\\u0000"}"#, "\\\u{FFFD}"),
            (
                r#"{"a":"\u0000\u0000\"\u0000"}"#,
                "\u{FFFD}\u{FFFD}\"\u{FFFD}",
            ),
        ];
        for (json, text) in cases {
            let cleaned = replace_nul_in_json(json.as_bytes());
            let value: Value = serde_json::from_slice(&cleaned).unwrap();
            assert_eq!(value["a"], text, "{json}");
        }
        let key: Value = serde_json::from_slice(&replace_nul_in_json(br#"{"\u0000":1}"#)).unwrap();
        assert_eq!(key["\u{FFFD}"], 1);
    }
}
