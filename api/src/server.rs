//! The API's own HTTP/1.1 server loop, plain or HTTPS. It exists for what
//! `axum::serve` does not bound: a client that sends its headers slowly is cut
//! off after `STEWRD_HEADER_READ_TIMEOUT_SECS`; at most `STEWRD_MAX_CONNECTIONS`
//! connections are open at once (more wait in the kernel's accept queue); and a
//! stop lets requests finish for the grace period, then closes what is left, so
//! a stream that never ends cannot hold the process up.
//!
//! Each request carries its peer address as `ConnectInfo`, for the admin
//! token's failure throttle.

use std::{convert::Infallible, net::SocketAddr, sync::Arc, time::Duration};

use axum::{Router, extract::ConnectInfo};
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::{TcpListener, TcpStream},
    sync::Semaphore,
};
use tokio_rustls::TlsAcceptor;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tower_service::Service;

/// A client gets this long to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// After the grace period, how long closing the remaining connections may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// How the server bounds its clients.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Time to send a request's headers (also how long a kept-alive connection
    /// may sit idle).
    pub header_read: Duration,
    /// Open connections at once.
    pub max_connections: usize,
    /// How long open requests may go on after a stop.
    pub grace: Duration,
}

/// Serves `app` on `listener` (over TLS with `tls`) until `stop`, then drains.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    app: Router,
    limits: Limits,
    stop: CancellationToken,
) {
    let acceptor = tls.map(TlsAcceptor::from);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let connections = TaskTracker::new();
    let force = CancellationToken::new();
    loop {
        // A slot first: at the cap, new connections wait in the accept queue.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = stop.cancelled() => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, say: wait a little rather than spin.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stop.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let connection = Connection {
            app: app.clone(),
            peer,
            header_read: limits.header_read,
            stop: stop.clone(),
            force: force.clone(),
        };
        let acceptor = acceptor.clone();
        connections.spawn(async move {
            connection.run(stream, acceptor).await;
            drop(slot);
        });
    }
    drop(listener);
    connections.close();
    if tokio::time::timeout(limits.grace, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            open = connections.len(),
            "grace period over; closing the remaining connections"
        );
        force.cancel();
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, connections.wait()).await;
    }
}

/// One accepted connection.
struct Connection {
    app: Router,
    peer: SocketAddr,
    header_read: Duration,
    stop: CancellationToken,
    force: CancellationToken,
}

impl Connection {
    /// The TLS handshake and the TLS connection are boxed: a task's size is its
    /// largest state, so inline they made every plain connection's task as
    /// large as a TLS one (a long-poll client holds its task for minutes).
    async fn run(self, stream: TcpStream, acceptor: Option<TlsAcceptor>) {
        let Some(acceptor) = acceptor else {
            return self.serve(stream).await;
        };
        let handshake = Box::pin(acceptor.accept(stream));
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
            Ok(Ok(tls)) => Box::pin(self.serve(tls)).await,
            Ok(Err(error)) => tracing::debug!(peer = %self.peer, %error, "TLS handshake failed"),
            Err(_) => tracing::debug!(peer = %self.peer, "TLS handshake timed out"),
        }
    }

    async fn serve(self, io: impl AsyncRead + AsyncWrite + Unpin + Send + 'static) {
        let (app, peer) = (self.app, self.peer);
        let service = service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            let mut app = app.clone();
            async move { Ok::<_, Infallible>(app.call(request).await.unwrap_or_else(|e| match e {})) }
        });
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_read)
            // Reads of at most 64 KiB: the default (~400 KiB) was held per
            // connection while an upload streamed to the store (fifty 32 MiB
            // uploads at once grew the API by 1.4 MiB each; see BENCHMARKS.md).
            .max_buf_size(64 * 1024)
            // A client that closes its sending side after its request still
            // gets the request carried out (and the answer, if it listens).
            .half_close(true);
        let connection = builder.serve_connection(TokioIo::new(io), service);
        tokio::pin!(connection);
        tokio::select! {
            result = connection.as_mut() => return log_end(peer, result),
            () = self.stop.cancelled() => connection.as_mut().graceful_shutdown(),
        }
        // Stopping: the request in progress may finish, within the grace period.
        tokio::select! {
            result = connection.as_mut() => log_end(peer, result),
            () = self.force.cancelled() => {}
        }
    }
}

fn log_end(peer: SocketAddr, result: hyper::Result<()>) {
    if let Err(error) = result {
        tracing::debug!(%peer, %error, "connection ended");
    }
}
