//! Files as the API speaks of them: what they are for, what their bytes are
//! (sniffed, never taken from the client), and which kinds a model can read.

use serde::{Deserialize, Serialize};

/// Why a file exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// Uploaded by the client, to attach to messages.
    Input,
    /// Made by a tool of a run.
    Artifact,
}

impl Purpose {
    /// The database and wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Input => "input",
            Self::Artifact => "artifact",
        }
    }

    /// Parses the database and wire spelling.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "input" => Some(Self::Input),
            "artifact" => Some(Self::Artifact),
            _ => None,
        }
    }
}

/// The content types stewrd tells apart.
pub mod content_type {
    pub const PNG: &str = "image/png";
    pub const JPEG: &str = "image/jpeg";
    pub const GIF: &str = "image/gif";
    pub const WEBP: &str = "image/webp";
    pub const PDF: &str = "application/pdf";
    pub const TEXT: &str = "text/plain; charset=utf-8";
    pub const BINARY: &str = "application/octet-stream";
}

/// How a model is given a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shown {
    /// An `image_url` part holding a data URL.
    Image,
    /// A `file` part holding a PDF's data URL.
    Pdf,
    /// A `text` part holding the file's text.
    Text,
}

/// How a model is given a file of `content_type`, if it can be.
pub fn shown_as(content_type: &str) -> Option<Shown> {
    use content_type::*;
    match content_type {
        PNG | JPEG | GIF | WEBP => Some(Shown::Image),
        PDF => Some(Shown::Pdf),
        TEXT => Some(Shown::Text),
        _ => None,
    }
}

/// What the first bytes of a file say it is (by their signature); `None`
/// when they name nothing known: then it is text if all of it is UTF-8.
pub fn sniff(head: &[u8]) -> Option<&'static str> {
    use content_type::*;
    if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(PNG)
    } else if head.starts_with(&[0xff, 0xd8, 0xff]) {
        Some(JPEG)
    } else if head.starts_with(b"GIF87a") || head.starts_with(b"GIF89a") {
        Some(GIF)
    } else if head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"WEBP" {
        Some(WEBP)
    } else if head.starts_with(b"%PDF-") {
        Some(PDF)
    } else {
        None
    }
}

/// Bytes needed to sniff.
pub const SNIFF_BYTES: usize = 16;

/// Checks that bytes arriving piece by piece are UTF-8 (a character may be
/// split between pieces).
#[derive(Debug, Default)]
pub struct Utf8Check {
    tail: Vec<u8>,
    broken: bool,
}

impl Utf8Check {
    /// Takes the next piece.
    pub fn push(&mut self, piece: &[u8]) {
        if self.broken {
            return;
        }
        let mut bytes = std::mem::take(&mut self.tail);
        bytes.extend_from_slice(piece);
        match std::str::from_utf8(&bytes) {
            Ok(_) => {}
            Err(error) if error.error_len().is_none() => {
                // Cut inside a character: keep its start for the next piece.
                self.tail = bytes[error.valid_up_to()..].to_vec();
            }
            Err(_) => self.broken = true,
        }
    }

    /// Whether everything was UTF-8.
    pub fn is_utf8(&self) -> bool {
        !self.broken && self.tail.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_name_images_and_pdfs_and_nothing_else() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\nrest"), Some(content_type::PNG));
        assert_eq!(sniff(&[0xff, 0xd8, 0xff, 0xe0]), Some(content_type::JPEG));
        assert_eq!(sniff(b"GIF89a..."), Some(content_type::GIF));
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some(content_type::WEBP));
        assert_eq!(sniff(b"%PDF-1.7"), Some(content_type::PDF));
        assert_eq!(sniff(b"hello"), None);
        assert_eq!(shown_as(content_type::BINARY), None);
    }

    #[test]
    fn utf8_split_between_pieces_is_utf8_and_a_bad_byte_is_not() {
        let text = "héllo wörld ✓".as_bytes();
        let mut check = Utf8Check::default();
        for piece in text.chunks(1) {
            check.push(piece);
        }
        assert!(check.is_utf8());
        let mut bad = Utf8Check::default();
        bad.push(b"ok \xff");
        bad.push(b"more");
        assert!(!bad.is_utf8());
        let mut cut = Utf8Check::default();
        cut.push(&"é".as_bytes()[..1]);
        assert!(!cut.is_utf8(), "ends inside a character");
    }
}

/// A file's id: `file_` and 32 hex digits (a UUIDv7, so ids sort by time).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId(pub uuid::Uuid);

impl FileId {
    /// A fresh, time-ordered id.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        Self(uuid::Uuid::now_v7())
    }

    /// The id of the artifact of one tool call of a run: the same for every
    /// attempt of that call, so a retried or resumed step finds its file
    /// instead of making a second.
    pub fn of_artifact(run: crate::domain::id::RunId, tool_call_id: &str) -> Self {
        use sha2::{Digest, Sha256};
        let digest = Sha256::new()
            .chain_update(b"stewrd artifact v1\0")
            .chain_update(run.0.as_bytes())
            .chain_update(tool_call_id.as_bytes())
            .finalize();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        Self(uuid::Builder::from_custom_bytes(bytes).into_uuid())
    }
}

impl std::fmt::Display for FileId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "file_{}", self.0.simple())
    }
}

impl std::str::FromStr for FileId {
    type Err = ();
    fn from_str(text: &str) -> Result<Self, ()> {
        let hex = text.strip_prefix("file_").ok_or(())?;
        if hex.len() != 32 {
            return Err(());
        }
        uuid::Uuid::try_parse(hex).map(Self).map_err(|_| ())
    }
}

impl Serialize for FileId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for FileId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse()
            .map_err(|()| serde::de::Error::custom("not a file id (file_ and 32 hex digits)"))
    }
}

impl utoipa::PartialSchema for FileId {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::String)
            .pattern(Some("^file_[0-9a-f]{32}$"))
            .into()
    }
}

impl utoipa::ToSchema for FileId {}

impl tokio_postgres::types::ToSql for FileId {
    fn to_sql(
        &self,
        ty: &tokio_postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        self.0.to_sql(ty, out)
    }
    fn accepts(ty: &tokio_postgres::types::Type) -> bool {
        <uuid::Uuid as tokio_postgres::types::ToSql>::accepts(ty)
    }
    tokio_postgres::types::to_sql_checked!();
}

impl<'a> tokio_postgres::types::FromSql<'a> for FileId {
    fn from_sql(
        ty: &tokio_postgres::types::Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        uuid::Uuid::from_sql(ty, raw).map(Self)
    }
    fn accepts(ty: &tokio_postgres::types::Type) -> bool {
        <uuid::Uuid as tokio_postgres::types::FromSql<'_>>::accepts(ty)
    }
}
