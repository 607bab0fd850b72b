//! Connecting to RabbitMQ: the URL, its TLS trust, small frames and a bounded
//! handshake.

use std::{fmt, str::FromStr, sync::Arc, time::Duration};

use lapin::{Connection, ConnectionProperties};

use crate::tls::PemError;

/// The largest frame stewrd asks for unless `AMQP_URL` sets `frame_max`. lapin
/// keeps 32 frames of send and of receive buffer per connection, so RabbitMQ's
/// default (128 KiB) costs 8 MiB a connection; job messages are under 200 bytes
/// (bigger bodies are simply split into more frames).
const FRAME_MAX: u32 = 16 * 1024;

/// How long opening a connection (TCP, TLS and the AMQP handshake) may take, so
/// a listener that never answers is an error, not a hang.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where RabbitMQ is (`AMQP_URL`) and which CA vouches for it
/// (`STEWRD_AMQP_CA_FILE`). `amqps://` URLs use TLS, the host name verified and
/// the chain checked against the public (Mozilla) CAs plus that file.
#[derive(Clone)]
pub struct Broker {
    url: String,
    ca_pem: Option<Arc<str>>,
}

/// The URL may hold a password: only whether TLS is on is shown.
impl fmt::Debug for Broker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Broker")
            .field("tls", &self.tls())
            .field("ca_file", &self.ca_pem.is_some())
            .finish_non_exhaustive()
    }
}

impl Broker {
    /// A broker at `url`, trusting the public CAs only.
    pub fn at(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ca_pem: None,
        }
    }

    /// A broker at `url`, trusting the PEM certificates in `ca_file` as well as
    /// the public CAs. The error says what is wrong with the file.
    pub fn new(url: impl Into<String>, ca_file: Option<&str>) -> Result<Self, PemError> {
        let mut broker = Self::at(url);
        if let Some(path) = ca_file {
            let pem = std::fs::read_to_string(path).map_err(|source| PemError::Unreadable {
                path: path.to_owned(),
                source,
            })?;
            crate::tls::parse_certificates(pem.as_bytes(), path)?;
            broker.ca_pem = Some(Arc::from(pem));
        }
        Ok(broker)
    }

    /// Whether the URL asks for TLS (`amqps://`).
    pub fn tls(&self) -> bool {
        self.url.starts_with("amqps:")
    }

    /// Opens a connection named after the process role (visible in RabbitMQ's UI).
    pub async fn connect(&self, name: &str) -> lapin::Result<Connection> {
        let properties = ConnectionProperties::default().with_connection_name(name.into());
        let tls = lapin::tcp::OwnedTLSConfig {
            identity: None,
            cert_chain: self.ca_pem.as_deref().map(str::to_owned),
        };
        let mut uri = lapin::uri::AMQPUri::from_str(&self.url).map_err(|e| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("AMQP_URL: {e}"))
        })?;
        uri.query.frame_max.get_or_insert(FRAME_MAX);
        let runtime = lapin::runtime::default_runtime()?;
        let connecting = Connection::connect_uri_with_config(uri, properties, tls, runtime);
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
