//! `GET /v1/holdfast/summary`: the totals the dashboard draws its charts from:
//! requests by result, attempts, retries, fallbacks, cost and tokens, each target's
//! attempts and failures, tasks by what happened to them, and the open escalations.
//!
//! The decision: totals since the process started, read from the metrics, and no
//! history kept here. The dashboard polls and takes differences, so a rate over any
//! window costs the server one pass over its counters per poll, and a second
//! dashboard costs nothing more. Behind the client key, like `/v1/holdfast/targets`.
//! It takes no query parameters, and says so when given one, rather than ignoring a
//! filter the caller thinks it applied.

use axum::http::{StatusCode, Uri};
use axum::response::Response;
use holdfast_store::EscalationFilter;
use serde_json::{Value, json};

use crate::access::Operator;
use crate::error::{ApiError, Flavor};
use crate::respond;

/// Open escalations counted at most: past this the count says `open_capped: true`.
const MAX_OPEN_COUNTED: u32 = 1000;

/// The totals.
pub(crate) async fn summary(caller: Operator, uri: Uri) -> Response {
    let gateway = caller.gateway;
    let gw = &gateway.inner;
    let reply = gw.reply();
    if let Err(err) = no_query(&uri) {
        return respond::error(&err, Flavor::OpenAi, &reply);
    }
    let totals = gw.metrics.totals();
    let count = |result: &str| -> u64 {
        totals
            .requests
            .iter()
            .filter(|(r, _)| *r == result)
            .map(|(_, n)| n)
            .sum()
    };
    let total: u64 = totals.requests.iter().map(|(_, n)| n).sum();
    let by_result: serde_json::Map<String, Value> = totals
        .requests
        .iter()
        .map(|(r, n)| ((*r).to_owned(), json!(n)))
        .collect();
    let targets: Vec<Value> = gw
        .targets
        .iter()
        .zip(&totals.targets)
        .map(|(target, (attempts, failures))| {
            json!({"name": &*target.name, "attempts": attempts, "failures": failures})
        })
        .collect();
    let [submitted, succeeded, failed, cancelled] = totals.tasks;
    let escalations = match gw.engine.get() {
        None => Value::Null,
        Some(engine) => {
            let filter = EscalationFilter {
                tenant: None,
                open_only: true,
                task_id: None,
                limit: MAX_OPEN_COUNTED,
            };
            match engine.escalations(&filter, &caller.principal.reads()).await {
                Ok(open) => json!({
                    "open": open.len(),
                    "open_capped": open.len() >= MAX_OPEN_COUNTED as usize,
                }),
                Err(err) => {
                    // The totals are still worth showing; the inbox panel reports
                    // the store's trouble through its own call.
                    tracing::warn!(error = %err, "summary: could not count open escalations");
                    Value::Null
                }
            }
        }
    };
    let body = json!({
        "object": "holdfast.summary",
        "at_ms": gw.clock.unix_millis(),
        "requests": {
            "total": total,
            "succeeded": count("ok"),
            "degraded": count("degraded"),
            "failed": total.saturating_sub(count("ok") + count("degraded")),
            "by_result": by_result,
        },
        "attempts": totals.attempts,
        "retries": totals.retries,
        "fallbacks": totals.fallbacks,
        "cost_usd": totals.cost_usd,
        "tokens": {"input": totals.input_tokens, "output": totals.output_tokens},
        "targets": targets,
        "engine": gw.engine.get().is_some(),
        "tasks": {
            "submitted": submitted,
            "succeeded": succeeded,
            "failed": failed,
            "cancelled": cancelled,
            "unfinished": submitted.saturating_sub(succeeded + failed + cancelled),
        },
        "escalations": escalations,
    });
    let body = serde_json::to_vec(&body).unwrap_or_default();
    respond::json(StatusCode::OK, body, &reply)
}

/// Refuses any query parameter, naming the first.
fn no_query(uri: &Uri) -> Result<(), ApiError> {
    let Some(query) = uri.query().filter(|q| !q.is_empty()) else {
        return Ok(());
    };
    let first = query.split('&').next().unwrap_or_default();
    let name: String = first
        .split('=')
        .next()
        .unwrap_or_default()
        .chars()
        .take(64)
        .collect();
    Err(ApiError::InvalidRequest {
        message: format!(
            "unknown query parameter `{name}`: /v1/holdfast/summary takes none (it answers \
             totals since the start; take differences between two readings for rates)"
        ),
        param: Some(name),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_parameter_is_refused_by_name() {
        let uri: Uri = "/v1/holdfast/summary?window=5m".parse().unwrap_or_default();
        match no_query(&uri) {
            Err(ApiError::InvalidRequest { param, .. }) => {
                assert_eq!(param.as_deref(), Some("window"));
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        let plain: Uri = "/v1/holdfast/summary".parse().unwrap_or_default();
        assert!(no_query(&plain).is_ok());
    }
}
