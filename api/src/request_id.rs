//! Request ids: taken from a sane incoming `x-request-id` or made fresh, recorded
//! on the request's span, echoed in the response, and stored with the run so the
//! worker's log lines carry the same id.

use std::time::Instant;

use axum::{
    extract::{MatchedPath, Request},
    http::{HeaderName, HeaderValue, Method},
    middleware::Next,
    response::Response,
};
use stewrd_shared::runtime::metrics as names;
use tracing::Instrument;

/// The header carrying the id, both ways.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The current request's id, available to handlers as an extension.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// The method as a metric label: one of the standard methods, else `other`, so
/// that nobody can add series to `/metrics` by inventing methods.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

fn acceptable(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
}

/// Middleware: assigns the id, wraps the request in a span, logs the outcome.
pub async fn assign(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|id| acceptable(id))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().simple().to_string());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = method_label(request.method());
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method,
        route = %route,
    );
    request.extensions_mut().insert(RequestId(id.clone()));
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    let latency_us = elapsed.as_micros() as u64;
    metrics::counter!(names::HTTP_REQUESTS, "method" => method, "route" => route.clone(), "status" => status.to_string()).increment(1);
    metrics::histogram!(names::HTTP_DURATION, "method" => method, "route" => route)
        .record(elapsed.as_secs_f64());
    span.in_scope(|| {
        if status >= 500 {
            tracing::warn!(status, latency_us, "request failed");
        } else {
            tracing::debug!(status, latency_us, "request served");
        }
    });
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID.clone(), value);
    }
    response
}
