//! Who is calling: a project (by API key) or the operator (by admin token).

use axum::{
    extract::FromRequestParts,
    http::{header::AUTHORIZATION, request::Parts},
};
use stewrd_shared::{
    db::{api_key::find_key_owner, project::ProjectLlm},
    id::ProjectId,
    token::{API_KEY_PREFIX, admin_token_matches, api_key_matches, hash_api_key},
};

use crate::{error::ApiError, state::AppState};

/// A caller holding a valid, unrevoked project API key.
#[derive(Clone, Debug)]
pub struct ProjectAuth {
    pub project_id: ProjectId,
    /// The project's provider choice, read with the key at no extra cost.
    pub llm: ProjectLlm,
}

/// The operator, holding `STEWRD_ADMIN_TOKEN`.
#[derive(Clone, Copy, Debug)]
pub struct AdminAuth;

fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
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
        let Some(token) = bearer(parts) else {
            return Err(ApiError::unauthorized(
                "missing_api_key",
                "send your project API key as `Authorization: Bearer sk-stw_…`",
            ));
        };
        let invalid = || ApiError::unauthorized("invalid_api_key", "invalid or revoked API key");
        if !token.starts_with(API_KEY_PREFIX) {
            return Err(invalid());
        }
        let client = state
            .pool
            .get()
            .await
            .map_err(stewrd_shared::db::DbError::from)?;
        let owner = find_key_owner(&client, &hash_api_key(token))
            .await?
            .filter(|owner| api_key_matches(token, &owner.hash))
            .ok_or_else(invalid)?;
        Ok(Self {
            project_id: owner.project_id,
            llm: owner.llm,
        })
    }
}

impl FromRequestParts<AppState> for AdminAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(expected) = &state.config.admin_token else {
            return Err(ApiError::not_found(
                "route: the admin API is off until STEWRD_ADMIN_TOKEN is set",
            ));
        };
        match bearer(parts) {
            Some(token) if admin_token_matches(token, expected) => Ok(AdminAuth),
            Some(_) => Err(ApiError::unauthorized(
                "invalid_admin_token",
                "invalid admin token",
            )),
            None => Err(ApiError::unauthorized(
                "missing_admin_token",
                "send the admin token as `Authorization: Bearer …`",
            )),
        }
    }
}
