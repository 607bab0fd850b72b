//! RabbitMQ (reached through `runtime::broker`): the topology (declared in one place), the job
//! message, and the outbox relay that publishes it. Messages carry only a run
//! id; the worker reloads everything from Postgres, so a message may be lost,
//! duplicated or late without harm.

pub mod deltas;
pub mod relay;
mod topology;

use serde::{Deserialize, Serialize};

pub use self::topology::{DELIVERY_LIMIT, Topology, declare_topology};
use crate::domain::id::{ProjectId, RunId};

/// The body of a job message. Versioned so that old and new workers can share a
/// queue during a rolling upgrade.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum JobMessage {
    /// Run this run (if it still needs running).
    #[serde(rename = "run.v1")]
    Run { run_id: RunId },
    /// A capped project may have a free place: fill it (`db::place`).
    #[serde(rename = "room.v1")]
    Room { project_id: ProjectId },
}

impl JobMessage {
    /// The JSON body.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The message's id (`message_id`): what it wakes.
    pub fn id(&self) -> String {
        match self {
            Self::Run { run_id } => run_id.to_string(),
            Self::Room { project_id } => format!("room-{project_id}"),
        }
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
        let room = JobMessage::Room {
            project_id: ProjectId::new(),
        };
        assert_eq!(JobMessage::from_bytes(&room.to_bytes()).ok(), Some(room));
    }
}
