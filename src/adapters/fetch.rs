//! Fetching media URLs, without letting a payload or a rep point the daemon at the
//! network it runs in (SSRF).
//!
//! A URL in a webhook is whatever the sender wrote, and a URL in a reply is whatever the
//! rep wrote. Fetched blindly, `http://169.254.169.254/` (cloud metadata),
//! `http://127.0.0.1:8080/metrics` or `http://10.0.0.5/` would be read from inside the
//! perimeter and streamed to a rep. So every URL, and every redirect hop, passes one
//! address policy:
//! - http or https only;
//! - a URL on the origin of an endpoint the operator configured for the channel (a
//!   platform's `api_base`, a generic channel's `outbound_url`) is fetched as configured;
//!   this holds for URLs from inbound payloads only, never for one a rep wrote;
//! - any other must be on a public address: no loopback, private, link-local, shared
//!   (CGNAT), multicast, documentation or reserved ranges, in IPv4 or IPv6 (IPv4-mapped
//!   and NAT64 forms are unwrapped). The check runs in the DNS resolver of the client that
//!   then connects, so the address checked is the address connected to (no rebinding
//!   between check and connect); an IP literal is checked before the request;
//! - a channel may allow private addresses (`media_allow_private = true`) when its media
//!   lives on an internal network (again, for inbound payloads only).
//!
//! Redirects are followed here, not by the HTTP client (at most 5), so a configured origin
//! that redirects elsewhere does not take the next hop past the policy; credentials go to
//! the first URL's origin only. A whole fetch takes at most `media.timeout_ms` (the
//! caller caps the size: `media.max_bytes`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::redirect;

use super::{FetchError, FetchedMedia, SendError, classify_transport};

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

/// Which client a hop goes through, as the address policy decides.
#[derive(Debug, PartialEq)]
enum Route {
    /// On an origin the operator configured for the channel, or on a channel that allows
    /// private addresses: connected to as is.
    Open,
    /// Anywhere else: public addresses only, checked again by the resolver.
    Public,
}

/// The address policy, applied to the first URL and to every redirect hop alike: http(s)
/// only; an origin the operator configured for the channel is fetched as configured; any
/// other URL must be public unless the channel allows private addresses.
fn route(url: &reqwest::Url, configured: &[&str], allow_private: bool) -> Result<Route, Refused> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Refused::Scheme);
    }
    if allow_private || same_origin_as_any(url, configured) {
        return Ok(Route::Open);
    }
    check_url(url)?;
    Ok(Route::Public)
}

/// Credentials for a platform's own media URL. They go to that URL's origin only, never
/// to a hop it redirects to elsewhere.
#[derive(Clone, Copy)]
pub enum Credentials<'a> {
    None,
    Bearer(&'a str),
    Basic { user: &'a str, password: &'a str },
}

impl Credentials<'_> {
    fn apply(self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self {
            Credentials::None => request,
            Credentials::Bearer(token) => request.bearer_auth(token),
            Credentials::Basic { user, password } => request.basic_auth(user, Some(password)),
        }
    }
}

/// How a channel fetches media. Neither client follows redirects: [`MediaClient`] follows
/// them itself, so every hop passes the address policy with the hop's own origin, and
/// credentials stay with the origin they were meant for.
#[derive(Clone)]
pub struct MediaClient {
    /// For configured origins (and everything on a channel that allows private
    /// addresses).
    open: reqwest::Client,
    /// For any other URL: a resolver that answers public addresses only, no proxy.
    public: reqwest::Client,
    allow_private: bool,
    /// Caps a whole fetch, every hop and the body included.
    timeout: Duration,
}

impl MediaClient {
    /// A media client; `timeout` caps a whole fetch; `allow_private` is the channel's
    /// `media_allow_private`.
    pub fn new(timeout: Duration, allow_private: bool) -> Self {
        let builder = || {
            reqwest::Client::builder()
                .timeout(timeout)
                .connect_timeout(timeout.min(Duration::from_secs(5)))
                .user_agent(concat!("channel-bridge/", env!("CARGO_PKG_VERSION")))
                .redirect(redirect::Policy::none())
        };
        // A proxy would be resolved instead of the target: go direct, checked.
        let public = builder().dns_resolver(Arc::new(PublicOnly)).no_proxy();
        Self {
            open: builder().build().expect("the TLS backend initializes"),
            public: public.build().expect("the TLS backend initializes"),
            allow_private,
            timeout,
        }
    }

    /// Fetches `url` from an inbound payload, without credentials. URLs on the origin of
    /// one of `configured` (endpoints the operator set for this channel) are fetched as
    /// configured; any other must pass the address policy, as must every redirect.
    pub async fn fetch(&self, url: &str, configured: &[&str]) -> Result<FetchedMedia, FetchError> {
        self.fetch_with(url, configured, Credentials::None).await
    }

    /// [`MediaClient::fetch`] with the platform's `credentials`, sent to `url`'s origin
    /// only.
    pub async fn fetch_with(
        &self,
        url: &str,
        configured: &[&str],
        credentials: Credentials<'_>,
    ) -> Result<FetchedMedia, FetchError> {
        self.follow(url, configured, self.allow_private, credentials)
            .await
    }

    /// Fetches a URL nobody vouches for (a rep wrote it in a reply): no credentials, no
    /// configured origin, public addresses only, whatever the channel allows for its
    /// inbound media.
    pub async fn fetch_public(&self, url: &str) -> Result<FetchedMedia, FetchError> {
        self.follow(url, &[], false, Credentials::None).await
    }

    async fn follow(
        &self,
        url: &str,
        configured: &[&str],
        allow_private: bool,
        credentials: Credentials<'_>,
    ) -> Result<FetchedMedia, FetchError> {
        let mut url = reqwest::Url::parse(url).map_err(|_| FetchError::NoMedia)?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(FetchError::NoMedia);
        }
        let origin = url.origin();
        let deadline = Instant::now() + self.timeout;
        let mut hops = 0;
        loop {
            let client = match route(&url, configured, allow_private) {
                Ok(Route::Open) => &self.open,
                Ok(Route::Public) => &self.public,
                Err(refused) => return Err(FetchError::Refused(refused.to_string())),
            };
            let mut request = client
                .get(url.clone())
                .timeout(deadline.saturating_duration_since(Instant::now()));
            if url.origin() == origin {
                request = credentials.apply(request);
            }
            let response = send(request).await?;
            let status = response.status();
            if !matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308) {
                return match status.as_u16() {
                    200..=299 => Ok(FetchedMedia { response }),
                    404 | 410 => Err(FetchError::Gone(format!("HTTP {status}"))),
                    _ => Err(FetchError::Upstream(format!("HTTP {status}"))),
                };
            }
            hops += 1;
            if hops > MAX_REDIRECTS {
                return Err(FetchError::Refused(Refused::TooManyRedirects.to_string()));
            }
            // Resolved against the hop that sent it, which also normalises the path.
            url = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|location| location.to_str().ok())
                .and_then(|location| url.join(location).ok())
                .ok_or_else(|| {
                    FetchError::Upstream(format!("HTTP {status} without a usable location"))
                })?;
        }
    }
}

/// Sends one request; a name that resolved to a private address is a refusal, not an
/// outage. The error never carries the URL (a platform may keep its token in the path).
async fn send(request: reqwest::RequestBuilder) -> Result<reqwest::Response, FetchError> {
    request.send().await.map_err(|e| {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        while let Some(inner) = cause {
            if let Some(refused) = inner.downcast_ref::<Refused>() {
                return FetchError::Refused(refused.to_string());
            }
            cause = inner.source();
        }
        match classify_transport(e) {
            SendError::Retryable { reason, .. } => FetchError::Upstream(reason),
            other => FetchError::Upstream(other.to_string()),
        }
    })
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
    fn every_hop_is_routed_by_its_own_origin_whatever_the_first() {
        let url = |s: &str| reqwest::Url::parse(s).unwrap();
        let configured = ["http://127.0.0.1:9000/outbound"];
        let inside = url("http://169.254.169.254/latest/meta-data/");
        assert_eq!(
            route(&inside, &configured, false),
            Err(Refused::NotPublic("169.254.169.254".parse().unwrap()))
        );
        assert_eq!(route(&inside, &configured, true), Ok(Route::Open));
        assert_eq!(
            route(&url("http://127.0.0.1:9000/media/1"), &configured, false),
            Ok(Route::Open),
            "the configured origin itself"
        );
        assert_eq!(
            route(&url("http://127.0.0.1:9001/metrics"), &configured, false),
            Err(Refused::NotPublic("127.0.0.1".parse().unwrap())),
            "another port of the same host"
        );
        assert_eq!(
            route(&url("http://127.0.0.1:9000/media/1"), &[], false),
            Err(Refused::NotPublic("127.0.0.1".parse().unwrap())),
            "nothing is configured for a URL a rep wrote"
        );
        assert_eq!(
            route(&url("file:///etc/passwd"), &configured, true),
            Err(Refused::Scheme)
        );
        assert_eq!(
            route(&url("https://cdn.example.com/a.png"), &configured, false),
            Ok(Route::Public)
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
