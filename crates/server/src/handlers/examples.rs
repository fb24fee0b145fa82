//! `/v1/holdfast/examples`: the few-shot libraries, for reviewers: list, read, approve,
//! retire, import.
//!
//! Reviewers see their own tenant's examples (operators and admins every tenant's) and
//! change only their own tenant's, as in the escalation inbox; another tenant's example
//! is a 404. An approval or a retirement reaches retrieval on this node before the
//! answer (the libraries are refreshed first) and on other nodes within their refresh
//! period. An import is read whole first: a file with a broken line names it and adds
//! nothing.

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use holdfast_quality::fewshot::Importer;
use holdfast_store::{Example, ExampleFilter, ExampleStatus, StoreError};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::access::Reviewer;
use crate::engine_api::{bounded, parse, query, read_body, reply};
use crate::error::ApiError;
use crate::extract::Path;

/// An example as the API shows it.
pub(crate) fn example_json(e: &Example) -> Value {
    json!({
        "id": e.id,
        "tenant": e.tenant,
        "library": e.library,
        "input": e.input,
        "output": e.output,
        "source": e.source.as_str(),
        "author": e.author,
        "origin": e.origin,
        "status": e.status.as_str(),
        "merged": e.merged,
        "times_used": e.times_used,
        "last_used_at_ms": e.last_used_at_ms,
        "created_at_ms": e.created_at_ms,
        "updated_at_ms": e.updated_at_ms,
    })
}

/// The client's error for a store refusal.
pub(crate) fn store_error(err: StoreError) -> ApiError {
    match err {
        StoreError::InvalidInput { field, reason } => ApiError::InvalidInput {
            message: format!("{field}: {reason}"),
            problems: vec![(field.to_owned(), reason)],
        },
        StoreError::NotFound { kind, id } => ApiError::NotFound(format!("{kind} {id} not found")),
        other => ApiError::Internal(format!("store: {other}")),
    }
}

fn libraries(
    caller: &Reviewer,
) -> Result<&std::sync::Arc<holdfast_quality::fewshot::Libraries>, ApiError> {
    caller
        .gateway
        .libraries()
        .ok_or(ApiError::EngineUnavailable)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    #[serde(default)]
    library: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    limit: Option<u64>,
}

fn status(text: &str) -> Result<ExampleStatus, ApiError> {
    ExampleStatus::ALL
        .iter()
        .copied()
        .find(|s| s.as_str() == text)
        .ok_or_else(|| ApiError::InvalidRequest {
            message: format!("invalid `status` {text:?}: candidate, active or retired"),
            param: Some("status".to_owned()),
        })
}

/// Lists examples, newest first.
pub(crate) async fn list(caller: Reviewer, uri: Uri) -> Result<Response, ApiError> {
    let libraries = libraries(&caller)?;
    let q: ListQuery = query(&uri)?;
    let filter = ExampleFilter {
        tenant: caller.principal.reads().tenant().map(str::to_owned),
        library: q.library.filter(|l| !l.is_empty()),
        status: q
            .status
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(status)
            .transpose()?,
        limit: bounded("limit", q.limit.unwrap_or(100), 1..=1000)? as u32,
    };
    let list = libraries
        .store()
        .list_examples(&filter)
        .await
        .map_err(store_error)?;
    let list: Vec<Value> = list.iter().map(example_json).collect();
    Ok(reply(StatusCode::OK, &json!({ "examples": list })))
}

fn id_of(text: &str) -> Result<u64, ApiError> {
    text.parse()
        .map_err(|_| ApiError::NotFound(format!("example {text:?} not found")))
}

/// One example.
pub(crate) async fn get(caller: Reviewer, Path(id): Path<String>) -> Result<Response, ApiError> {
    let libraries = libraries(&caller)?;
    let id = id_of(&id)?;
    let scope = caller.principal.reads();
    let found = libraries
        .store()
        .get_example(scope.tenant(), id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| ApiError::NotFound(format!("example {id} not found")))?;
    Ok(reply(StatusCode::OK, &example_json(&found)))
}

/// Approves an example: retrieved from now on.
pub(crate) async fn approve(
    caller: Reviewer,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    set(caller, &id, ExampleStatus::Active).await
}

/// Retires an example: never retrieved again, kept for the record.
pub(crate) async fn retire(caller: Reviewer, Path(id): Path<String>) -> Result<Response, ApiError> {
    set(caller, &id, ExampleStatus::Retired).await
}

async fn set(caller: Reviewer, id: &str, status: ExampleStatus) -> Result<Response, ApiError> {
    let gw = &caller.gateway.inner;
    gw.keys
        .admit_request(caller.principal.caller, gw.clock.now())?;
    let libraries = libraries(&caller)?;
    let id = id_of(id)?;
    let scope = caller.principal.writes();
    let changed = libraries
        .store()
        .set_example_status(scope.tenant(), id, status, gw.clock.unix_millis())
        .await
        .map_err(store_error)?;
    libraries.refresh().await.map_err(store_error)?;
    Ok(reply(StatusCode::OK, &example_json(&changed)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportBody {
    /// The file's name, as problems name it.
    file: String,
    /// The library of lines that name none.
    #[serde(default)]
    library: Option<String>,
    /// The JSONL text.
    lines: String,
}

/// Imports a JSONL file of examples into the caller's tenant, whole or not at all.
pub(crate) async fn import(
    caller: Reviewer,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let gw = &caller.gateway.inner;
    gw.keys
        .admit_request(caller.principal.caller, gw.clock.now())?;
    let libraries = libraries(&caller)?;
    let bytes = read_body(&caller.gateway, &headers, body).await?;
    let request: ImportBody = parse(&bytes, false)?;
    let importer = Importer {
        file: &request.file,
        tenant: &caller.principal.tenant,
        author: &caller.principal.name,
        library: request.library.as_deref(),
    };
    let examples = importer
        .parse(&request.lines)
        .map_err(|problems| ApiError::InvalidInput {
            message: problems.to_string(),
            problems: problems
                .0
                .iter()
                .map(|p| {
                    let line = p.line.map_or_else(String::new, |l| format!("line {l}"));
                    (line, p.to_string())
                })
                .collect(),
        })?;
    let (mut created, mut merged) = (0u64, 0u64);
    let now = gw.clock.unix_millis();
    for example in examples {
        match libraries
            .store()
            .add_example(example, now)
            .await
            .map_err(store_error)?
        {
            holdfast_store::ExampleAdded::Created(_) => created += 1,
            holdfast_store::ExampleAdded::Merged(_) => merged += 1,
        }
    }
    libraries.refresh().await.map_err(store_error)?;
    let answer = json!({"created": created, "merged": merged});
    Ok(reply(StatusCode::OK, &answer))
}
