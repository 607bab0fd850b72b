//! Typed ids. Every id is a UUIDv7, so ids sort by creation time and a cursor over
//! them pages newest-first without a separate timestamp index.

use std::{fmt, str::FromStr};

use bytes::BytesMut;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
        #[serde(transparent)]
        #[schema(value_type = String, format = Uuid)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh, time-ordered id.
            #[allow(clippy::new_without_default)]
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl ToSql for $name {
            fn to_sql(
                &self,
                ty: &Type,
                out: &mut BytesMut,
            ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
                self.0.to_sql(ty, out)
            }
            fn accepts(ty: &Type) -> bool {
                <Uuid as ToSql>::accepts(ty)
            }
            to_sql_checked!();
        }

        impl<'a> FromSql<'a> for $name {
            fn from_sql(
                ty: &Type,
                raw: &'a [u8],
            ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
                Uuid::from_sql(ty, raw).map(Self)
            }
            fn accepts(ty: &Type) -> bool {
                <Uuid as FromSql<'_>>::accepts(ty)
            }
        }
    };
}

id_type!(
    /// A project: the tenant that owns API keys, provider configuration and sessions.
    ProjectId
);
id_type!(
    /// A project API key (its id, not the secret).
    ApiKeyId
);
id_type!(
    /// A conversation: a sequence of runs, one at a time.
    SessionId
);
id_type!(
    /// One user message and its processing: the unit of work on the queue.
    RunId
);
id_type!(
    /// One worker process, the owner of the leases it takes.
    WorkerId
);
