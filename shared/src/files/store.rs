//! Where sealed file bytes live: the local disk (`file:///abs/dir`, the default
//! of `stewrd dev`) or any S3-compatible store (`s3://bucket/prefix`,
//! path-style when `STEWRD_S3_ENDPOINT` is set), behind `object_store`'s one
//! interface, so every part of stewrd (and one test suite) uses both alike.
//!
//! A file is a few objects (segments) of at most [`SEGMENT`] sealed bytes,
//! each written whole with one `put`: an upload holds one segment in memory at
//! most, a write is atomic on every store (no multipart upload left half-done
//! and unlisted), and the segments of an upload cut off are listed and removed
//! by housekeeping. Object keys derive from the file's id, never its name.

use std::{ops::Range, sync::Arc};

use bytes::Bytes;
use futures_util::StreamExt;
use object_store::{
    ObjectStore, ObjectStoreExt, PutPayload, aws::AmazonS3Builder, local::LocalFileSystem,
    path::Path,
};
use secrecy::ExposeSecret;

use crate::{
    domain::{file::FileId, id::ProjectId},
    runtime::config::{FileSettings, StoreUrl},
    secrets::seal::SEALED_CHUNK,
};

/// Sealed chunks per segment: a chunk never straddles two objects.
pub const CHUNKS_PER_SEGMENT: u32 = 4;
/// The most sealed bytes in one object.
pub const SEGMENT: usize = SEALED_CHUNK * CHUNKS_PER_SEGMENT as usize;

/// A store failure; says what failed, never a byte of content.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the file store cannot be used: {0}")]
    Setup(String),
    #[error("file store: {0}")]
    Io(#[from] object_store::Error),
    #[error("a stored object of the file is missing")]
    Missing,
}

/// The object store holding files' segments.
#[derive(Clone)]
pub struct Blobs {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
}

impl std::fmt::Debug for Blobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Blobs")
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl Blobs {
    /// The store `settings` name (a local directory is created if missing).
    pub fn open(settings: &FileSettings) -> Result<Self, StoreError> {
        let store = settings
            .store
            .as_ref()
            .ok_or_else(|| StoreError::Setup("STEWRD_FILE_STORE is not set".into()))?;
        match store {
            StoreUrl::Local(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| {
                    StoreError::Setup(format!("cannot create {}: {e}", dir.display()))
                })?;
                let local = LocalFileSystem::new_with_prefix(dir)
                    .map_err(|e| StoreError::Setup(e.to_string()))?;
                Ok(Self {
                    store: Arc::new(local),
                    prefix: Path::default(),
                })
            }
            StoreUrl::S3 { bucket, prefix } => {
                let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
                if let Some(region) = &settings.s3_region {
                    builder = builder.with_region(region);
                }
                if let Some((id, secret)) = &settings.s3_credentials {
                    builder = builder
                        .with_access_key_id(id)
                        .with_secret_access_key(secret.expose_secret());
                }
                if let Some(endpoint) = &settings.s3_endpoint {
                    builder = builder
                        .with_endpoint(endpoint)
                        .with_virtual_hosted_style_request(false)
                        .with_allow_http(endpoint.starts_with("http://"));
                }
                let s3 = builder
                    .build()
                    .map_err(|e| StoreError::Setup(e.to_string()))?;
                Ok(Self {
                    store: Arc::new(s3),
                    prefix: Path::from(prefix.as_str()),
                })
            }
        }
    }

    /// The folder of a file's segments.
    fn folder(&self, project: ProjectId, file: FileId) -> Path {
        self.prefix
            .clone()
            .join(project.to_string())
            .join(file.to_string())
    }

    fn segment(&self, project: ProjectId, file: FileId, index: u32) -> Path {
        self.folder(project, file).join(format!("{index:05}"))
    }

    /// Writes segment `index` of a file, whole.
    pub async fn put_segment(
        &self,
        project: ProjectId,
        file: FileId,
        index: u32,
        sealed: Vec<u8>,
    ) -> Result<(), StoreError> {
        let path = self.segment(project, file, index);
        self.store.put(&path, PutPayload::from(sealed)).await?;
        Ok(())
    }

    /// Reads `range` of segment `index`.
    pub async fn read_segment(
        &self,
        project: ProjectId,
        file: FileId,
        index: u32,
        range: Range<u64>,
    ) -> Result<Bytes, StoreError> {
        let path = self.segment(project, file, index);
        match self.store.get_range(&path, range.clone()).await {
            Ok(bytes) if bytes.len() as u64 == range.end - range.start => Ok(bytes),
            // A shorter answer is a truncated object.
            Ok(_) => Err(StoreError::Missing),
            Err(object_store::Error::NotFound { .. }) => Err(StoreError::Missing),
            Err(error) => Err(error.into()),
        }
    }

    /// Removes every object of a file (those an upload cut off left, too).
    pub async fn remove(&self, project: ProjectId, file: FileId) -> Result<(), StoreError> {
        let folder = self.folder(project, file);
        let mut listed = self.store.list(Some(&folder));
        let mut paths = Vec::new();
        while let Some(meta) = listed.next().await {
            paths.push(meta?.location);
        }
        for path in paths {
            match self.store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok(())
    }

    /// The raw objects of a file, whole (for tests and the bench: what a
    /// copied bucket would reveal).
    pub async fn objects(
        &self,
        project: ProjectId,
        file: FileId,
    ) -> Result<Vec<Bytes>, StoreError> {
        let folder = self.folder(project, file);
        let mut listed = self.store.list(Some(&folder));
        let mut paths = Vec::new();
        while let Some(meta) = listed.next().await {
            paths.push(meta?.location);
        }
        paths.sort();
        let mut objects = Vec::new();
        for path in paths {
            objects.push(self.store.get(&path).await?.bytes().await?);
        }
        Ok(objects)
    }

    /// Writes raw bytes as a segment (for tests: an altered or truncated object).
    pub async fn overwrite_segment(
        &self,
        project: ProjectId,
        file: FileId,
        index: u32,
        bytes: Vec<u8>,
    ) -> Result<(), StoreError> {
        self.put_segment(project, file, index, bytes).await
    }
}
