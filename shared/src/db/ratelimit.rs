//! Per-project rate limits that hold across every worker: GCRA over one row per
//! project, with reservations. Each call reserves the next free slot in a single
//! atomic upsert; a run whose slot is later waits for it (deferred in the outbox
//! or, when close, in the worker), so many waiting runs never stampede: each is
//! claimed at most twice. In any window of W seconds a project starts at most
//! W·rate + burst calls.

use std::time::Duration;

use super::{DbError, GenericClient};
use crate::domain::id::ProjectId;

/// The spacing and burst tolerance of a limit of `rpm` requests per minute.
pub fn gcra(rpm: u32, burst: u32) -> (f64, f64) {
    let interval = 60.0 / f64::from(rpm.max(1));
    let tolerance = interval * f64::from(burst.max(1) - 1);
    (interval, tolerance)
}

/// Reserves the project's next call slot; returns how long until it (zero or
/// negative: call now).
pub async fn reserve_slot(
    client: &impl GenericClient,
    project_id: ProjectId,
    rpm: u32,
    burst: u32,
) -> Result<Duration, DbError> {
    let (interval, tolerance) = gcra(rpm, burst);
    let statement = client
        .prepare_cached(
            "INSERT INTO rate_limits AS l (project_id, tat)
             VALUES ($1, now() + make_interval(secs => $2))
             ON CONFLICT (project_id) DO UPDATE
                 SET tat = greatest(l.tat, now()) + make_interval(secs => $2)
             RETURNING extract(epoch FROM l.tat - make_interval(secs => $2 + $3) - now())::float8
                       AS wait",
        )
        .await?;
    let wait: f64 = client
        .query_one(&statement, &[&project_id, &interval, &tolerance])
        .await?
        .try_get("wait")?;
    Ok(Duration::from_secs_f64(wait.max(0.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sixty_a_minute_is_one_a_second_with_the_burst_as_slack() {
        assert_eq!(gcra(60, 1), (1.0, 0.0));
        assert_eq!(gcra(60, 5), (1.0, 4.0));
        assert_eq!(gcra(600, 1).0, 0.1);
    }
}
