//! Connecting to RabbitMQ: the URL, its TLS trust, small frames and a bounded
//! handshake.

use std::{fmt, str::FromStr, sync::Arc, time::Duration};

use lapin::{
    Connection, ConnectionProperties,
    uri::{AMQPScheme, AMQPUri},
};

use crate::runtime::tls::PemError;

/// The largest frame stewrd asks for unless `AMQP_URL` sets `frame_max`. lapin
/// keeps 32 frames of send and of receive buffer per connection, so RabbitMQ's
/// default (128 KiB) costs 8 MiB a connection; job messages are under 200 bytes
/// (bigger bodies are simply split into more frames).
const FRAME_MAX: u32 = 16 * 1024;

/// How long opening a connection (TCP, TLS and the AMQP handshake) may take, so
/// a listener that never answers is an error, not a hang.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where RabbitMQ is (`AMQP_URL`: one URL, or several nodes of a cluster
/// separated by commas) and which CA vouches for it (`STEWRD_AMQP_CA_FILE`).
/// `amqps://` URLs use TLS, the host name verified and the chain checked
/// against the public (Mozilla) CAs plus that file, for every node alike.
#[derive(Clone)]
pub struct Broker {
    nodes: Arc<[AMQPUri]>,
    ca_pem: Option<Arc<str>>,
}

/// The URLs may hold passwords: only how many nodes and whether TLS is on are
/// shown.
impl fmt::Debug for Broker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Broker")
            .field("nodes", &self.nodes.len())
            .field("tls", &self.tls())
            .field("ca_file", &self.ca_pem.is_some())
            .finish_non_exhaustive()
    }
}

/// Why `AMQP_URL` cannot be used; never repeats the URL (it may hold a password).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BrokerUrlError(String);

impl Broker {
    /// A broker at `urls` (one URL or several, comma-separated), trusting the
    /// public CAs only.
    pub fn at(urls: &str) -> Result<Self, BrokerUrlError> {
        let parts = split_nodes(urls);
        let mut nodes = Vec::with_capacity(parts.len());
        for (i, part) in parts.iter().enumerate() {
            let mut uri = AMQPUri::from_str(part).map_err(|e| {
                let which = if parts.len() > 1 {
                    format!("node {} ", i + 1)
                } else {
                    String::new()
                };
                BrokerUrlError(format!("{which}is not an AMQP URL ({e})"))
            })?;
            uri.query.frame_max.get_or_insert(FRAME_MAX);
            nodes.push(uri);
        }
        if nodes.iter().any(|node| node.scheme != nodes[0].scheme) {
            return Err(BrokerUrlError(
                "mixes amqp:// and amqps:// nodes; use TLS for all or none".into(),
            ));
        }
        Ok(Self {
            nodes: nodes.into(),
            ca_pem: None,
        })
    }

    /// A broker at `urls`, trusting the PEM certificates in `ca_file` as well
    /// as the public CAs.
    pub fn with_ca_file(mut self, ca_file: Option<&str>) -> Result<Self, PemError> {
        if let Some(path) = ca_file {
            let pem = std::fs::read_to_string(path).map_err(|source| PemError::Unreadable {
                path: path.to_owned(),
                source,
            })?;
            crate::runtime::tls::parse_certificates(pem.as_bytes(), path)?;
            self.ca_pem = Some(Arc::from(pem));
        }
        Ok(self)
    }

    /// Whether the URLs ask for TLS (`amqps://`).
    pub fn tls(&self) -> bool {
        self.nodes
            .first()
            .is_some_and(|node| node.scheme == AMQPScheme::AMQPS)
    }

    /// Opens a connection named after the process role (visible in RabbitMQ's
    /// UI) to the first node that answers, in the order `AMQP_URL` lists them.
    /// Every caller reconnects through here after a loss, so a stopped node is
    /// skipped (refused at once on a live host, else after the handshake bound)
    /// and the first node is used again once it is back. The error is the last
    /// node's, with how many were tried.
    pub async fn connect(&self, name: &str) -> lapin::Result<Connection> {
        let mut last = None;
        for (i, node) in self.nodes.iter().enumerate() {
            match self.connect_to(node, name).await {
                Ok(connection) => {
                    if i > 0 {
                        tracing::info!(node = i + 1, "connected to a later RabbitMQ node");
                    }
                    return Ok(connection);
                }
                Err(error) => {
                    if self.nodes.len() > 1 {
                        tracing::debug!(node = i + 1, %error, "RabbitMQ node did not answer");
                    }
                    last = Some(error);
                }
            }
        }
        let error = last.unwrap_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "AMQP_URL names no node").into()
        });
        if self.nodes.len() > 1 {
            return Err(std::io::Error::other(format!(
                "none of {} RabbitMQ nodes answered; the last: {error}",
                self.nodes.len()
            ))
            .into());
        }
        Err(error)
    }

    async fn connect_to(&self, node: &AMQPUri, name: &str) -> lapin::Result<Connection> {
        let properties = ConnectionProperties::default().with_connection_name(name.into());
        let tls = lapin::tcp::OwnedTLSConfig {
            identity: None,
            cert_chain: self.ca_pem.as_deref().map(str::to_owned),
        };
        let runtime = lapin::runtime::default_runtime()?;
        let connecting =
            Connection::connect_uri_with_config(node.clone(), properties, tls, runtime);
        match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
            Ok(result) => result,
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "no AMQP handshake within {}s (a TLS listener behind amqp://, or the reverse?)",
                    CONNECT_TIMEOUT.as_secs()
                ),
            )
            .into()),
        }
    }
}

/// Splits `AMQP_URL` into its nodes: at each comma that starts another
/// `amqp://` or `amqps://` URL, so a comma inside a password stays put.
fn split_nodes(urls: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    for (at, _) in urls.match_indices(',') {
        let rest = urls[at + 1..].trim_start();
        if rest.starts_with("amqp://") || rest.starts_with("amqps://") {
            parts.push(urls[start..at].trim());
            start = at + 1;
        }
    }
    parts.push(urls[start..].trim());
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_nodes_split_at_commas_that_start_a_url() {
        assert_eq!(
            split_nodes("amqp://u:p@a:5672/%2f, amqp://u:p@b:5673/%2f,amqp://u:p@c/%2f"),
            [
                "amqp://u:p@a:5672/%2f",
                "amqp://u:p@b:5673/%2f",
                "amqp://u:p@c/%2f"
            ]
        );
        assert_eq!(
            split_nodes("amqp://u:p,w@a/%2f,amqp://u:p@b/%2f"),
            ["amqp://u:p,w@a/%2f", "amqp://u:p@b/%2f"]
        );
        let broker = Broker::at("amqp://u:p@a/%2f,amqp://u:p@b/%2f").expect("two nodes");
        assert!(format!("{broker:?}").contains("nodes: 2"), "{broker:?}");
        assert!(!broker.tls());
    }

    #[test]
    fn a_bad_node_is_named_by_position_and_never_shows_its_password() {
        let error = Broker::at("amqp://u:sekrit@a/%2f,amqp://u:sekrit@b:notaport/%2f")
            .expect_err("bad port");
        let text = error.to_string();
        assert!(text.contains("node 2"), "{text}");
        assert!(!text.contains("sekrit"), "{text}");
        let mixed = Broker::at("amqps://u:p@a/%2f,amqp://u:p@b/%2f").expect_err("mixed");
        assert!(mixed.to_string().contains("mixes"), "{mixed}");
        let debug = format!("{:?}", Broker::at("amqp://u:sekrit@a/%2f").expect("one"));
        assert!(!debug.contains("sekrit"), "{debug}");
    }
}
