//! The SQL functions, one file per function, named as it is in SQL
//! (`clip_zero_shot.rs` is `clip_zero_shot`). This module only declares,
//! lists and registers them: [`scalar_functions`], [`aggregate_functions`]
//! and [`table_functions`] are the one list of each, read by
//! [`register_functions`] and by hosts that install functions one by one
//! (the Python package). What several functions share (reading arguments
//! from Arrow, the zero-shot rows) is in [`utils`].

pub mod array_argmax;
pub mod clip_embed_image;
pub mod clip_embed_text;
pub mod clip_image_error;
pub mod clip_models;
pub mod clip_top_k;
pub mod clip_zero_shot;
pub mod clip_zero_shot_probs;
pub mod cosine_similarity;
pub mod utils;
pub mod weighted_avg_list;

use std::sync::Arc;

use datafusion::catalog::TableFunctionImpl;
use datafusion::logical_expr::{AggregateUDF, ScalarUDF};
use datafusion::prelude::SessionContext;

use crate::config::ClipOptions;

/// The functions that run a model: a call can take seconds to minutes, so
/// a dropped query stops them (`crate::query_cancel`).
pub const MODEL_FUNCTIONS: &[&str] = &[
    "clip_embed_image",
    "clip_embed_text",
    "clip_zero_shot",
    "clip_zero_shot_probs",
];

/// Every CLIP scalar function, configured with `options`.
pub fn scalar_functions(options: &ClipOptions) -> Vec<ScalarUDF> {
    vec![
        ScalarUDF::new_from_impl(clip_embed_image::ClipEmbedImage::new(options.clone())),
        ScalarUDF::new_from_impl(clip_embed_text::ClipEmbedText::new(options.clone())),
        ScalarUDF::new_from_impl(clip_zero_shot::ClipZeroShot::new(options.clone())),
        ScalarUDF::new_from_impl(clip_zero_shot_probs::ClipZeroShotProbs::new(
            options.clone(),
        )),
        ScalarUDF::new_from_impl(cosine_similarity::CosineSimilarity::new()),
        ScalarUDF::new_from_impl(clip_top_k::ClipTopK::new()),
        ScalarUDF::new_from_impl(clip_image_error::ClipImageError::new(options.clone())),
        ScalarUDF::new_from_impl(array_argmax::ArrayArgmax::new()),
    ]
}

/// Every aggregate function: `weighted_avg_list`.
pub fn aggregate_functions() -> Vec<AggregateUDF> {
    vec![AggregateUDF::new_from_impl(
        weighted_avg_list::WeightedAvgList::new(),
    )]
}

/// A table function and its SQL name.
#[derive(Debug, Clone)]
pub struct TableFunction {
    pub name: &'static str,
    pub function: Arc<dyn TableFunctionImpl>,
}

/// Every table function: `clip_models()`.
pub fn table_functions() -> Vec<TableFunction> {
    vec![TableFunction {
        name: "clip_models",
        function: Arc::new(clip_models::ClipModelsFunction),
    }]
}

/// Register every scalar, aggregate and table function on `ctx`.
pub fn register_functions(ctx: &SessionContext, options: &ClipOptions) {
    for udf in scalar_functions(options) {
        ctx.register_udf(udf);
    }
    for udaf in aggregate_functions() {
        ctx.register_udaf(udaf);
    }
    for table_function in table_functions() {
        ctx.register_udtf(table_function.name, table_function.function);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_functions_are_registered_functions() {
        let names: Vec<String> = scalar_functions(&ClipOptions::default())
            .iter()
            .map(|f| f.name().to_string())
            .collect();
        for name in MODEL_FUNCTIONS {
            assert!(names.iter().any(|n| n == name), "{name} is not a function");
        }
    }
}
