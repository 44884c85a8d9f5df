//! `clip_image_error([model,] image)`: why an image cannot be used by the
//! CLIP functions, or NULL when it can.
//!
//! With `clip.on_error = 'null'` a bad image gives a NULL embedding or
//! prediction; this function gives its reason, by running the same checks
//! (decode, `clip.max_image_pixels`, the short-side resize) without the
//! model. It is meant for the few rows whose result is NULL, e.g.
//! `CASE WHEN p IS NULL THEN clip_image_error(image) END`.

use datafusion::arrow::array::{Array, AsArray, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use datafusion_macros::user_doc;
use rayon::prelude::*;

use super::utils::args::{is_string, maybe_scalar, model_name_at_execution, parse_model};
use super::utils::image_arg::{image_rows, is_image_type};
use crate::config::ClipOptions;
use crate::engine::worker::wait_off_runtime;
use crate::error::in_function;
use clip_model::{HubOptions, Preprocessor, fetch_config, find_known};

/// Input size checked when no model is named: that of most CLIP models.
const DEFAULT_IMAGE_SIZE: usize = 224;

#[user_doc(
    doc_section(label = "CLIP Functions"),
    description = "Why an image cannot be used by the CLIP functions (it does not decode, is truncated, \
is larger than `clip.max_image_pixels`, or is NULL), or NULL when it can. This is the reason behind a \
NULL embedding or prediction under `clip.on_error = 'null'`. With a model argument the resize to that \
model's input size is checked too (a 1x100000 sliver fits at no size).",
    syntax_example = "clip_image_error([model,] image)",
    sql_example = r#"```sql
> SELECT path, clip_image_error(image) AS error FROM photos WHERE clip_image_error(image) IS NOT NULL;
+---------------------+------------------------------------------------------------------+
| path                | error                                                            |
+---------------------+------------------------------------------------------------------+
| photos/cat/0007.jpg | JPEG data is truncated (premature end of data segment)           |
+---------------------+------------------------------------------------------------------+
```"#,
    argument(
        name = "model",
        description = "Optional constant string: the model whose input size the resize is checked at (default 224 pixels)."
    ),
    argument(
        name = "image",
        description = "Encoded image bytes (Binary) or an image struct with a binary `bytes` field."
    ),
    related_udf(name = "clip_embed_image"),
    related_udf(name = "clip_zero_shot")
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ClipImageError {
    signature: Signature,
    /// Session settings at registration / last `SET`: what a call runs
    /// with when its session carries none (through DataFusion's FFI).
    options: ClipOptions,
}

impl Default for ClipImageError {
    fn default() -> Self {
        Self::new(ClipOptions::default())
    }
}

impl ClipImageError {
    pub fn new(options: ClipOptions) -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
            options,
        }
    }
}

impl ScalarUDFImpl for ClipImageError {
    fn name(&self) -> &str {
        "clip_image_error"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let image = match arg_types {
            [image] => image,
            [model, image] => {
                if !is_string(model) {
                    return plan_err!(
                        "clip_image_error: the model argument must be a string, got {model}"
                    );
                }
                image
            }
            _ => {
                return plan_err!(
                    "clip_image_error takes ([model,] image), got {} arguments",
                    arg_types.len()
                );
            }
        };
        if !is_image_type(image) && image != &DataType::Null {
            return plan_err!(
                "clip_image_error: the image argument must be encoded image bytes (Binary) or an \
                 image struct with a binary 'bytes' field, got {image}"
            );
        }
        Ok(arg_types.to_vec())
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let options = ClipOptions::resolve(&args.config_options, &self.options)?;
        let mut values = args.args;
        let Some(image_arg) = values.pop() else {
            return exec_err!("clip_image_error: expected ([model,] image)");
        };
        let size = match values.pop() {
            Some(model) => {
                self.image_size(&model_name_at_execution(self.name(), &model)?, &options)?
            }
            None => DEFAULT_IMAGE_SIZE,
        };
        let preprocessor = Preprocessor::new(size).with_max_pixels(options.max_image_pixels);
        let all_scalar = matches!(image_arg, ColumnarValue::Scalar(_));
        let images = image_arg.into_array(args.number_rows)?;
        let rows = image_rows(self.name(), &images)?;
        // An image struct that is there, naming a file, but holds no bytes.
        let path_without_bytes = |row: usize| -> Option<&str> {
            let structs = images.as_struct_opt()?;
            if structs.is_null(row) {
                return None;
            }
            rows.names.as_ref()?.get(row)?.as_deref()
        };
        // Decoding is the expensive part: in parallel, off the async scheduler.
        let errors: Vec<Option<String>> = wait_off_runtime(|| {
            rows.bytes
                .par_iter()
                .enumerate()
                .map(|(row, bytes)| match (bytes, path_without_bytes(row)) {
                    (None, Some(path)) => Some(format!(
                        "the image struct names '{path}' but holds no bytes, as a Hugging Face \
                         dataset saved with its images as external files does: save it with \
                         the bytes embedded, or read those files with an IMAGEFOLDER table"
                    )),
                    (None, None) => Some(
                        "image is NULL (an image table gives NULL for a file larger than \
                         clip.max_image_bytes or, under skip_unreadable, one it could not read; \
                         its scan's metrics count them and the log names them)"
                            .to_string(),
                    ),
                    (Some(bytes), _) => preprocessor.check(bytes).err().map(|e| e.to_string()),
                })
                .collect()
        });
        maybe_scalar(std::sync::Arc::new(StringArray::from(errors)), all_scalar)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

impl ClipImageError {
    /// The input size of the named model, from the registry or its config
    /// (never its weights).
    fn image_size(&self, name: &str, options: &ClipOptions) -> Result<usize> {
        let model = parse_model(self.name(), name)?;
        if let Some(known) = model.known.or_else(|| find_known(&model.argument)) {
            return Ok(known.image_size());
        }
        let hub = HubOptions::from_env(options.is_offline());
        fetch_config(&model, &hub)
            .map(|c| c.vision_config.image_size)
            .map_err(in_function(self.name()))
    }
}
