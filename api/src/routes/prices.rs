//! The operator's prices: `GET /v1/admin/prices` shows every price in force
//! (stewrd's list and the operator's), `PUT` merges the operator's by
//! provider and model and answers the whole table.

use axum::{Json, Router, extract::State, routing::get};
use serde::{Deserialize, Serialize};
use stewrd_shared::{
    db::price::{list_prices, merge_prices},
    domain::price::{Price, PriceIn, check_prices},
};

use crate::{
    auth::AdminAuth,
    error::ApiError,
    extract::JsonBody,
    openapi::responses::{BadAdminToken, BadRequest, TooLarge, Unavailable},
    state::AppState,
};

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/admin/prices", get(show).put(replace))
}

/// Every price in force, by provider and model.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct PricesOut {
    prices: Vec<Price>,
}

/// Prices to set: each replaces the one of its provider and model.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PricesIn {
    #[schema(max_items = 500)]
    prices: Vec<PriceIn>,
}

#[utoipa::path(
    operation_id = "admin_get_prices",
    get,
    path = "/v1/admin/prices",
    tag = "admin",
    summary = "Every model price in force (list and operator's), per million tokens",
    responses((status = 200, description = "The prices", body = PricesOut), (status = 401, response = inline(BadAdminToken)), (status = 503, response = inline(Unavailable))),
    security(("admin_token" = []))
)]
pub(crate) async fn show(
    State(state): State<AppState>,
    _admin: AdminAuth,
) -> Result<Json<PricesOut>, ApiError> {
    let client = state.pool.get().await?;
    Ok(Json(PricesOut {
        prices: list_prices(&client).await?,
    }))
}

#[utoipa::path(
    operation_id = "admin_put_prices",
    put,
    path = "/v1/admin/prices",
    tag = "admin",
    summary = "Set model prices (merged by provider and model); answers every price",
    request_body = PricesIn,
    responses((status = 200, description = "The prices", body = PricesOut), (status = 400, response = inline(BadRequest)), (status = 401, response = inline(BadAdminToken)), (status = 413, response = inline(TooLarge)), (status = 503, response = inline(Unavailable))),
    security(("admin_token" = []))
)]
pub(crate) async fn replace(
    State(state): State<AppState>,
    _admin: AdminAuth,
    JsonBody(body): JsonBody<PricesIn>,
) -> Result<Json<PricesOut>, ApiError> {
    let prices = check_prices(&body.prices)
        .map_err(|refusal| ApiError::invalid("invalid_value", refusal.param, refusal.message))?;
    let client = state.pool.get().await?;
    merge_prices(&client, &prices).await?;
    tracing::info!(count = prices.len(), "prices set");
    Ok(Json(PricesOut {
        prices: list_prices(&client).await?,
    }))
}
