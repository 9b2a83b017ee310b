//! URL checks every layer shares (config validation, adapters filtering platform URLs).

/// True for an absolute http or https URL with a host.
pub fn is_http_url(url: &str) -> bool {
    reqwest::Url::parse(url)
        .map(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .unwrap_or(false)
}
