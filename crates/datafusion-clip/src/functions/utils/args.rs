//! Reading the arguments the CLIP functions share — the model name,
//! embeddings, label and template lists — from Arrow, with errors that
//! name the function and say what to write instead. (The image argument,
//! which builds on these, is [`super::image_arg`].)

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, FixedSizeListArray, Float32Array, GenericListArray, OffsetSizeTrait,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Field, FieldRef, Float16Type, Float32Type, Float64Type,
};
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{ColumnarValue, ReturnFieldArgs};

use crate::config::ClipOptions;
use clip_model::{HubOptions, ModelRef, fetch_config, find_known};

use crate::engine::{LoadedModel, get_or_load};
use crate::error::in_function;

/// The model argument at planning time: it must be a constant string.
pub fn model_name_at_planning(function: &str, scalar: Option<&ScalarValue>) -> Result<String> {
    match scalar {
        Some(
            ScalarValue::Utf8(Some(s))
            | ScalarValue::LargeUtf8(Some(s))
            | ScalarValue::Utf8View(Some(s)),
        ) => Ok(s.clone()),
        Some(s) if s.is_null() => {
            plan_err!("{function}: the model argument is NULL; name a model such as 'ViT-B/32'")
        }
        _ => plan_err!(
            "{function}: the model argument must be a constant string such as 'ViT-B/32' \
             (its embedding size is part of the result type)"
        ),
    }
}

/// The model argument at execution time.
pub fn model_name_at_execution(function: &str, value: &ColumnarValue) -> Result<String> {
    match value {
        ColumnarValue::Scalar(s) => model_name_at_planning(function, Some(s)),
        ColumnarValue::Array(a) => {
            // A constant folded into an array by a projection; accept it
            // only if every row names the same model.
            let values = string_values(a)?;
            let first = values.first().cloned().flatten();
            match first {
                Some(name) if values.iter().all(|v| v.as_deref() == Some(name.as_str())) => {
                    Ok(name)
                }
                _ => exec_err!(
                    "{function}: the model argument must be the same constant string on every row"
                ),
            }
        }
    }
}

/// Parse a model argument, as a planning error.
pub fn parse_model(function: &str, name: &str) -> Result<ModelRef> {
    ModelRef::parse(name).map_err(in_function(function))
}

/// Embedding width of a model, known at planning time without loading it:
/// from the registry, or from the model's `config.json`.
pub fn embed_dim_at_planning(
    function: &str,
    model: &ModelRef,
    options: &ClipOptions,
) -> Result<usize> {
    if let Some(known) = model.known.or_else(|| find_known(&model.argument)) {
        return Ok(known.embed_dim());
    }
    let hub = HubOptions::from_env(options.is_offline());
    fetch_config(model, &hub)
        .map(|c| c.projection_dim)
        .map_err(in_function(function))
}

/// Load (or find loaded) the model for execution.
pub fn load_model(function: &str, name: &str, options: &ClipOptions) -> Result<Arc<LoadedModel>> {
    let model = ModelRef::parse(name).map_err(in_function(function))?;
    get_or_load(&model, options).map_err(in_function(function))
}

/// The `FixedSizeList<Float32, dim>` type embeddings are returned as.
pub fn embedding_type(dim: usize) -> DataType {
    DataType::FixedSizeList(
        Arc::new(Field::new_list_field(DataType::Float32, true)),
        dim as i32,
    )
}

/// The width of an embedding return field.
pub fn embedding_dim_of(function: &str, field: &FieldRef) -> Result<usize> {
    match field.data_type() {
        DataType::FixedSizeList(_, n) => Ok(*n as usize),
        other => exec_err!("{function}: unexpected return type {other}"),
    }
}

/// The return field of an embedding function: `FixedSizeList<Float32, D>`
/// with `D` the width of the (constant) model argument's model.
pub fn embedding_return_field(
    function: &str,
    args: &ReturnFieldArgs,
    options: &ClipOptions,
) -> Result<FieldRef> {
    let name = model_name_at_planning(function, args.scalar_arguments.first().copied().flatten())?;
    let model = parse_model(function, &name)?;
    let dim = embed_dim_at_planning(function, &model, options)?;
    Ok(Arc::new(Field::new(function, embedding_type(dim), true)))
}

/// Load the model for an embedding function and check it still has the
/// width the query was planned with (the files could have changed since).
pub fn load_model_of_width(
    function: &str,
    name: &str,
    options: &ClipOptions,
    dim: usize,
) -> Result<Arc<LoadedModel>> {
    let model = load_model(function, name, options)?;
    if model.embed_dim != dim {
        return exec_err!(
            "{function}: model '{name}' has {} dimensions but the query was planned for {dim}",
            model.embed_dim
        );
    }
    Ok(model)
}

/// Build an embedding column; `None` rows are NULL.
pub fn embedding_array(dim: usize, rows: &[Option<Vec<f32>>]) -> Result<ArrayRef> {
    let mut values = Vec::with_capacity(rows.len() * dim);
    let mut valid = Vec::with_capacity(rows.len());
    for row in rows {
        match row {
            Some(v) if v.len() == dim => {
                values.extend_from_slice(v);
                valid.push(true);
            }
            Some(v) => return exec_err!("embedding has {} values, expected {dim}", v.len()),
            None => {
                values.extend(std::iter::repeat_n(0.0, dim));
                valid.push(false);
            }
        }
    }
    let field = Arc::new(Field::new_list_field(DataType::Float32, true));
    let array = FixedSizeListArray::try_new(
        field,
        dim as i32,
        Arc::new(Float32Array::from(values)),
        Some(valid.into()),
    )?;
    Ok(Arc::new(array))
}

/// Whether a type carries encoded image bytes.
pub fn is_binary(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Binary
            | DataType::LargeBinary
            | DataType::BinaryView
            | DataType::FixedSizeBinary(_)
    )
}

/// Whether a type is a list of floats (an embedding).
pub fn is_float_list(t: &DataType) -> bool {
    match t {
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => matches!(
            f.data_type(),
            DataType::Float16 | DataType::Float32 | DataType::Float64
        ),
        _ => false,
    }
}

/// Whether a type is a string type.
pub fn is_string(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

/// Whether a type is a list of strings.
pub fn is_string_list(t: &DataType) -> bool {
    match t {
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            is_string(f.data_type()) || f.data_type() == &DataType::Null
        }
        _ => false,
    }
}

/// An embedding argument's rows as f32 vectors (`None` for NULL).
pub fn float_list_rows(function: &str, array: &ArrayRef) -> Result<Vec<Option<Vec<f32>>>> {
    fn values_f32(function: &str, values: &ArrayRef) -> Result<Vec<Option<f32>>> {
        Ok(match values.data_type() {
            DataType::Float32 => values.as_primitive::<Float32Type>().iter().collect(),
            DataType::Float64 => values
                .as_primitive::<Float64Type>()
                .iter()
                .map(|v| v.map(|x| x as f32))
                .collect(),
            DataType::Float16 => values
                .as_primitive::<Float16Type>()
                .iter()
                .map(|v| v.map(f32::from))
                .collect(),
            other => {
                return exec_err!("{function}: expected a list of floats, got a list of {other}");
            }
        })
    }
    fn rows_of<O: OffsetSizeTrait>(
        function: &str,
        list: &GenericListArray<O>,
    ) -> Result<Vec<Option<Vec<f32>>>> {
        (0..list.len())
            .map(|i| {
                if list.is_null(i) {
                    return Ok(None);
                }
                let v = values_f32(function, &list.value(i))?;
                Ok(v.into_iter().collect::<Option<Vec<f32>>>())
            })
            .collect()
    }
    match array.data_type() {
        DataType::List(_) => rows_of(function, array.as_list::<i32>()),
        DataType::LargeList(_) => rows_of(function, array.as_list::<i64>()),
        DataType::FixedSizeList(_, n) => {
            let list = array.as_fixed_size_list();
            let all = values_f32(function, list.values())?;
            let n = *n as usize;
            Ok((0..list.len())
                .map(|i| {
                    if list.is_null(i) {
                        None
                    } else {
                        all[i * n..(i + 1) * n]
                            .iter()
                            .copied()
                            .collect::<Option<Vec<f32>>>()
                    }
                })
                .collect())
        }
        DataType::Null => Ok(vec![None; array.len()]),
        other => exec_err!("{function}: expected an embedding (a list of floats), got {other}"),
    }
}

/// A string array's values (`None` for NULL).
pub fn string_values(array: &ArrayRef) -> Result<Vec<Option<String>>> {
    Ok(match array.data_type() {
        DataType::Utf8 => array
            .as_string::<i32>()
            .iter()
            .map(|s| s.map(str::to_string))
            .collect(),
        DataType::LargeUtf8 => array
            .as_string::<i64>()
            .iter()
            .map(|s| s.map(str::to_string))
            .collect(),
        DataType::Utf8View => array
            .as_string_view()
            .iter()
            .map(|s| s.map(str::to_string))
            .collect(),
        DataType::Null => vec![None; array.len()],
        other => return exec_err!("expected strings, got {other}"),
    })
}

/// A list-of-strings argument: one list for every row when it is a
/// constant, else one per row. A NULL element inside a list is an error (a
/// label cannot be NULL); a NULL list makes the row NULL.
pub enum StringLists {
    Constant(Option<Vec<String>>),
    /// Consecutive rows holding equal lists share one allocation: a class
    /// list repeated on every row by a scalar subquery is read once per
    /// batch, not once per row.
    PerRow(Vec<Option<Arc<[String]>>>),
}

impl StringLists {
    pub fn from_value(function: &str, what: &str, value: &ColumnarValue) -> Result<StringLists> {
        match value {
            ColumnarValue::Scalar(s) => {
                let array = s.to_array_of_size(1)?;
                let mut rows = string_list_rows(function, what, &array)?;
                Ok(StringLists::Constant(
                    rows.pop().flatten().map(|list| list.to_vec()),
                ))
            }
            ColumnarValue::Array(a) => {
                Ok(StringLists::PerRow(string_list_rows(function, what, a)?))
            }
        }
    }

    /// The list for row `i`.
    pub fn get(&self, i: usize) -> Option<&[String]> {
        match self {
            StringLists::Constant(v) => v.as_deref(),
            StringLists::PerRow(rows) => rows.get(i).and_then(|r| r.as_deref()),
        }
    }

    /// Whether rows `i` and `j` hold the same list (cheap when they share it).
    pub fn same(&self, i: usize, j: usize) -> bool {
        match self {
            StringLists::Constant(_) => true,
            StringLists::PerRow(rows) => match (rows.get(i), rows.get(j)) {
                (Some(Some(a)), Some(Some(b))) => Arc::ptr_eq(a, b) || a == b,
                _ => false,
            },
        }
    }
}

fn string_list_rows(
    function: &str,
    what: &str,
    array: &ArrayRef,
) -> Result<Vec<Option<Arc<[String]>>>> {
    if array.data_type() == &DataType::Null {
        return Ok(vec![None; array.len()]);
    }
    // One layout to read: large and fixed-size lists of any string type
    // become List<Utf8> (a cheap cast for the few lists labels come in).
    let as_list = DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true)));
    let list = cast(array, &as_list).map_err(|e| {
        DataFusionError::Execution(format!(
            "{function}: expected the {what} as a list of strings, got {}: {e}",
            array.data_type()
        ))
    })?;
    let list = list.as_list::<i32>();
    let mut rows: Vec<Option<Arc<[String]>>> = Vec::with_capacity(list.len());
    for i in 0..list.len() {
        if list.is_null(i) {
            rows.push(None);
            continue;
        }
        let values = list.value(i);
        let values = values.as_string::<i32>();
        if values.null_count() > 0 {
            return exec_err!("{function}: the {what} list contains a NULL");
        }
        // The previous row's list again (a repeated subquery value): share it.
        if let Some(Some(previous)) = rows.last()
            && previous.len() == values.len()
            && previous
                .iter()
                .zip(values.iter())
                .all(|(p, v)| Some(p.as_str()) == v)
        {
            let shared = Arc::clone(previous);
            rows.push(Some(shared));
            continue;
        }
        let owned: Vec<String> = values.iter().flatten().map(str::to_string).collect();
        rows.push(Some(owned.into()));
    }
    Ok(rows)
}

/// Turn a one-row result back into a scalar when every input was a scalar.
pub fn maybe_scalar(array: ArrayRef, all_scalar: bool) -> Result<ColumnarValue> {
    if all_scalar && array.len() == 1 {
        Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
            &array, 0,
        )?))
    } else {
        Ok(ColumnarValue::Array(array))
    }
}
