//! What the TLS tests build on: certificates made at test time, a recording TCP
//! proxy (the "capture": every byte each way), a TLS front for a plain server,
//! an HTTP proxy that tunnels (CONNECT) and records, and a second RabbitMQ node
//! with only a TLS listener.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

use crate::helpers::{PATIENCE, unique_name, wait_for};

/// A directory removed with its contents when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let path = std::env::temp_dir().join(format!("stewrd-{}", unique_name()));
        std::fs::create_dir_all(&path).expect("create temp dir");
        Self(path)
    }

    /// Writes `contents` to `name` in the directory; returns the path as text.
    pub fn write(&self, name: &str, contents: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, contents).expect("write temp file");
        path.display().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A throwaway CA and one server certificate it signed, for `localhost` and
/// `127.0.0.1`, as PEM files in a temp dir. Nothing is committed.
pub struct TestCa {
    pub ca_file: String,
    pub cert_file: String,
    pub key_file: String,
    pub ca_pem: String,
    /// Holds the files until the test ends.
    _dir: TempDir,
}

impl TestCa {
    pub fn new(names: &[&str]) -> Self {
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(
            rcgen::DnType::CommonName,
            format!("stewrd test CA {}", unique_name()),
        );
        let ca_key = rcgen::KeyPair::generate().expect("CA key");
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("CA cert");
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = rcgen::CertificateParams::new(names).expect("server params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "stewrd test server");
        let key = rcgen::KeyPair::generate().expect("server key");
        let cert = params.signed_by(&key, &ca).expect("server cert");
        let dir = TempDir::new();
        let ca_pem = ca.pem();
        Self {
            ca_file: dir.write("ca.pem", &ca_pem),
            cert_file: dir.write("server.pem", &cert.pem()),
            key_file: dir.write("server.key", &key.serialize_pem()),
            ca_pem,
            _dir: dir,
        }
    }
}

/// A TCP proxy that records every byte it forwards, both ways.
pub struct Recorder {
    pub address: SocketAddr,
    bytes: Arc<Mutex<Vec<u8>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Recorder {
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let address = listener.local_addr().expect("proxy address");
        let bytes: Arc<Mutex<Vec<u8>>> = Arc::default();
        let sink = bytes.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(target).await else {
                    continue;
                };
                splice(client, server, sink.clone());
            }
        });
        Self {
            address,
            bytes,
            task,
        }
    }

    /// Whether `needle` crossed the wire in clear, in either direction.
    pub fn saw(&self, needle: &str) -> bool {
        contains(&self.bytes, needle)
    }

    pub fn len(&self) -> usize {
        self.bytes.lock().expect("capture").len()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    sink: Arc<Mutex<Vec<u8>>>,
) {
    let mut buffer = vec![0; 16 * 1024];
    while let Ok(n) = from.read(&mut buffer).await {
        if n == 0 {
            break;
        }
        if let Ok(mut bytes) = sink.lock() {
            bytes.extend_from_slice(&buffer[..n]);
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// Serves TLS with a test CA's certificate in front of a plain TCP server.
pub struct TlsFront {
    pub address: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl TlsFront {
    pub async fn start(ca: &TestCa, target: SocketAddr) -> Self {
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
        let certs = CertificateDer::pem_file_iter(&ca.cert_file)
            .expect("server cert")
            .collect::<Result<Vec<_>, _>>()
            .expect("server cert");
        let key = PrivateKeyDer::from_pem_file(&ca.key_file).expect("server key");
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind TLS front");
        let address = listener.local_addr().expect("front address");
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut client) = acceptor.accept(client).await else {
                        return;
                    };
                    let Ok(mut server) = TcpStream::connect(target).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
            }
        });
        Self { address, task }
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An HTTP proxy that tunnels (CONNECT) and records each tunnel's request head
/// and every byte that crossed it.
pub struct ConnectProxy {
    pub address: SocketAddr,
    heads: Arc<Mutex<Vec<String>>>,
    bytes: Arc<Mutex<Vec<u8>>>,
    task: tokio::task::JoinHandle<()>,
}

impl ConnectProxy {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let address = listener.local_addr().expect("proxy address");
        let heads: Arc<Mutex<Vec<String>>> = Arc::default();
        let bytes: Arc<Mutex<Vec<u8>>> = Arc::default();
        let (head_sink, byte_sink) = (heads.clone(), bytes.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(tunnel(client, head_sink.clone(), byte_sink.clone()));
            }
        });
        Self {
            address,
            heads,
            bytes,
            task,
        }
    }

    /// The request heads the proxy was sent, one a tunnel.
    pub fn heads(&self) -> Vec<String> {
        self.heads.lock().expect("heads").clone()
    }

    /// Whether `needle` crossed a tunnel in clear, either way.
    pub fn saw(&self, needle: &str) -> bool {
        contains(&self.bytes, needle)
    }
}

impl Drop for ConnectProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn tunnel(mut client: TcpStream, heads: Arc<Mutex<Vec<String>>>, sink: Arc<Mutex<Vec<u8>>>) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if !matches!(client.read(&mut byte).await, Ok(1)) {
            return;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    heads.lock().expect("heads").push(head.clone());
    let target = head
        .strip_prefix("CONNECT ")
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_default()
        .to_owned();
    let Ok(server) = TcpStream::connect(&target).await else {
        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
        return;
    };
    if client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await
        .is_err()
    {
        return;
    }
    splice(client, server, sink);
}

/// Forwards both ways between `client` and `server`, recording every byte.
fn splice(client: TcpStream, server: TcpStream, sink: Arc<Mutex<Vec<u8>>>) {
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::spawn(pump(client_read, server_write, sink.clone()));
    tokio::spawn(pump(server_read, client_write, sink));
}

/// Whether `needle` is among the recorded `bytes`.
fn contains(bytes: &Mutex<Vec<u8>>, needle: &str) -> bool {
    let bytes = bytes.lock().expect("capture");
    bytes
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

/// A free port on 127.0.0.1 (bound, then released for the caller to use).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("free port")
        .port()
}

/// The Debian package's server script, run directly (the `/usr/sbin` wrapper
/// would switch to the `rabbitmq` user, who cannot write the test's temp dir).
pub fn rabbitmq_server() -> PathBuf {
    let script = Path::new("/usr/lib/rabbitmq/bin/rabbitmq-server");
    assert!(
        script.exists(),
        "{} is missing: the RabbitMQ server package is not installed",
        script.display()
    );
    script.to_path_buf()
}

/// Starts a RabbitMQ node named `node` with `config` (the contents of its
/// `rabbitmq.conf`), its data, logs and files under `dir`, `home` holding its
/// Erlang cookie, and its own AMQP and distribution ports. In a process group
/// of its own, so the whole node can be signalled.
pub fn spawn_rabbitmq_node(
    node: &str,
    amqp_port: u16,
    dist_port: u16,
    config: &str,
    dir: &Path,
    home: &Path,
) -> Child {
    let write = |name: &str, contents: &str| {
        let path = dir.join(name);
        std::fs::write(&path, contents).expect("write a node file");
        path
    };
    let config = write("rabbitmq.conf", config);
    let plugins = write("enabled_plugins", "[].\n");
    let env_file = write("rabbitmq-env.conf", "");
    let mut command = Command::new(rabbitmq_server());
    command
        .env("RABBITMQ_CONF_ENV_FILE", env_file)
        .env("RABBITMQ_NODENAME", node)
        .env("RABBITMQ_NODE_PORT", amqp_port.to_string())
        .env("RABBITMQ_DIST_PORT", dist_port.to_string())
        .env("RABBITMQ_CONFIG_FILE", config)
        .env("RABBITMQ_ENABLED_PLUGINS_FILE", plugins)
        .env("RABBITMQ_MNESIA_BASE", dir.join("mnesia"))
        .env("RABBITMQ_LOG_BASE", dir.join("log"))
        .env("ERL_EPMD_ADDRESS", "127.0.0.1")
        .env("HOME", home)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    command.spawn().expect("start a RabbitMQ node")
}

/// Waits until a node listens on `port`; panics pointing at its logs in `dir`.
pub async fn wait_node_listening(node: &str, port: u16, dir: &Path) {
    // A node takes several seconds to boot, far more on a loaded machine.
    let listening = wait_for(PATIENCE * 2, || async {
        TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()
            .map(|_| ())
    })
    .await;
    assert!(
        listening.is_some(),
        "RabbitMQ node {node} never listened on {port}; its logs are in {}",
        dir.display()
    );
}

/// A second RabbitMQ node on its own ports with only an `amqps` listener, using
/// a certificate from `ca`. Stopped (SIGTERM to its process group) when dropped.
pub struct TlsBroker {
    pub port: u16,
    child: Child,
    /// Holds the node's data and logs until it is stopped.
    _dir: TempDir,
}

impl TlsBroker {
    pub async fn start(ca: &TestCa) -> Self {
        let dir = TempDir::new();
        let port = free_port();
        let config = format!(
            "listeners.tcp = none\n\
                 listeners.ssl.default = 127.0.0.1:{port}\n\
                 ssl_options.cacertfile = {}\n\
                 ssl_options.certfile = {}\n\
                 ssl_options.keyfile = {}\n\
                 ssl_options.verify = verify_none\n\
                 ssl_options.fail_if_no_peer_cert = false\n\
                 loopback_users = none\n",
            ca.ca_file, ca.cert_file, ca.key_file
        );
        let node = format!("stewrd_tls_{}@localhost", &unique_name()[2..14]);
        let child = spawn_rabbitmq_node(&node, free_port(), free_port(), &config, &dir.0, &dir.0);
        wait_node_listening(&node, port, &dir.0).await;
        Self {
            port,
            child,
            _dir: dir,
        }
    }
}

impl Drop for TlsBroker {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}
