//! The API process's one Postgres `LISTEN` connection: status changes wake
//! long-polls; project and key changes (from any process, via triggers) evict
//! cached API-key lookups. After a reconnect everything is re-read: waiters are
//! woken and the cache is emptied, since notifications may have been missed.

use futures_util::future::BoxFuture;
use stewrd_shared::{
    db::notify::{self, Notification},
    runtime::tls::postgres::DatabaseTls,
};
use tokio_util::sync::CancellationToken;

use crate::{auth::AuthCache, watch::SessionWatch};

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
    let on_notify = |channel: &str, payload: &str| match notify::parse(channel, payload) {
        Some(Notification::Sessions(sessions)) => {
            for session_id in sessions {
                watch.notify(session_id);
            }
        }
        Some(Notification::Project(project_id)) => auth.forget_project(project_id),
        _ => {}
    };
    stewrd_shared::db::listen::listen(
        config,
        tls,
        &[notify::SESSION, notify::AUTH],
        shutdown,
        on_connect,
        on_notify,
    )
    .await;
}
