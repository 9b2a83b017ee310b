//! The `[channels.<id>.imap]` block of an `email` channel: where the contact's answers are
//! read from. Plain settings and their rules; nothing here connects.

use serde::Deserialize;

use crate::secret::Secret;

/// An email channel's mailbox: answers come in by IMAP, replies go out by `[smtp]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImapConfig {
    pub host: String,
    /// Default 993 with `tls = "tls"`, else 143.
    pub port: Option<u16>,
    #[serde(default)]
    pub tls: ImapTls,
    pub username: String,
    pub password: Secret,
    /// The folder read (default INBOX).
    #[serde(default = "default_folder")]
    pub folder: String,
    /// What is done to a message once it is stored: flagged seen, or moved to a folder.
    #[serde(default)]
    pub after: After,
    /// How often the folder is looked at when the server has no IDLE, and the longest an
    /// IDLE runs before it is issued again.
    #[serde(default = "default_poll_interval")]
    pub poll_interval_secs: u64,
}

/// How the connection is secured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImapTls {
    /// TLS from the first byte (port 993).
    #[default]
    Tls,
    /// Plain, upgraded by STARTTLS before logging in (port 143).
    Starttls,
    /// Plain text: only to this host itself (a local relay, tests).
    None,
}

/// What happens to a message in the mailbox after it is stored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum After {
    /// Flag it `\Seen`.
    #[default]
    Seen,
    /// Move it to this folder (`after = { move = "Processed" }`).
    Move(String),
}

fn default_folder() -> String {
    "INBOX".into()
}

fn default_poll_interval() -> u64 {
    60
}

/// RFC 2177: a client re-issues IDLE at least every 29 minutes, or the server may log it out.
pub const MAX_POLL_INTERVAL_SECS: u64 = 29 * 60;

impl ImapConfig {
    /// The port used: the configured one, else the usual one for `tls`.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.tls {
            ImapTls::Tls => 993,
            ImapTls::Starttls | ImapTls::None => 143,
        })
    }

    /// Rules serde cannot check, as (key within the block, message) pairs.
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut errors = Vec::new();
        let mut fail = |key: &str, message: &str| errors.push((key.into(), message.into()));
        if self.host.trim().is_empty() {
            fail("host", "must not be empty");
        }
        if self.port == Some(0) {
            fail("port", "must be 1-65535");
        }
        if self.tls == ImapTls::None && !is_loopback(&self.host) {
            fail(
                "tls",
                "\"none\" sends the password in clear text: only for 127.0.0.1 or localhost; \
                 use \"tls\" or \"starttls\"",
            );
        }
        if self.username.is_empty() {
            fail("username", "must not be empty");
        }
        if let Some(why) = folder_problem(&self.folder) {
            fail("folder", why);
        }
        if let After::Move(target) = &self.after {
            if let Some(why) = folder_problem(target) {
                fail("after.move", why);
            } else if *target == self.folder {
                fail("after.move", "must differ from folder");
            }
        }
        if !(1..=MAX_POLL_INTERVAL_SECS).contains(&self.poll_interval_secs) {
            fail(
                "poll_interval_secs",
                "must be 1-1740 (servers end an IDLE after 30 minutes)",
            );
        }
        errors
    }
}

/// Why a folder name cannot be sent as one IMAP quoted string, if it cannot.
fn folder_problem(name: &str) -> Option<&'static str> {
    if name.trim().is_empty() {
        Some("must not be empty")
    } else if name
        .chars()
        .any(|c| c.is_control() || c == '"' || c == '\\')
    {
        Some("must not hold quotes, backslashes or control characters")
    } else {
        None
    }
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> ImapConfig {
        toml::from_str(text).expect("valid imap block")
    }

    const MINIMAL: &str =
        "host = \"imap.example.com\"\nusername = \"support\"\npassword = \"pw\"\n";

    #[test]
    fn defaults_are_tls_on_993_inbox_seen_and_a_minute() {
        let config = parse(MINIMAL);
        assert_eq!(config.tls, ImapTls::Tls);
        assert_eq!(config.port(), 993);
        assert_eq!(config.folder, "INBOX");
        assert_eq!(config.after, After::Seen);
        assert_eq!(config.poll_interval_secs, 60);
        assert!(config.validate().is_empty());
    }

    #[test]
    fn starttls_defaults_to_143_and_move_names_a_folder() {
        let config = parse(&format!(
            "{MINIMAL}tls = \"starttls\"\nafter = {{ move = \"Processed\" }}\n"
        ));
        assert_eq!(config.port(), 143);
        assert_eq!(config.after, After::Move("Processed".into()));
        assert!(config.validate().is_empty());
    }

    #[test]
    fn plain_text_is_refused_except_to_this_host() {
        let remote = parse(&format!("{MINIMAL}tls = \"none\"\n"));
        assert_eq!(remote.validate()[0].0, "tls");
        for host in ["127.0.0.1", "localhost", "::1", "[::1]"] {
            let local = ImapConfig {
                host: host.into(),
                ..remote.clone()
            };
            assert!(local.validate().is_empty(), "{host}");
        }
    }

    #[test]
    fn every_broken_key_is_named() {
        let config = parse(
            "host = \" \"\nport = 0\nusername = \"\"\npassword = \"pw\"\nfolder = \"a\\\"b\"\n\
             after = { move = \"\" }\npoll_interval_secs = 0\n",
        );
        let keys: Vec<String> = config.validate().into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [
                "host",
                "port",
                "username",
                "folder",
                "after.move",
                "poll_interval_secs"
            ]
        );
        let same = parse(&format!("{MINIMAL}after = {{ move = \"INBOX\" }}\n"));
        assert_eq!(same.validate()[0].0, "after.move");
        let long = parse(&format!("{MINIMAL}poll_interval_secs = 1741\n"));
        assert_eq!(long.validate()[0].0, "poll_interval_secs");
    }

    #[test]
    fn unknown_keys_and_tls_modes_are_refused() {
        assert!(toml::from_str::<ImapConfig>(&format!("{MINIMAL}pasword = \"x\"\n")).is_err());
        assert!(toml::from_str::<ImapConfig>(&format!("{MINIMAL}tls = \"ssl\"\n")).is_err());
    }

    #[test]
    fn the_password_does_not_print() {
        let config = parse(MINIMAL);
        assert!(!format!("{config:?}").contains("\"pw\""));
    }
}
