//! Cases on the health nodes share: a bucket grants what it holds and refills at its
//! rate, concurrent takers never get the same units, breaker notes come back in order
//! to every reader, and bad input stores nothing.

use std::sync::Arc;

use holdfast_store::health::{HealthExchange, NewBreakerNote, NoteKind, TokenTake};
use holdfast_store::{Store, StoreError};

use super::tasks::T0;

/// 600 units per minute, a full bucket of 600.
fn take(bucket: &str, want: u64) -> TokenTake {
    TokenTake {
        bucket: bucket.into(),
        capacity: 600.0,
        per_ms: 600.0 / 60_000.0,
        want,
    }
}

fn takes(takes: Vec<TokenTake>) -> HealthExchange {
    HealthExchange {
        takes,
        ..HealthExchange::default()
    }
}

pub(crate) async fn a_bucket_grants_what_it_holds_and_refills_at_its_rate(s: Arc<dyn Store>) {
    let reply = s
        .exchange_health(takes(vec![take("b", 1), take("a", 500)]), T0)
        .await
        .unwrap();
    assert_eq!(reply.granted, vec![1, 500], "in the order of the takes");
    let reply = s
        .exchange_health(takes(vec![take("a", 500)]), T0)
        .await
        .unwrap();
    assert_eq!(reply.granted, vec![100], "a full bucket holds 600");
    let reply = s
        .exchange_health(takes(vec![take("a", 5)]), T0 + 50)
        .await
        .unwrap();
    assert_eq!(reply.granted, vec![0], "half a unit earned in 50 ms");
    let reply = s
        .exchange_health(takes(vec![take("a", 5)]), T0 + 350)
        .await
        .unwrap();
    assert_eq!(reply.granted, vec![3], "3.5 units earned in 350 ms");
    // An hour later the bucket is full again, not fuller.
    let later = T0 + 3_600_000;
    let reply = s
        .exchange_health(takes(vec![take("a", 1_000)]), later)
        .await
        .unwrap();
    assert_eq!(reply.granted, vec![600]);
}

pub(crate) async fn concurrent_takers_never_get_the_same_units(s: Arc<dyn Store>) {
    let takers: Vec<_> = (0..8)
        .map(|_| {
            let s = Arc::clone(&s);
            tokio::spawn(async move {
                let mut got = 0;
                for _ in 0..20 {
                    got += s
                        .exchange_health(takes(vec![take("shared", 7)]), T0)
                        .await
                        .unwrap()
                        .granted[0];
                }
                got
            })
        })
        .collect();
    let mut total = 0;
    for taker in takers {
        total += taker.await.unwrap();
    }
    assert_eq!(
        total, 600,
        "8 × 20 × 7 asked of a bucket of 600 at one instant"
    );
}

pub(crate) async fn breaker_notes_come_back_in_order_to_every_reader(s: Arc<dyn Store>) {
    let note = |node: &str, kind| NewBreakerNote {
        target: "gpt-4o".into(),
        node: node.into(),
        kind,
    };
    let opened = NoteKind::Opened {
        until_ms: T0 + 5_000,
    };
    let publish = HealthExchange {
        publish: vec![note("a", opened)],
        ..HealthExchange::default()
    };
    let reply = s.exchange_health(publish, T0).await.unwrap();
    assert_eq!(reply.notes.len(), 1, "the publisher reads its own note too");
    let first = reply.notes[0].clone();
    assert_eq!(
        (
            first.target.as_str(),
            first.node.as_str(),
            first.kind,
            first.at_ms
        ),
        ("gpt-4o", "a", opened, T0)
    );
    let publish = HealthExchange {
        publish: vec![note("b", NoteKind::Reset)],
        after_note: first.id,
        ..HealthExchange::default()
    };
    let reply = s.exchange_health(publish, T0 + 10).await.unwrap();
    assert_eq!(reply.notes.len(), 1);
    assert_eq!(reply.notes[0].kind, NoteKind::Reset);
    assert!(reply.notes[0].id > first.id);
    let everything = s
        .exchange_health(HealthExchange::default(), T0 + 20)
        .await
        .unwrap();
    let kinds: Vec<_> = everything.notes.iter().map(|n| n.kind).collect();
    assert_eq!(kinds, vec![opened, NoteKind::Reset]);
    // A note published an hour later drops those older than an hour.
    let publish = HealthExchange {
        publish: vec![note("c", NoteKind::Reset)],
        ..HealthExchange::default()
    };
    let reply = s.exchange_health(publish, T0 + 3_600_011).await.unwrap();
    let nodes: Vec<_> = reply.notes.iter().map(|n| n.node.as_str()).collect();
    assert_eq!(nodes, vec!["c"]);
}

pub(crate) async fn bad_health_input_is_refused_with_nothing_stored(s: Arc<dyn Store>) {
    let bad = [
        takes(vec![take("ok", 1), take("", 1)]),
        takes(vec![TokenTake {
            per_ms: 0.0,
            ..take("ok", 1)
        }]),
        takes(vec![TokenTake {
            capacity: f64::NAN,
            ..take("ok", 1)
        }]),
        HealthExchange {
            takes: vec![take("ok", 1)],
            publish: vec![NewBreakerNote {
                target: "t\u{0}".into(),
                node: "a".into(),
                kind: NoteKind::Reset,
            }],
            after_note: 0,
        },
    ];
    for exchange in bad {
        let err = s.exchange_health(exchange, T0).await.unwrap_err();
        assert!(matches!(err, StoreError::InvalidInput { .. }), "{err:?}");
    }
    let reply = s
        .exchange_health(takes(vec![take("ok", 600)]), T0)
        .await
        .unwrap();
    assert_eq!(reply.granted, vec![600], "no refused take spent anything");
    assert!(reply.notes.is_empty());
}
