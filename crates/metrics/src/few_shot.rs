//! The few-shot families of `/metrics`: retrievals (hits and misses), examples used,
//! feedback verdicts, embedding fallbacks (by reason) and failures, and library sizes,
//! per library (every tenant's together: a library is a task type's name from the
//! configuration, never a tenant's).

use holdfast_quality::fewshot::Libraries;

use super::cells::Exposition;

/// The few-shot families, in the exposition format.
pub fn render(libraries: &Libraries) -> String {
    let mut out = Exposition(String::with_capacity(1024));
    let counts = libraries.counts();
    out.family(
        "holdfast_few_shot_retrievals_total",
        "counter",
        "Calls of a route with a few-shot library, by whether they got an example (hit) or not (miss).",
    );
    for (library, c) in &counts {
        out.sample(
            "holdfast_few_shot_retrievals_total",
            &[("library", library), ("result", "hit")],
            c.hits,
        );
        out.sample(
            "holdfast_few_shot_retrievals_total",
            &[("library", library), ("result", "miss")],
            c.misses,
        );
    }
    out.family(
        "holdfast_few_shot_examples_used_total",
        "counter",
        "Examples inserted into calls.",
    );
    for (library, c) in &counts {
        out.sample(
            "holdfast_few_shot_examples_used_total",
            &[("library", library)],
            c.examples_used,
        );
    }
    out.family(
        "holdfast_few_shot_feedback_total",
        "counter",
        "Verdicts people gave on calls (POST /v1/holdfast/feedback).",
    );
    for (library, c) in &counts {
        out.sample(
            "holdfast_few_shot_feedback_total",
            &[("library", library), ("verdict", "good")],
            c.feedback_good,
        );
        out.sample(
            "holdfast_few_shot_feedback_total",
            &[("library", library), ("verdict", "bad")],
            c.feedback_bad,
        );
    }
    out.family(
        "holdfast_few_shot_embedding_fallbacks_total",
        "counter",
        "Calls of a library using embeddings served from the lexical index: their input could not be \
         embedded (embedding_failed), or was not, the tenant's library holding no vector yet (no_vectors).",
    );
    for (library, c) in &counts {
        for (reason, n) in [
            ("embedding_failed", c.embedding_failed),
            ("no_vectors", c.embedding_no_vectors),
        ] {
            out.sample(
                "holdfast_few_shot_embedding_fallbacks_total",
                &[("library", library), ("reason", reason)],
                n,
            );
        }
    }
    out.family(
        "holdfast_few_shot_embedding_failures_total",
        "counter",
        "Embedding requests for a library's examples that failed (tried again a few seconds later).",
    );
    for (library, c) in &counts {
        out.sample(
            "holdfast_few_shot_embedding_failures_total",
            &[("library", library)],
            c.embedding_failures,
        );
    }
    out.family(
        "holdfast_few_shot_library_examples",
        "gauge",
        "Examples in each library, by status.",
    );
    for (library, size) in libraries.sizes() {
        for (status, n) in [
            ("active", size.active),
            ("candidate", size.candidate),
            ("retired", size.retired),
        ] {
            out.sample(
                "holdfast_few_shot_library_examples",
                &[("library", &library), ("status", status)],
                n,
            );
        }
    }
    out.0
}
