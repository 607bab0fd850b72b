//! The `files` table: a row per file, written `uploading` before any byte is
//! stored and `ready` only once all of them are (so a file is listed only when
//! whole), `deleted` when its bytes are to go. The bytes themselves live in the
//! object store (`files`), sealed; the row holds the wrapped data key.

use std::time::Duration;

use time::OffsetDateTime;
use tokio_postgres::Row;

use super::{DbError, GenericClient, parse_column};
use crate::domain::{
    file::{FileId, Purpose},
    id::{ProjectId, RunId, SessionId},
};

/// A file as stored.
#[derive(Clone, Debug)]
pub struct FileRow {
    pub id: FileId,
    pub project_id: ProjectId,
    pub purpose: Purpose,
    pub filename: String,
    pub content_type: String,
    pub bytes: i64,
    pub sha256: String,
    pub session_id: Option<SessionId>,
    pub run_id: Option<RunId>,
    /// The data key, wrapped by the master key ring (bound to the project).
    pub wrapped_key: Vec<u8>,
    /// The nonce prefix of its sealed chunks.
    pub seal_prefix: Vec<u8>,
    pub created_at: OffsetDateTime,
}

const COLUMNS: &str = "id, project_id, purpose, filename, coalesce(content_type, '') AS content_type, \
     coalesce(bytes, 0) AS bytes, coalesce(sha256, '') AS sha256, session_id, run_id, \
     wrapped_key, seal_prefix, created_at";

impl FileRow {
    fn from_row(row: &Row) -> Result<Self, DbError> {
        Ok(Self {
            id: row.try_get("id")?,
            project_id: row.try_get("project_id")?,
            purpose: parse_column(row, "purpose", Purpose::parse)?,
            filename: row.try_get("filename")?,
            content_type: row.try_get("content_type")?,
            bytes: row.try_get("bytes")?,
            sha256: row.try_get("sha256")?,
            session_id: row.try_get("session_id")?,
            run_id: row.try_get("run_id")?,
            wrapped_key: row.try_get("wrapped_key")?,
            seal_prefix: row.try_get("seal_prefix")?,
            created_at: row.try_get("created_at")?,
        })
    }
}

/// A file about to be uploaded.
pub struct NewFile<'a> {
    pub id: FileId,
    pub project_id: ProjectId,
    pub purpose: Purpose,
    pub filename: &'a str,
    pub session_id: Option<SessionId>,
    pub run_id: Option<RunId>,
    pub wrapped_key: &'a [u8],
    pub seal_prefix: &'a [u8],
}

/// Writes the row of a file whose bytes are about to be stored. False when a
/// row with this id exists already (an artifact made by an earlier attempt).
pub async fn begin_upload(
    client: &impl GenericClient,
    file: &NewFile<'_>,
) -> Result<bool, DbError> {
    let written = client
        .execute(
            "INSERT INTO files (id, project_id, purpose, status, filename, session_id, run_id,
                                wrapped_key, seal_prefix)
             VALUES ($1, $2, $3, 'uploading', $4, $5, $6, $7, $8)
             ON CONFLICT (id) DO NOTHING",
            &[
                &file.id,
                &file.project_id,
                &file.purpose.as_str(),
                &file.filename,
                &file.session_id,
                &file.run_id,
                &file.wrapped_key,
                &file.seal_prefix,
            ],
        )
        .await?;
    Ok(written == 1)
}

/// What finishing an upload did.
#[derive(Debug)]
pub enum Finished {
    /// The file is ready and counted against the project's quota.
    Ready(Box<FileRow>),
    /// The project's files would pass its quota: nothing was counted.
    OverQuota,
    /// The row is gone or not uploading (deleted meanwhile, or finished by another).
    Gone,
}

/// The facts of a stored file.
pub struct Stored<'a> {
    pub bytes: i64,
    pub sha256: &'a str,
    pub content_type: &'a str,
    pub segments: i32,
}

/// Marks an upload ready, counting its bytes against the project's quota in
/// the same statement (so concurrent uploads cannot pass it together).
pub async fn finish_upload(
    client: &impl GenericClient,
    id: FileId,
    stored: &Stored<'_>,
    quota: i64,
) -> Result<Finished, DbError> {
    let statement = client
        .prepare_cached(&format!(
            "WITH f AS (SELECT project_id FROM files WHERE id = $1 AND status = 'uploading'),
             q AS (
                 UPDATE projects p SET storage_bytes = p.storage_bytes + $2
                 FROM f WHERE p.id = f.project_id AND p.storage_bytes + $2 <= $6
                 RETURNING p.id
             ),
             r AS (
                 UPDATE files SET status = 'ready', bytes = $2, sha256 = $3, content_type = $4,
                                  segments = $5, ready_at = now()
                 WHERE id = $1 AND status = 'uploading' AND EXISTS (SELECT 1 FROM q)
                 RETURNING {COLUMNS}
             )
             SELECT (SELECT count(*) FROM f) AS uploading, r.* FROM (SELECT 1) one
             LEFT JOIN r ON true"
        ))
        .await?;
    let row = client
        .query_one(
            &statement,
            &[
                &id,
                &stored.bytes,
                &stored.sha256,
                &stored.content_type,
                &stored.segments,
                &quota,
            ],
        )
        .await?;
    if row.try_get::<_, i64>("uploading")? == 0 {
        return Ok(Finished::Gone);
    }
    if row.try_get::<_, Option<FileId>>("id")?.is_none() {
        return Ok(Finished::OverQuota);
    }
    Ok(Finished::Ready(Box::new(FileRow::from_row(&row)?)))
}

/// Gives up an upload: its row goes at once (it was never listed); its
/// objects are the caller's to delete.
pub async fn abandon_upload(client: &impl GenericClient, id: FileId) -> Result<(), DbError> {
    client
        .execute(
            "DELETE FROM files WHERE id = $1 AND status = 'uploading'",
            &[&id],
        )
        .await?;
    Ok(())
}

/// Bytes the project's ready files hold.
pub async fn stored_bytes(client: &impl GenericClient, project: ProjectId) -> Result<i64, DbError> {
    Ok(client
        .query_one(
            "SELECT storage_bytes FROM projects WHERE id = $1",
            &[&project],
        )
        .await?
        .try_get(0)?)
}

/// A ready file of `project`.
pub async fn get_file(
    client: &impl GenericClient,
    project: ProjectId,
    id: FileId,
) -> Result<Option<FileRow>, DbError> {
    let statement = client
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM files WHERE id = $1 AND project_id = $2 AND status = 'ready'"
        ))
        .await?;
    client
        .query_opt(&statement, &[&id, &project])
        .await?
        .map(|row| FileRow::from_row(&row))
        .transpose()
}

/// The ready files among `ids` of `project`, in the order given (missing or
/// deleted ones left out).
pub async fn files_by_id(
    client: &impl GenericClient,
    project: ProjectId,
    ids: &[FileId],
) -> Result<Vec<FileRow>, DbError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let statement = client
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM files f
             JOIN unnest($1::uuid[]) WITH ORDINALITY AS x(wanted, position) ON x.wanted = f.id
             WHERE f.project_id = $2 AND f.status = 'ready' ORDER BY x.position"
        ))
        .await?;
    client
        .query(&statement, &[&ids, &project])
        .await?
        .iter()
        .map(FileRow::from_row)
        .collect()
}

/// Which files a listing shows.
#[derive(Clone, Copy, Debug, Default)]
pub struct FileFilter {
    pub purpose: Option<Purpose>,
    /// A session's files: its artifacts and the inputs attached to its messages.
    pub session: Option<SessionId>,
}

/// A page of `project`'s ready files, newest first, after the cursor `after`.
pub async fn list_files(
    client: &impl GenericClient,
    project: ProjectId,
    filter: FileFilter,
    after: Option<FileId>,
    limit: i64,
) -> Result<Vec<FileRow>, DbError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM files f
         WHERE f.project_id = $1 AND f.status = 'ready'
           AND ($2::text IS NULL OR f.purpose = $2)
           AND ($3::uuid IS NULL OR f.session_id = $3
                OR f.id IN (SELECT unnest(r.files) FROM runs r WHERE r.session_id = $3))
           AND ($4::uuid IS NULL OR f.id < $4)
         ORDER BY f.id DESC LIMIT $5"
    );
    client
        .query(
            &sql,
            &[
                &project,
                &filter.purpose.map(Purpose::as_str),
                &filter.session,
                &after,
                &limit,
            ],
        )
        .await?
        .iter()
        .map(FileRow::from_row)
        .collect()
}

/// Deletes a ready file: listed no more at once, its bytes taken off the
/// project's quota, its objects left to the housekeeping that removes them.
pub async fn delete_file(
    client: &impl GenericClient,
    project: ProjectId,
    id: FileId,
) -> Result<bool, DbError> {
    let rows = client
        .query(
            "WITH d AS (
                 UPDATE files SET status = 'deleted', deleted_at = now()
                 WHERE id = $1 AND project_id = $2 AND status = 'ready'
                 RETURNING project_id, bytes
             )
             UPDATE projects p SET storage_bytes = p.storage_bytes - d.bytes
             FROM d WHERE p.id = d.project_id RETURNING p.id",
            &[&id, &project],
        )
        .await?;
    Ok(!rows.is_empty())
}

/// A file whose objects are to be removed: deleted, or an upload abandoned
/// (cut off by its client, or by a crash) for longer than `stale`.
#[derive(Clone, Debug)]
pub struct Leftover {
    pub id: FileId,
    pub project_id: ProjectId,
    /// Objects written, when known (a deleted file); else they are listed.
    pub segments: Option<i32>,
}

/// Up to `limit` leftovers, oldest first (several sweepers take different ones).
pub async fn leftovers(
    client: &impl GenericClient,
    stale: Duration,
    limit: i64,
) -> Result<Vec<Leftover>, DbError> {
    client
        .query(
            "SELECT id, project_id, segments FROM files
             WHERE status = 'deleted'
                OR (status = 'uploading' AND created_at < now() - make_interval(secs => $1))
             ORDER BY created_at LIMIT $2",
            &[&stale.as_secs_f64(), &limit],
        )
        .await?
        .iter()
        .map(|row| {
            Ok(Leftover {
                id: row.try_get("id")?,
                project_id: row.try_get("project_id")?,
                segments: row.try_get("segments")?,
            })
        })
        .collect()
}

/// Forgets a leftover whose objects are gone.
pub async fn forget_file(client: &impl GenericClient, id: FileId) -> Result<(), DbError> {
    client
        .execute(
            "DELETE FROM files WHERE id = $1 AND status <> 'ready'",
            &[&id],
        )
        .await?;
    Ok(())
}

/// A ready file by id alone (an artifact an earlier attempt made).
pub async fn get_any_file(
    client: &impl GenericClient,
    id: FileId,
) -> Result<Option<FileRow>, DbError> {
    client
        .query_opt(
            &format!("SELECT {COLUMNS} FROM files WHERE id = $1 AND status = 'ready'"),
            &[&id],
        )
        .await?
        .map(|row| FileRow::from_row(&row))
        .transpose()
}

/// A file attached to a message, as the message shows it (also once deleted).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttachedFile {
    pub id: FileId,
    pub filename: String,
    pub content_type: String,
}

/// The files `ids` name, whatever their status (none when `ids` is empty).
pub async fn attached_files(
    client: &impl GenericClient,
    ids: &[FileId],
) -> Result<Vec<AttachedFile>, DbError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    client
        .query(
            "SELECT id, filename, coalesce(content_type, '') AS content_type FROM files
             WHERE id = ANY($1)",
            &[&ids],
        )
        .await?
        .iter()
        .map(|row| {
            Ok(AttachedFile {
                id: row.try_get("id")?,
                filename: row.try_get("filename")?,
                content_type: row.try_get("content_type")?,
            })
        })
        .collect()
}
