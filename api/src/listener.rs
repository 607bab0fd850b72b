//! The API process's one Postgres `LISTEN` connection: status changes wake
//! long-polls; project and key changes (from any process, via triggers) evict
//! cached API-key lookups. After a reconnect everything is re-read: waiters are
//! woken and the cache is emptied, since notifications may have been missed.

use futures_util::future::BoxFuture;
use stewrd_shared::tls::postgres::DatabaseTls;
use tokio_util::sync::CancellationToken;

use crate::{auth::AuthCache, watch::SessionWatch};

/// Status changes: one `"<session id> <status>"` line per change.
pub const SESSION_CHANNEL: &str = "stewrd_session";
/// Project and API-key changes: the project id.
pub const AUTH_CHANNEL: &str = "stewrd_auth";

/// Listens until `shutdown`, reconnecting after any loss.
pub async fn listen(
    config: tokio_postgres::Config,
    tls: DatabaseTls,
    watch: SessionWatch,
    auth: AuthCache,
    shutdown: CancellationToken,
) {
    let on_connect = {
        let (watch, auth) = (watch.clone(), auth.clone());
        move || -> BoxFuture<'static, ()> {
            watch.notify_all();
            auth.clear();
            Box::pin(async {})
        }
    };
    let on_notify = |channel: &str, payload: &str| match channel {
        SESSION_CHANNEL => {
            for line in payload.lines() {
                if let Ok(session_id) = line.split(' ').next().unwrap_or_default().parse() {
                    watch.notify(session_id);
                }
            }
        }
        AUTH_CHANNEL => {
            if let Ok(project_id) = payload.parse() {
                auth.forget_project(project_id);
            }
        }
        _ => {}
    };
    stewrd_shared::listen::listen(
        config,
        tls,
        &[SESSION_CHANNEL, AUTH_CHANNEL],
        shutdown,
        on_connect,
        on_notify,
    )
    .await;
}
