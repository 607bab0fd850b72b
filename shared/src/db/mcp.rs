//! What MCP calls need of the store: the tools a run pinned at its first
//! step, and the marks of calls sent that must not be made again. Both are
//! written under the run's lease, as steps are.

use super::{DbError, GenericClient, step::Lease};
use crate::domain::mcp::McpTool;

/// Pins `tools` as the run's MCP tools, unless some are pinned already: the
/// pinned ones (`None`: the lease was lost).
pub async fn pin_mcp_tools(
    client: &impl GenericClient,
    lease: Lease,
    tools: &[McpTool],
) -> Result<Option<Vec<McpTool>>, DbError> {
    let tools = serde_json::to_value(tools).unwrap_or_default();
    let row = client
        .query_opt(
            "UPDATE runs SET mcp_tools = coalesce(mcp_tools, $4)
             WHERE id = $1 AND status = 'running' AND lease_owner = $2 AND attempts = $3
             RETURNING mcp_tools",
            &[&lease.run_id, &lease.worker, &lease.attempt, &tools],
        )
        .await?;
    row.map(|row| {
        serde_json::from_value(row.try_get(0)?).map_err(|_| DbError::Corrupt {
            column: "mcp_tools",
        })
    })
    .transpose()
}

/// What marking calls sent found.
#[derive(Debug, PartialEq, Eq)]
pub enum Marked {
    /// The lease was lost: send nothing.
    LeaseLost,
    /// These calls are marked now, and may be sent; the others were marked
    /// by an earlier attempt (sent, their outcome unknown).
    Now(Vec<String>),
}

/// Marks `calls` (tool call ids) sent, before they are sent.
pub async fn mark_sent(
    client: &impl GenericClient,
    lease: Lease,
    calls: &[String],
) -> Result<Marked, DbError> {
    let statement = client
        .prepare_cached(
            "WITH held AS (
                 SELECT id FROM runs
                 WHERE id = $1 AND status = 'running' AND lease_owner = $2 AND attempts = $3
             ),
             marked AS (
                 INSERT INTO sent_calls (run_id, tool_call_id)
                 SELECT held.id, call FROM held, unnest($4::text[]) AS call
                 ON CONFLICT DO NOTHING
                 RETURNING tool_call_id
             )
             SELECT EXISTS (SELECT 1 FROM held) AS held,
                    array(SELECT tool_call_id FROM marked) AS marked",
        )
        .await?;
    let row = client
        .query_one(
            &statement,
            &[&lease.run_id, &lease.worker, &lease.attempt, &calls],
        )
        .await?;
    if !row.try_get::<_, bool>("held")? {
        return Ok(Marked::LeaseLost);
    }
    Ok(Marked::Now(row.try_get("marked")?))
}
