//! Internal comments: notes reps leave on a conversation for each other. They sit in the
//! thread with the messages but are never sent, never count as a response, and never move
//! a ticket. This module reads who a comment mentions.

/// The reps a comment mentions, each once by their configured id, in order of first
/// mention: every `@id` that starts a word of `text`, then the ids in `listed`, matched to
/// `reps` ignoring case. An `@word` that is no rep is plain text (an address, a handle, a
/// price); an id in `listed` was asked for by name, so any that is no rep is refused, all
/// named at once, and a typo never leaves a colleague silently un-notified.
pub fn mentions(text: &str, listed: &[String], reps: &[&str]) -> Result<Vec<String>, Vec<String>> {
    let rep = |id: &str| {
        let id = id.to_lowercase();
        reps.iter().find(move |r| r.to_lowercase() == id)
    };
    let mut found: Vec<String> = Vec::new();
    let mut unknown: Vec<String> = Vec::new();
    let mut add = |id: &str| {
        if !found.iter().any(|f| f == id) {
            found.push(id.to_owned());
        }
    };
    for id in in_text(text) {
        if let Some(id) = rep(&id) {
            add(id);
        }
    }
    for id in listed {
        match rep(id) {
            Some(id) => add(id),
            None if !unknown.contains(id) => unknown.push(id.clone()),
            None => {}
        }
    }
    if unknown.is_empty() {
        Ok(found)
    } else {
        Err(unknown)
    }
}

/// Characters a mentioned id is made of.
fn id_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '.')
}

/// `@id` where the `@` starts a word (so `ana@example.com` mentions nobody); a trailing
/// `.` or `-` ends the sentence rather than the id.
fn in_text(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut previous: Option<char> = None;
    for (i, c) in text.char_indices() {
        let starts_word = previous.is_none_or(|p| !id_char(p) && p != '@');
        previous = Some(c);
        if c != '@' || !starts_word {
            continue;
        }
        let rest = &text[i + 1..];
        let end = rest.find(|c: char| !id_char(c)).unwrap_or(rest.len());
        let id = rest[..end].trim_end_matches(['.', '-']);
        if !id.is_empty() {
            out.push(id.to_owned());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPS: &[&str] = &["alice", "bob", "jean-luc", "o.neil"];

    #[test]
    fn mentions_are_read_from_the_text_and_the_list_once_each() {
        let cases: [(&str, &[&str], &[&str]); 9] = [
            ("check the discount with @bob", &[], &["bob"]),
            ("@alice and @bob, see above", &[], &["alice", "bob"]),
            ("ask @bob. Then @bob again (@alice)", &[], &["bob", "alice"]),
            ("@jean-luc and @o.neil.", &[], &["jean-luc", "o.neil"]),
            ("write to ana@example.com", &[], &[]),
            ("an @ alone, @@ or @- mention nobody", &[], &[]),
            ("no mentions", &["alice"], &["alice"]),
            ("@bob", &["alice", "bob"], &["bob", "alice"]),
            ("", &[], &[]),
        ];
        for (text, listed, expected) in cases {
            let listed: Vec<String> = listed.iter().map(|s| s.to_string()).collect();
            assert_eq!(
                mentions(text, &listed, REPS),
                Ok(expected.iter().map(|s| s.to_string()).collect()),
                "{text:?} {listed:?}"
            );
        }
    }

    #[test]
    fn an_at_word_that_is_no_rep_is_plain_text_and_ids_match_ignoring_case() {
        let cases: [(&str, &[&str]); 5] = [
            ("@ghost said @bob", &["bob"]),
            ("@Bob and @ALICE", &["bob", "alice"]),
            ("@bob then @BOB", &["bob"]),
            ("@Jean-Luc.", &["jean-luc"]),
            ("costs @5 at @midnight", &[]),
        ];
        for (text, expected) in cases {
            assert_eq!(
                mentions(text, &[], REPS),
                Ok(expected.iter().map(|s| s.to_string()).collect()),
                "{text:?}"
            );
        }
        assert_eq!(
            mentions("", &["Alice".into()], REPS),
            Ok(vec!["alice".to_owned()])
        );
    }

    #[test]
    fn listed_ids_that_are_no_rep_are_refused_all_named() {
        assert_eq!(
            mentions(
                "@bob ask @ghost",
                &["nobody".into(), "nobody".into(), "x".into()],
                REPS
            ),
            Err(vec!["nobody".to_owned(), "x".to_owned()])
        );
    }
}
