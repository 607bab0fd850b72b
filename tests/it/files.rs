//! Files, against the real binary and a real store: the local disk, and
//! SeaweedFS as the S3-compatible server (`scripts/test` installs and starts
//! it; each test writes under a prefix of its own in one bucket). The same
//! tests run on both stores.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use stewrd::stub::Reply;
use stewrd_shared::{
    domain::{file::FileId, id::ProjectId},
    files::store::Blobs,
    runtime::config::Config,
};

use crate::{
    agent::{sent, server_tool, steps},
    helpers::{Options, PATIENCE, TestApp, spawn_app_with, unique_name, wait_for},
    receiver::{Answer, Receiver},
};

/// A 1×1 PNG.
pub const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x02, 0x00, 0x00, 0x00, 0x90, 0x77, 0x53,
    0xde, 0x00, 0x00, 0x00, 0x0c, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0x00,
    0x00, 0x03, 0x01, 0x01, 0x00, 0xc9, 0xfe, 0x92, 0xef, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e,
    0x44, 0xae, 0x42, 0x60, 0x82,
];
/// Something that starts as a PDF does.
const PDF: &[u8] = b"%PDF-1.7\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n";

/// Where a test keeps its files.
#[derive(Clone, Copy, Debug)]
pub enum Store {
    Local,
    S3,
}

/// SeaweedFS, as `scripts/test` starts it.
fn s3_endpoint() -> String {
    std::env::var("STEWRD_TEST_S3_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:18336".into())
}

/// The app's options for `store`.
pub fn on(store: Store, options: Options) -> Options {
    match store {
        Store::Local => options,
        Store::S3 => {
            let bucket =
                std::env::var("STEWRD_TEST_S3_BUCKET").unwrap_or_else(|_| "stewrd-test".into());
            let id = std::env::var("AWS_ACCESS_KEY_ID").unwrap_or_else(|_| "stewrd-test".into());
            let secret = std::env::var("AWS_SECRET_ACCESS_KEY")
                .unwrap_or_else(|_| "stewrd-test-secret".into());
            options
                .env(
                    "STEWRD_FILE_STORE",
                    &format!("s3://{bucket}/{}", unique_name()),
                )
                .env("STEWRD_S3_ENDPOINT", &s3_endpoint())
                .env("STEWRD_S3_REGION", "us-east-1")
                .env("AWS_ACCESS_KEY_ID", &id)
                .env("AWS_SECRET_ACCESS_KEY", &secret)
        }
    }
}

/// The app's store, opened from the test (to look at what it holds).
pub fn blobs(app: &TestApp) -> Blobs {
    let config = Config::from_lookup(|name| app.env.get(name).cloned()).expect("config");
    Blobs::open(&config.files).expect("the store opens")
}

/// `POST /v1/files` with `bytes` as `filename`, said to be `said_type`.
pub async fn upload(
    app: &TestApp,
    key: &str,
    filename: &str,
    bytes: &[u8],
    said_type: &str,
) -> (StatusCode, Value) {
    let part = reqwest::multipart::Part::bytes(bytes.to_vec())
        .file_name(filename.to_owned())
        .mime_str(said_type)
        .expect("a type");
    let form = reqwest::multipart::Form::new().part("file", part);
    let response = app
        .http
        .post(format!("{}/v1/files", app.base))
        .bearer_auth(key)
        .multipart(form)
        .send()
        .await
        .expect("an answer");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Uploads and returns the file's id, asserting the 201.
pub async fn uploaded(app: &TestApp, key: &str, filename: &str, bytes: &[u8]) -> String {
    let (status, file) = upload(app, key, filename, bytes, "application/octet-stream").await;
    assert_eq!(status, StatusCode::CREATED, "{file}");
    file["id"].as_str().expect("an id").to_owned()
}

/// `GET /v1/files/{id}/content`, with a `Range` if given.
async fn download(
    app: &TestApp,
    key: &str,
    id: &str,
    range: Option<&str>,
) -> (
    StatusCode,
    reqwest::header::HeaderMap,
    Result<Vec<u8>, String>,
) {
    let mut request = app
        .http
        .get(format!("{}/v1/files/{id}/content", app.base))
        .bearer_auth(key);
    if let Some(range) = range {
        request = request.header("range", range);
    }
    let response = request.send().await.expect("an answer");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .bytes()
        .await
        .map(|b| b.to_vec())
        .map_err(|e| e.to_string());
    (status, headers, body)
}

async fn files_api_works_as_the_contract_says(store: Store) {
    let app = spawn_app_with(on(store, Options::default())).await;
    let (project, key) = app.create_project("acme").await;
    let (_, other_key) = app.create_project("other").await;
    // Content types are sniffed from the bytes, whatever the client says.
    let cases: [(&str, &[u8], &str); 4] = [
        ("pixel.png", PNG, "image/png"),
        ("doc.pdf", PDF, "application/pdf"),
        (
            "notes.txt",
            "héllo, wörld\n".as_bytes(),
            "text/plain; charset=utf-8",
        ),
        (
            "blob.bin",
            &[0, 159, 146, 150, 255],
            "application/octet-stream",
        ),
    ];
    let mut created = Vec::new();
    for (name, bytes, sniffed) in cases {
        let (status, file) = upload(&app, &key, name, bytes, "text/html").await;
        assert_eq!(status, StatusCode::CREATED, "{file}");
        assert_eq!(file["object"], "file");
        assert_eq!(file["filename"], name);
        assert_eq!(file["bytes"], bytes.len());
        assert_eq!(file["content_type"], sniffed, "{name}");
        assert_eq!(file["purpose"], "input");
        assert_eq!(file["session_id"], Value::Null);
        let digest = sha256_hex(bytes);
        assert_eq!(file["sha256"], digest);
        assert!(
            file["id"]
                .as_str()
                .is_some_and(|id| id.starts_with("file_"))
        );
        created.push((file["id"].as_str().expect("id").to_owned(), bytes.to_vec()));
    }
    for (id, bytes) in &created {
        let (status, headers, body) = download(&app, &key, id, None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body.as_deref().ok(), Some(bytes.as_slice()), "byte-exact");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert!(
            headers["content-disposition"]
                .to_str()
                .is_ok_and(|d| d.starts_with("attachment;")),
            "{headers:?}"
        );
        assert_eq!(headers["content-length"], bytes.len().to_string().as_str());
        let (status, file) = app
            .call(Method::GET, &format!("/v1/files/{id}"), Some(&key), None)
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(&file["id"], id.as_str());
        // Another project's file is not there for it, anywhere.
        for (method, path) in [
            (Method::GET, format!("/v1/files/{id}")),
            (Method::GET, format!("/v1/files/{id}/content")),
            (Method::DELETE, format!("/v1/files/{id}")),
        ] {
            let (status, body) = app.call(method, &path, Some(&other_key), None).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        }
    }
    let (_, theirs) = app
        .call(Method::GET, "/v1/files", Some(&other_key), None)
        .await;
    assert_eq!(theirs["data"], json!([]));
    // Listing: newest first, a page at a time.
    let (_, page) = app
        .call(Method::GET, "/v1/files?limit=3", Some(&key), None)
        .await;
    let listed: Vec<&str> = page["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|f| f["id"].as_str())
        .collect();
    assert_eq!(listed, [&created[3].0, &created[2].0, &created[1].0]);
    let cursor = page["next_cursor"].as_str().expect("a cursor");
    let (_, rest) = app
        .call(
            Method::GET,
            &format!("/v1/files?limit=3&after={cursor}"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(rest["data"][0]["id"], created[0].0.as_str());
    assert_eq!(rest["next_cursor"], Value::Null);
    let (_, artifacts) = app
        .call(Method::GET, "/v1/files?purpose=artifact", Some(&key), None)
        .await;
    assert_eq!(artifacts["data"], json!([]));
    // Ranges, over a file of several chunks.
    let big: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let id = uploaded(&app, &key, "big.bin", &big).await;
    for (range, expected) in [
        ("bytes=10-19", &big[10..20]),
        ("bytes=65530-65545", &big[65_530..65_546]),
        ("bytes=299990-", &big[299_990..]),
        ("bytes=-5", &big[299_995..]),
    ] {
        let (status, headers, body) = download(&app, &key, &id, Some(range)).await;
        assert_eq!(status, StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(body.as_deref().ok(), Some(expected), "{range}");
        assert!(
            headers["content-range"]
                .to_str()
                .is_ok_and(|r| r.ends_with("/300000")),
            "{headers:?}"
        );
    }
    let (status, _, _) = download(&app, &key, &id, Some("bytes=300000-")).await;
    assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE);
    // Deleted: gone from the API at once, its objects from the store soon after.
    let (file_project, file): (ProjectId, FileId) =
        (project.parse().expect("id"), id.parse().expect("id"));
    assert!(
        !blobs(&app)
            .objects(file_project, file)
            .await
            .expect("objects")
            .is_empty()
    );
    let (status, deleted) = app
        .call(Method::DELETE, &format!("/v1/files/{id}"), Some(&key), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(deleted, json!({"id": id, "deleted": true}));
    let (status, _) = app
        .call(Method::GET, &format!("/v1/files/{id}"), Some(&key), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let store = blobs(&app);
    wait_for(PATIENCE, || async {
        store
            .objects(file_project, file)
            .await
            .ok()
            .filter(Vec::is_empty)
            .map(|_| ())
    })
    .await
    .expect("the deleted file's objects are removed from the store");
    // Bad requests are the contract's errors, not 500s.
    let response = app
        .http
        .post(format!("{}/v1/files", app.base))
        .bearer_auth(&key)
        .multipart(reqwest::multipart::Form::new().text("purpose", "input"))
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let error: Value = response.json().await.unwrap_or_default();
    assert_eq!(error["error"]["param"], "file", "{error}");
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn files_api_works_as_the_contract_says_on_the_local_disk() {
    files_api_works_as_the_contract_says(Store::Local).await;
}

#[tokio::test]
async fn files_api_works_as_the_contract_says_on_s3() {
    files_api_works_as_the_contract_says(Store::S3).await;
}

async fn the_store_never_holds_plaintext_and_tampering_fails_loudly(store: Store) {
    let app = spawn_app_with(on(store, Options::default())).await;
    let (project, key) = app.create_project("acme").await;
    let needle = "NEEDLE-7f3a9c-in-the-haystack";
    let mut text = String::new();
    while text.len() < 2_000_000 {
        text.push_str("hay hay hay ");
        text.push_str(needle);
        text.push('\n');
    }
    let id = uploaded(&app, &key, "haystack.txt", text.as_bytes()).await;
    let (project_id, file): (ProjectId, FileId) =
        (project.parse().expect("id"), id.parse().expect("id"));
    let store_of = blobs(&app);
    let objects = store_of.objects(project_id, file).await.expect("objects");
    assert!(objects.len() > 1, "a 2 MB file is several objects");
    for object in &objects {
        assert!(
            !object.windows(needle.len()).any(|w| w == needle.as_bytes()),
            "plaintext in the store"
        );
    }
    let (_, _, body) = download(&app, &key, &id, None).await;
    assert_eq!(body.as_deref().ok(), Some(text.as_bytes()), "byte-exact");
    // A flipped byte in the first chunk: an error answer, not the bytes.
    let mut flipped = objects[0].to_vec();
    flipped[100] ^= 1;
    store_of
        .overwrite_segment(project_id, file, 0, flipped)
        .await
        .expect("tampered");
    let (status, _, body) = download(&app, &key, &id, None).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        !body
            .unwrap_or_default()
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
    );
    store_of
        .overwrite_segment(project_id, file, 0, objects[0].to_vec())
        .await
        .expect("restored");
    // A flipped byte further in: the body is cut short, never wrong bytes.
    let last = objects.len() - 1;
    let mut late = objects[last].to_vec();
    late[10] ^= 1;
    store_of
        .overwrite_segment(project_id, file, u32::try_from(last).expect("index"), late)
        .await
        .expect("tampered");
    let (status, _, body) = download(&app, &key, &id, None).await;
    assert_eq!(status, StatusCode::OK, "the first chunks are fine");
    assert!(body.is_err(), "the body breaks off where a chunk fails");
    // A truncated object is detected too.
    let cut = objects[last][..objects[last].len() - 20].to_vec();
    store_of
        .overwrite_segment(project_id, file, u32::try_from(last).expect("index"), cut)
        .await
        .expect("truncated");
    let (_, _, body) = download(&app, &key, &id, None).await;
    assert!(body.is_err(), "a truncated object never reads as whole");
    // The range of the untouched start still reads.
    let (status, _, body) = download(&app, &key, &id, Some("bytes=0-99")).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(body.as_deref().ok(), Some(&text.as_bytes()[..100]));
    assert!(
        !app.all_logs().contains(needle),
        "a file's bytes never reach a log"
    );
}

#[tokio::test]
async fn the_store_never_holds_plaintext_and_tampering_fails_loudly_on_the_local_disk() {
    the_store_never_holds_plaintext_and_tampering_fails_loudly(Store::Local).await;
}

#[tokio::test]
async fn the_store_never_holds_plaintext_and_tampering_fails_loudly_on_s3() {
    the_store_never_holds_plaintext_and_tampering_fails_loudly(Store::S3).await;
}

#[tokio::test]
async fn size_and_quota_refusals_are_exact_under_concurrent_uploads() {
    let app = spawn_app_with(
        Options::default()
            .env("STEWRD_FILE_MAX_BYTES", "100000")
            .env("STEWRD_FILE_QUOTA_BYTES", "250000"),
    )
    .await;
    let (_, key) = app.create_project("acme").await;
    let (status, error) = upload(&app, &key, "big", &vec![1u8; 100_001], "x/y").await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{error}");
    assert_eq!(error["error"]["code"], "file_too_large");
    let uploads = (0..5).map(|i| {
        let (app, key) = (&app, &key);
        async move { upload(app, key, &format!("f{i}"), &vec![2u8; 100_000], "x/y").await }
    });
    let answers = futures_util::future::join_all(uploads).await;
    let stored = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::CREATED)
        .count();
    let refused: Vec<&Value> = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::PAYLOAD_TOO_LARGE)
        .map(|(_, body)| body)
        .collect();
    assert_eq!(stored, 2, "exactly what fits: {answers:?}");
    assert_eq!(refused.len(), 3, "{answers:?}");
    assert!(
        refused
            .iter()
            .all(|body| body["error"]["code"] == "storage_quota_exceeded")
    );
    let (_, listed) = app.call(Method::GET, "/v1/files", Some(&key), None).await;
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(2));
    // Deleting frees its bytes for the next upload.
    let first = listed["data"][0]["id"].as_str().expect("id").to_owned();
    app.call(
        Method::DELETE,
        &format!("/v1/files/{first}"),
        Some(&key),
        None,
    )
    .await;
    let (status, _) = upload(&app, &key, "again", &vec![3u8; 100_000], "x/y").await;
    assert_eq!(status, StatusCode::CREATED);
}

#[tokio::test]
async fn files_in_messages_reach_the_model_as_the_providers_take_them_and_again_with_history() {
    let app = spawn_app_with(Options::default()).await;
    let (_, key) = app.create_project("acme").await;
    let png = uploaded(&app, &key, "pixel.png", PNG).await;
    let pdf = uploaded(&app, &key, "doc.pdf", PDF).await;
    let txt = uploaded(&app, &key, "notes.txt", b"the notes").await;
    let accepted = app
        .submit(
            &key,
            json!({"message": "Look at these", "files": [png, pdf, txt]}),
        )
        .await;
    let session = accepted["session_id"].as_str().expect("id").to_owned();
    let done = app.wait_final(&key, &session).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    use base64::Engine;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let expected = json!([
        {"type": "text", "text": "Look at these"},
        {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{}", b64(PNG))}},
        {"type": "file", "file": {"filename": "doc.pdf",
                                  "file_data": format!("data:application/pdf;base64,{}", b64(PDF))}},
        {"type": "text", "text": "the notes"},
    ]);
    let first = sent(&app, 0);
    assert_eq!(first.last().expect("the message")["content"], expected);
    // The dev stub echoes the text parts it read (the README's example).
    assert_eq!(done["output"], "Echo: Look at these\nthe notes");
    // The session shows them on the message; its files list them.
    assert_eq!(done["messages"][0]["files"][0]["id"], png.as_str());
    assert_eq!(done["messages"][0]["files"][1]["filename"], "doc.pdf");
    let (_, listed) = app
        .call(
            Method::GET,
            &format!("/v1/sessions/{session}/files"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(3));
    // The next message of the session sends them again, with the history.
    app.submit(&key, json!({"message": "And now?", "session_id": session}))
        .await;
    app.wait_final(&key, &session).await;
    let second = sent(&app, 1);
    assert_eq!(second[0]["content"], expected);
    assert_eq!(
        second.last().expect("the new message")["content"],
        "And now?"
    );
    // Ids that cannot be used are refused, naming `files`.
    let binary = uploaded(&app, &key, "blob.bin", &[0, 255, 1]).await;
    let (_, other) = app.create_project("other").await;
    let theirs = uploaded(&app, &other, "pixel.png", PNG).await;
    app.call(
        Method::DELETE,
        &format!("/v1/files/{txt}"),
        Some(&key),
        None,
    )
    .await;
    for files in [
        json!([binary]),
        json!([theirs]),
        json!([txt]),
        json!(["file_00000000000000000000000000000000"]),
        json!([png, png]),
        json!(vec![png.clone(); 11]),
        json!(["not-a-file-id"]),
    ] {
        let (status, error) = app
            .call(
                Method::POST,
                "/v1/agent",
                Some(&key),
                Some(json!({"message": "x", "files": files})),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{files}: {error}");
        assert!(
            error["error"]["param"]
                .as_str()
                .is_some_and(|p| p.starts_with("files")),
            "{files}: {error}"
        );
    }
}

#[tokio::test]
async fn a_tool_answering_bytes_makes_one_artifact_the_model_sees() {
    let app = spawn_app_with(Options::default().env("STEWRD_TOOL_RETRY_SCHEDULE", "100ms")).await;
    let (_, key) = app.create_project("acme").await;
    let tool = Receiver::start().await;
    server_tool(&app, &key, "draw", &tool.url()).await;
    let long_text = "x".repeat(70_000) + "END";
    tool.script([
        Answer::bytes(PNG).header("content-type", "image/png"),
        Answer::ok(&long_text).header("content-type", "text/plain"),
    ]);
    app.stub.state.push([
        Reply::tool_calls(&[("call_img", "draw", "{}")], 4),
        Reply::tool_calls(&[("call_txt", "draw", "{}")], 4),
        Reply::text("done", 4),
    ]);
    let accepted = app.submit(&key, json!({"message": "draw"})).await;
    let session = accepted["session_id"].as_str().expect("id").to_owned();
    let run = accepted["run_id"].as_str().expect("run").to_owned();
    let done = app.wait_final(&key, &session).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let (_, listed) = app
        .call(
            Method::GET,
            &format!("/v1/sessions/{session}/files"),
            Some(&key),
            None,
        )
        .await;
    let artifacts = listed["data"].as_array().cloned().unwrap_or_default();
    assert_eq!(artifacts.len(), 2, "{listed}");
    let image = artifacts
        .iter()
        .find(|f| f["content_type"] == "image/png")
        .expect("the image");
    assert_eq!(image["purpose"], "artifact");
    assert_eq!(image["session_id"], session.as_str());
    assert_eq!(image["run_id"], run.as_str());
    let image_id = image["id"].as_str().expect("id");
    // The model got the file's description, then the image after the tool message.
    let second = sent(&app, 1);
    let output: Value =
        serde_json::from_str(second[2]["content"].as_str().unwrap_or_default()).unwrap_or_default();
    assert_eq!(output["file_id"], image_id);
    assert_eq!(output["content_type"], "image/png");
    assert_eq!(output["bytes"], PNG.len());
    assert_eq!(second[3]["role"], "user");
    assert_eq!(second[3]["content"][0]["type"], "image_url");
    // Text past 64 KiB: the model gets its start, and the whole is a file.
    let third = sent(&app, 2);
    let given = third[5]["content"].as_str().unwrap_or_default();
    assert!(
        given.starts_with("xxxx") && !given.contains("END"),
        "{}",
        given.len()
    );
    let text_file = artifacts
        .iter()
        .find(|f| f["content_type"] != "image/png")
        .expect("the text");
    assert!(given.contains(text_file["id"].as_str().unwrap_or("?")));
    let (_, _, body) = download(&app, &key, text_file["id"].as_str().expect("id"), None).await;
    assert_eq!(
        body.ok().as_deref(),
        Some(long_text.as_bytes()),
        "kept whole"
    );
    let listed_steps = steps(&app, &key, &session, &run).await;
    assert_eq!(listed_steps[1]["status"], "succeeded");
}

/// Starts an upload of 3 MB over a raw connection and sends half of it;
/// returns the connection (still open) once segments are in the store.
async fn half_an_upload(
    app: &TestApp,
    key: &str,
    project: ProjectId,
) -> (tokio::net::TcpStream, FileId) {
    use tokio::io::AsyncWriteExt;
    let boundary = "stewrd-test-boundary";
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"cut.bin\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    );
    let total = head.len() + 3_000_000 + 64;
    let address = app.base.trim_start_matches("http://").to_owned();
    let mut socket = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connect");
    socket
        .write_all(
            format!(
                "POST /v1/files HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {key}\r\n\
                 Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {total}\r\n\r\n{head}"
            )
            .as_bytes(),
        )
        .await
        .expect("head");
    socket
        .write_all(&vec![7u8; 1_500_000])
        .await
        .expect("half the body");
    let db = app.db().await;
    let file: FileId = wait_for(PATIENCE, || async {
        db.query_opt("SELECT id FROM files WHERE status = 'uploading'", &[])
            .await
            .ok()
            .flatten()
            .map(|row| row.get(0))
    })
    .await
    .expect("the upload began");
    let store = blobs(app);
    wait_for(PATIENCE, || async {
        (!store.objects(project, file).await.ok()?.is_empty()).then_some(())
    })
    .await
    .expect("segments written before the cut");
    (socket, file)
}

/// Waits until a file's objects and row are gone.
async fn removed(app: &TestApp, project: ProjectId, file: FileId) {
    let (db, store) = (app.db().await, blobs(app));
    wait_for(PATIENCE, || async {
        let gone = store.objects(project, file).await.ok()?.is_empty();
        let row = db
            .query_opt("SELECT 1 FROM files WHERE id = $1", &[&file])
            .await
            .ok()?;
        (gone && row.is_none()).then_some(())
    })
    .await
    .expect("the partial bytes and the row are removed");
}

#[tokio::test]
async fn an_upload_cut_off_is_never_listed_and_its_bytes_are_removed() {
    let mut app = spawn_app_with(
        Options::default()
            .env("STEWRD_FILE_ABANDON_SECS", "1")
            .env("STEWRD_BACKLOG_SAMPLE_SECS", "1"),
    )
    .await;
    let (project, key) = app.create_project("acme").await;
    let project: ProjectId = project.parse().expect("id");
    // The client goes away: the API gives the upload up at once.
    let (socket, file) = half_an_upload(&app, &key, project).await;
    drop(socket);
    removed(&app, project, file).await;
    // The API is killed mid-upload: nobody gives it up, housekeeping does.
    let (socket, file) = half_an_upload(&app, &key, project).await;
    app.api.kill();
    drop(socket);
    let (api, base) = crate::helpers::start_api(&app.env);
    app.api = api;
    app.base = base;
    app.wait_ready().await;
    let (_, listed) = app.call(Method::GET, "/v1/files", Some(&key), None).await;
    assert_eq!(listed["data"], json!([]), "never listed");
    removed(&app, project, file).await;
}

#[tokio::test]
async fn rotating_the_master_key_rewraps_file_keys_and_files_still_read() {
    let mut app = spawn_app_with(Options::default()).await;
    let (_, key) = app.create_project("acme").await;
    let id = uploaded(&app, &key, "notes.txt", b"kept across rotations").await;
    let new_keys = format!(
        "k2:{},{}",
        "AgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4fICE=",
        crate::helpers::MASTER_KEYS
    );
    app.env.insert("STEWRD_MASTER_KEYS".into(), new_keys);
    let rotated = app.run_command(&["rotate-master-key"]);
    assert!(rotated.status.success(), "{rotated:?}");
    // Only the new key from now on: the file's key was re-wrapped under it.
    app.restart_api(&[(
        "STEWRD_MASTER_KEYS",
        "k2:AgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4fICE=",
    )])
    .await;
    let (status, _, body) = download(&app, &key, &id, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.ok().as_deref(), Some(&b"kept across rotations"[..]));
}

/// kill -9 between an artifact being stored and its step's commit: the step
/// is made again (the tool called again with its key), and finds its file.
#[tokio::test]
async fn a_step_made_again_after_a_crash_makes_no_second_artifact() {
    let mut app = spawn_app_with(Options::default().env("STEWRD_LEASE_SECS", "2")).await;
    let (_, key) = app.create_project("acme").await;
    let tool = Receiver::start().await;
    server_tool(&app, &key, "draw", &tool.url()).await;
    tool.answer_by_default(
        Answer::bytes(PNG)
            .header("content-type", "image/png")
            .delayed(std::time::Duration::from_millis(700)),
    );
    app.stub.state.push([
        Reply::tool_calls(&[("call_img", "draw", "{}")], 4),
        Reply::text("done", 4),
    ]);
    let accepted = app.submit(&key, json!({"message": "draw"})).await;
    let session = accepted["session_id"].as_str().expect("id").to_owned();
    let run = accepted["run_id"].as_str().expect("run").to_owned();
    // Hold the run's row while the tool call is in flight (the model's
    // answer is committed): the tool step's commit then waits, after the
    // artifact is stored.
    let mut holder = app.db().await;
    wait_for(PATIENCE, || async {
        (!tool.received().is_empty()).then_some(())
    })
    .await
    .expect("the tool is called");
    let hold = holder.transaction().await.expect("a transaction");
    hold.execute("SELECT 1 FROM runs WHERE id::text = $1 FOR UPDATE", &[&run])
        .await
        .expect("held");
    let db = app.db().await;
    wait_for(PATIENCE, || async {
        let ready: i64 = db
            .query_one(
                "SELECT count(*) FROM files WHERE run_id::text = $1 AND status = 'ready'",
                &[&run],
            )
            .await
            .ok()?
            .get(0);
        (ready == 1).then_some(())
    })
    .await
    .expect("the artifact is stored before its step commits");
    // The worker dies there: its process, and the statement its database
    // session was waiting to commit (else Postgres would finish it).
    app.kill_and_replace_worker(0);
    db.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND wait_event_type = 'Lock'",
        &[],
    )
    .await
    .expect("terminated");
    hold.rollback().await.expect("released");
    let done = app.wait_final(&key, &session).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let files: i64 = db
        .query_one(
            "SELECT count(*) FROM files WHERE run_id::text = $1",
            &[&run],
        )
        .await
        .expect("count")
        .get(0);
    let calls = tool.received();
    println!(
        "accepted=1 final=1 artifacts={files} tool_calls={} same_key={}",
        calls.len(),
        calls
            .windows(2)
            .all(|w| w[0].header("idempotency-key") == w[1].header("idempotency-key"))
    );
    assert_eq!(files, 1, "one artifact per step and call");
    assert!(calls.len() >= 2, "the step was made again");
    assert!(
        calls
            .windows(2)
            .all(|w| w[0].header("idempotency-key") == w[1].header("idempotency-key"))
    );
    let listed = steps(&app, &key, &session, &run).await;
    let output: Value =
        serde_json::from_str(listed[1]["output"].as_str().unwrap_or_default()).unwrap_or_default();
    let (_, file) = app
        .call(
            Method::GET,
            &format!("/v1/files/{}", output["file_id"].as_str().unwrap_or("?")),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(file["content_type"], "image/png", "{file}");
}

#[tokio::test]
async fn the_dashboard_lists_a_sessions_files_for_download_and_a_projects_storage() {
    let app = spawn_app_with(Options::default()).await;
    let (project, key) = app.create_project("acme").await;
    let png = uploaded(&app, &key, "pixel.png", PNG).await;
    let accepted = app
        .submit(&key, json!({"message": "see", "files": [png]}))
        .await;
    let session = accepted["session_id"].as_str().expect("id").to_owned();
    app.wait_final(&key, &session).await;
    let (browser, cookie) = crate::helpers::operator_cookie(&app).await;
    let get = |path: String| {
        let (browser, cookie) = (browser.clone(), cookie.clone());
        let url = format!("{}{path}", app.base);
        async move {
            let answer = browser
                .get(url)
                .header("cookie", cookie)
                .send()
                .await
                .expect("an answer");
            (answer.status(), answer.bytes().await.unwrap_or_default())
        }
    };
    let (status, page) = get(format!("/dashboard/sessions/{session}")).await;
    assert_eq!(status, StatusCode::OK);
    let page = String::from_utf8_lossy(&page);
    let link = format!("/dashboard/files/{png}/content");
    assert!(page.contains(&link) && page.contains("pixel.png"), "{page}");
    let (status, bytes) = get(link).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&bytes[..], PNG);
    let (_, page) = get(format!("/dashboard/projects/{project}")).await;
    let page = String::from_utf8_lossy(&page);
    assert!(page.contains("MiB of 1024 MiB stored"), "{page}");
    // Not signed in: no bytes.
    let anonymous = browser
        .get(format!("{}/dashboard/files/{png}/content", app.base))
        .send()
        .await
        .expect("an answer");
    assert_eq!(anonymous.status(), StatusCode::SEE_OTHER);
}

/// Every byte of a file that leaves stewrd for a place it does not belong to.
fn all_bytes_under(dir: &std::path::Path) -> String {
    let mut text = String::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            text.push_str(&all_bytes_under(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            text.push_str(&String::from_utf8_lossy(&bytes));
        }
    }
    text
}

#[tokio::test]
async fn file_contents_reach_the_model_and_their_owner_and_nothing_else() {
    let app = spawn_app_with(
        Options::default()
            .env("RUST_LOG", "trace")
            .worker_metrics()
            .env("STEWRD_FILE_QUOTA_BYTES", "200000"),
    )
    .await;
    let (_, key) = app.create_project("acme").await;
    let uploaded_text = "QxWv93LmZpKe7Ub";
    let artifact_bytes = "Hr7Kd2NbYsVw4Jf";
    let past_the_cut = "Pq4Zm8XcVaGt2Rn";
    let refused = "Tn5Wq1JhGkYb6Ls";
    let input = uploaded(&app, &key, "notes.txt", uploaded_text.as_bytes()).await;
    let tool = Receiver::start().await;
    server_tool(&app, &key, "fetch", &tool.url()).await;
    let mut binary = artifact_bytes.as_bytes().to_vec();
    binary.push(0);
    let long_text = "y".repeat(70_000) + past_the_cut;
    tool.script([
        Answer::bytes(&binary).header("content-type", "application/octet-stream"),
        Answer::ok(&long_text).header("content-type", "text/plain"),
    ]);
    app.stub.state.push([
        Reply::tool_calls(
            &[("call_bin", "fetch", "{}"), ("call_txt", "fetch", "{}")],
            4,
        ),
        Reply::text("done", 4),
    ]);
    let accepted = app
        .submit(&key, json!({"message": "read", "files": [input]}))
        .await;
    let session = accepted["session_id"].as_str().expect("id").to_owned();
    let done = app.wait_final(&key, &session).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    // Refused uploads and reads of a damaged file say why, never what.
    let over = refused.repeat(200_000 / refused.len() + 1);
    let (status, error) = upload(&app, &key, "big.txt", over.as_bytes(), "text/plain").await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{error}");
    // The model got what it was given (the input, the artifact's description,
    // the long output's start), never the artifact's bytes or the cut-off tail.
    let second = sent(&app, 1);
    let to_model = serde_json::to_string(&second).expect("JSON");
    assert!(to_model.contains(uploaded_text), "the model read the file");
    // Where file contents never go.
    let metrics = reqwest::get(app.worker_metrics().await)
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let responses = app.responses_text();
    let places = [
        ("the logs", app.all_logs()),
        ("the database", crate::byok::database_text(&app).await),
        ("the metrics", metrics),
        (
            "the store",
            all_bytes_under(&crate::helpers::local_files(&app.name)),
        ),
        ("an API answer", responses + &error.to_string()),
    ];
    for content in [uploaded_text, artifact_bytes, past_the_cut, refused] {
        crate::byok::assert_no_piece_of(content, &places);
    }
    assert_no_piece_of_in("what was sent", &to_model, &[artifact_bytes, past_the_cut]);
}

fn assert_no_piece_of_in(place: &str, text: &str, contents: &[&str]) {
    for content in contents {
        crate::byok::assert_no_piece_of(content, &[(place, text.to_owned())]);
    }
}
