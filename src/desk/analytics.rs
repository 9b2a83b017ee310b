//! Help-desk figures: volumes, first-response and resolution times per channel and per
//! rep. The store supplies raw rows; this turns them into the report.

use std::collections::BTreeMap;

use serde::Serialize;

use super::inboxes::Scope;

/// Raw facts for one period, as the store reads them.
#[derive(Clone, Debug, Default)]
pub struct Facts {
    /// (channel, conversations created)
    pub conversations: Vec<(String, u64)>,
    /// (channel, inbound messages, outbound messages)
    pub messages: Vec<(String, u64, u64)>,
    /// (channel, rep who answered first, seconds from the first inbound message); no rep
    /// when an API token bound to no rep answered: it counts for the channel only.
    pub first_responses: Vec<(String, Option<String>, f64)>,
    /// (channel, ticket owner, seconds from ticket creation to close)
    pub resolutions: Vec<(String, Option<String>, f64)>,
    /// (channel, rep, replies sent)
    pub replies: Vec<(String, String, u64)>,
}

impl Facts {
    /// Only the facts of the channels a caller may see: a rep's report covers their
    /// inboxes, as every other read does.
    pub fn within(mut self, scope: &Scope) -> Self {
        self.conversations.retain(|(c, _)| scope.allows(c));
        self.messages.retain(|(c, _, _)| scope.allows(c));
        self.first_responses.retain(|(c, _, _)| scope.allows(c));
        self.resolutions.retain(|(c, _, _)| scope.allows(c));
        self.replies.retain(|(c, _, _)| scope.allows(c));
        self
    }
}

/// Median and 90th percentile of a set of durations, in seconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Times {
    pub count: usize,
    pub median_s: Option<f64>,
    pub p90_s: Option<f64>,
}

impl Times {
    /// Nearest-rank percentiles: every figure reported is one that was observed.
    pub fn of(mut values: Vec<f64>) -> Self {
        values.sort_by(f64::total_cmp);
        let rank = |p: f64| {
            let n = values.len();
            (n > 0).then(|| values[((p * n as f64).ceil() as usize).clamp(1, n) - 1])
        };
        Times {
            count: values.len(),
            median_s: rank(0.5),
            p90_s: rank(0.9),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ChannelFigures {
    pub channel_id: String,
    pub conversations: u64,
    pub messages_inbound: u64,
    pub messages_outbound: u64,
    pub first_response: Times,
    pub resolution: Times,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RepFigures {
    pub rep_id: String,
    pub replies: u64,
    pub first_response: Times,
    pub resolution: Times,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Report {
    pub channels: Vec<ChannelFigures>,
    pub reps: Vec<RepFigures>,
}

pub fn report(facts: Facts) -> Report {
    let mut channels: BTreeMap<String, (ChannelFigures, Vec<f64>, Vec<f64>)> = BTreeMap::new();
    let mut reps: BTreeMap<String, (RepFigures, Vec<f64>, Vec<f64>)> = BTreeMap::new();
    let channel = |map: &mut BTreeMap<String, (ChannelFigures, Vec<f64>, Vec<f64>)>, id: &str| {
        map.entry(id.to_owned())
            .or_insert_with(|| {
                let figures = ChannelFigures {
                    channel_id: id.to_owned(),
                    ..Default::default()
                };
                (figures, Vec::new(), Vec::new())
            })
            .0
            .channel_id
            .clone()
    };
    let rep = |map: &mut BTreeMap<String, (RepFigures, Vec<f64>, Vec<f64>)>, id: &str| {
        map.entry(id.to_owned()).or_insert_with(|| {
            let figures = RepFigures {
                rep_id: id.to_owned(),
                ..Default::default()
            };
            (figures, Vec::new(), Vec::new())
        });
    };
    for (id, count) in facts.conversations {
        channel(&mut channels, &id);
        channels.get_mut(&id).expect("just added").0.conversations = count;
    }
    for (id, inbound, outbound) in facts.messages {
        channel(&mut channels, &id);
        let figures = &mut channels.get_mut(&id).expect("just added").0;
        figures.messages_inbound = inbound;
        figures.messages_outbound = outbound;
    }
    for (id, by, seconds) in facts.first_responses {
        channel(&mut channels, &id);
        channels.get_mut(&id).expect("just added").1.push(seconds);
        if let Some(by) = by {
            rep(&mut reps, &by);
            reps.get_mut(&by).expect("just added").1.push(seconds);
        }
    }
    for (id, owner, seconds) in facts.resolutions {
        channel(&mut channels, &id);
        channels.get_mut(&id).expect("just added").2.push(seconds);
        if let Some(owner) = owner {
            rep(&mut reps, &owner);
            reps.get_mut(&owner).expect("just added").2.push(seconds);
        }
    }
    for (_, id, count) in facts.replies {
        rep(&mut reps, &id);
        reps.get_mut(&id).expect("just added").0.replies += count;
    }
    Report {
        channels: channels
            .into_values()
            .map(|(mut f, first, resolution)| {
                f.first_response = Times::of(first);
                f.resolution = Times::of(resolution);
                f
            })
            .collect(),
        reps: reps
            .into_values()
            .map(|(mut f, first, resolution)| {
                f.first_response = Times::of(first);
                f.resolution = Times::of(resolution);
                f
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_observed_value() {
        let cases: [(&[f64], Option<f64>, Option<f64>); 4] = [
            (&[], None, None),
            (&[7.0], Some(7.0), Some(7.0)),
            (&[4.0, 1.0, 3.0, 2.0], Some(2.0), Some(4.0)),
            (
                &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0],
                Some(5.0),
                Some(9.0),
            ),
        ];
        for (values, median, p90) in cases {
            let t = Times::of(values.to_vec());
            assert_eq!(
                (t.count, t.median_s, t.p90_s),
                (values.len(), median, p90),
                "{values:?}"
            );
        }
    }

    #[test]
    fn figures_are_grouped_per_channel_and_per_rep() {
        let facts = Facts {
            conversations: vec![("chat".into(), 3)],
            messages: vec![("chat".into(), 5, 2)],
            first_responses: vec![
                ("chat".into(), Some("alice".into()), 60.0),
                ("chat".into(), Some("bob".into()), 120.0),
                ("sms".into(), Some("alice".into()), 30.0),
            ],
            resolutions: vec![
                ("chat".into(), Some("bob".into()), 3600.0),
                ("chat".into(), None, 60.0),
            ],
            replies: vec![
                ("chat".into(), "alice".into(), 3),
                ("sms".into(), "alice".into(), 1),
            ],
        };
        let report = report(facts);
        let chat = &report.channels[0];
        assert_eq!(
            (
                chat.channel_id.as_str(),
                chat.conversations,
                chat.messages_inbound
            ),
            ("chat", 3, 5)
        );
        assert_eq!(chat.first_response.median_s, Some(60.0));
        assert_eq!(chat.resolution.count, 2);
        let alice = &report.reps[0];
        assert_eq!(
            (
                alice.rep_id.as_str(),
                alice.replies,
                alice.first_response.count
            ),
            ("alice", 4, 2)
        );
        assert_eq!(alice.first_response.median_s, Some(30.0));
        let bob = &report.reps[1];
        assert_eq!(bob.resolution.median_s, Some(3600.0));
        assert_eq!(report.channels[1].channel_id, "sms");
    }

    #[test]
    fn a_token_answering_counts_for_its_channel_and_is_no_rep() {
        let facts = Facts {
            first_responses: vec![
                ("chat".into(), None, 10.0),
                ("chat".into(), Some("alice".into()), 30.0),
            ],
            ..Facts::default()
        };
        let report = report(facts);
        assert_eq!(report.channels[0].first_response.count, 2);
        let reps: Vec<_> = report.reps.iter().map(|r| r.rep_id.as_str()).collect();
        assert_eq!(reps, ["alice"]);
    }

    #[test]
    fn a_scoped_report_holds_only_the_channels_in_scope() {
        let facts = Facts {
            conversations: vec![("chat".into(), 2), ("sms".into(), 1)],
            messages: vec![("chat".into(), 2, 1), ("sms".into(), 1, 1)],
            first_responses: vec![
                ("chat".into(), Some("alice".into()), 60.0),
                ("sms".into(), Some("bob".into()), 30.0),
            ],
            resolutions: vec![("sms".into(), Some("bob".into()), 600.0)],
            replies: vec![
                ("chat".into(), "alice".into(), 1),
                ("sms".into(), "bob".into(), 1),
            ],
        };
        let cases = [
            (Scope::All, vec!["chat", "sms"], vec!["alice", "bob"]),
            (
                Scope::Only(["chat".to_owned()].into()),
                vec!["chat"],
                vec!["alice"],
            ),
            (
                Scope::Except(["chat".to_owned()].into()),
                vec!["sms"],
                vec!["bob"],
            ),
            (Scope::Only(Default::default()), vec![], vec![]),
        ];
        for (scope, channels, reps) in cases {
            let report = report(facts.clone().within(&scope));
            let seen: Vec<_> = report
                .channels
                .iter()
                .map(|c| c.channel_id.as_str())
                .collect();
            assert_eq!(seen, channels, "{scope:?}");
            let seen: Vec<_> = report.reps.iter().map(|r| r.rep_id.as_str()).collect();
            assert_eq!(seen, reps, "{scope:?}");
        }
    }
}
