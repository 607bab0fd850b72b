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

/// What a request whose task panicked is logged as. The task's error would
/// quote the panic's message, which can hold whatever the failing code held;
/// the panic hook has logged where it happened.
#[derive(Debug, thiserror::Error)]
#[error("the request's task panicked")]
struct Panicked;

/// Middleware: runs the rest of the request in a task of its own.
pub async fn detached(request: Request, next: Next) -> Response {
    tokio::spawn(next.run(request))
        .await
        .unwrap_or_else(|error| {
            if error.is_panic() {
                ApiError::internal(&Panicked)
            } else {
                ApiError::internal(&error)
            }
            .into_response()
        })
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::{
        Router,
        body::Body,
        http::{Request, StatusCode},
        middleware,
        routing::get,
    };
    use tower_service::Service;

    use super::*;

    /// Log lines written by the test's subscriber.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if let Ok(mut lines) = self.0.lock() {
                lines.extend_from_slice(buf);
            }
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_request_whose_task_panics_answers_500_and_its_message_reaches_no_log() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let secret = "sk-panic-0123456789abcdef";
        let mut app: Router = Router::new()
            .route(
                "/",
                get(move || async move {
                    if !secret.is_empty() {
                        panic!("the handler held {secret}");
                    }
                    "never"
                }),
            )
            .layer(middleware::from_fn(detached));
        let response = app
            .call(Request::new(Body::empty()))
            .await
            .expect("an answer");
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let logs = captured
            .0
            .lock()
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default();
        assert!(logs.contains("the request's task panicked"), "{logs}");
        assert!(!logs.contains(secret), "{logs}");
    }
}
