//! The web application (`web/`, built by Vite into a folder of static files),
//! served at `/` beside the API: files by path, and `index.html` for every other
//! page path so the browser's router can take it. Paths under the API's prefixes
//! never fall back to the page: an unknown API path stays a problem+json `404`.

use std::path::PathBuf;

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use tower::ServiceExt;
use tower_http::services::{ServeDir, ServeFile};

use crate::problem::ApiError;

/// Path prefixes that belong to the API, not to the web application.
const API_PREFIXES: [&str; 5] = ["/v1/", "/fhir/", "/oauth/", "/.well-known/", "/metrics"];

/// Serves the built web application from `dir` (its `index.html` and `assets/`).
pub(crate) async fn serve(dir: PathBuf, request: Request) -> Response {
    if API_PREFIXES.iter().any(|prefix| request.uri().path().starts_with(prefix)) {
        return ApiError::NotFound("resource".into()).into_response();
    }
    let files = ServeDir::new(&dir).not_found_service(ServeFile::new(dir.join("index.html")));
    match files.oneshot(request).await {
        Ok(response) => response.map(Body::new),
        Err(error) => match error {},
    }
}
