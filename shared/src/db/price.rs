//! Prices as stored: the operator's rows in `prices`, shown merged with the
//! list prices (`stewrd_prices`). Costs and reservations read them in SQL
//! (`stewrd_price`), so a price set here applies to the next call of every
//! worker.

use super::{DbError, GenericClient, parse_column};
use crate::domain::{
    model::Provider,
    price::{NewPrice, Price, PriceSource},
};

/// Every price in force, by provider and model.
pub async fn list_prices(client: &impl GenericClient) -> Result<Vec<Price>, DbError> {
    let statement = client
        .prepare_cached(
            "SELECT provider, model, input_per_mtok, output_per_mtok, source
             FROM stewrd_prices() ORDER BY provider, model",
        )
        .await?;
    client
        .query(&statement, &[])
        .await?
        .iter()
        .map(|row| {
            Ok(Price {
                provider: parse_column(row, "provider", Provider::parse)?,
                model: row.try_get("model")?,
                input_per_mtok: row.try_get("input_per_mtok")?,
                output_per_mtok: row.try_get("output_per_mtok")?,
                source: match row.try_get::<_, &str>("source")? {
                    "operator" => PriceSource::Operator,
                    _ => PriceSource::List,
                },
            })
        })
        .collect()
}

/// Sets the operator's prices, each replacing the one of its provider and
/// model (the others stay), in one statement.
pub async fn merge_prices(client: &impl GenericClient, prices: &[NewPrice]) -> Result<(), DbError> {
    let statement = client
        .prepare_cached(
            "INSERT INTO prices (provider, model, input_per_mtok, output_per_mtok)
             SELECT * FROM unnest($1::text[], $2::text[], $3::float8[], $4::float8[])
             ON CONFLICT (provider, model) DO UPDATE SET
                 input_per_mtok = EXCLUDED.input_per_mtok,
                 output_per_mtok = EXCLUDED.output_per_mtok, updated_at = now()",
        )
        .await?;
    let providers: Vec<&str> = prices.iter().map(|p| p.provider.as_str()).collect();
    let models: Vec<&str> = prices.iter().map(|p| p.model.as_str()).collect();
    let inputs: Vec<f64> = prices.iter().map(|p| p.input_per_mtok).collect();
    let outputs: Vec<f64> = prices.iter().map(|p| p.output_per_mtok).collect();
    client
        .execute(&statement, &[&providers, &models, &inputs, &outputs])
        .await?;
    Ok(())
}
