//! `clip_models()`: a table of the models the registry knows — name,
//! family, embedding width, input size, parameter count (counted from the
//! architecture, equal to open_clip's published counts), where the weights come from,
//! whether they are in the local Hugging Face cache, and whether this build
//! can run them (every model the registry lists, today).

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Int32Array, Int64Array, RecordBatch, StringArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{Result, plan_err};
use datafusion::datasource::MemTable;

use clip_model::HubOptions;
use clip_model::checkpoint::is_cached;
use clip_model::registry::KNOWN_MODELS;

/// The `clip_models()` table function.
#[derive(Debug, Default)]
pub struct ClipModelsFunction;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("family", DataType::Utf8, false),
        Field::new("embed_dim", DataType::Int32, false),
        Field::new("image_size", DataType::Int32, false),
        Field::new("parameters", DataType::Int64, false),
        Field::new("weights", DataType::Utf8, false),
        Field::new("cached", DataType::Boolean, false),
        Field::new("supported", DataType::Boolean, false),
    ]))
}

impl TableFunctionImpl for ClipModelsFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        if !args.exprs().is_empty() {
            return plan_err!("clip_models() takes no arguments");
        }
        let cache_dir = HubOptions::from_env(true).cache_dir;
        let models = KNOWN_MODELS;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(models.iter().map(|m| m.name))),
            Arc::new(StringArray::from_iter_values(
                models.iter().map(|m| m.family().as_str()),
            )),
            Arc::new(Int32Array::from_iter_values(
                models.iter().map(|m| m.embed_dim() as i32),
            )),
            Arc::new(Int32Array::from_iter_values(
                models.iter().map(|m| m.image_size() as i32),
            )),
            Arc::new(Int64Array::from_iter_values(
                models.iter().map(|m| m.parameter_count() as i64),
            )),
            Arc::new(StringArray::from_iter_values(
                models.iter().map(|m| format!("hf:{}", m.hub_repo)),
            )),
            Arc::new(BooleanArray::from_iter(
                models.iter().map(|m| Some(is_cached(m, &cache_dir))),
            )),
            Arc::new(BooleanArray::from_iter(models.iter().map(|_| Some(true)))),
        ];
        let batch = RecordBatch::try_new(schema(), columns)?;
        Ok(Arc::new(MemTable::try_new(schema(), vec![vec![batch]])?))
    }
}
