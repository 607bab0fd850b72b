//! The `runs` table: submit, claim, finish, and the lease bookkeeping that lets
//! any worker take over a dead worker's runs. Every transition is one conditional
//! statement; whoever's statement matches no row lost the race and backs off.

mod claim;
mod finish;
mod record;
mod submit;

pub use self::{
    claim::{
        Batch, Claim, ClaimLease, ClaimedRun, Progress, ProjectSnapshot, RunRequest, claim_batch,
        claim_next, claim_room, claim_unreadable, extend_leases, requeue_expired_leases,
    },
    finish::{
        CancelOutcome, Finished, Requeue, ResultRow, RunOutcome, cancel_session,
        fail_unclaimed_run, fall_back_run, finish_run, requeue_run,
    },
    record::{EarlierRun, RUN_RECORD_COLUMNS, RunRecord, earlier_runs},
    submit::{AgentSettings, InsertRunError, NewRun, SessionTarget, insert_run},
};
