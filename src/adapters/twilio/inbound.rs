//! Twilio webhooks in: the signature over the URL and sorted parameters, and a form turned
//! into a message or a status report.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha1::Sha1;

use crate::adapters::{
    InboundContact, InboundEvent, InboundMessage, ParseError, StatusUpdate, VerifyError, invalid,
};
use crate::model::{
    DeliveryStatus, Identifier, LocationPart, Media, MediaPart, Part, TextPart, UnsupportedPart,
};

use super::wire::Params;
use super::{IDENTIFIER_TYPE, SIGNATURE_HEADER, TwilioAdapter};

fn mac(auth_token: &str, url: &str, params: &[(String, String)]) -> Hmac<Sha1> {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut mac =
        Hmac::<Sha1>::new_from_slice(auth_token.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    mac
}

/// `X-Twilio-Signature` for a POST to `url` with these form parameters: base64
/// HMAC-SHA1(auth token, URL + every name and value, sorted by name).
pub fn sign(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    BASE64.encode(mac(auth_token, url, params).finalize().into_bytes())
}

/// The URL as given, and with its default port written out or left out: Twilio signs the
/// URL as configured, and proxies and libraries differ on the port.
fn url_variants(url: &str) -> Vec<String> {
    let mut variants = vec![url.to_owned()];
    if let Ok(parsed) = reqwest::Url::parse(url) {
        if let (Some(host), Some(port)) = (parsed.host_str(), parsed.port_or_known_default()) {
            let mut with_port = format!("{}://{host}:{port}{}", parsed.scheme(), parsed.path());
            if let Some(query) = parsed.query() {
                with_port.push('?');
                with_port.push_str(query);
            }
            variants.push(with_port);
        }
        // Serializing drops a default port.
        variants.push(parsed.to_string());
    }
    let mut unique: Vec<String> = Vec::with_capacity(variants.len());
    for variant in variants {
        if !unique.contains(&variant) {
            unique.push(variant);
        }
    }
    unique
}

/// Checks `X-Twilio-Signature` with any of `tokens` (constant time).
pub fn verify_signature<'a>(
    tokens: impl IntoIterator<Item = &'a str>,
    signature: Option<&str>,
    url: &str,
    params: &[(String, String)],
) -> Result<(), VerifyError> {
    let signature = signature.ok_or(VerifyError::MissingHeader(SIGNATURE_HEADER))?;
    let signature = BASE64
        .decode(signature.trim())
        .map_err(|_| VerifyError::BadSignature)?;
    let urls = url_variants(url);
    for token in tokens {
        for url in &urls {
            if mac(token, url, params).verify_slice(&signature).is_ok() {
                return Ok(());
            }
        }
    }
    Err(VerifyError::BadSignature)
}

// ---------------------------------------------------------------------------------------
// Inbound

/// The part one inbound media file becomes, by its content type.
fn media_part(
    content_type: Option<&str>,
    media: Media,
    caption: Option<String>,
    whatsapp: bool,
) -> Part {
    let part = MediaPart { media, caption };
    let kind = content_type.unwrap_or_default().to_ascii_lowercase();
    let essence = kind.split(';').next().unwrap_or_default().trim();
    match essence {
        // WhatsApp stickers arrive as WebP images and voice notes as Ogg/Opus audio;
        // Twilio has no other sign of either.
        "image/webp" if whatsapp => Part::Sticker(part),
        "audio/ogg" | "audio/opus" if whatsapp => Part::VoiceNote(part),
        t if t.starts_with("image/") => Part::Image(part),
        t if t.starts_with("video/") => Part::Video(part),
        t if t.starts_with("audio/") => Part::Audio(part),
        _ => Part::File(part),
    }
}

fn status_of(reported: &str) -> Option<DeliveryStatus> {
    match reported {
        "sent" => Some(DeliveryStatus::Sent),
        "delivered" => Some(DeliveryStatus::Delivered),
        "read" => Some(DeliveryStatus::Read),
        "undelivered" | "failed" | "canceled" => Some(DeliveryStatus::Failed),
        // queued, accepted, scheduled, sending: not past what our own send recorded;
        // partially_delivered and anything new: nothing we can say for certain.
        _ => None,
    }
}

impl TwilioAdapter {
    pub(super) fn parse_params(&self, params: &Params) -> Result<Vec<InboundEvent>, ParseError> {
        let sid = params
            .get("MessageSid")
            .or_else(|| params.get("SmsMessageSid"))
            .or_else(|| params.get("SmsSid"))
            .ok_or_else(|| invalid("MessageSid", "is required"))?;
        let reported = params
            .get("MessageStatus")
            .or_else(|| params.get("SmsStatus"));
        match reported {
            None | Some("received" | "receiving") => {
                Ok(vec![InboundEvent::Message(self.message(params, sid)?)])
            }
            Some(reported) => Ok(status_of(reported)
                .map(|status| {
                    let error =
                        params
                            .get("ErrorCode")
                            .map(|code| match params.get("ErrorMessage") {
                                Some(message) => format!("Twilio error {code}: {message}"),
                                None => format!("Twilio error {code}"),
                            });
                    InboundEvent::Status(StatusUpdate {
                        platform_message_id: sid.to_owned(),
                        status,
                        error: error.or_else(|| {
                            (status == DeliveryStatus::Failed).then(|| reported.to_owned())
                        }),
                    })
                })
                .into_iter()
                .collect()),
        }
    }

    fn message(&self, params: &Params, sid: &str) -> Result<InboundMessage, ParseError> {
        let from = params.required("From")?;
        let to = params.required("To")?;
        let whatsapp = from.starts_with("whatsapp:");
        let body = params.get("Body").map(str::to_owned);
        let count: usize = params.number("NumMedia", "a whole number")?.unwrap_or(0);
        if count > 10 {
            return Err(invalid("NumMedia", "must be at most 10"));
        }
        let mut parts = Vec::new();
        let mut caption = body.clone();
        for i in 0..count {
            let url_name = format!("MediaUrl{i}");
            let url = params.required(&url_name)?;
            if !crate::model::is_http_url(url) {
                return Err(invalid(url_name, "must be an http(s) URL"));
            }
            let content_type = params.get(&format!("MediaContentType{i}"));
            let media = Media {
                platform_ref: self.media_path(url),
                url: Some(url.to_owned()),
                mime_type: content_type.map(str::to_owned),
                ..Media::default()
            };
            // The text goes with the first file as its caption.
            parts.push(media_part(content_type, media, caption.take(), whatsapp));
        }
        if let Some(text) = caption {
            parts.push(Part::Text(TextPart { text }));
        }
        let latitude = params.number::<f64>("Latitude", "a number")?;
        let longitude = params.number::<f64>("Longitude", "a number")?;
        match (latitude, longitude) {
            (Some(latitude), Some(longitude)) => {
                if !(-90.0..=90.0).contains(&latitude) {
                    return Err(invalid("Latitude", "must be between -90 and 90"));
                }
                if !(-180.0..=180.0).contains(&longitude) {
                    return Err(invalid("Longitude", "must be between -180 and 180"));
                }
                parts.push(Part::Location(LocationPart {
                    latitude,
                    longitude,
                    name: params.get("Label").map(str::to_owned),
                    address: params.get("Address").map(str::to_owned),
                }));
            }
            (Some(_), None) => return Err(invalid("Longitude", "is required with Latitude")),
            (None, Some(_)) => return Err(invalid("Latitude", "is required with Longitude")),
            (None, None) => {}
        }
        if parts.is_empty() {
            parts.push(Part::Unsupported(UnsupportedPart {
                platform_type: params.get("MessageType").unwrap_or("empty").to_owned(),
                raw: Some(params.raw()),
            }));
        }
        Ok(InboundMessage {
            conversation_hint: None,
            platform_message_id: sid.to_owned(),
            thread_id: Some(format!("{to}:{from}")),
            from: InboundContact {
                identifier: Identifier {
                    kind: IDENTIFIER_TYPE.into(),
                    value: from.to_owned(),
                },
                display_name: params.get("ProfileName").map(str::to_owned),
                email: None,
            },
            reply_to: params.get("OriginalRepliedMessageSid").map(str::to_owned),
            parts,
            // Twilio's webhooks carry no time.
            sent_at: None,
            raw: params.raw(),
        })
    }
}

// ---------------------------------------------------------------------------------------
// Outbound

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::twilio::tests::{
        TOKEN, URL, adapter_with, media, message, pairs, parse, request, signed,
    };

    use crate::adapters::{
        ChannelAdapter, InboundEvent, ParseError, RetiredSecret, StatusUpdate, VerifyError,
    };
    use crate::fixtures::fixture;
    use crate::model::{DeliveryStatus, Identifier, LocationPart, Part, TextPart};
    use crate::secret::Secret;
    use chrono::Utc;

    const SMS_TEXT: &str = fixture!("twilio/sms_text.form");
    const MMS_MEDIA: &str = fixture!("twilio/mms_media.form");
    const WA_REPLY: &str = fixture!("twilio/whatsapp_reply.form");
    const WA_LOCATION: &str = fixture!("twilio/whatsapp_location.form");
    const WA_VOICE: &str = fixture!("twilio/whatsapp_voice.form");
    const WA_STICKER: &str = fixture!("twilio/whatsapp_sticker.form");
    const WA_UNSUPPORTED: &str = fixture!("twilio/whatsapp_unsupported.form");
    const STATUS_DELIVERED: &str = fixture!("twilio/status_delivered.form");
    const STATUS_UNDELIVERED: &str = fixture!("twilio/status_undelivered.form");
    const STATUS_READ: &str = fixture!("twilio/status_read.form");
    const STATUS_SENT: &str = fixture!("twilio/status_sent.form");

    fn field_of(body: &str) -> String {
        match adapter_with(&[]).parse(&signed(body)).unwrap_err() {
            ParseError::Invalid { field, .. } => field,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn signs_twilio_s_published_example() {
        // Twilio's own example (security/signature_validation in twilio/api-snippets).
        let params: Vec<(String, String)> = [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675310"),
            ("Digits", "1234"),
            ("From", "+14158675310"),
            ("To", "+18005551212"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        assert_eq!(sign("12345", url, &params), "GvWf1cFY/Q7PnoempGyD5oXAezc=");
        // Order on the wire does not matter: Twilio sorts by name.
        let mut reversed = params.clone();
        reversed.reverse();
        verify_signature(
            ["12345"],
            Some("GvWf1cFY/Q7PnoempGyD5oXAezc="),
            url,
            &reversed,
        )
        .unwrap();
    }

    #[test]
    fn a_wrong_or_missing_signature_is_refused() {
        let adapter = adapter_with(&[]);
        let now = Utc::now();
        let form = "application/x-www-form-urlencoded";
        let forged = request(
            URL,
            SMS_TEXT,
            Some(&sign("other", URL, &pairs(SMS_TEXT))),
            form,
        );
        assert_eq!(adapter.verify(&forged, now), Err(VerifyError::BadSignature));
        let tampered_body = SMS_TEXT.replace("Body=Is", "Body=Was");
        let tampered = request(
            URL,
            &tampered_body,
            Some(&sign(TOKEN, URL, &pairs(SMS_TEXT))),
            form,
        );
        assert_eq!(
            adapter.verify(&tampered, now),
            Err(VerifyError::BadSignature)
        );
        let other_url = request(
            "https://bridge.example.com/hooks/other",
            SMS_TEXT,
            Some(&sign(TOKEN, URL, &pairs(SMS_TEXT))),
            form,
        );
        assert_eq!(
            adapter.verify(&other_url, now),
            Err(VerifyError::BadSignature)
        );
        let missing = request(URL, SMS_TEXT, None, form);
        assert_eq!(
            adapter.verify(&missing, now),
            Err(VerifyError::MissingHeader(SIGNATURE_HEADER))
        );
        let garbage = request(URL, SMS_TEXT, Some("%%%"), form);
        assert_eq!(
            adapter.verify(&garbage, now),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn the_url_may_be_signed_with_or_without_its_default_port() {
        let adapter = adapter_with(&[]);
        let with_port = "https://bridge.example.com:443/hooks/sms";
        let signature = sign(TOKEN, with_port, &pairs(SMS_TEXT));
        let request = request(
            URL,
            SMS_TEXT,
            Some(&signature),
            "application/x-www-form-urlencoded",
        );
        adapter.verify(&request, Utc::now()).unwrap();
    }

    #[test]
    fn a_retired_token_is_accepted_until_its_time() {
        let now = Utc::now();
        let retired = [RetiredSecret {
            secret: Secret::new("old-token"),
            until: now + chrono::Duration::minutes(5),
        }];
        let adapter = adapter_with(&retired);
        let old = request(
            URL,
            SMS_TEXT,
            Some(&sign("old-token", URL, &pairs(SMS_TEXT))),
            "application/x-www-form-urlencoded",
        );
        adapter.verify(&old, now).unwrap();
        adapter.verify(&signed(SMS_TEXT), now).unwrap();
        assert_eq!(
            adapter.verify(&old, now + chrono::Duration::minutes(6)),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn an_sms() {
        let m = message(SMS_TEXT);
        assert_eq!(m.platform_message_id, "SM0a1b2c3d4e5f60718293a4b5c6d7e8f9");
        assert_eq!(m.thread_id.as_deref(), Some("+14155550100:+14155550123"));
        assert_eq!(
            m.from.identifier,
            Identifier {
                kind: "twilio_address".into(),
                value: "+14155550123".into()
            }
        );
        assert_eq!(m.from.display_name, None);
        assert_eq!(m.reply_to, None);
        assert_eq!(
            m.parts,
            vec![Part::Text(TextPart {
                text: "Is my order on its way?".into()
            })]
        );
        assert_eq!(m.raw["FromCity"], "SAN FRANCISCO");
        assert_eq!(m.raw["NumSegments"], "1");
    }

    #[test]
    fn an_mms_with_an_image_a_video_and_a_file_carries_its_text_as_the_first_caption() {
        let m = message(MMS_MEDIA);
        assert_eq!(m.parts.len(), 3);
        assert!(matches!(m.parts[0], Part::Image(_)));
        assert!(matches!(m.parts[1], Part::Video(_)));
        assert!(matches!(m.parts[2], Part::File(_)));
        let image = media(&m.parts[0]);
        assert_eq!(image.caption.as_deref(), Some("Photos of the damage"));
        assert_eq!(image.media.mime_type.as_deref(), Some("image/jpeg"));
        assert_eq!(
            image.media.platform_ref.as_deref(),
            Some(
                "/2010-04-01/Accounts/ACaaaabbbbccccddddeeeeffff00001111/Messages/MM1f2e3d4c5b6a79880f1e2d3c4b5a6978/Media/ME00000000000000000000000000000001"
            )
        );
        assert!(
            image
                .media
                .url
                .as_deref()
                .unwrap()
                .starts_with("https://api.twilio.com/")
        );
        assert_eq!(media(&m.parts[1]).caption, None);
        assert_eq!(
            media(&m.parts[2]).media.mime_type.as_deref(),
            Some("application/pdf")
        );
    }

    #[test]
    fn a_whatsapp_reply_names_the_quoted_message_and_the_profile() {
        let m = message(WA_REPLY);
        assert_eq!(
            m.reply_to.as_deref(),
            Some("SM524c000000000000000000000000beef")
        );
        assert_eq!(m.from.display_name.as_deref(), Some("Priya"));
        assert_eq!(m.from.identifier.value, "whatsapp:+447700900123");
        assert_eq!(
            m.thread_id.as_deref(),
            Some("whatsapp:+14155550100:whatsapp:+447700900123")
        );
    }

    #[test]
    fn whatsapp_locations_voice_notes_and_stickers() {
        assert_eq!(
            message(WA_LOCATION).parts,
            vec![Part::Location(LocationPart {
                latitude: 51.5033635,
                longitude: -0.1276248,
                name: Some("Office".into()),
                address: Some("10 Downing Street, London".into()),
            })]
        );
        let voice = message(WA_VOICE);
        assert!(matches!(voice.parts[..], [Part::VoiceNote(_)]), "{voice:?}");
        let sticker = message(WA_STICKER);
        assert!(
            matches!(sticker.parts[..], [Part::Sticker(_)]),
            "{sticker:?}"
        );
        // The same types by SMS are plain audio and image.
        let sms_voice = WA_VOICE.replace("whatsapp%3A", "");
        assert!(matches!(message(&sms_voice).parts[..], [Part::Audio(_)]));
    }

    #[test]
    fn a_message_with_nothing_we_know_is_kept_as_unsupported() {
        let m = message(WA_UNSUPPORTED);
        let [Part::Unsupported(u)] = &m.parts[..] else {
            panic!("{:?}", m.parts)
        };
        assert_eq!(u.platform_type, "interactive");
        assert_eq!(
            u.raw.as_ref().unwrap()["MessageSid"],
            "SM9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c"
        );
    }

    #[test]
    fn status_callbacks_report_on_our_messages() {
        let status = |body: &str| parse(body);
        assert_eq!(
            status(STATUS_DELIVERED),
            vec![InboundEvent::Status(StatusUpdate {
                platform_message_id: "SM11112222333344445555666677778888".into(),
                status: DeliveryStatus::Delivered,
                error: None,
            })]
        );
        assert_eq!(
            status(STATUS_UNDELIVERED),
            vec![InboundEvent::Status(StatusUpdate {
                platform_message_id: "SM11112222333344445555666677778888".into(),
                status: DeliveryStatus::Failed,
                error: Some("Twilio error 30003".into()),
            })]
        );
        let InboundEvent::Status(read) = &status(STATUS_READ)[0] else {
            panic!()
        };
        assert_eq!(read.status, DeliveryStatus::Read);
        let InboundEvent::Status(sent) = &status(STATUS_SENT)[0] else {
            panic!()
        };
        assert_eq!(sent.status, DeliveryStatus::Sent);
        for nothing_new in ["queued", "sending", "accepted", "partially_delivered"] {
            let body = STATUS_SENT.replace("Status=sent", &format!("Status={nothing_new}"));
            assert!(status(&body).is_empty(), "{nothing_new}");
        }
        let failed = STATUS_SENT.replace("Status=sent", "Status=failed");
        let InboundEvent::Status(failed) = &status(&failed)[0] else {
            panic!()
        };
        assert_eq!(failed.error.as_deref(), Some("failed"));
    }

    #[test]
    fn malformed_requests_name_the_parameter_at_fault() {
        let cases = [
            ("From=%2B1&To=%2B2&Body=hi", "MessageSid"),
            ("MessageSid=SM1&To=%2B2&Body=hi", "From"),
            ("MessageSid=SM1&From=%2B1&Body=hi", "To"),
            ("MessageSid=SM1&From=%2B1&To=%2B2&NumMedia=two", "NumMedia"),
            ("MessageSid=SM1&From=%2B1&To=%2B2&NumMedia=11", "NumMedia"),
            (
                "MessageSid=SM1&From=%2B1&To=%2B2&NumMedia=2&MediaUrl0=https%3A%2F%2Fx.example%2Fa",
                "MediaUrl1",
            ),
            (
                "MessageSid=SM1&From=%2B1&To=%2B2&NumMedia=1&MediaUrl0=ftp%3A%2F%2Fx",
                "MediaUrl0",
            ),
            (
                "MessageSid=SM1&From=%2B1&To=%2B2&Latitude=north&Longitude=1",
                "Latitude",
            ),
            ("MessageSid=SM1&From=%2B1&To=%2B2&Latitude=1", "Longitude"),
            (
                "MessageSid=SM1&From=%2B1&To=%2B2&Latitude=1&Longitude=190",
                "Longitude",
            ),
        ];
        for (body, field) in cases {
            assert_eq!(field_of(body), field, "{body}");
        }
    }

    #[test]
    fn only_form_bodies_are_accepted() {
        let adapter = adapter_with(&[]);
        let json = request(URL, "{}", None, "application/json");
        assert_eq!(
            adapter.parse(&json),
            Err(ParseError::UnsupportedMediaType("application/json".into()))
        );
        let charset = request(
            URL,
            SMS_TEXT,
            None,
            "application/x-www-form-urlencoded; charset=utf-8",
        );
        assert_eq!(adapter.parse(&charset).unwrap().len(), 1);
    }
}
