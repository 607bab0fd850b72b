//! Listening sockets with room for a burst of connections.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket};

/// Connections the kernel completes and holds before the process accepts
/// them. tokio's default (1,024) overflowed in a burst: past it Linux drops
/// the client's SYN, and the client waits for its retransmit (1 s, then 3 s,
/// 7 s). The API meets such bursts when thousands of streaming and long-poll
/// clients reconnect at once after a restart or a load balancer's failover;
/// the stub met them when a worker opened thousands of calls at once (`bench
/// slow`: ~700–1,100 SYNs dropped a run, a tenth of the calls starting after
/// the first had ended). Linux caps it at `net.core.somaxconn` (4,096 by
/// default since 5.4).
const BACKLOG: u32 = 65_535;

/// A listener on `address` with room for a burst of connections.
pub fn listener(address: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if address.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // As `TcpListener::bind` does: a restarted process binds at once, though
    // its predecessor's connections linger in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(BACKLOG)
}
