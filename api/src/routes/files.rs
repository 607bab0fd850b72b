//! Files: `POST /v1/files` (multipart, streamed and sealed as it arrives),
//! listing, metadata, content (with `Range`) and deletion, and a session's
//! files. Another project's file is 404 everywhere.

use axum::{
    Json, Router,
    body::Body,
    extract::{DefaultBodyLimit, Multipart, Path, State, multipart::MultipartError},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use stewrd_shared::{
    db::{
        file::{FileFilter, FileRow, Leftover, delete_file, get_file, list_files},
        session::session_project,
    },
    domain::{
        file::{FileId, Purpose},
        id::{RunId, SessionId},
        text::{cut, storable},
    },
    files::{Files, ReadError, Target, UploadError},
};
use time::OffsetDateTime;

use super::sessions::session_id;
use crate::{
    auth::ProjectAuth,
    error::ApiError,
    extract::QueryParams,
    openapi::responses::{BadKey, BadRequest, NotFound, Unavailable},
    state::AppState,
};

/// Longest file name kept (characters).
const MAX_FILENAME_CHARS: usize = 255;
/// Multipart overhead allowed beyond the largest file.
const FORM_OVERHEAD: usize = 64 * 1024;

pub fn router(max_file_bytes: u64) -> Router<AppState> {
    let form_limit = usize::try_from(max_file_bytes).unwrap_or(usize::MAX) + FORM_OVERHEAD;
    Router::new()
        .route(
            "/v1/files",
            post(upload)
                .layer(DefaultBodyLimit::max(form_limit))
                .get(list),
        )
        .route("/v1/files/{id}", get(show).delete(remove))
        .route("/v1/files/{id}/content", get(content))
        .route("/v1/sessions/{id}/files", get(session_files))
}

/// A file as the API shows it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct FileOut {
    pub id: FileId,
    /// Always `file`.
    pub object: &'static str,
    pub filename: String,
    pub bytes: i64,
    /// What the bytes are (sniffed), not what the client said.
    pub content_type: String,
    /// Of the plaintext, hex.
    pub sha256: String,
    pub purpose: Purpose,
    pub session_id: Option<SessionId>,
    pub run_id: Option<RunId>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl From<FileRow> for FileOut {
    fn from(row: FileRow) -> Self {
        Self {
            id: row.id,
            object: "file",
            filename: row.filename,
            bytes: row.bytes,
            content_type: row.content_type,
            sha256: row.sha256,
            purpose: row.purpose,
            session_id: row.session_id,
            run_id: row.run_id,
            created_at: row.created_at,
        }
    }
}

/// The upload form (described for the OpenAPI document).
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "describes the form in the OpenAPI document only")]
pub(crate) struct UploadForm {
    /// The file's bytes (its part's file name is kept as `filename`).
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// `input` (the default).
    purpose: Option<String>,
}

fn files(state: &AppState) -> Result<&Files, ApiError> {
    state
        .files
        .as_ref()
        .ok_or_else(|| ApiError::unavailable("files are off on this server: set STEWRD_FILE_STORE"))
}

fn file_id(text: &str) -> Result<FileId, ApiError> {
    text.parse().map_err(|()| ApiError::not_found("file"))
}

fn bad_form(error: &MultipartError) -> ApiError {
    if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "file_too_large",
            "the upload is larger than the largest file allowed",
        );
    }
    ApiError::invalid(
        "invalid_multipart",
        "file",
        format!("the body is not a readable multipart/form-data form: {error}"),
    )
}

fn refused_upload(error: UploadError) -> ApiError {
    match error {
        UploadError::TooLarge { limit } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "file_too_large",
            format!("a file is at most {limit} bytes (STEWRD_FILE_MAX_BYTES)"),
        ),
        UploadError::OverQuota { quota } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "storage_quota_exceeded",
            format!("the project's files may take at most {quota} bytes; delete some first"),
        ),
        UploadError::CutOff(why) => ApiError::invalid(
            "upload_cut_off",
            "file",
            format!("the upload was cut off: {why}"),
        ),
        UploadError::Store(error) => {
            tracing::error!(%error, "file store failed during an upload");
            ApiError::unavailable("the file store is unavailable; try again")
        }
        UploadError::Db(error) => error.into(),
    }
}

#[utoipa::path(
    post,
    path = "/v1/files",
    tag = "files",
    summary = "Upload a file (multipart/form-data: `file`, optional `purpose`)",
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses((status = 201, description = "Stored", body = FileOut), (status = 400, response = inline(BadRequest)), (status = 401, response = inline(BadKey)), (status = 413, description = "`file_too_large` or `storage_quota_exceeded`", body = crate::error::ErrorResponse), (status = 503, response = inline(Unavailable))),
    security(("project_key" = []))
)]
pub(crate) async fn upload(
    State(state): State<AppState>,
    auth: ProjectAuth,
    mut form: Multipart,
) -> Result<(StatusCode, Json<FileOut>), ApiError> {
    let files = files(&state)?;
    let mut stored = None;
    while let Some(field) = form.next_field().await.map_err(|e| bad_form(&e))? {
        match field.name() {
            Some("purpose") => {
                let purpose = field.text().await.map_err(|e| bad_form(&e))?;
                if purpose != "input" {
                    return Err(ApiError::invalid(
                        "invalid_value",
                        "purpose",
                        "`purpose` of an upload is `input`",
                    ));
                }
            }
            Some("file") if stored.is_none() => {
                let filename = field
                    .file_name()
                    .map(|name| cut(storable(name.to_owned()), MAX_FILENAME_CHARS))
                    .filter(|name| !name.trim().is_empty())
                    .unwrap_or_else(|| "file".to_owned());
                let target = Target {
                    project: auth.project_id,
                    id: FileId::new(),
                    purpose: Purpose::Input,
                    filename,
                    session: None,
                    run: None,
                };
                let body = field.map(|piece| piece.map_err(|e| e.to_string()));
                let row = files
                    .upload(&target, Box::pin(body))
                    .await
                    .map_err(refused_upload)?;
                tracing::info!(file_id = %row.id, bytes = row.bytes, "file uploaded");
                stored = Some(row);
            }
            Some("file") => {
                return Err(ApiError::invalid(
                    "invalid_value",
                    "file",
                    "one `file` per request",
                ));
            }
            name => {
                return Err(ApiError::invalid(
                    "unknown_field",
                    name.unwrap_or("file"),
                    "the form takes `file` and `purpose` only",
                ));
            }
        }
    }
    let row = stored
        .ok_or_else(|| ApiError::invalid("missing_field", "file", "the form has no `file` part"))?;
    Ok((StatusCode::CREATED, Json(FileOut::from(row))))
}

/// `GET /v1/files` parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// `input` or `artifact`.
    #[param(pattern = "^(input|artifact)$")]
    purpose: Option<String>,
    /// A session's files only.
    #[param(format = Uuid)]
    session_id: Option<String>,
    /// 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    #[param(value_type = Option<FileId>)]
    after: Option<String>,
}

/// A page of files, newest first.
#[derive(Serialize, utoipa::ToSchema)]
pub struct FileList {
    data: Vec<FileOut>,
    next_cursor: Option<FileId>,
}

async fn page(
    state: &AppState,
    auth: &ProjectAuth,
    filter: FileFilter,
    limit: Option<i64>,
    after: Option<&str>,
) -> Result<Json<FileList>, ApiError> {
    let limit = limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::invalid(
            "invalid_value",
            "limit",
            "`limit` must be 1 to 100",
        ));
    }
    let after = after
        .map(|text| {
            text.parse::<FileId>().map_err(|()| {
                ApiError::invalid("invalid_value", "after", "`after` must be a file id")
            })
        })
        .transpose()?;
    let client = state.pool.get().await?;
    let rows = list_files(&client, auth.project_id, filter, after, limit).await?;
    let next_cursor = (rows.len() == usize::try_from(limit).unwrap_or(0))
        .then(|| rows.last().map(|row| row.id))
        .flatten();
    Ok(Json(FileList {
        data: rows.into_iter().map(FileOut::from).collect(),
        next_cursor,
    }))
}

#[utoipa::path(
    operation_id = "list_files",
    get,
    path = "/v1/files",
    tag = "files",
    summary = "The project's files, newest first",
    params(ListQuery),
    responses((status = 200, description = "A page", body = FileList), (status = 400, response = inline(BadRequest)), (status = 401, response = inline(BadKey)), (status = 503, response = inline(Unavailable))),
    security(("project_key" = []))
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    auth: ProjectAuth,
    QueryParams(query): QueryParams<ListQuery>,
) -> Result<Json<FileList>, ApiError> {
    let purpose = query
        .purpose
        .as_deref()
        .map(|text| {
            Purpose::parse(text).ok_or_else(|| {
                ApiError::invalid(
                    "invalid_value",
                    "purpose",
                    "`purpose` must be input or artifact",
                )
            })
        })
        .transpose()?;
    let session = query
        .session_id
        .as_deref()
        .map(|text| {
            text.parse::<SessionId>().map_err(|_| {
                ApiError::invalid(
                    "invalid_value",
                    "session_id",
                    "`session_id` must be a session id",
                )
            })
        })
        .transpose()?;
    let filter = FileFilter { purpose, session };
    page(&state, &auth, filter, query.limit, query.after.as_deref()).await
}

/// `GET /v1/sessions/{id}/files` parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SessionFilesQuery {
    /// 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    #[param(value_type = Option<FileId>)]
    after: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/sessions/{id}/files",
    tag = "files",
    summary = "A session's files: inputs attached to its messages and its artifacts",
    params(("id" = String, Path, description = "Session id"), SessionFilesQuery),
    responses((status = 200, description = "A page", body = FileList), (status = 400, response = inline(BadRequest)), (status = 401, response = inline(BadKey)), (status = 404, response = inline(NotFound)), (status = 503, response = inline(Unavailable))),
    security(("project_key" = []))
)]
pub(crate) async fn session_files(
    State(state): State<AppState>,
    auth: ProjectAuth,
    Path(id): Path<String>,
    QueryParams(query): QueryParams<SessionFilesQuery>,
) -> Result<Json<FileList>, ApiError> {
    let session = session_id(&id)?;
    let client = state.pool.get().await?;
    if session_project(&client, session).await? != Some(auth.project_id) {
        return Err(ApiError::not_found("session"));
    }
    drop(client);
    let filter = FileFilter {
        purpose: None,
        session: Some(session),
    };
    page(&state, &auth, filter, query.limit, query.after.as_deref()).await
}

async fn ready_file(state: &AppState, auth: &ProjectAuth, id: &str) -> Result<FileRow, ApiError> {
    let id = file_id(id)?;
    let client = state.pool.get().await?;
    get_file(&client, auth.project_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("file"))
}

#[utoipa::path(
    operation_id = "get_file",
    get,
    path = "/v1/files/{id}",
    tag = "files",
    summary = "A file's metadata",
    params(("id" = String, Path, description = "File id (`file_…`)")),
    responses((status = 200, description = "The file", body = FileOut), (status = 401, response = inline(BadKey)), (status = 404, response = inline(NotFound)), (status = 503, response = inline(Unavailable))),
    security(("project_key" = []))
)]
pub(crate) async fn show(
    State(state): State<AppState>,
    auth: ProjectAuth,
    Path(id): Path<String>,
) -> Result<Json<FileOut>, ApiError> {
    Ok(Json(FileOut::from(ready_file(&state, &auth, &id).await?)))
}

/// The answer to `DELETE /v1/files/{id}`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DeletedOut {
    id: FileId,
    deleted: bool,
}

#[utoipa::path(
    delete,
    path = "/v1/files/{id}",
    tag = "files",
    summary = "Delete a file: gone from listings at once, its bytes from the store soon after",
    params(("id" = String, Path, description = "File id (`file_…`)")),
    responses((status = 200, description = "Deleted", body = DeletedOut), (status = 401, response = inline(BadKey)), (status = 404, response = inline(NotFound)), (status = 503, response = inline(Unavailable))),
    security(("project_key" = []))
)]
pub(crate) async fn remove(
    State(state): State<AppState>,
    auth: ProjectAuth,
    Path(id): Path<String>,
) -> Result<Json<DeletedOut>, ApiError> {
    let id = file_id(&id)?;
    let client = state.pool.get().await?;
    if !delete_file(&client, auth.project_id, id).await? {
        return Err(ApiError::not_found("file"));
    }
    if let Some(files) = state.files.clone() {
        // At once if it can; else housekeeping does it on its next round.
        let leftover = Leftover {
            id,
            project_id: auth.project_id,
            segments: None,
        };
        tokio::spawn(async move {
            if let Err(error) = files.clean(&leftover).await {
                tracing::warn!(%error, file_id = %id, "a deleted file's bytes wait for housekeeping");
            }
        });
    }
    tracing::info!(file_id = %id, "file deleted");
    Ok(Json(DeletedOut { id, deleted: true }))
}

/// The byte range a `Range` header asks for, of a file of `size` bytes:
/// `None` for the whole file (no header, or one stewrd does not serve:
/// several ranges), `Err` for one that cannot be satisfied.
fn asked_range(headers: &HeaderMap, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(value) = headers.get(header::RANGE) else {
        return Ok(None);
    };
    let Some(spec) = value
        .to_str()
        .ok()
        .and_then(|v| v.trim().strip_prefix("bytes="))
    else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let (start, end) = spec.split_once('-').ok_or(())?;
    let (start, end) = match (start.trim(), end.trim()) {
        ("", suffix) => {
            let n: u64 = suffix.parse().map_err(|_| ())?;
            if n == 0 {
                return Err(());
            }
            (size.saturating_sub(n), size)
        }
        (start, "") => (start.parse().map_err(|_| ())?, size),
        (start, end) => {
            let (s, e): (u64, u64) = (start.parse().map_err(|_| ())?, end.parse().map_err(|_| ())?);
            if e < s {
                return Err(());
            }
            (s, (e + 1).min(size))
        }
    };
    if start >= size {
        return Err(());
    }
    Ok(Some((start, end)))
}

/// `Content-Disposition: attachment` with the name in both forms browsers read.
fn attachment(filename: &str) -> HeaderValue {
    let ascii: String = filename
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded: String = filename
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    HeaderValue::from_str(&format!(
        "attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

#[utoipa::path(
    get,
    path = "/v1/files/{id}/content",
    tag = "files",
    summary = "A file's bytes (`Range` honoured; always an attachment)",
    params(("id" = String, Path, description = "File id (`file_…`)"), ("Range" = Option<String>, Header, description = "`bytes=a-b`, `bytes=a-` or `bytes=-n`")),
    responses((status = 200, description = "The bytes", content_type = "application/octet-stream", body = crate::openapi::Binary), (status = 206, description = "The range asked for", content_type = "application/octet-stream", body = crate::openapi::Binary), (status = 401, response = inline(BadKey)), (status = 404, response = inline(NotFound)), (status = 416, description = "The range is past the end", body = crate::error::ErrorResponse), (status = 503, response = inline(Unavailable))),
    security(("project_key" = []))
)]
pub(crate) async fn content(
    State(state): State<AppState>,
    auth: ProjectAuth,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let files = files(&state)?;
    let row = ready_file(&state, &auth, &id).await?;
    download(files, &row, &headers).await
}

/// The response carrying a file's bytes (the API's and the dashboard's).
pub(crate) async fn download(
    files: &Files,
    row: &FileRow,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let size = u64::try_from(row.bytes).unwrap_or(0);
    let (start, end, status) = match asked_range(headers, size) {
        Ok(None) => (0, size, StatusCode::OK),
        Ok(Some((start, end))) => (start, end, StatusCode::PARTIAL_CONTENT),
        Err(()) => {
            let mut refused = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range_not_satisfiable",
                format!("the file has {size} bytes"),
            )
            .into_response();
            if let Ok(value) = HeaderValue::from_str(&format!("bytes */{size}")) {
                refused.headers_mut().insert(header::CONTENT_RANGE, value);
            }
            return Ok(refused);
        }
    };
    let mut pieces = Box::pin(files.read(row, start..end).map_err(|e| unreadable(&e))?);
    // The first piece is opened before any header is sent: a file that fails
    // authentication is an error answer, not a 200 with wrong bytes. A later
    // piece that fails cuts the body short, which the client sees as an error.
    let first = match pieces.next().await {
        Some(piece) => piece.map_err(|e| unreadable(&e))?,
        None => axum::body::Bytes::new(),
    };
    let rest = pieces.map(|piece| piece.map_err(|e| std::io::Error::other(e.to_string())));
    let body = Body::from_stream(
        futures_util::stream::once(async move { Ok::<_, std::io::Error>(first) }).chain(rest),
    );
    let mut response = (status, body).into_response();
    let answer = response.headers_mut();
    answer.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&row.content_type)
            .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream")),
    );
    answer.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
    answer.insert(header::CONTENT_DISPOSITION, attachment(&row.filename));
    answer.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    answer.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(value) = HeaderValue::from_str(&format!("bytes {start}-{}/{size}", end - 1))
    {
        answer.insert(header::CONTENT_RANGE, value);
    }
    Ok(response)
}

fn unreadable(error: &ReadError) -> ApiError {
    tracing::error!(%error, "a stored file cannot be read");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "file_unreadable",
        "the file's stored bytes cannot be read back whole (altered or missing in the store)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(value: &str, size: u64) -> Result<Option<(u64, u64)>, ()> {
        let mut headers = HeaderMap::new();
        headers.insert(header::RANGE, HeaderValue::from_str(value).expect("header"));
        asked_range(&headers, size)
    }

    #[test]
    fn ranges_are_read_as_http_says() {
        assert_eq!(range("bytes=0-9", 100), Ok(Some((0, 10))));
        assert_eq!(range("bytes=90-", 100), Ok(Some((90, 100))));
        assert_eq!(range("bytes=-5", 100), Ok(Some((95, 100))));
        assert_eq!(range("bytes=95-500", 100), Ok(Some((95, 100))));
        assert_eq!(range("bytes=100-", 100), Err(()));
        assert_eq!(range("bytes=5-1", 100), Err(()));
        assert_eq!(range("bytes=0-1,5-6", 100), Ok(None));
        assert_eq!(range("items=0-1", 100), Ok(None));
    }

    #[test]
    fn an_attachment_name_is_quoted_safely_and_kept_whole_in_utf8() {
        let value = attachment("rapport \"final\".pdf");
        let text = value.to_str().unwrap_or_default();
        assert!(text.starts_with("attachment; filename=\"rapport _final_.pdf\""));
        assert!(text.contains("filename*=UTF-8''rapport%20%22final%22.pdf"));
    }
}
