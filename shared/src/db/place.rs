//! The `free_places` table: capped projects that may have a free place, one
//! mark each (see migration 0018). A mark is set when a run of the project
//! stops running or its limits change, published by the relay as a room
//! message, and deleted only by a room claim that finds no room or no work,
//! if no place freed since: level-triggered, so no freed place stays empty
//! whichever message is lost, late or duplicated.

use std::time::Duration;

use super::{DbError, GenericClient};
use crate::domain::id::ProjectId;

/// The first republish window of a mark whose room message went unanswered
/// (lost, or waiting behind a backlog); it doubles with each publish.
const REPUBLISH_FIRST: Duration = Duration::from_secs(5);
/// The longest republish window.
const REPUBLISH_MOST: Duration = Duration::from_secs(300);

/// Takes up to `limit` due marks for publishing, pushing each one's next due
/// time into the future; concurrent relays never take the same mark.
pub async fn take_due(client: &impl GenericClient, limit: i64) -> Result<Vec<ProjectId>, DbError> {
    let statement = client
        .prepare_cached(
            "UPDATE free_places f
             SET available_at = now() + make_interval(
                     secs => least($2 * power(2, least(f.publishes, 12)), $3)),
                 publishes = f.publishes + 1
             FROM (SELECT project_id FROM free_places WHERE available_at <= now()
                   ORDER BY available_at LIMIT $1 FOR UPDATE SKIP LOCKED) due
             WHERE f.project_id = due.project_id
             RETURNING f.project_id",
        )
        .await?;
    client
        .query(
            &statement,
            &[
                &limit,
                &REPUBLISH_FIRST.as_secs_f64(),
                &REPUBLISH_MOST.as_secs_f64(),
            ],
        )
        .await?
        .iter()
        .map(|row| Ok(row.try_get("project_id")?))
        .collect()
}

/// Makes the marks whose room message could not be published due again after `delay`.
pub async fn retry_after(
    client: &impl GenericClient,
    projects: &[ProjectId],
    delay: Duration,
) -> Result<(), DbError> {
    client
        .execute(
            "UPDATE free_places SET available_at = now() + make_interval(secs => $2)
             WHERE project_id = ANY($1)",
            &[&projects, &delay.as_secs_f64()],
        )
        .await?;
    Ok(())
}

/// Marks `project` as maybe having a free place (its limits changed).
pub async fn mark(client: &impl GenericClient, project: ProjectId) -> Result<(), DbError> {
    client
        .execute("SELECT stewrd_mark_free_place($1)", &[&project])
        .await?;
    Ok(())
}
