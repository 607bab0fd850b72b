//! RabbitMQ: the connection, the topology (declared in one place), and the job
//! message. Messages carry only a run id; the worker reloads everything from
//! Postgres, so a message may be lost, duplicated or late without harm.

use std::{fmt, str::FromStr, sync::Arc, time::Duration};

use lapin::{
    Channel, Connection, ConnectionProperties, ExchangeKind,
    options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions},
    types::{AMQPValue, FieldTable, LongString},
};
use serde::{Deserialize, Serialize};

use crate::id::RunId;

/// Deliveries of one message before the quorum queue dead-letters it. Only a
/// message that crashes or stalls the worker before its claim is ever redelivered,
/// so a handful is plenty. (RabbitMQ 3.x has no default: unset means unlimited.)
pub const DELIVERY_LIMIT: i64 = 5;

/// The names of every exchange and queue, all under one prefix.
#[derive(Clone, Debug)]
pub struct Topology {
    prefix: String,
}

impl Topology {
    /// Names under `prefix` (`STEWRD_QUEUE_PREFIX`).
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    /// The work queue; published to through the default exchange.
    pub fn jobs_queue(&self) -> String {
        format!("{}.jobs", self.prefix)
    }

    /// Where the work queue dead-letters messages past the delivery limit.
    pub fn dead_letter_exchange(&self) -> String {
        format!("{}.dead-letter", self.prefix)
    }

    /// The queue the dead-letter consumer reads.
    pub fn dead_letter_queue(&self) -> String {
        format!("{}.jobs.dead", self.prefix)
    }

    /// Every queue, for cleanup.
    pub fn queues(&self) -> [String; 2] {
        [self.jobs_queue(), self.dead_letter_queue()]
    }
}

/// Declares every exchange and queue (idempotent: each process does it at start).
pub async fn declare_topology(channel: &Channel, topology: &Topology) -> lapin::Result<()> {
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    channel
        .exchange_declare(
            topology.dead_letter_exchange().into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;

    let mut dead_args = FieldTable::default();
    dead_args.insert("x-queue-type".into(), long_string("quorum"));
    channel
        .queue_declare(topology.dead_letter_queue().into(), durable, dead_args)
        .await?;
    channel
        .queue_bind(
            topology.dead_letter_queue().into(),
            topology.dead_letter_exchange().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;

    let mut jobs_args = FieldTable::default();
    // Replicated, fsynced before confirming, and counts redeliveries.
    jobs_args.insert("x-queue-type".into(), long_string("quorum"));
    // Poison messages stop being redelivered after this many tries...
    jobs_args.insert(
        "x-delivery-limit".into(),
        AMQPValue::LongLongInt(DELIVERY_LIMIT),
    );
    // ...and go to the dead-letter queue, whose consumer fails their runs.
    jobs_args.insert(
        "x-dead-letter-exchange".into(),
        long_string(&topology.dead_letter_exchange()),
    );
    // Dead-lettering is at-most-once unless asked; at-least-once requires reject-publish.
    jobs_args.insert(
        "x-dead-letter-strategy".into(),
        long_string("at-least-once"),
    );
    jobs_args.insert("x-overflow".into(), long_string("reject-publish"));
    channel
        .queue_declare(topology.jobs_queue().into(), durable, jobs_args)
        .await?;
    Ok(())
}

fn long_string(text: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(text))
}

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
    pub fn new(url: impl Into<String>, ca_file: Option<&str>) -> Result<Self, String> {
        let mut broker = Self::at(url);
        if let Some(path) = ca_file {
            let pem =
                std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
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

/// The body of a job message. Versioned so that old and new workers can share a
/// queue during a rolling upgrade.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum JobMessage {
    /// Run this run (if it still needs running).
    #[serde(rename = "run.v1")]
    Run { run_id: RunId },
}

impl JobMessage {
    /// The JSON body.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses a JSON body.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_message_round_trips_and_names_its_version() {
        let message = JobMessage::Run {
            run_id: RunId::new(),
        };
        let bytes = message.to_bytes();
        assert!(String::from_utf8_lossy(&bytes).contains("\"type\":\"run.v1\""));
        assert_eq!(JobMessage::from_bytes(&bytes).ok(), Some(message));
        assert!(JobMessage::from_bytes(b"{\"type\":\"run.v0\"}").is_err());
    }

    #[test]
    fn every_name_carries_the_prefix() {
        let topology = Topology::new("t_42");
        assert_eq!(topology.jobs_queue(), "t_42.jobs");
        assert!(topology.dead_letter_exchange().starts_with("t_42."));
        assert!(topology.queues().iter().all(|q| q.starts_with("t_42.")));
    }
}
