//! `clip_embed_text(model, text)`: the L2-normalised CLIP embedding of a
//! prompt.

use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::utils::take_function_args;
use datafusion::common::{Result, plan_err};
use datafusion::config::ConfigOptions;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature, Volatility,
};
use datafusion_macros::user_doc;

use super::utils::args::{
    embedding_array, embedding_dim_of, embedding_return_field, is_string, load_model_of_width,
    maybe_scalar, model_name_at_execution, string_values,
};
use crate::config::ClipOptions;
use crate::engine::encode::embed_texts;
use crate::error::in_function;

#[user_doc(
    doc_section(label = "CLIP Functions"),
    description = "The CLIP text embedding of a prompt, L2-normalised. The prompt is tokenized with CLIP's BPE and cut to the model's 77 tokens (the end token is kept).",
    syntax_example = "clip_embed_text(model, text)",
    sql_example = r#"```sql
> SELECT clip_embed_text('ViT-B/32', 'a photo of a cat') AS embedding;
+------------------------------------------+
| embedding                                |
+------------------------------------------+
| [0.0214, 0.0032, -0.0127, ...]           |
+------------------------------------------+
```"#,
    argument(
        name = "model",
        description = "Constant string: a model name, `hf:org/repo`, or a local model directory."
    ),
    argument(name = "text", description = "The prompt (a string)."),
    related_udf(name = "clip_embed_image"),
    related_udf(name = "cosine_similarity")
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ClipEmbedText {
    signature: Signature,
    options: ClipOptions,
}

impl ClipEmbedText {
    pub fn new(options: ClipOptions) -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
            options,
        }
    }
}

impl ScalarUDFImpl for ClipEmbedText {
    fn name(&self) -> &str {
        "clip_embed_text"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let [model, text] = take_function_args(self.name(), arg_types)?;
        if !is_string(model) {
            return plan_err!("clip_embed_text: the model argument must be a string, got {model}");
        }
        if !is_string(text) && text != &DataType::Null {
            return plan_err!("clip_embed_text: the text argument must be a string, got {text}");
        }
        Ok(arg_types.to_vec())
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        plan_err!("clip_embed_text: return_field_from_args should be called")
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        embedding_return_field(self.name(), &args, &self.options)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let options = ClipOptions::resolve(&args.config_options, &self.options)?;
        let dim = embedding_dim_of(self.name(), &args.return_field)?;
        let [model_arg, text_arg] = take_function_args(self.name(), args.args)?;
        let name = model_name_at_execution(self.name(), &model_arg)?;
        let all_scalar = matches!(text_arg, ColumnarValue::Scalar(_));
        let texts = string_values(&text_arg.into_array(args.number_rows)?)?;
        let present: Vec<String> = texts.iter().flatten().cloned().collect();
        if present.is_empty() {
            return maybe_scalar(embedding_array(dim, &vec![None; texts.len()])?, all_scalar);
        }
        let model = load_model_of_width(self.name(), &name, &options, dim)?;
        let mut embedded = embed_texts(&model, &present, options.batch_size_on(&model.device))
            .map_err(in_function("clip_embed_text"))?
            .into_iter();
        let rows: Vec<Option<Vec<f32>>> = texts
            .iter()
            .map(|t| t.as_ref().and_then(|_| embedded.next()))
            .collect();
        maybe_scalar(embedding_array(dim, &rows)?, all_scalar)
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
