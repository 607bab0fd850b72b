//! Headers every answer carries. `Cache-Control: no-store`: answers hold API
//! keys and webhook secrets shown once, prompts and outputs, and none of them
//! belongs in a shared or browser cache. `Strict-Transport-Security` when the
//! API serves HTTPS itself, so browsers never fall back to plain HTTP.

use axum::{
    extract::{Request, State},
    http::{HeaderValue, header},
    middleware::Next,
    response::Response,
};

/// HSTS for a year, subdomains included.
const HSTS: &str = "max-age=31536000; includeSubDomains";

/// Middleware; the state says whether this listener serves HTTPS.
pub async fn defaults(State(https): State<bool>, request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    if https {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(HSTS),
        );
    }
    response
}
