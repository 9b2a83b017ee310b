//! Reply snippets: text with `{{placeholders}}` filled from the contact, the rep and the
//! ticket. Parsing refuses unknown placeholders up front (when a snippet is configured or
//! created), so a rep never sends a customer a literal `{{contact.frist_name}}`; rendering
//! refuses a placeholder with no value unless it gives a fallback (`{{contact.first_name|there}}`).

use std::fmt;

/// Every placeholder a snippet may use.
pub const PLACEHOLDERS: &[&str] = &[
    "contact.name",
    "contact.first_name",
    "contact.email",
    "rep.name",
    "rep.first_name",
    "rep.email",
    "ticket.id",
];

/// Why a snippet cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SnippetError {
    #[error("must not be empty")]
    Empty,
    #[error("a \"{{{{\" at character {0} is never closed with \"}}}}\"")]
    Unclosed(usize),
    #[error("unknown placeholder{} {}; known are {}", plural(.0), braces(.0), braces_all())]
    Unknown(Vec<String>),
    #[error(
        "no value for {} here; give a fallback like {{{{{}|…}}}}",
        braces(.0),
        .0.first().map(String::as_str).unwrap_or_default()
    )]
    Missing(Vec<String>),
}

fn plural(names: &[String]) -> &'static str {
    if names.len() == 1 { "" } else { "s" }
}

fn braces(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("{{{{{n}}}}}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn braces_all() -> String {
    braces(
        &PLACEHOLDERS
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>(),
    )
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Text(String),
    Slot {
        key: String,
        fallback: Option<String>,
    },
}

/// A parsed snippet whose placeholders are all known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    pieces: Vec<Piece>,
}

/// What placeholders are filled with; `None` is a value the conversation does not have.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Values {
    pub contact_name: Option<String>,
    pub contact_email: Option<String>,
    pub rep_name: Option<String>,
    pub rep_email: Option<String>,
    pub ticket_id: Option<String>,
}

impl Values {
    fn get(&self, key: &str) -> Option<String> {
        let first = |name: &Option<String>| {
            name.as_deref()
                .and_then(|n| n.split_whitespace().next())
                .map(str::to_owned)
        };
        let value = match key {
            "contact.name" => self.contact_name.clone(),
            "contact.first_name" => first(&self.contact_name),
            "contact.email" => self.contact_email.clone(),
            "rep.name" => self.rep_name.clone(),
            "rep.first_name" => first(&self.rep_name),
            "rep.email" => self.rep_email.clone(),
            "ticket.id" => self.ticket_id.clone(),
            _ => None,
        };
        value.filter(|v| !v.trim().is_empty())
    }
}

/// Reads a snippet's text, refusing unclosed braces and unknown placeholders (all of them
/// named at once).
pub fn parse(text: &str) -> Result<Template, SnippetError> {
    if text.trim().is_empty() {
        return Err(SnippetError::Empty);
    }
    let mut pieces = Vec::new();
    let mut unknown = Vec::new();
    let mut rest = text;
    let mut offset = 0;
    while let Some(start) = rest.find("{{") {
        if start > 0 {
            pieces.push(Piece::Text(rest[..start].to_owned()));
        }
        let inner_start = start + 2;
        let Some(len) = rest[inner_start..].find("}}") else {
            return Err(SnippetError::Unclosed(
                text[..offset + start].chars().count(),
            ));
        };
        let inner = &rest[inner_start..inner_start + len];
        let (key, fallback) = match inner.split_once('|') {
            Some((key, fallback)) => (key.trim(), Some(fallback.trim().to_owned())),
            None => (inner.trim(), None),
        };
        if !PLACEHOLDERS.contains(&key) && !unknown.iter().any(|u| u == key) {
            unknown.push(key.to_owned());
        }
        pieces.push(Piece::Slot {
            key: key.to_owned(),
            fallback,
        });
        let consumed = inner_start + len + 2;
        offset += consumed;
        rest = &rest[consumed..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest.to_owned()));
    }
    if !unknown.is_empty() {
        return Err(SnippetError::Unknown(unknown));
    }
    Ok(Template { pieces })
}

impl Template {
    /// The placeholders used, each once, in order of first use.
    pub fn placeholders(&self) -> Vec<String> {
        let mut keys: Vec<String> = Vec::new();
        for piece in &self.pieces {
            if let Piece::Slot { key, .. } = piece
                && !keys.contains(key)
            {
                keys.push(key.clone());
            }
        }
        keys
    }

    /// Fills every placeholder; one without a value takes its fallback, and without one the
    /// whole rendering is refused (naming every such placeholder).
    pub fn render(&self, values: &Values) -> Result<String, SnippetError> {
        let mut out = String::new();
        let mut missing: Vec<String> = Vec::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Slot { key, fallback } => match (values.get(key), fallback) {
                    (Some(value), _) => out.push_str(&value),
                    (None, Some(fallback)) => out.push_str(fallback),
                    (None, None) => {
                        if !missing.contains(key) {
                            missing.push(key.clone());
                        }
                    }
                },
            }
        }
        if missing.is_empty() {
            Ok(out)
        } else {
            Err(SnippetError::Missing(missing))
        }
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => f.write_str(text)?,
                Piece::Slot {
                    key,
                    fallback: None,
                } => write!(f, "{{{{{key}}}}}")?,
                Piece::Slot {
                    key,
                    fallback: Some(fallback),
                } => write!(f, "{{{{{key}|{fallback}}}}}")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ana_and_alice() -> Values {
        Values {
            contact_name: Some("Ana María López".into()),
            contact_email: Some("ana@example.com".into()),
            rep_name: Some("Alice Doe".into()),
            rep_email: None,
            ticket_id: Some("tkt_1".into()),
        }
    }

    #[test]
    fn renders_every_placeholder_from_the_contact_the_rep_and_the_ticket() {
        let cases = [
            ("Hi {{contact.first_name}}!", "Hi Ana!"),
            ("Dear {{ contact.name }},", "Dear Ana María López,"),
            (
                "We wrote to {{contact.email}}.",
                "We wrote to ana@example.com.",
            ),
            ("— {{rep.name}}", "— Alice Doe"),
            ("{{rep.first_name}} here", "Alice here"),
            ("Ticket {{ticket.id}}", "Ticket tkt_1"),
            ("{{contact.first_name}} {{contact.first_name}}", "Ana Ana"),
            ("no placeholders at all", "no placeholders at all"),
            ("a lone { and } stay", "a lone { and } stay"),
        ];
        for (text, expected) in cases {
            let rendered = parse(text).unwrap().render(&ana_and_alice());
            assert_eq!(rendered.as_deref(), Ok(expected), "{text}");
        }
    }

    #[test]
    fn a_missing_value_takes_the_fallback_or_refuses_naming_the_placeholder() {
        let values = Values {
            contact_name: None,
            contact_email: Some("   ".into()),
            ..ana_and_alice()
        };
        let with_fallback = parse("Hi {{contact.first_name | there}}!").unwrap();
        assert_eq!(with_fallback.render(&values).unwrap(), "Hi there!");
        let without = parse("Hi {{contact.first_name}}, {{contact.email}} {{rep.email}}").unwrap();
        assert_eq!(
            without.render(&values),
            Err(SnippetError::Missing(vec![
                "contact.first_name".into(),
                "contact.email".into(),
                "rep.email".into()
            ]))
        );
        let message = without.render(&values).unwrap_err().to_string();
        assert!(message.contains("{{contact.first_name}}"), "{message}");
        assert!(message.contains("{{contact.first_name|…}}"), "{message}");
    }

    #[test]
    fn unknown_placeholders_are_refused_at_parse_time_all_named_at_once() {
        let err = parse("Hi {{contact.frist_name}}, I am {{rep.nick}} {{rep.nick}}").unwrap_err();
        assert_eq!(
            err,
            SnippetError::Unknown(vec!["contact.frist_name".into(), "rep.nick".into()])
        );
        let message = err.to_string();
        assert!(
            message.starts_with("unknown placeholders {{contact.frist_name}}, {{rep.nick}}"),
            "{message}"
        );
        assert!(message.contains("{{contact.first_name}}"), "{message}");
    }

    #[test]
    fn malformed_templates_are_refused() {
        assert_eq!(parse("  "), Err(SnippetError::Empty));
        assert_eq!(parse("Hi {{contact.name"), Err(SnippetError::Unclosed(3)));
        assert_eq!(parse("Olá {{x}} {{"), Err(SnippetError::Unclosed(10)));
        assert_eq!(parse("{{}}"), Err(SnippetError::Unknown(vec!["".into()])));
    }

    #[test]
    fn placeholders_are_listed_once_in_order_and_the_text_round_trips() {
        let text = "Hi {{contact.first_name|there}}, {{rep.name}} and {{contact.first_name}}";
        let template = parse(text).unwrap();
        assert_eq!(template.placeholders(), ["contact.first_name", "rep.name"]);
        assert_eq!(template.to_string(), text);
    }
}
