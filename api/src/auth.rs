//! Who is calling: a project (by API key) or the operator (by admin token).
//!
//! Key lookups are cached per process (a lookup is a query on every request
//! otherwise). An entry is evicted when its project or any of its keys changes
//! (database triggers notify every API process; this process evicts at once for
//! its own changes), when the notification connection is re-established, and at
//! the latest after `CACHE_TTL`.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    extract::{ConnectInfo, FromRequestParts},
    http::{HeaderMap, header::AUTHORIZATION, request::Parts},
};
use secrecy::SecretString;
use stewrd_shared::{
    db::{
        api_key::{KeyOwner, find_key_owner},
        limits::Admission,
    },
    domain::{
        id::{ApiKeyId, ProjectId},
        llm::ProjectLlm,
    },
    secrets::token::{API_KEY_PREFIX, api_key_matches, hash_api_key, secret_token_matches},
};

use crate::{error::ApiError, state::AppState};

/// A caller holding a valid, unrevoked project API key.
#[derive(Clone, Debug)]
pub struct ProjectAuth {
    pub project_id: ProjectId,
    /// The key used (decisions name it).
    pub key_id: ApiKeyId,
    /// The project's provider choice, read with the key at no extra cost.
    pub llm: ProjectLlm,
    /// What a submit must check of the project's limits.
    pub admission: Admission,
}

/// How long a cached lookup is trusted without any notification.
const CACHE_TTL: Duration = Duration::from_secs(60);
/// Cached keys per process; past it the cache starts over.
const CACHE_CAPACITY: usize = 100_000;

type Entries = HashMap<[u8; 32], (KeyOwner, Instant)>;

/// Recently checked API keys, by hash.
#[derive(Clone, Default)]
pub struct AuthCache {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    entries: Entries,
    /// Bumped by every eviction. A lookup that started before an eviction may
    /// have read what the eviction was about (a key just revoked): its result
    /// is not cached.
    generation: u64,
}

/// The cache's generation when a database lookup began; see [`AuthCache::put`].
#[derive(Clone, Copy, Debug)]
pub struct Ticket(u64);

impl AuthCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn get(&self, hash: &[u8; 32]) -> Option<KeyOwner> {
        let inner = self.lock();
        let (owner, at) = inner.entries.get(hash)?;
        (at.elapsed() < CACHE_TTL).then(|| owner.clone())
    }

    /// Take before reading the database, hand to `put` after.
    fn ticket(&self) -> Ticket {
        Ticket(self.lock().generation)
    }

    /// Caches a lookup, unless an eviction came since its `ticket` was taken.
    fn put(&self, ticket: Ticket, hash: [u8; 32], owner: KeyOwner) {
        let mut inner = self.lock();
        if inner.generation != ticket.0 {
            return;
        }
        if inner.entries.len() >= CACHE_CAPACITY {
            inner.entries.clear();
        }
        inner.entries.insert(hash, (owner, Instant::now()));
    }

    /// Forgets every key of a project (its keys or settings changed).
    pub fn forget_project(&self, project_id: ProjectId) {
        let mut inner = self.lock();
        inner.generation += 1;
        inner
            .entries
            .retain(|_, (owner, _)| owner.project_id != project_id);
    }

    /// Forgets everything (notifications may have been missed).
    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.generation += 1;
        inner.entries.clear();
    }
}

/// The operator, holding `STEWRD_ADMIN_TOKEN`.
#[derive(Clone, Copy, Debug)]
pub struct AdminAuth;

/// The token of an `Authorization: Bearer …` header, if one is sent.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}

impl FromRequestParts<AppState> for ProjectAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(token) = bearer(&parts.headers) else {
            return Err(ApiError::unauthorized(
                "missing_api_key",
                "send your project API key as `Authorization: Bearer sk-stw_…`",
            ));
        };
        let invalid = || ApiError::unauthorized("invalid_api_key", "invalid or revoked API key");
        if !token.starts_with(API_KEY_PREFIX) {
            return Err(invalid());
        }
        let hash = hash_api_key(token);
        let owner = match state.auth_cache.get(&hash) {
            Some(owner) => owner,
            // Boxed: axum keeps extractors and handler in one future, as large
            // as its largest state, which a long-poll holds for its whole wait.
            None => {
                Box::pin(async {
                    let ticket = state.auth_cache.ticket();
                    let client = state
                        .pool
                        .get()
                        .await
                        .map_err(stewrd_shared::db::DbError::from)?;
                    let owner = find_key_owner(&client, &hash).await?.ok_or_else(invalid)?;
                    state.auth_cache.put(ticket, hash, owner.clone());
                    Ok::<_, ApiError>(owner)
                })
                .await?
            }
        };
        if !api_key_matches(token, &owner.hash) {
            return Err(invalid());
        }
        Ok(Self {
            project_id: owner.project_id,
            key_id: owner.key_id,
            llm: owner.llm,
            admission: owner.admission,
        })
    }
}

impl FromRequestParts<AppState> for AdminAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(token) = bearer(&parts.headers) else {
            if state.config.admin_token.is_none() {
                return Err(admin_api_off());
            }
            return Err(ApiError::unauthorized(
                "missing_admin_token",
                "send the admin token as `Authorization: Bearer …`",
            ));
        };
        match check_admin_token(state, peer(parts), token) {
            Ok(()) => Ok(AdminAuth),
            Err(AdminRefusal::Off) => Err(admin_api_off()),
            Err(AdminRefusal::Wrong) => Err(ApiError::unauthorized(
                "invalid_admin_token",
                "invalid admin token",
            )),
            Err(AdminRefusal::Wait(wait)) => Err(ApiError::too_many_attempts(wait)),
        }
    }
}

fn admin_api_off() -> ApiError {
    ApiError::not_found("route: the admin API is off until STEWRD_ADMIN_TOKEN is set")
}

/// The client's address, as the server loop recorded it.
fn peer(parts: &Parts) -> Option<IpAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(address)| address.ip())
}

/// The client's address as an extractor (none when served without the server
/// loop, as in unit tests).
pub(crate) struct Peer(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(peer(parts)))
    }
}

/// Why an admin token was not accepted.
pub(crate) enum AdminRefusal {
    /// No `STEWRD_ADMIN_TOKEN` is set.
    Off,
    /// Not the admin token.
    Wrong,
    /// This address failed too often: it may try again after this long.
    Wait(std::time::Duration),
}

/// Checks a presented admin token (bearer or sign-in form) under the failure
/// throttle: the one place the admin token is compared. The right token is
/// always taken; a wrong one is counted against its client (a project's API
/// key excepted: sent to an admin route by mistake, it is no guess) and, past
/// the free tries, refused with a wait.
pub(crate) fn check_admin_token(
    state: &AppState,
    peer: Option<IpAddr>,
    presented: &str,
) -> Result<(), AdminRefusal> {
    let expected = state.config.admin_token.as_ref().ok_or(AdminRefusal::Off)?;
    if secret_token_matches(presented, expected) {
        if let Some(address) = peer {
            state.admin_throttle.right(address);
        }
        return Ok(());
    }
    if let Some(address) = peer
        && !presented.starts_with(API_KEY_PREFIX)
    {
        state
            .admin_throttle
            .wrong(address)
            .map_err(AdminRefusal::Wait)?;
        tracing::warn!(%address, "wrong admin token");
    }
    Err(AdminRefusal::Wrong)
}

/// Whether a `/metrics` request may read the metrics: always when no
/// `STEWRD_METRICS_TOKEN` is set (bind the listener privately then), else only
/// with that token as a bearer.
pub fn metrics_allowed(headers: &HeaderMap, token: Option<&SecretString>) -> bool {
    match token {
        None => true,
        Some(expected) => {
            bearer(headers).is_some_and(|given| secret_token_matches(given, expected))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stewrd_shared::domain::id::ApiKeyId;

    fn owner(project_id: ProjectId) -> KeyOwner {
        KeyOwner {
            key_id: ApiKeyId::new(),
            project_id,
            hash: vec![0; 32],
            llm: ProjectLlm {
                provider: None,
                model: None,
                has_key: false,
                key_status: None,
            },
            admission: Admission::default(),
        }
    }

    #[test]
    fn a_lookup_that_an_eviction_overtook_is_not_cached() {
        let cache = AuthCache::default();
        let project = ProjectId::new();
        // A request reads the key from the database (still valid there)...
        let ticket = cache.ticket();
        // ...the key is revoked and this process evicts the project meanwhile...
        cache.forget_project(project);
        // ...then the request caches what it read: that stale write is dropped.
        cache.put(ticket, [1; 32], owner(project));
        assert!(
            cache.get(&[1; 32]).is_none(),
            "a revoked key was cached again"
        );
        // The same after a full clear (a reconnect).
        let ticket = cache.ticket();
        cache.clear();
        cache.put(ticket, [2; 32], owner(project));
        assert!(cache.get(&[2; 32]).is_none());
        // A lookup no eviction overtook is cached.
        let ticket = cache.ticket();
        cache.put(ticket, [3; 32], owner(project));
        assert!(cache.get(&[3; 32]).is_some());
    }
}
