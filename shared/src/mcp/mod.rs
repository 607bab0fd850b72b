//! MCP servers as tool sources: the client (Streamable HTTP transport) the API
//! uses to list a server's tools and the worker to call them, and the sealing
//! of the header values a project sends them.

pub mod client;
pub mod wire;

use std::{collections::BTreeMap, time::Duration};

use crate::{
    domain::{
        id::ProjectId,
        mcp::{McpServer, McpTool, pinned},
    },
    runtime::config::Config,
    secrets::crypto::{CryptoError, MasterKeyRing, SecretField},
};

pub use client::{Endpoint, McpClient, McpError};

/// Header values by server, then by header name.
pub type Headers = BTreeMap<String, BTreeMap<String, String>>;

/// Seals a project's header values under the master key ring (`None` when
/// no server has any).
pub fn seal_headers(
    keys: &MasterKeyRing,
    project: ProjectId,
    headers: &Headers,
) -> Option<Vec<u8>> {
    if headers.values().all(BTreeMap::is_empty) {
        return None;
    }
    let plain = zeroize::Zeroizing::new(serde_json::to_vec(headers).unwrap_or_default());
    Some(keys.encrypt(&plain, project, SecretField::McpHeaders))
}

/// Opens what [`seal_headers`] sealed (nothing sealed: no headers).
pub fn open_headers(
    keys: &MasterKeyRing,
    project: ProjectId,
    sealed: Option<&[u8]>,
) -> Result<Headers, CryptoError> {
    let Some(sealed) = sealed else {
        return Ok(Headers::new());
    };
    let plain = keys.decrypt(sealed, project, SecretField::McpHeaders)?;
    serde_json::from_slice(&plain).map_err(|_| CryptoError::Malformed)
}

/// How a project reaches `server`: its URL and its header values.
pub fn endpoint(server: &McpServer, headers: &Headers) -> Endpoint {
    let values = headers.get(&server.name);
    Endpoint::new(
        &server.url,
        values
            .into_iter()
            .flatten()
            .map(|(name, value)| (name.as_str(), value.as_str())),
    )
}

/// The tools `server` offers the model now (`allowed_tools` applied, each name
/// once), within `limit`.
pub async fn tools_of(
    client: &McpClient,
    server: &McpServer,
    endpoint: &Endpoint,
    limit: Duration,
) -> Result<Vec<McpTool>, McpError> {
    let listed = client.list_tools(endpoint, limit).await?;
    let mut tools: Vec<McpTool> = Vec::with_capacity(listed.len());
    for tool in listed.iter().filter_map(|entry| pinned(server, entry)) {
        if !tools.iter().any(|t| t.name == tool.name) {
            tools.push(tool);
        }
    }
    Ok(tools)
}

/// A process's MCP client: connections guarded as webhooks' are, answers read
/// up to the largest file (in base64, as image contents come).
pub fn client_for(config: &Config) -> Result<McpClient, reqwest::Error> {
    let largest = usize::try_from(config.files.max_bytes).unwrap_or(usize::MAX);
    McpClient::new(
        config.worker.mcp_connect.min(Duration::from_secs(10)),
        largest.saturating_mul(4) / 3 + (1 << 20),
        config.webhook_allow_private,
    )
}
