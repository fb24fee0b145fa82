//! The load-shedding families of `/metrics`: each limited target's concurrency limit,
//! calls in flight, queue depth, sheds and throttled calls, read from the registry at
//! scrape time (they are the limiter's state, not counts of events).

use holdfast_policy::pipeline::Registry;

use super::cells::Exposition;

/// The limiter families of every target that has a limiter.
pub fn render(registry: &Registry) -> String {
    let mut out = Exposition(String::with_capacity(512));
    let limited: Vec<_> = registry
        .targets()
        .iter()
        .filter_map(|t| Some((t.name.as_ref(), t.limiter.as_ref()?)))
        .collect();
    if limited.is_empty() {
        return out.0;
    }
    type Read = fn(&holdfast_policy::concurrency::Limiter) -> u64;
    let families: [(&str, &str, &str, Read); 5] = [
        (
            "holdfast_concurrency_limit",
            "gauge",
            "Calls the target may have in flight now (adaptive).",
            |l| u64::from(l.limit()),
        ),
        (
            "holdfast_concurrency_in_flight",
            "gauge",
            "Calls in flight to the target.",
            |l| u64::from(l.in_flight()),
        ),
        (
            "holdfast_concurrency_queue_depth",
            "gauge",
            "Calls waiting for a slot of the target.",
            |l| l.queued() as u64,
        ),
        (
            "holdfast_concurrency_sheds_total",
            "counter",
            "Calls shed (503 overloaded_shed) because the target could not serve them in time.",
            |l| l.sheds(),
        ),
        (
            "holdfast_concurrency_throttled_total",
            "counter",
            "Calls refused on holdfast's side because the target keeps refusing work.",
            |l| l.throttled(),
        ),
    ];
    for (name, kind, help, read) in families {
        out.family(name, kind, help);
        for (target, limiter) in &limited {
            out.sample(name, &[("target", target)], read(limiter));
        }
    }
    out.0
}
