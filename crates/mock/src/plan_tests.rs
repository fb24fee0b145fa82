//! Decisions, tested as plain function calls: order, rates, time and seeds.

use super::*;
use crate::faults::{Flapping, Outage};

fn request(stream: bool) -> Request {
    Request {
        model: "m".into(),
        stream,
        include_usage: false,
        max_tokens: None,
        prompt_tokens: 100,
        prefill: None,
        tool: None,
        json: false,
        text: String::new(),
    }
}

fn decide_at(faults: &Faults, request: &Request, secs: f64, rng: &mut Rng) -> Plan {
    let ctx = Context {
        faults,
        format: Format::Anthropic,
        presented_key: None,
        request: Ok(request),
        elapsed: Duration::from_secs_f64(secs),
    };
    decide(&ctx, rng)
}

fn faults(toml: &str) -> Faults {
    Faults::from_toml_str(toml).unwrap()
}

#[test]
fn the_same_seed_gives_the_same_decisions() {
    let f = faults(
        "error_rates = { \"500\" = 0.3 }\ncut_stream = { rate = 0.3 }\nlatency = { min = 0, max = 1 }",
    );
    let run = |seed| {
        let mut rng = Rng::seeded(seed);
        (0..200)
            .map(|i| decide_at(&f, &request(i % 2 == 0), 0.0, &mut rng.fork()))
            .collect::<Vec<_>>()
    };
    assert_eq!(run(5), run(5));
    assert_ne!(run(5), run(6));
}

#[test]
fn rates_are_what_the_fault_set_says() {
    let f = faults("error_rates = { \"429\" = 0.2 }\nquota = 0.1\nmalformed_event = 0.5");
    let mut rng = Rng::seeded(1);
    let mut counts = std::collections::BTreeMap::<&str, u32>::new();
    for _ in 0..10_000 {
        *counts
            .entry(decide_at(&f, &request(false), 0.0, &mut rng).fault)
            .or_default() += 1;
    }
    let share = |name| f64::from(counts.get(name).copied().unwrap_or(0)) / 10_000.0;
    assert!((share("status_429") - 0.2).abs() < 0.02, "{counts:?}");
    assert!((share("quota") - 0.1).abs() < 0.02, "{counts:?}");
    assert_eq!(
        share("malformed_event"),
        0.0,
        "streaming-only faults spare plain requests"
    );
}

#[test]
fn outages_and_flapping_follow_the_clock() {
    let mut f = Faults::default();
    f.outages.push(Outage {
        start: Span::from_millis(1000),
        end: Span::from_millis(2000),
        status: 529,
    });
    f.flapping = Some(Flapping {
        period_up: Span::from_millis(3000),
        period_down: Span::from_millis(1000),
        status: 500,
    });
    let mut rng = Rng::seeded(1);
    let fault_at = |secs, rng: &mut Rng| decide_at(&f, &request(false), secs, rng).fault;
    assert_eq!(fault_at(0.5, &mut rng), "none");
    assert_eq!(fault_at(1.5, &mut rng), "outage");
    assert_eq!(fault_at(3.5, &mut rng), "flapping");
    assert_eq!(fault_at(4.5, &mut rng), "none");
    assert_eq!(fault_at(7.9, &mut rng), "flapping");
    let plan = decide_at(&f, &request(false), 1.5, &mut rng);
    assert_eq!(plan.outcome, Outcome::Overloaded { retry_after: None });
}

#[test]
fn request_checks_come_in_provider_order() {
    let mut rng = Rng::seeded(1);
    let small = faults("context_window = 10\nsupports_prefill = false");
    let plan = decide_at(&small, &request(false), 0.0, &mut rng);
    assert_eq!(
        (plan.fault, plan.outcome),
        ("context_overflow", Outcome::ContextOverflow)
    );
    let prefill = Request {
        prefill: Some("Hol".into()),
        ..request(false)
    };
    let plan = decide_at(&small, &prefill, 0.0, &mut rng);
    assert_eq!(plan.fault, "prefill_unsupported");
    let trailing = Request {
        prefill: Some("Hol ".into()),
        ..request(false)
    };
    let plan = decide_at(&Faults::default(), &trailing, 0.0, &mut rng);
    assert_eq!(
        (plan.fault, plan.outcome),
        ("bad_request", Outcome::BadRequest)
    );
    let locked = faults("auth = true\ncontext_window = 10");
    assert_eq!(
        decide_at(&locked, &request(false), 0.0, &mut rng).fault,
        "auth"
    );
}

#[test]
fn beyond_its_capacity_the_provider_slows_then_refuses_with_503() {
    let f = faults("latency = { min = \"100ms\", max = \"100ms\" }\ncapacity = 10");
    let plan = || decide_at(&f, &request(false), 0.0, &mut Rng::seeded(1));
    let within = under_load(plan(), f.capacity, 10);
    assert_eq!(within.delay, Duration::from_millis(100));
    let slowed = under_load(plan(), f.capacity, 15);
    assert_eq!(slowed.delay, Duration::from_millis(225));
    assert_eq!(slowed.outcome, Outcome::Ok);
    let refused = under_load(plan(), f.capacity, 21);
    assert_eq!(refused.outcome, Outcome::Overloaded { retry_after: None });
    assert_eq!(refused.fault, "over_capacity");
    assert_eq!(refused.delay, Duration::ZERO);
    // Without a capacity, load changes nothing.
    let unlimited = faults("latency = { min = \"100ms\", max = \"100ms\" }");
    let plan = decide_at(&unlimited, &request(false), 0.0, &mut Rng::seeded(1));
    assert_eq!(under_load(plan.clone(), None, 1_000), plan);
}

#[test]
fn error_latency_times_error_statuses_only() {
    let f = faults(
        "error_rates = { \"503\" = 0.5 }\nlatency = \"50ms\"\nerror_latency = \"0ms\"\n\
         outages = [{ start = \"10s\", end = \"20s\", status = 502 }]",
    );
    let mut rng = Rng::seeded(3);
    let (mut errors, mut answers) = (0, 0);
    for _ in 0..200 {
        let plan = decide_at(&f, &request(false), 0.0, &mut rng);
        match plan.outcome {
            Outcome::Ok => {
                answers += 1;
                assert_eq!(plan.delay, Duration::from_millis(50));
            }
            _ => {
                errors += 1;
                assert_eq!(plan.delay, Duration::ZERO, "{plan:?}");
            }
        }
    }
    assert!(
        errors > 50 && answers > 50,
        "{errors} errors, {answers} answers"
    );
    let outage = decide_at(&f, &request(false), 15.0, &mut rng);
    assert_eq!(
        (outage.fault, outage.delay),
        ("outage", Duration::ZERO),
        "an outage's status is an error status too"
    );
    let unset = faults("error_rates = { \"503\" = 1.0 }\nlatency = \"50ms\"");
    let plan = decide_at(&unset, &request(false), 0.0, &mut rng);
    assert_eq!(plan.delay, Duration::from_millis(50), "unset: the latency");
}
