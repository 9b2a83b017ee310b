//! Checks of the inbox, snippet and token-rep sections against the rest of the config:
//! every name they use must exist, and a channel belongs to one inbox at most.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::load::ConfigError;
use super::{ApiToken, InboxConfig, RepConfig, SnippetConfig};

/// Whether `id` may name an inbox or a snippet: they appear in URLs and query strings, so
/// like channel ids they use only letters, digits, '-' and '_'.
pub fn is_name(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Each inbox names existing channels, reps and teams; no channel is in two inboxes.
pub(super) fn check_inboxes(
    inboxes: &BTreeMap<String, InboxConfig>,
    channels: &HashSet<&str>,
    reps: &[RepConfig],
    errors: &mut Vec<ConfigError>,
) {
    let rep_ids: HashSet<&str> = reps.iter().map(|r| r.id.as_str()).collect();
    let teams: HashSet<&str> = reps
        .iter()
        .flat_map(|r| r.teams.iter().map(String::as_str))
        .collect();
    let mut owner: HashMap<&str, &str> = HashMap::new();
    for (id, inbox) in inboxes {
        let key = format!("inboxes.{id}");
        if !is_name(id) {
            errors.push(ConfigError::new(
                key.clone(),
                "inbox ids may use only letters, digits, '-' and '_'",
            ));
        }
        for channel in &inbox.channels {
            if !channels.contains(channel.as_str()) {
                errors.push(ConfigError::new(
                    format!("{key}.channels"),
                    format!("no channel {channel:?} in [channels]"),
                ));
            } else if let Some(other) = owner.insert(channel, id) {
                let message = if other == id {
                    format!("channel {channel:?} is listed twice")
                } else {
                    format!(
                        "channel {channel:?} is already in inbox {other:?}; a channel belongs to one inbox"
                    )
                };
                errors.push(ConfigError::new(format!("{key}.channels"), message));
            }
        }
        for user in inbox.users.iter().filter(|u| !rep_ids.contains(u.as_str())) {
            errors.push(ConfigError::new(
                format!("{key}.users"),
                format!("no rep {user:?} in [[reps]]"),
            ));
        }
        for team in inbox.teams.iter().filter(|t| !teams.contains(t.as_str())) {
            errors.push(ConfigError::new(
                format!("{key}.teams"),
                format!("no rep belongs to team {team:?}"),
            ));
        }
    }
}

/// A token's `rep` must be a configured rep.
pub(super) fn check_token_reps(
    tokens: &[ApiToken],
    reps: &[RepConfig],
    errors: &mut Vec<ConfigError>,
) {
    for (i, token) in tokens.iter().enumerate() {
        if let Some(rep) = &token.rep
            && !reps.iter().any(|r| &r.id == rep)
        {
            errors.push(ConfigError::new(
                format!("api.tokens[{i}].rep"),
                format!("no rep {rep:?} in [[reps]]"),
            ));
        }
    }
}

/// Snippet ids are names and their text a valid template with known placeholders.
pub(super) fn check_snippets(
    snippets: &BTreeMap<String, SnippetConfig>,
    errors: &mut Vec<ConfigError>,
) {
    for (id, snippet) in snippets {
        if !is_name(id) {
            errors.push(ConfigError::new(
                format!("snippets.{id}"),
                "snippet ids may use only letters, digits, '-' and '_'",
            ));
        }
        if let Err(e) = crate::desk::snippets::parse(&snippet.text) {
            errors.push(ConfigError::new(
                format!("snippets.{id}.text"),
                e.to_string(),
            ));
        }
    }
}
