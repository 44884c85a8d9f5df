//! `clip_zero_shot_probs(model, image_or_embedding, labels [, templates])`:
//! the softmax over all labels, for ensembles and ranking metrics.

use std::sync::Arc;

use datafusion::arrow::array::{Float32Builder, ListBuilder};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::Result;
use datafusion::config::ConfigOptions;
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, Expr, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility,
};
use datafusion_macros::user_doc;

use super::utils::args::maybe_scalar;
use super::utils::image_arg::simplify_with_row_names;
use super::utils::zero_shot_rows::{check_argument_types, check_planning, zero_shot_rows};
use crate::config::ClipOptions;

#[user_doc(
    doc_section(label = "CLIP Functions"),
    description = "The zero-shot softmax probabilities over `labels`, in label order (the classifier of `clip_zero_shot`). \
Average them across models for an ensemble, or rank them for top-k metrics.",
    syntax_example = "clip_zero_shot_probs(model, image_or_embedding, labels [, templates])",
    sql_example = r#"```sql
> SELECT clip_zero_shot_probs('ViT-B/32', image, ['cat', 'dog']) AS probs FROM photos LIMIT 1;
+----------------+
| probs          |
+----------------+
| [0.97, 0.03]   |
+----------------+
```"#,
    argument(
        name = "model",
        description = "Constant string: a model name, `hf:org/repo`, or a local model directory."
    ),
    argument(
        name = "image_or_embedding",
        description = "Encoded image bytes, an image struct with a binary `bytes` field (and optional `path`), or an image embedding."
    ),
    argument(name = "labels", description = "List of class names."),
    argument(
        name = "templates",
        description = "Optional list of prompt templates; default `['a photo of a {}.']`."
    ),
    related_udf(name = "clip_zero_shot")
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ClipZeroShotProbs {
    signature: Signature,
    options: ClipOptions,
}

impl ClipZeroShotProbs {
    pub fn new(options: ClipOptions) -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
            options,
        }
    }
}

fn probs_type() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(DataType::Float32, true)))
}

impl ScalarUDFImpl for ClipZeroShotProbs {
    fn name(&self) -> &str {
        "clip_zero_shot_probs"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_argument_types(self.name(), arg_types)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(probs_type())
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        check_planning(self.name(), &args, &self.options)?;
        Ok(Arc::new(Field::new(self.name(), probs_type(), true)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let result = zero_shot_rows(self.name(), args, &self.options)?;
        let mut probs = ListBuilder::new(Float32Builder::new());
        for row in &result.rows {
            match row {
                Some((_, p)) => probs.append_value(p.probabilities.iter().map(|&x| Some(x))),
                None => probs.append_null(),
            }
        }
        maybe_scalar(Arc::new(probs.finish()), result.all_scalar)
    }

    fn simplify(&self, args: Vec<Expr>, info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        let udf = || ScalarUDF::new_from_impl(Self::new(self.options.clone()));
        Ok(simplify_with_row_names(udf, args, 1, info))
    }

    fn with_updated_config(&self, config: &ConfigOptions) -> Option<ScalarUDF> {
        // A value that does not parse keeps the settings as they were; the
        // call itself reports it (`ClipOptions::resolve`).
        let options = ClipOptions::resolve(config, &self.options).ok()?;
        Some(ScalarUDF::new_from_impl(Self::new(options)))
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}
