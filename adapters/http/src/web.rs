//! The web application (`web/`, built by Vite into a folder of static files),
//! served at `/` beside the API: files by path, and `index.html` for every other
//! page path so the browser's router can take it. Paths under the API's prefixes
//! never fall back to the page: an unknown API path stays a problem+json `404`.

use std::path::Path;

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use tower::ServiceExt;
use tower_http::services::{ServeDir, ServeFile};

use crate::problem::ApiError;

/// Path prefixes that belong to the API, not to the web application.
const API_PREFIXES: [&str; 5] = ["/v1/", "/fhir/", "/oauth/", "/.well-known/", "/metrics"];

/// The built web application in `dir` (its `index.html` and `assets/`).
pub(crate) fn files(dir: &Path) -> ServeDir<ServeFile> {
    // `fallback`, not `not_found_service`: a page path answers index.html with 200, not 404.
    ServeDir::new(dir).fallback(ServeFile::new(dir.join("index.html")))
}

/// Answers `request` from the web application's `files`, unless its path is the API's.
pub(crate) async fn serve(files: ServeDir<ServeFile>, request: Request) -> Response {
    if API_PREFIXES.iter().any(|prefix| request.uri().path().starts_with(prefix)) {
        return ApiError::NotFound("resource".into()).into_response();
    }
    match files.oneshot(request).await {
        Ok(response) => response.map(Body::new),
        Err(error) => match error {},
    }
}

/// `/` of a server without a built web application: how to build it, and where
/// the API is, rather than a bare `404`.
pub(crate) async fn not_built() -> axum::response::Html<&'static str> {
    axum::response::Html(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>EMR Ledger</title></head><body>\
         <h1>EMR Ledger</h1><p>The API is running (<a href=\"/openapi.json\">OpenAPI</a>, <a href=\"/fhir/r4/metadata\">FHIR</a>). \
         The web application is not built: run <code>npm --prefix web ci &amp;&amp; npm --prefix web run build</code> \
         (Node.js 20.19 or later) and restart <code>emr serve</code>.</p></body></html>",
    )
}
