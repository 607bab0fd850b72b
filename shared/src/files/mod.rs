//! Files: what agents read and make (uploads a message refers to, artifacts
//! a tool produced), shared by the API and the worker. A file's bytes are
//! sealed before they leave stewrd (`secrets::seal`, under a data key of its
//! own wrapped by the master key ring) and kept in the object store
//! (`store`); its row (`db::file`) is written `uploading` before any byte and
//! `ready` once all are stored, so a file is only ever listed whole.

pub mod store;

use std::{ops::Range, sync::Arc};

use bytes::Bytes;
use futures_util::{Stream, StreamExt, stream};
use sha2::{Digest, Sha256};

use self::store::{Blobs, CHUNKS_PER_SEGMENT, SEGMENT, StoreError};
use crate::{
    db::{
        DbError, Pool,
        file::{
            FileRow, Finished, Leftover, NewFile, Stored, abandon_upload, begin_upload,
            finish_upload, forget_file, get_any_file, stored_bytes,
        },
    },
    domain::{
        file::{FileId, Purpose, SNIFF_BYTES, Utf8Check, content_type, sniff},
        id::{ProjectId, RunId, SessionId},
    },
    runtime::config::FileSettings,
    secrets::{
        crypto::{MasterKeyRing, SecretField},
        seal::{CHUNK, DataKey, Opener, SEALED_CHUNK, SealError, Sealer, chunk_count, sealed_len},
    },
};

/// Why an upload did not make a file.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("the file is larger than {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("the project's files would take more than its {quota} bytes")]
    OverQuota { quota: u64 },
    /// The bytes stopped coming (the client went away): no file was made.
    #[error("the upload was cut off: {0}")]
    CutOff(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Why a file's bytes could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the file's bytes failed authentication: {0}")]
    Seal(#[from] SealError),
    #[error("the file's key cannot be unwrapped: {0}")]
    Key(String),
}

/// What an upload makes.
#[derive(Clone, Debug)]
pub struct Target {
    pub project: ProjectId,
    /// Fixed for an artifact (see `FileId::of_artifact`), fresh for an upload.
    pub id: FileId,
    pub purpose: Purpose,
    pub filename: String,
    pub session: Option<SessionId>,
    pub run: Option<RunId>,
}

/// The files of every project.
#[derive(Clone)]
pub struct Files {
    blobs: Blobs,
    keys: Arc<MasterKeyRing>,
    pool: Pool,
    settings: FileSettings,
}

impl Files {
    /// Files on the store `settings` name.
    pub fn new(
        pool: Pool,
        keys: Arc<MasterKeyRing>,
        settings: FileSettings,
    ) -> Result<Self, StoreError> {
        Ok(Self {
            blobs: Blobs::open(&settings)?,
            keys,
            pool,
            settings,
        })
    }

    /// The store, for housekeeping and tests.
    pub fn blobs(&self) -> &Blobs {
        &self.blobs
    }

    /// The settings in force (limits).
    pub fn settings(&self) -> &FileSettings {
        &self.settings
    }

    /// Stores `body` as the file `target`, sealed, as it streams in (one
    /// segment in memory at most). An artifact whose file an earlier attempt
    /// made already is that file, unchanged.
    pub async fn upload<S, E>(&self, target: &Target, body: S) -> Result<FileRow, UploadError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let key = DataKey::generate();
        let sealer = Sealer::new(&key, target.id.0.as_bytes());
        let wrapped = self
            .keys
            .encrypt(key.expose(), target.project, SecretField::FileKey);
        let client = self.pool.get().await.map_err(DbError::from)?;
        let new = NewFile {
            id: target.id,
            project_id: target.project,
            purpose: target.purpose,
            filename: &target.filename,
            session_id: target.session,
            run_id: target.run,
            wrapped_key: &wrapped,
            seal_prefix: &sealer.prefix(),
        };
        if !begin_upload(&client, &new).await? {
            if let Some(done) = get_any_file(&client, target.id).await? {
                return Ok(done);
            }
            // Begun by an attempt that died: its objects go, and this one starts over.
            self.blobs.remove(target.project, target.id).await?;
            abandon_upload(&client, target.id).await?;
            begin_upload(&client, &new).await?;
        }
        drop(client);
        match self.store_bytes(target, sealer, body).await {
            Ok(row) => Ok(row),
            Err(error) => {
                self.abandon(target).await;
                Err(error)
            }
        }
    }

    async fn store_bytes<S, E>(
        &self,
        target: &Target,
        mut sealer: Sealer,
        mut body: S,
    ) -> Result<FileRow, UploadError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let quota = self.settings.quota_bytes;
        let client = self.pool.get().await.map_err(DbError::from)?;
        if u64::try_from(stored_bytes(&client, target.project).await?).unwrap_or(0) >= quota {
            return Err(UploadError::OverQuota { quota });
        }
        drop(client);
        let mut facts = Facts::default();
        let mut sealed = Vec::with_capacity(SEGMENT);
        let mut segments = 0;
        while let Some(piece) = body.next().await {
            let piece = piece.map_err(|e| UploadError::CutOff(e.to_string()))?;
            facts.take(&piece);
            if facts.bytes > self.settings.max_bytes {
                return Err(UploadError::TooLarge {
                    limit: self.settings.max_bytes,
                });
            }
            // A chunk at a time, so `sealed` never outgrows its first allocation:
            // whole sealed chunks fill a segment exactly.
            for part in piece.chunks(CHUNK) {
                sealer.push(part, &mut sealed);
                if sealed.len() >= SEGMENT {
                    let full = std::mem::replace(&mut sealed, Vec::with_capacity(SEGMENT));
                    self.blobs
                        .put_segment(target.project, target.id, segments, full)
                        .await?;
                    segments += 1;
                }
            }
        }
        sealer.finish(&mut sealed);
        while !sealed.is_empty() {
            let rest = sealed.split_off(SEGMENT.min(sealed.len()));
            let part = std::mem::replace(&mut sealed, rest);
            self.blobs
                .put_segment(target.project, target.id, segments, part)
                .await?;
            segments += 1;
        }
        let stored = Stored {
            bytes: i64::try_from(facts.bytes).unwrap_or(i64::MAX),
            sha256: &facts.sha256(),
            content_type: facts.content_type(),
            segments: i32::try_from(segments).unwrap_or(i32::MAX),
        };
        let client = self.pool.get().await.map_err(DbError::from)?;
        let quota_i64 = i64::try_from(quota).unwrap_or(i64::MAX);
        match finish_upload(&client, target.id, &stored, quota_i64).await? {
            Finished::Ready(row) => Ok(*row),
            Finished::OverQuota => Err(UploadError::OverQuota { quota }),
            Finished::Gone => Err(UploadError::CutOff("the upload was abandoned".into())),
        }
    }

    /// Removes what a failed upload left (best effort: housekeeping takes
    /// whatever remains).
    async fn abandon(&self, target: &Target) {
        if let Err(error) = self.blobs.remove(target.project, target.id).await {
            tracing::warn!(%error, file_id = %target.id, "cannot remove a failed upload's objects");
        }
        if let Ok(client) = self.pool.get().await
            && let Err(error) = abandon_upload(&client, target.id).await
        {
            tracing::warn!(%error, file_id = %target.id, "cannot forget a failed upload");
        }
    }

    fn opener(&self, row: &FileRow) -> Result<Opener, ReadError> {
        let key = self
            .keys
            .decrypt(&row.wrapped_key, row.project_id, SecretField::FileKey)
            .map_err(|e| ReadError::Key(e.to_string()))?;
        let key = DataKey::from_bytes(&key).ok_or_else(|| ReadError::Key("not 32 bytes".into()))?;
        Ok(Opener::new(&key, row.id.0.as_bytes(), &row.seal_prefix)?)
    }

    /// The plaintext bytes `range` of a file, opened chunk by chunk as they
    /// are read (one segment's worth in memory at most). A chunk that fails
    /// authentication ends the stream with an error: never a wrong byte.
    pub fn read(
        &self,
        row: &FileRow,
        range: Range<u64>,
    ) -> Result<impl Stream<Item = Result<Bytes, ReadError>> + Send + use<>, ReadError> {
        let opener = Arc::new(self.opener(row)?);
        let size = u64::try_from(row.bytes).unwrap_or(0);
        let chunks = chunk_count(size);
        let first = u32::try_from(range.start / CHUNK as u64).unwrap_or(u32::MAX);
        let last = if range.end <= range.start {
            first
        } else {
            u32::try_from((range.end - 1) / CHUNK as u64).unwrap_or(u32::MAX)
        };
        let segments = (first / CHUNKS_PER_SEGMENT..=last / CHUNKS_PER_SEGMENT).map(move |s| {
            let from = first.max(s * CHUNKS_PER_SEGMENT);
            let to = last.min(s * CHUNKS_PER_SEGMENT + CHUNKS_PER_SEGMENT - 1);
            (s, from, to)
        });
        let (blobs, project, file) = (self.blobs.clone(), row.project_id, row.id);
        Ok(stream::iter(segments).then(move |(segment, from, to)| {
            let (blobs, opener, range) = (blobs.clone(), opener.clone(), range.clone());
            async move {
                let offset = |i: u32| u64::from(i % CHUNKS_PER_SEGMENT) * SEALED_CHUNK as u64;
                let span = offset(from)..offset(to) + sealed_len(size, to) as u64;
                let sealed = blobs.read_segment(project, file, segment, span).await?;
                let mut plain = Vec::with_capacity(sealed.len());
                let mut at = 0;
                for index in from..=to {
                    let len = sealed_len(size, index);
                    let chunk = sealed.get(at..at + len).ok_or(StoreError::Missing)?;
                    let opened = opener.open(index, index + 1 == chunks, chunk)?;
                    let start = u64::from(index) * CHUNK as u64;
                    let keep_from = range.start.saturating_sub(start);
                    let keep_to = (range.end - start).min(opened.len() as u64);
                    plain.extend_from_slice(
                        opened
                            .get(
                                usize::try_from(keep_from).unwrap_or(0)
                                    ..usize::try_from(keep_to).unwrap_or(0),
                            )
                            .unwrap_or_default(),
                    );
                    at += len;
                }
                Ok(Bytes::from(plain))
            }
        }))
    }

    /// A file's whole plaintext (for a model's input).
    pub async fn read_all(&self, row: &FileRow) -> Result<Vec<u8>, ReadError> {
        let size = u64::try_from(row.bytes).unwrap_or(0);
        let mut pieces = Box::pin(self.read(row, 0..size)?);
        let mut all = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        while let Some(piece) = pieces.next().await {
            all.extend_from_slice(&piece?);
        }
        Ok(all)
    }

    /// Removes a leftover's objects, then its row.
    pub async fn clean(&self, leftover: &Leftover) -> Result<(), UploadError> {
        self.blobs.remove(leftover.project_id, leftover.id).await?;
        let client = self.pool.get().await.map_err(DbError::from)?;
        forget_file(&client, leftover.id).await?;
        Ok(())
    }
}

/// What an upload learns of its bytes as they pass.
#[derive(Default)]
struct Facts {
    bytes: u64,
    head: Vec<u8>,
    hash: Sha256,
    utf8: Utf8Check,
}

impl Facts {
    fn take(&mut self, piece: &[u8]) {
        self.bytes += piece.len() as u64;
        if self.head.len() < SNIFF_BYTES {
            let take = (SNIFF_BYTES - self.head.len()).min(piece.len());
            self.head.extend_from_slice(&piece[..take]);
        }
        self.hash.update(piece);
        self.utf8.push(piece);
    }

    fn sha256(&self) -> String {
        crate::domain::text::hex(&self.hash.clone().finalize())
    }

    /// What the bytes are, never what the client said.
    fn content_type(&self) -> &'static str {
        sniff(&self.head).unwrap_or(if self.utf8.is_utf8() {
            content_type::TEXT
        } else {
            content_type::BINARY
        })
    }
}
