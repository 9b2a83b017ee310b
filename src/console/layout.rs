//! The page shell and the small pieces every page shares. maud escapes every value it
//! writes, so a contact named `<img src=x onerror=alert(1)>` is shown as text.

use axum::response::Html;
use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, html};

use super::Console;

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · channel-bridge" }
            link rel="stylesheet" href="/assets/console.css";
            script src="/assets/console.js" defer {}
        }
    }
}

/// A page for someone not signed in (sign-in, errors).
pub fn bare(title: &str, body: Markup) -> Html<String> {
    Html(
        html! {
            (DOCTYPE)
            html lang="en" {
                (head(title))
                body { main { (body) } }
            }
        }
        .into_string(),
    )
}

/// A page with the signed-in person's bar: where to go, who they are, sign-out. A live
/// page passes the newest event id from before it read anything: its script's event
/// stream resumes after it, so nothing that happens while the page loads is missed.
pub fn page(
    title: &str,
    console: &Console,
    presence: Option<Markup>,
    live_after: Option<i64>,
    body: Markup,
) -> Html<String> {
    let caller = &console.caller;
    Html(
        html! {
            (DOCTYPE)
            html lang="en" {
                (head(title))
                body data-csrf=(console.csrf) data-events-after=[live_after] {
                    header.top {
                        a.brand href="/inbox" { "channel-bridge" }
                        nav {
                            a href="/inbox" { "Inbox" }
                            @if console.is_admin() { a href="/ops" { "Operations" } }
                        }
                        span.spacer {}
                        @if let Some(presence) = presence { (presence) }
                        span.who title="Signed in with this API token" {
                            (caller.rep.as_deref().unwrap_or(&caller.name))
                            " · " (if console.is_admin() { "admin" } else { "rep" })
                        }
                        form.inline method="post" action="/logout" {
                            input type="hidden" name="_csrf" value=(console.csrf);
                            button.link type="submit" { "Sign out" }
                        }
                    }
                    main { (body) }
                    div #live role="status" aria-live="polite" {}
                }
            }
        }
        .into_string(),
    )
}

/// A time as the console shows it, with the exact instant on hover.
pub fn time(at: &DateTime<Utc>) -> Markup {
    html! {
        time datetime=(at.to_rfc3339()) title=(at.to_rfc3339()) { (at.format("%Y-%m-%d %H:%M")) }
    }
}

/// A hidden CSRF field for a session's form.
pub fn csrf(console: &Console) -> Markup {
    html! { input type="hidden" name="_csrf" value=(console.csrf); }
}

/// An error from the API, shown where the form was.
pub fn error(message: Option<&str>) -> Markup {
    html! {
        @if let Some(message) = message {
            p.error role="alert" { (message) }
        }
    }
}
