//! What model calls cost: a price per million input and output tokens, by
//! provider and model. The list prices stewrd knows live with the stored SQL
//! (`migrations/functions/stewrd_list_prices.sql`, with their date and
//! source), where reservations and costs are computed; the operator's
//! prices (`PUT /v1/admin/prices`) win over them.

use serde::{Deserialize, Serialize};

use super::{model::Provider, text};

/// The most prices one `PUT /v1/admin/prices` may set.
pub const MAX_PRICES_PER_PUT: usize = 500;
/// The highest price per million tokens, in US dollars.
pub const MAX_PRICE_PER_MTOK: f64 = 100_000.0;

/// One price in force.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Price {
    pub provider: Provider,
    pub model: String,
    /// US dollars per million prompt tokens.
    pub input_per_mtok: f64,
    /// US dollars per million answer tokens.
    pub output_per_mtok: f64,
    /// `list` (stewrd's table) or `operator` (set with `PUT /v1/admin/prices`).
    pub source: PriceSource,
}

/// Where a price comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PriceSource {
    List,
    Operator,
}

/// One price as the operator gives it.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PriceIn {
    #[schema(value_type = Provider)]
    pub provider: String,
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub model: String,
    #[schema(minimum = 0, maximum = 100000)]
    pub input_per_mtok: f64,
    #[schema(minimum = 0, maximum = 100000)]
    pub output_per_mtok: f64,
}

/// A price that passed its checks, ready to store.
#[derive(Clone, Debug, PartialEq)]
pub struct NewPrice {
    pub provider: Provider,
    pub model: String,
    pub input_per_mtok: f64,
    pub output_per_mtok: f64,
}

/// Why a price cannot be stored: the field (as `prices[i].field`) and what is accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PriceRefusal {
    pub param: String,
    pub message: String,
}

/// Checks every price given; the first refusal names its place. A provider
/// and model given twice is set once, to its last price (as two puts would).
pub fn check_prices(given: &[PriceIn]) -> Result<Vec<NewPrice>, PriceRefusal> {
    let mut prices = checked(given)?;
    let mut seen = std::collections::HashSet::new();
    prices.reverse();
    prices.retain(|p| seen.insert((p.provider, p.model.clone())));
    prices.reverse();
    Ok(prices)
}

fn checked(given: &[PriceIn]) -> Result<Vec<NewPrice>, PriceRefusal> {
    if given.len() > MAX_PRICES_PER_PUT {
        return Err(PriceRefusal {
            param: "prices".into(),
            message: format!("at most {MAX_PRICES_PER_PUT} prices at once"),
        });
    }
    given
        .iter()
        .enumerate()
        .map(|(i, price)| {
            let refuse = |field: &str, message: String| PriceRefusal {
                param: format!("prices[{i}].{field}"),
                message,
            };
            let provider = Provider::parse(price.provider.trim()).ok_or_else(|| {
                refuse(
                    "provider",
                    "`provider` must be one of: openai, openrouter".into(),
                )
            })?;
            if !text::is_label(&price.model, 200) {
                return Err(refuse(
                    "model",
                    "`model` must be 1 to 200 printable characters".into(),
                ));
            }
            for (field, value) in [
                ("input_per_mtok", price.input_per_mtok),
                ("output_per_mtok", price.output_per_mtok),
            ] {
                if !(0.0..=MAX_PRICE_PER_MTOK).contains(&value) {
                    return Err(refuse(
                        field,
                        format!(
                            "`{field}` must be US dollars per million tokens, from 0 to {MAX_PRICE_PER_MTOK}"
                        ),
                    ));
                }
            }
            Ok(NewPrice {
                provider,
                model: price.model.trim().to_owned(),
                input_per_mtok: price.input_per_mtok,
                output_per_mtok: price.output_per_mtok,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn price(provider: &str, model: &str, input: f64, output: f64) -> PriceIn {
        PriceIn {
            provider: provider.into(),
            model: model.into(),
            input_per_mtok: input,
            output_per_mtok: output,
        }
    }

    #[test]
    fn each_refusal_names_the_price_and_its_field() {
        let ok = check_prices(&[
            price("openai", " gpt-x ", 1.5, 6.0),
            price("openrouter", "gpt-x", 1.0, 1.0),
            price("openai", "gpt-x", 2.0, 8.0),
        ])
        .expect("valid");
        assert_eq!(ok.len(), 2, "the same provider and model once: {ok:?}");
        assert_eq!((ok[1].model.as_str(), ok[1].input_per_mtok), ("gpt-x", 2.0));
        for (bad, param) in [
            (price("anthropic", "m", 1.0, 1.0), "prices[1].provider"),
            (price("openai", " ", 1.0, 1.0), "prices[1].model"),
            (price("openai", "m", -1.0, 1.0), "prices[1].input_per_mtok"),
            (
                price("openai", "m", 1.0, f64::NAN),
                "prices[1].output_per_mtok",
            ),
            (price("openai", "m", 1.0, 1e9), "prices[1].output_per_mtok"),
        ] {
            let refused =
                check_prices(&[price("openai", "fine", 1.0, 1.0), bad]).expect_err("refused");
            assert_eq!(refused.param, param);
        }
    }
}
