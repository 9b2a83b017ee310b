//! Operations, for admins: every channel's health (last inbound message, exact pending and
//! dead counts, newest delivery error), the outbox's dead letters with redrive,
//! the last config reload, and analytics as charts (inline SVG drawn here: no library).

use std::collections::BTreeMap;

use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde_json::Value;

use super::session::Fields;
use super::{Console, PageError, json, layout};
use crate::api;
use crate::app::AppState;
use crate::error::ApiError;
use crate::store::ChannelDeliveries;

/// `GET /ops`: admins only (a rep gets the 403 page, as the API refuses them).
pub async fn page(
    State(state): State<AppState>,
    console: Console,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    console.caller.require_admin()?;
    let caller = &console.caller;
    let s = || State(state.clone());
    let channels = json(api::channels::list(s(), caller.clone()).await?.0);
    let dead = api::deliveries::list(
        s(),
        caller.clone(),
        RawQuery(Some("state=dead&limit=200".into())),
    )
    .await?
    .0;
    // Exact counts per channel; the dead-letter table below lists the first 200.
    let outbox: BTreeMap<String, ChannelDeliveries> = api::deliveries::summary(s(), caller.clone())
        .await?
        .0
        .items
        .into_iter()
        .map(|c| (c.channel_id.clone(), c))
        .collect();
    let dead_total: u64 = outbox.values().map(|c| c.dead).sum();
    let period: Fields =
        Fields(serde_urlencoded::from_str(raw.as_deref().unwrap_or_default()).unwrap_or_default());
    let days = period
        .get("days")
        .and_then(|d| d.parse::<i64>().ok())
        .filter(|d| (1..=366).contains(d))
        .unwrap_or(30);
    let from = (chrono::Utc::now() - chrono::Duration::days(days))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    // Built apart: the serializer is not Send, and must not live across the await.
    let period_query = format!("from={}", from.replace('+', "%2B"));
    let analytics = api::analytics::report(s(), caller.clone(), RawQuery(Some(period_query)))
        .await
        .map(|a| json(a.0))
        .unwrap_or(Value::Null);
    let config = &channels["config"];
    let body = html! {
        h1 { "Operations" }
        section {
            h2 { "Channels" }
            table.ops {
                thead { tr { th { "Channel" } th { "Kind" } th { "Enabled" } th { "Webhook URL" } th { "Last inbound" } th { "Pending" } th { "Dead" } th { "Last delivery error" } } }
                tbody {
                    @for item in channels["items"].as_array().into_iter().flatten() {
                        @let id = item["id"].as_str().unwrap_or_default();
                        @let o = outbox.get(id);
                        tr .disabled[item["enabled"] == false] data-channel=(id) {
                            td { strong { (id) } }
                            td { (item["kind"].as_str().unwrap_or_default()) }
                            td { @if item["enabled"] == true { span.ok { "yes" } } @else { span.bad { "no" } } }
                            td { code { (item["webhook_url"].as_str().unwrap_or("(set server.public_url)")) } }
                            td.last-inbound { @match item["last_inbound_at"].as_str().and_then(|t| t.parse::<chrono::DateTime<chrono::Utc>>().ok()) { Some(at) => (layout::time(&at)), None => "never" } }
                            td.pending { (o.map_or(0, |o| o.pending)) }
                            td.dead { @if o.is_some_and(|o| o.dead > 0) { span.bad { (o.map_or(0, |o| o.dead)) } } @else { "0" } }
                            td { @if let (Some(at), Some(e)) = (o.and_then(|o| o.last_error_at.as_ref()), o.and_then(|o| o.last_error.as_deref())) { (layout::time(at)) " " span.delivery-error { (e) } } }
                        }
                    }
                }
            }
        }
        section {
            h2 { "Config reload" }
            p {
                "Last reload: " strong { (config["last_result"].as_str().unwrap_or("none since start")) }
                @if let Some(at) = config["last_at"].as_str() { " at " (at) }
            }
            @if let Some(error) = config["error"].as_str() { p.error { "Last config error: " (error) } }
            @if let Some(r) = config["restart_required"].as_array().filter(|r| !r.is_empty()) {
                p { "Needs a restart to apply: " @for x in r { code { (x.as_str().unwrap_or_default()) } " " } }
            }
        }
        section {
            h2 { "Dead letters" }
            @if dead_total as usize > dead.items.len() { p.hint { "The oldest " (dead.items.len()) " of " (dead_total) "." } }
            @if dead.items.is_empty() { p.empty { "None: every delivery was sent or is still being tried." } }
            @else {
                table.ops #dead-letters {
                    thead { tr { th { "Delivery" } th { "Channel" } th { "Conversation" } th { "Attempts" } th { "Error" } th { "Since" } th {} } }
                    tbody {
                        @for d in &dead.items {
                            tr {
                                td { code { (d.id) } }
                                td { (d.channel_id) }
                                td { @if let Some(c) = &d.conversation_id { a href=(format!("/c/{c}")) { code { (c) } } } }
                                td { (d.attempts) }
                                td.delivery-error { (d.last_error.as_deref().unwrap_or_default()) }
                                td { (layout::time(&d.updated_at)) }
                                td {
                                    form.inline method="post" action=(format!("/deliveries/{}/retry", d.id)) {
                                        (layout::csrf(&console))
                                        input type="hidden" name="back" value="/ops";
                                        button type="submit" { "Redrive" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        section.analytics {
            h2 { "Analytics, last " (days) " days" }
            form.inline method="get" action="/ops" {
                select name="days" aria-label="Period" {
                    @for d in [1, 7, 30, 90] { option value=(d) selected[d == days] { (d) " days" } }
                }
                button type="submit" { "Show" }
            }
            @let ch = analytics["channels"].as_array().cloned().unwrap_or_default();
            @let reps = analytics["reps"].as_array().cloned().unwrap_or_default();
            div.charts {
                (chart("Messages per channel", &ch, "channel_id", &[("messages_inbound", "in"), ("messages_outbound", "out")], ""))
                (chart("First response per channel (median)", &ch, "channel_id", &[("first_response.median_s", "median")], " s"))
                (chart("Resolution per channel (median)", &ch, "channel_id", &[("resolution.median_s", "median")], " s"))
                (chart("Replies per rep", &reps, "rep_id", &[("replies", "replies")], ""))
                (chart("First response per rep (median)", &reps, "rep_id", &[("first_response.median_s", "median")], " s"))
                (chart("Resolution per rep (median)", &reps, "rep_id", &[("resolution.median_s", "median")], " s"))
            }
        }
    };
    Ok(layout::page("Operations", &console, None, None, body).into_response())
}

/// `a.b` in a JSON object, as a number.
fn number(v: &Value, path: &str) -> f64 {
    path.split('.')
        .fold(v, |v, k| &v[k])
        .as_f64()
        .unwrap_or(0.0)
}

/// A horizontal bar chart as inline SVG: one group of bars per row, one bar per series.
fn chart(title: &str, rows: &[Value], label: &str, series: &[(&str, &str)], unit: &str) -> Markup {
    const WIDTH: f64 = 360.0;
    const LABEL: f64 = 90.0;
    const BAR: f64 = 12.0;
    let max = rows
        .iter()
        .flat_map(|r| series.iter().map(move |(k, _)| number(r, k)))
        .fold(0.0_f64, f64::max)
        .max(1.0);
    let group = BAR * series.len() as f64 + 6.0;
    let height = (group * rows.len() as f64).max(20.0) + 4.0;
    html! {
        figure.chart {
            figcaption { (title) }
            @if rows.is_empty() { p.empty { "No data in this period." } }
            @else {
                svg xmlns="http://www.w3.org/2000/svg" viewBox=(format!("0 0 {} {height}", WIDTH + 60.0)) role="img" aria-label=(title) {
                    @for (i, r) in rows.iter().enumerate() {
                        @let y0 = i as f64 * group + 2.0;
                        text x="0" y=(y0 + BAR) class="label" { (r[label].as_str().unwrap_or_default()) }
                        @for (s, (key, name)) in series.iter().enumerate() {
                            @let v = number(r, key);
                            @let w = (v / max * (WIDTH - LABEL)).max(1.0);
                            @let y = y0 + s as f64 * BAR;
                            rect x=(LABEL) y=(y) width=(format!("{w:.1}")) height=(BAR - 2.0) class=(format!("bar s{s}")) {
                                title { (name) ": " (format!("{v:.0}")) (unit) }
                            }
                            text x=(format!("{:.1}", LABEL + w + 4.0)) y=(y + BAR - 3.0) class="value" { (format!("{v:.0}")) (unit) }
                        }
                    }
                }
            }
        }
    }
}

/// `POST /deliveries/{id}/retry`: redrive a dead letter (or send a pending one now), as
/// `POST /api/v1/deliveries/{id}/retry`; admins only.
pub async fn retry(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<Fields>,
) -> Result<Response, PageError> {
    console.check_csrf(&form)?;
    let result: Result<_, ApiError> =
        api::deliveries::retry(State(state), console.caller.clone(), Path(id)).await;
    let _ = result?;
    Ok(Redirect::to(&super::local_path(form.get("back"), "/ops")).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_draws_one_bar_per_series_and_escapes_labels() {
        let rows = vec![serde_json::json!({
            "channel_id": "<script>",
            "messages_inbound": 10,
            "messages_outbound": 5,
        })];
        let svg = chart(
            "t",
            &rows,
            "channel_id",
            &[("messages_inbound", "in"), ("messages_outbound", "out")],
            "",
        )
        .into_string();
        assert_eq!(svg.matches("<rect").count(), 2);
        assert!(svg.contains("&lt;script&gt;"));
    }
}
