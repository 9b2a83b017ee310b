//! Fetching media URLs that arrive inside inbound payloads, without letting a payload
//! point the daemon at the network it runs in (SSRF).
//!
//! A URL in a webhook is whatever the sender wrote. Fetched blindly, `http://169.254.169.254/`
//! (cloud metadata), `http://127.0.0.1:8080/api/v1/…` or `http://10.0.0.5/` would be read
//! from inside the perimeter and streamed to a rep. So such URLs are fetched only:
//! - over http or https;
//! - to public addresses: no loopback, private, link-local, shared (CGNAT), multicast,
//!   documentation or reserved ranges, in IPv4 or IPv6 (IPv4-mapped and NAT64 forms are
//!   unwrapped). The check runs in the DNS resolver of the client that then connects, so
//!   the address checked is the address connected to (no rebinding between check and
//!   connect); an IP literal in the URL is checked before the request, and every redirect
//!   hop is checked again;
//! - within `media.timeout_ms` (the caller caps the size: `media.max_bytes`).
//!
//! A channel may allow private addresses (`media_allow_private = true`) when its media
//! lives on an internal network. URLs on the origin of an endpoint the operator configured
//! for the channel (a platform's `api_base`, a generic channel's `outbound_url`) are the
//! operator's choice and are fetched as configured.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::redirect;

use super::{FetchError, FetchedMedia, fetch_url};

/// The most redirects a media fetch follows.
const MAX_REDIRECTS: usize = 5;

/// Why a media URL was not fetched.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Refused {
    #[error("only http and https media URLs are fetched")]
    Scheme,
    #[error("the media URL has no host")]
    NoHost,
    #[error("{0} is not a public address; media is fetched only from public addresses")]
    NotPublic(IpAddr),
    #[error("{0} resolves to no public address; media is fetched only from public addresses")]
    NoPublicAddress(String),
    #[error("more than {MAX_REDIRECTS} redirects")]
    TooManyRedirects,
}

/// True for an address on the public internet: not loopback, private, link-local,
/// shared, multicast, documentation, benchmarking or otherwise reserved.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(a == 0                                    // "this network"
        || a == 10                              // private
        || a == 127                             // loopback
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 169 && b == 254)               // link-local, cloud metadata
        || (a == 172 && (16..32).contains(&b))  // private
        || (a == 192 && b == 0 && c == 0)       // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2)       // documentation
        || (a == 192 && b == 88 && c == 99)     // 6to4 relay anycast
        || (a == 192 && b == 168)               // private
        || (a == 198 && (18..20).contains(&b))  // benchmarking
        || (a == 198 && b == 51 && c == 100)    // documentation
        || (a == 203 && b == 0 && c == 113)     // documentation
        || a >= 224) // multicast, reserved, broadcast
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let s = ip.segments();
    // NAT64 (64:ff9b::/96) carries an IPv4 address in its last 32 bits.
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        let [a, b] = s[6].to_be_bytes();
        let [c, d] = s[7].to_be_bytes();
        return is_public_v4(Ipv4Addr::new(a, b, c, d));
    }
    !(ip.is_unspecified()
        || ip.is_loopback()
        || s[0..6] == [0, 0, 0, 0, 0, 0]        // IPv4-compatible (deprecated)
        || (s[0] & 0xfe00) == 0xfc00            // unique local
        || (s[0] & 0xffc0) == 0xfe80            // link-local
        || (s[0] & 0xffc0) == 0xfec0            // site-local (deprecated)
        || (s[0] & 0xff00) == 0xff00            // multicast
        || (s[0] == 0x2001 && s[1] == 0x0db8)   // documentation
        || (s[0] == 0x2001 && s[1] < 0x0200)    // Teredo, benchmarking, ORCHID and others
        || s[0] == 0x2002                       // 6to4: an IPv4 address inside
        || (s[0] == 0x0100 && s[1..4] == [0, 0, 0])) // discard-only
}

/// Checks what can be checked before resolving: the scheme, and the host when it is an
/// IP literal (names are checked by the resolver).
fn check_url(url: &reqwest::Url) -> Result<(), Refused> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Refused::Scheme);
    }
    let ip = match url.host() {
        None => return Err(Refused::NoHost),
        Some(url::Host::Domain(_)) => return Ok(()),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
    };
    if is_public(ip) {
        Ok(())
    } else {
        Err(Refused::NotPublic(ip))
    }
}

/// Whether to follow a redirect to `url` after `hops` earlier ones: the target is checked
/// like the first URL (its name, if any, by the resolver when connecting).
fn check_redirect(url: &reqwest::Url, hops: usize, allow_private: bool) -> Result<(), Refused> {
    if hops >= MAX_REDIRECTS {
        return Err(Refused::TooManyRedirects);
    }
    match check_url(url) {
        Err(Refused::NotPublic(_)) if allow_private => Ok(()),
        other => other,
    }
}

/// A resolver that answers only public addresses, so a name pointing inside is refused
/// at connect time, with the addresses actually connected to.
struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let public: Vec<SocketAddr> = found.filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                return Err(Box::new(Refused::NoPublicAddress(host)) as _);
            }
            Ok(Box::new(public.into_iter()) as Addrs)
        })
    }
}

/// How a channel fetches media: API endpoints the operator configured through the shared
/// client, URLs from payloads through a client that enforces the rules above.
#[derive(Clone)]
pub struct MediaClient {
    /// The shared client (platform APIs, configured endpoints).
    api: reqwest::Client,
    /// For URLs from payloads: public addresses only (unless the channel allows private
    /// ones), checked redirects, the media time cap.
    payload: reqwest::Client,
    allow_private: bool,
    /// Caps fetches through the shared client too.
    timeout: Duration,
}

impl MediaClient {
    /// A media client next to the shared `api` client; `timeout` caps a whole fetch.
    pub fn new(api: reqwest::Client, timeout: Duration, allow_private: bool) -> Self {
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("channel-bridge/", env!("CARGO_PKG_VERSION")))
            .redirect(redirect::Policy::custom(
                move |attempt| match check_redirect(
                    attempt.url(),
                    attempt.previous().len(),
                    allow_private,
                ) {
                    Ok(()) => attempt.follow(),
                    Err(refused) => attempt.error(refused),
                },
            ));
        if !allow_private {
            // A proxy would be resolved instead of the target: go direct, checked.
            builder = builder.dns_resolver(Arc::new(PublicOnly)).no_proxy();
        }
        let payload = builder.build().expect("the TLS backend initializes");
        Self {
            api,
            payload,
            allow_private,
            timeout,
        }
    }

    /// Fetches `url` from a payload. URLs on the origin of one of `configured` (endpoints
    /// the operator set for this channel) go through the shared client; any other must
    /// pass the checks.
    pub async fn fetch(&self, url: &str, configured: &[&str]) -> Result<FetchedMedia, FetchError> {
        fetch_url(self.get(url, configured)?).await
    }

    /// The request [`MediaClient::fetch`] would send, for callers that add headers.
    pub fn get(
        &self,
        url: &str,
        configured: &[&str],
    ) -> Result<reqwest::RequestBuilder, FetchError> {
        let parsed = reqwest::Url::parse(url).map_err(|_| FetchError::NoMedia)?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(FetchError::NoMedia);
        }
        if same_origin_as_any(&parsed, configured) {
            return Ok(self.api.get(parsed).timeout(self.timeout));
        }
        if !self.allow_private {
            check_url(&parsed).map_err(|e| FetchError::Refused(e.to_string()))?;
        }
        Ok(self.payload.get(parsed))
    }
}

/// True when `url` has the scheme, host and port of one of `bases`.
pub fn same_origin_as_any(url: &reqwest::Url, bases: &[&str]) -> bool {
    bases.iter().any(|base| {
        reqwest::Url::parse(base).is_ok_and(|b| b.origin() == url.origin() && b.has_host())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_count_as_public() {
        let inside = [
            "0.0.0.0",
            "10.1.2.3",
            "100.64.0.1",
            "127.0.0.1",
            "127.255.255.254",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "fc00::1",
            "fd00:ec2::254",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "2001:db8::1",
            "2001::1",
            "2002:7f00:1::",
            "100::1",
        ];
        for ip in inside {
            assert!(!is_public(ip.parse().unwrap()), "{ip} is not public");
        }
        let outside = [
            "1.1.1.1",
            "8.8.8.8",
            "100.63.255.255",
            "100.128.0.1",
            "172.15.255.255",
            "172.32.0.1",
            "192.169.0.1",
            "2606:4700:4700::1111",
            "2a00:1450:4001::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ];
        for ip in outside {
            assert!(is_public(ip.parse().unwrap()), "{ip} is public");
        }
    }

    #[test]
    fn ip_literals_are_checked_before_any_request_in_every_spelling() {
        for url in [
            "http://127.0.0.1/x",
            "http://2130706433/x",
            "http://0x7f.1/x",
            "http://[::1]/x",
            "http://[::ffff:a9fe:a9fe]/latest/meta-data/",
            "https://169.254.169.254/latest/meta-data/",
            "http://10.0.0.1:8080/",
        ] {
            let parsed = reqwest::Url::parse(url).unwrap();
            assert!(
                matches!(check_url(&parsed), Err(Refused::NotPublic(_))),
                "{url}"
            );
        }
        assert_eq!(
            check_url(&reqwest::Url::parse("ftp://example.com/x").unwrap()),
            Err(Refused::Scheme)
        );
        assert_eq!(
            check_url(&reqwest::Url::parse("https://cdn.example.com/a.png").unwrap()),
            Ok(())
        );
    }

    #[test]
    fn every_redirect_hop_is_checked_and_their_number_capped() {
        let url = |s: &str| reqwest::Url::parse(s).unwrap();
        let inside = url("http://169.254.169.254/latest/meta-data/");
        assert_eq!(
            check_redirect(&inside, 1, false),
            Err(Refused::NotPublic("169.254.169.254".parse().unwrap()))
        );
        assert_eq!(check_redirect(&inside, 1, true), Ok(()));
        assert_eq!(
            check_redirect(&url("file:///etc/passwd"), 1, true),
            Err(Refused::Scheme)
        );
        let outside = url("https://cdn.example.com/a.png");
        assert_eq!(check_redirect(&outside, 4, false), Ok(()));
        assert_eq!(
            check_redirect(&outside, MAX_REDIRECTS, false),
            Err(Refused::TooManyRedirects)
        );
    }

    #[tokio::test]
    async fn names_that_resolve_inside_are_refused_by_the_resolver() {
        let refused = PublicOnly
            .resolve("localhost".parse().unwrap())
            .await
            .err()
            .expect("localhost is loopback");
        assert!(
            refused.to_string().contains("no public address"),
            "{refused}"
        );
    }

    #[test]
    fn configured_origins_match_scheme_host_and_port() {
        let url = reqwest::Url::parse("http://127.0.0.1:9000/media/1").unwrap();
        assert!(same_origin_as_any(
            &url,
            &["http://127.0.0.1:9000/outbound"]
        ));
        assert!(!same_origin_as_any(
            &url,
            &["http://127.0.0.1:9001/outbound"]
        ));
        assert!(!same_origin_as_any(&url, &["https://127.0.0.1:9000/"]));
        assert!(!same_origin_as_any(&url, &["not a url"]));
    }
}
