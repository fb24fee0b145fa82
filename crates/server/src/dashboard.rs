//! The web dashboard at `/dashboard`: one page of plain HTML, CSS and JavaScript,
//! compiled into the binary, that polls the JSON API (summary, targets, tasks, the
//! escalation inbox, the few-shot examples, alerts) and draws it.
//!
//! The decision that shapes it: no build step and nothing fetched from elsewhere. The
//! three files are `include_str!`ed, so the binary is the whole deployment and a
//! dashboard can never be out of step with the server that serves it; the page is
//! served with a Content-Security-Policy of `default-src 'self'` (no inline script or
//! style, no other origin), so even a task input or an escalation payload that holds
//! markup cannot run in an operator's browser. The page itself is public, as `/health`
//! is: it holds no data. Every API call it makes carries the client key the operator
//! types in (kept in the tab's `sessionStorage`, never in the page or a URL).

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, Flavor};
use crate::extract::Path;
use crate::gateway::Gateway;
use crate::respond;

/// What the page may load: its own origin's script, style and API, and nothing inline.
const CSP: &str = "default-src 'self'; img-src 'self' data:; object-src 'none'; \
                   base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The embedded files: (name under `/dashboard/`, content type, body).
const ASSETS: [(&str, &str, &str); 3] = [
    (
        "index.html",
        "text/html; charset=utf-8",
        include_str!("../assets/dashboard/index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/dashboard/app.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../assets/dashboard/style.css"),
    ),
];

/// `GET /dashboard` (and `/dashboard/`): the page.
pub(crate) async fn page(State(gateway): State<Gateway>) -> Response {
    serve(&gateway, "index.html")
}

/// `GET /dashboard/{file}`: one of the page's files; anything else is a JSON 404.
pub(crate) async fn asset(State(gateway): State<Gateway>, Path(file): Path<String>) -> Response {
    serve(&gateway, &file)
}

fn serve(gateway: &Gateway, file: &str) -> Response {
    let reply = gateway.inner.reply();
    let Some((_, content_type, body)) = ASSETS.iter().find(|(name, _, _)| *name == file) else {
        let shown: String = file.chars().take(100).collect();
        let err = ApiError::NotFound(format!(
            "no dashboard file `{shown}`: the dashboard is at /dashboard and serves \
             index.html, app.js and style.css"
        ));
        return respond::error(&err, Flavor::OpenAi, &reply);
    };
    let mut response = (StatusCode::OK, *body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // The files change only with the binary; revalidating costs one small request.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    reply.apply(headers);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_its_own_files() {
        let (_, _, html) = ASSETS[0];
        assert!(html.contains("src=\"/dashboard/app.js\""));
        assert!(html.contains("href=\"/dashboard/style.css\""));
        // No inline script or style: the CSP would refuse them.
        assert!(!html.contains("<script>"));
        assert!(!html.contains("<style"));
        assert!(!html.contains("style=\""));
        // Nothing from another origin; the SVG namespace is a name, not a fetch.
        for (name, _, body) in ASSETS {
            let body = body.replace("'http://www.w3.org/2000/svg'", "");
            assert!(!body.contains("://"), "{name} names another origin");
        }
    }
}
