//! Requests that must finish once begun. A submit commits its run and then
//! publishes it; if the client hung up between the two and the request were
//! dropped there, the run would wait for the outbox's safety net. Routes
//! wrapped in [`detached`] run in their own task: the client going away no
//! longer cancels them, it only loses the answer.

use axum::{
    extract::Request,
    middleware::Next,
    response::{IntoResponse, Response},
};

use crate::error::ApiError;

/// Middleware: runs the rest of the request in a task of its own.
pub async fn detached(request: Request, next: Next) -> Response {
    tokio::spawn(next.run(request))
        .await
        .unwrap_or_else(|error| ApiError::internal(&error).into_response())
}
