//! The one way both binaries open a listening port (the node's cloud ports, the client's
//! client ports).

use std::io;
use std::net::SocketAddr;
use tokio::net::{TcpListener, TcpSocket};

/// Connections a port queues before they are accepted.
pub const ACCEPT_BACKLOG: u32 = 1024;

/// Listens on `addr` with SO_REUSEADDR, so a restarted process gets its ports back while old
/// connections linger in TIME_WAIT, and TCP_NODELAY, which accepted connections inherit from
/// the listener on Linux (a syscall saved per connection).
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(ACCEPT_BACKLOG)
}
