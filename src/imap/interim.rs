//! INTERIM, until `adapters::email::parse_raw` (mail-parser, issue #20's e-mail inbound)
//! lands on main; the poller then calls that one and this file is deleted. It reads only
//! what a plain-text reply needs (From, Message-ID, In-Reply-To, the body as text) and
//! decodes no MIME: a multipart or encoded body comes in as its source text.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::adapters::{ParseError, invalid};
use crate::model::event::{InboundContact, InboundEvent, InboundMessage};
use crate::model::{Identifier, Part, TextPart};

/// One raw RFC 5322 message as normalized events (same contract as the real one).
pub fn parse_raw(raw: &[u8]) -> Result<Vec<InboundEvent>, ParseError> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .or_else(|| text.split_once("\n\n"))
        .unwrap_or((&text, ""));
    let headers = unfold(head);
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_owned())
    };
    let from = header("From").ok_or_else(|| invalid("From", "missing"))?;
    let (name, address) = mailbox(&from).ok_or_else(|| invalid("From", "no address"))?;
    let id = header("Message-ID")
        .map(|id| id.trim_matches(['<', '>']).to_owned())
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| format!("sha256:{}", hex::encode(Sha256::digest(raw))));
    let sent_at = header("Date")
        .and_then(|d| DateTime::parse_from_rfc2822(&d).ok())
        .map(|d| d.with_timezone(&Utc));
    let in_reply_to = header("In-Reply-To").map(|id| id.trim_matches(['<', '>']).to_owned());
    let body = body.replace("\r\n", "\n").trim().to_owned();
    Ok(vec![InboundEvent::Message(InboundMessage {
        platform_message_id: id.clone(),
        thread_id: None,
        from: InboundContact {
            identifier: Identifier {
                kind: crate::adapters::email::IDENTIFIER_TYPE.into(),
                value: address.clone(),
            },
            display_name: name,
            email: Some(address),
        },
        reply_to: in_reply_to,
        parts: vec![Part::Text(TextPart { text: body })],
        sent_at,
        raw: serde_json::json!({
            "message_id": id,
            "subject": header("Subject"),
        }),
    })])
}

fn unfold(head: &str) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = headers.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    headers
}

/// `Name <a@b>` or `a@b`: the display name and the address, lowercased.
fn mailbox(value: &str) -> Option<(Option<String>, String)> {
    let (name, address) = match value.rsplit_once('<') {
        Some((name, rest)) => (
            Some(name.trim().trim_matches('"').to_owned()).filter(|n| !n.is_empty()),
            rest.split('>').next()?.trim(),
        ),
        None => (None, value.trim()),
    };
    address
        .contains('@')
        .then(|| (name, address.to_ascii_lowercase()))
}
