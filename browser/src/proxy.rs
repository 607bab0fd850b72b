//! The egress proxy one browser's every request goes through (Chromium is
//! started with `--proxy-server` pointing here and loopback taken off its
//! bypass list). It resolves each name once, keeps the addresses a webhook may
//! reach (`ssrf::forbidden_reason`), and connects to one of those: the check
//! is on the address actually connected to, so a name that resolves to a
//! private address (DNS rebinding, /etc/hosts) is refused as an address
//! literal is. HTTPS and WebSockets come as `CONNECT`; plain HTTP as
//! absolute-form requests, forwarded one per connection.

use std::{
    net::{IpAddr, SocketAddr},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use stewrd_shared::runtime::ssrf;
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};

/// The most a request's head may hold.
const MAX_HEAD: usize = 64 * 1024;

/// A running proxy.
pub struct Egress {
    pub port: u16,
    /// The hosts refused since the last [`Egress::take_refused`].
    refused: Arc<Mutex<Vec<String>>>,
    /// Connections made upstream, all told.
    pub connected: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Egress {
    pub async fn start(allow_private: bool) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let port = listener.local_addr()?.port();
        let refused: Arc<Mutex<Vec<String>>> = Arc::default();
        let connected = Arc::new(AtomicU64::new(0));
        let rules = Rules {
            allow_private,
            refused: refused.clone(),
            connected: connected.clone(),
        };
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let rules = rules.clone();
                tokio::spawn(async move {
                    let _ = rules.serve(stream).await;
                });
            }
        });
        Ok(Self {
            port,
            refused,
            connected,
            task,
        })
    }

    /// The hosts refused since the last call.
    pub fn take_refused(&self) -> Vec<String> {
        self.refused
            .lock()
            .map(|mut r| std::mem::take(&mut *r))
            .unwrap_or_default()
    }
}

impl Drop for Egress {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone)]
struct Rules {
    allow_private: bool,
    refused: Arc<Mutex<Vec<String>>>,
    connected: Arc<AtomicU64>,
}

impl Rules {
    async fn serve(&self, stream: TcpStream) -> std::io::Result<()> {
        let mut reader = BufReader::new(stream);
        let mut head = String::new();
        loop {
            let read = reader.read_line(&mut head).await?;
            if read == 0 || head.len() > MAX_HEAD {
                return Ok(());
            }
            if head.ends_with("\r\n\r\n") || head == "\r\n" {
                break;
            }
        }
        let mut lines = head.split("\r\n");
        let first = lines.next().unwrap_or_default();
        let mut parts = first.split(' ');
        let (method, target, version) = (
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or("HTTP/1.1"),
        );
        if method.eq_ignore_ascii_case("CONNECT") {
            let Some((host, port)) = split_authority(target, 443) else {
                return refuse(reader.get_mut(), "", Unreached::Unreachable).await;
            };
            let mut upstream = match self.connect(&host, port).await {
                Ok(upstream) => upstream,
                Err(not) => return refuse(reader.get_mut(), &host, not).await,
            };
            reader
                .get_mut()
                .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                .await?;
            // Bytes the browser sent after the head (a TLS hello) go first.
            let early = reader.buffer().to_vec();
            upstream.write_all(&early).await?;
            let mut client = reader.into_inner();
            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            return Ok(());
        }
        let Ok(url) = url::Url::parse(target) else {
            return refuse(reader.get_mut(), "", Unreached::Unreachable).await;
        };
        let Some(host) = url.host_str().map(str::to_owned) else {
            return refuse(reader.get_mut(), "", Unreached::Unreachable).await;
        };
        let port = url.port_or_known_default().unwrap_or(80);
        let mut upstream = match self.connect(&host, port).await {
            Ok(upstream) => upstream,
            Err(not) => return refuse(reader.get_mut(), &host, not).await,
        };
        let path = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        };
        let mut forwarded = format!("{method} {path} {version}\r\n");
        for line in lines.filter(|line| !line.is_empty()) {
            let name = line.split(':').next().unwrap_or_default().trim();
            let dropped = ["connection", "proxy-connection", "keep-alive"]
                .iter()
                .any(|d| name.eq_ignore_ascii_case(d));
            if !dropped {
                forwarded.push_str(line);
                forwarded.push_str("\r\n");
            }
        }
        // One request per connection: the browser may send its next request
        // on this one to another host.
        forwarded.push_str("Connection: close\r\n\r\n");
        upstream.write_all(forwarded.as_bytes()).await?;
        let early = reader.buffer().to_vec();
        upstream.write_all(&early).await?;
        let mut client = reader.into_inner();
        let (mut from_client, mut to_client) = client.split();
        let (mut from_upstream, mut to_upstream) = upstream.split();
        // The request's body goes up while the answer comes down; the
        // exchange ends when the server closes (it was asked to).
        let up = async {
            let _ = tokio::io::copy(&mut from_client, &mut to_upstream).await;
            std::future::pending::<()>().await;
        };
        let down = async {
            let _ = tokio::io::copy(&mut from_upstream, &mut to_client).await;
            let _ = to_client.shutdown().await;
        };
        tokio::select! {
            () = down => {}
            () = up => {}
        }
        Ok(())
    }

    /// A connection to `host:port` on an address it may reach (a host that
    /// resolves only to others is noted as refused).
    async fn connect(&self, host: &str, port: u16) -> Result<TcpStream, Unreached> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let addresses: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::net::lookup_host((bare, port))
                .await
                .map(Iterator::collect)
                .unwrap_or_default(),
        };
        let allowed: Vec<SocketAddr> = addresses
            .iter()
            .copied()
            .filter(|a| self.allow_private || ssrf::forbidden_reason(a.ip()).is_none())
            .collect();
        if allowed.is_empty() {
            if addresses.is_empty() {
                return Err(Unreached::Unreachable);
            }
            if let Ok(mut refused) = self.refused.lock() {
                refused.push(bare.to_owned());
            }
            return Err(Unreached::NotPublic);
        }
        for address in allowed {
            if let Ok(stream) = TcpStream::connect(address).await {
                self.connected.fetch_add(1, Ordering::Relaxed);
                return Ok(stream);
            }
        }
        Err(Unreached::Unreachable)
    }
}

/// Why no connection was made.
#[derive(Clone, Copy)]
enum Unreached {
    /// Every address the host has is one a page may not reach.
    NotPublic,
    /// The host does not resolve, or does not answer.
    Unreachable,
}

/// `host:port` of a CONNECT (an IPv6 address in brackets).
fn split_authority(authority: &str, default_port: u16) -> Option<(String, u16)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = after
            .strip_prefix(':')
            .map_or(Some(default_port), |p| p.parse().ok())?;
        return Some((host.to_owned(), port));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => Some((host.to_owned(), port.parse().ok()?)),
        None => Some((authority.to_owned(), default_port)),
    }
}

/// The answer to a request that did not leave (403 refused, 502 unreached),
/// and the connection closed. The page names the host, never an address.
async fn refuse(stream: &mut TcpStream, host: &str, not: Unreached) -> std::io::Result<()> {
    let (status, title, why) = match not {
        Unreached::NotPublic => (
            "403 Forbidden",
            "Refused by stewrd",
            "stewrd refused to connect to it: it is not a public address",
        ),
        Unreached::Unreachable => (
            "502 Bad Gateway",
            "Unreachable",
            "stewrd could not connect to it",
        ),
    };
    let body = format!(
        "<!doctype html><title>{title}</title><p>{}: {why}.</p>",
        html_escape(host)
    );
    let answer = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/html; charset=utf-8\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(answer.as_bytes()).await?;
    stream.shutdown().await
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;

    /// A listener on loopback that counts connections and answers one
    /// HTTP/1.1 request with `hello`.
    async fn canary() -> (u16, Arc<AtomicU64>) {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let count = Arc::new(AtomicU64::new(0));
        let counted = count.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = stream.read(&mut buf).await;
                    let _ = stream
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello")
                        .await;
                });
            }
        });
        (port, count)
    }

    /// Sends `head` through the proxy and reads its answer to the end.
    async fn through(proxy: &Egress, head: &str) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", proxy.port))
            .await
            .expect("connect");
        stream.write_all(head.as_bytes()).await.expect("write");
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            stream.read_to_end(&mut answer),
        )
        .await;
        String::from_utf8_lossy(&answer).into_owned()
    }

    #[tokio::test]
    async fn no_request_reaches_a_private_address_however_it_is_named() {
        let (port, count) = canary().await;
        let proxy = Egress::start(false).await.expect("proxy");
        for target in [
            format!("CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"),
            format!("CONNECT localhost:{port} HTTP/1.1\r\n\r\n"),
            format!("CONNECT [::ffff:127.0.0.1]:{port} HTTP/1.1\r\n\r\n"),
            format!("GET http://localhost:{port}/x HTTP/1.1\r\nHost: localhost\r\n\r\n"),
            format!("GET http://127.0.0.1:{port}/x HTTP/1.1\r\n\r\n"),
        ] {
            let answer = through(&proxy, &target).await;
            assert!(answer.starts_with("HTTP/1.1 403"), "{target}: {answer}");
            assert!(!answer.contains("hello"), "{target}: {answer}");
        }
        assert_eq!(count.load(Ordering::SeqCst), 0, "the canary was reached");
        let refused = proxy.take_refused();
        assert!(refused.iter().any(|h| h == "localhost"), "{refused:?}");
        assert_eq!(proxy.connected.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn allowed_requests_are_forwarded_one_per_connection() {
        let (port, count) = canary().await;
        let proxy = Egress::start(true).await.expect("proxy");
        let answer = through(
            &proxy,
            &format!(
                "GET http://localhost:{port}/x?y=1 HTTP/1.1\r\nHost: localhost\r\n\
                 Proxy-Connection: keep-alive\r\n\r\n"
            ),
        )
        .await;
        assert!(answer.ends_with("hello"), "{answer}");
        // What follows a CONNECT's head goes through the tunnel.
        let tunnel = through(
            &proxy,
            &format!("CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n"),
        )
        .await;
        assert!(
            tunnel.starts_with("HTTP/1.1 200 Connection Established"),
            "{tunnel}"
        );
        assert!(tunnel.ends_with("hello"), "{tunnel}");
        assert_eq!(count.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_connect_target_is_split_with_its_port() {
        assert_eq!(
            split_authority("example.com:8443", 443),
            Some(("example.com".into(), 8443))
        );
        assert_eq!(split_authority("[::1]:80", 443), Some(("::1".into(), 80)));
        assert_eq!(
            split_authority("example.com", 443),
            Some(("example.com".into(), 443))
        );
        assert_eq!(split_authority("example.com:x", 443), None);
    }
}
