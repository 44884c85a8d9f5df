//! `clip_zero_shot(model, image_or_embedding, labels [, templates])`: the
//! most probable label of an image, CLIP-paper style.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Float32Builder, Int32Builder, ListBuilder, StringBuilder, StructArray,
};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields};
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
    description = "Zero-shot classification as in the CLIP paper: every label is written into every template, \
the prompts' text embeddings are normalised, averaged per label and normalised again; the image's logits are \
`exp(logit_scale) * cosine`. Returns the best label, its index in `labels` (0-based), its softmax probability \
and the indices of the five most probable labels. The label classifier is computed once per (model, labels, \
templates) and cached. NULL image, NULL labels or an undecodable image give NULL.",
    syntax_example = "clip_zero_shot(model, image_or_embedding, labels [, templates])",
    sql_example = r#"```sql
> SELECT path, clip_zero_shot('ViT-B/32', image, ['cat', 'dog'], ['a photo of a {}.', 'a drawing of a {}.']) AS p
  FROM photos;
+---------------------+----------------------------------------------------------------+
| path                | p                                                              |
+---------------------+----------------------------------------------------------------+
| photos/cat/0001.jpg | {label: cat, label_index: 0, probability: 0.97, top5: [0, 1]}  |
+---------------------+----------------------------------------------------------------+
```"#,
    argument(
        name = "model",
        description = "Constant string: a model name, `hf:org/repo`, or a local model directory."
    ),
    argument(
        name = "image_or_embedding",
        description = "Encoded image bytes, an image struct with a binary `bytes` field (and optional `path`), or an image embedding (e.g. the result of `clip_embed_image`)."
    ),
    argument(
        name = "labels",
        description = "List of class names, e.g. `['cat', 'dog']`."
    ),
    argument(
        name = "templates",
        description = "Optional list of prompt templates with a `{}` or `{c}` placeholder; default `['a photo of a {}.']`."
    ),
    related_udf(name = "clip_zero_shot_probs")
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ClipZeroShot {
    signature: Signature,
    options: ClipOptions,
}

impl ClipZeroShot {
    pub fn new(options: ClipOptions) -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
            options,
        }
    }
}

/// `Struct{label, label_index, probability, top5}`.
pub fn prediction_fields() -> Fields {
    Fields::from(vec![
        Field::new("label", DataType::Utf8, true),
        Field::new("label_index", DataType::Int32, true),
        Field::new("probability", DataType::Float32, true),
        Field::new(
            "top5",
            DataType::List(Arc::new(Field::new_list_field(DataType::Int32, true))),
            true,
        ),
    ])
}

impl ScalarUDFImpl for ClipZeroShot {
    fn name(&self) -> &str {
        "clip_zero_shot"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_argument_types(self.name(), arg_types)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Struct(prediction_fields()))
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        check_planning(self.name(), &args, &self.options)?;
        Ok(Arc::new(Field::new(
            self.name(),
            DataType::Struct(prediction_fields()),
            true,
        )))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let result = zero_shot_rows(self.name(), args, &self.options)?;
        let n = result.rows.len();
        let mut label = StringBuilder::with_capacity(n, n * 8);
        let mut index = Int32Builder::with_capacity(n);
        let mut probability = Float32Builder::with_capacity(n);
        let mut top5 = ListBuilder::new(Int32Builder::new());
        let mut valid = Vec::with_capacity(n);
        for row in &result.rows {
            match row {
                Some((classifier, p)) => {
                    label.append_value(&classifier.labels[p.label_index]);
                    index.append_value(p.label_index as i32);
                    probability.append_value(p.probability);
                    top5.append_value(p.top5.iter().map(|&i| Some(i as i32)));
                    valid.push(true);
                }
                None => {
                    label.append_null();
                    index.append_null();
                    probability.append_null();
                    top5.append_null();
                    valid.push(false);
                }
            }
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(label.finish()),
            Arc::new(index.finish()),
            Arc::new(probability.finish()),
            Arc::new(top5.finish()),
        ];
        let array =
            StructArray::try_new(prediction_fields(), columns, Some(NullBuffer::from(valid)))?;
        maybe_scalar(Arc::new(array), result.all_scalar)
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
