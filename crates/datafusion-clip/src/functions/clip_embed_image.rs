//! `clip_embed_image(model, image)`: the L2-normalised CLIP embedding of
//! encoded image bytes.

use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::utils::take_function_args;
use datafusion::common::{Result, plan_err};
use datafusion::config::ConfigOptions;
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, Expr, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility,
};
use datafusion_macros::user_doc;

use super::utils::args::{
    embedding_array, embedding_dim_of, embedding_return_field, is_string, load_model_of_width,
    maybe_scalar, model_name_at_execution,
};
use super::utils::image_arg::{apply_on_error, image_rows, is_image_type, simplify_with_row_names};
use crate::config::ClipOptions;
use crate::engine::encode::embed_images;
use crate::error::in_function;

#[user_doc(
    doc_section(label = "CLIP Functions"),
    description = "The CLIP image embedding of encoded image bytes (JPEG, PNG, WebP, GIF, BMP, TIFF), L2-normalised. \
An image that cannot be decoded gives NULL (or fails the query with `SET clip.on_error = 'error'`).",
    syntax_example = "clip_embed_image(model, image)",
    sql_example = r#"```sql
> SELECT path, clip_embed_image('ViT-B/32', image) AS embedding FROM photos LIMIT 1;
+---------------------+------------------------------------------+
| path                | embedding                                |
+---------------------+------------------------------------------+
| photos/cat/0001.jpg | [0.0123, -0.0457, 0.0311, ...]           |
+---------------------+------------------------------------------+
```"#,
    argument(
        name = "model",
        description = "Constant string: a model name (`ViT-B/32`, `ViT-B/16`, `ViT-L/14`, `ViT-L/14@336px`), `hf:org/repo`, or a local directory with `config.json` and `model.safetensors`."
    ),
    argument(
        name = "image",
        description = "Encoded image bytes (Binary), or an image struct with a binary `bytes` field and an optional `path` (as in Hugging Face Parquet datasets) that names the row in errors."
    ),
    related_udf(name = "clip_embed_text"),
    related_udf(name = "cosine_similarity")
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ClipEmbedImage {
    signature: Signature,
    /// Session settings at registration / last `SET`, for planning-time
    /// decisions (whether a model's config may be downloaded).
    options: ClipOptions,
}

impl ClipEmbedImage {
    pub fn new(options: ClipOptions) -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
            options,
        }
    }
}

impl ScalarUDFImpl for ClipEmbedImage {
    fn name(&self) -> &str {
        "clip_embed_image"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let [model, image] = take_function_args(self.name(), arg_types)?;
        if !is_string(model) {
            return plan_err!("clip_embed_image: the model argument must be a string, got {model}");
        }
        if !is_image_type(image) && image != &DataType::Null {
            return plan_err!(
                "clip_embed_image: the image argument must be encoded image bytes (Binary) or an image \
                 struct with a binary 'bytes' field, got {image}. Read files with an IMAGEFOLDER table, \
                 or pass a Hugging Face Parquet image column (struct<bytes, path>) as it is"
            );
        }
        Ok(arg_types.to_vec())
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        // The width depends on the model argument's value: see return_field_from_args.
        plan_err!("clip_embed_image: return_field_from_args should be called")
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        embedding_return_field(self.name(), &args, &self.options)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let options = ClipOptions::resolve(&args.config_options, &self.options)?;
        let dim = embedding_dim_of(self.name(), &args.return_field)?;
        let [model_arg, image_arg] = take_function_args(self.name(), args.args)?;
        let name = model_name_at_execution(self.name(), &model_arg)?;
        let all_scalar = matches!(image_arg, ColumnarValue::Scalar(_));
        let images = image_arg.into_array(args.number_rows)?;
        let rows = image_rows(self.name(), &images)?;
        if rows.bytes.iter().all(Option::is_none) {
            return maybe_scalar(
                embedding_array(dim, &vec![None; rows.bytes.len()])?,
                all_scalar,
            );
        }
        let model = load_model_of_width(self.name(), &name, &options, dim)?;
        let outcomes =
            embed_images(&model, &rows.bytes, &options).map_err(in_function("clip_embed_image"))?;
        let embeddings = apply_on_error(self.name(), &options, &rows, outcomes)?;
        maybe_scalar(embedding_array(dim, &embeddings)?, all_scalar)
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
