//! The image argument of the CLIP functions: encoded bytes, or an image
//! struct that also names the row.
//!
//! An image is a Binary value, or a struct with a binary `bytes` field and
//! an optional string `path` (or `key`) field — the shape of Hugging Face's
//! `image` feature in Parquet, so `clip_embed_image(m, img)` works on such
//! tables directly. The name is what `clip.on_error = 'error'` puts in its
//! message, so a failing query says which file broke it.
//!
//! When the image is a plain column of a table that also has a `path` or
//! `key` column (IMAGEFOLDER, WEBDATASET) and `clip.on_error = 'error'`,
//! [`name_rows_in_errors`] rewrites the argument to such a struct while the
//! query is planned, so the user never has to.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StructArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Column, ExprSchema, Result, exec_err};
use datafusion::functions::core::expr_fn::named_struct;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::{Expr, ScalarUDF, lit};

use super::args::{is_binary, is_string, string_values};
use crate::config::{ClipOptions, OnErrorSetting};
use clip_model::ImageError;

/// Field of an image struct that holds the encoded bytes.
const BYTES_FIELD: &str = "bytes";
/// Fields of an image struct (or columns beside an image column) that name
/// the row, in order of preference.
const NAME_FIELDS: [&str; 2] = ["path", "key"];

/// Whether a type can be an image argument.
pub fn is_image_type(t: &DataType) -> bool {
    is_binary(t) || image_struct_fields(t).is_some()
}

/// For an image struct type: the index of its `bytes` field and of its
/// name field, if any.
fn image_struct_fields(t: &DataType) -> Option<(usize, Option<usize>)> {
    let DataType::Struct(fields) = t else {
        return None;
    };
    let bytes = fields
        .iter()
        .position(|f| f.name() == BYTES_FIELD && is_binary(f.data_type()))?;
    let name = NAME_FIELDS.iter().find_map(|wanted| {
        fields
            .iter()
            .position(|f| f.name() == *wanted && is_string(f.data_type()))
    });
    Some((bytes, name))
}

/// The rows of an image argument.
pub struct ImageRows<'a> {
    /// Encoded bytes per row; `None` for NULL.
    pub bytes: Vec<Option<&'a [u8]>>,
    /// What names each row in errors (a path or key), when the argument carries one.
    pub names: Option<Vec<Option<String>>>,
}

impl ImageRows<'_> {
    /// How an error message refers to row `row` of the batch.
    pub fn describe(&self, row: usize) -> String {
        match self
            .names
            .as_ref()
            .and_then(|n| n.get(row))
            .and_then(Option::as_ref)
        {
            Some(name) => format!("image '{name}'"),
            None => format!(
                "the image in row {row} of its batch (select the table's path or key column \
                 beside it, or use clip_image_error(image), to find it)"
            ),
        }
    }
}

/// Read an image argument's rows.
pub fn image_rows<'a>(function: &str, array: &'a ArrayRef) -> Result<ImageRows<'a>> {
    if let Some((bytes_at, name_at)) = image_struct_fields(array.data_type()) {
        let fields: &StructArray = array.as_struct();
        let bytes = binary_rows(function, fields.column(bytes_at))?;
        // A NULL struct is a NULL image even if its bytes field is set.
        let bytes = bytes
            .into_iter()
            .enumerate()
            .map(|(i, b)| b.filter(|_| !fields.is_null(i)))
            .collect();
        let names = name_at
            .map(|at| string_values(fields.column(at)))
            .transpose()?;
        return Ok(ImageRows { bytes, names });
    }
    Ok(ImageRows {
        bytes: binary_rows(function, array)?,
        names: None,
    })
}

/// A binary column's rows as byte slices (`None` for NULL).
fn binary_rows<'a>(function: &str, array: &'a ArrayRef) -> Result<Vec<Option<&'a [u8]>>> {
    Ok(match array.data_type() {
        DataType::Binary => array.as_binary::<i32>().iter().collect(),
        DataType::LargeBinary => array.as_binary::<i64>().iter().collect(),
        DataType::BinaryView => array.as_binary_view().iter().collect(),
        DataType::FixedSizeBinary(_) => array.as_fixed_size_binary().iter().collect(),
        DataType::Null => vec![None; array.len()],
        other => {
            return exec_err!(
                "{function}: expected image bytes (Binary) or an image struct with a binary \
                 'bytes' field, got {other}"
            );
        }
    })
}

/// Planning-time rewrite for `clip.on_error = 'error'`: when argument
/// `image_at` is a binary column and the same table has a `path` or `key`
/// column, the arguments with `named_struct('bytes', image, 'path', path)`
/// in its place, so a failing row is named in the error; `None` leaves the
/// call as written.
pub fn name_rows_in_errors(
    args: &[Expr],
    image_at: usize,
    info: &SimplifyContext,
) -> Option<Vec<Expr>> {
    if ClipOptions::from_config(info.config_options()).on_error != OnErrorSetting::Error {
        return None;
    }
    let Some(Expr::Column(image)) = args.get(image_at) else {
        return None;
    };
    let schema = info.schema();
    if !schema
        .field_from_column(image)
        .is_ok_and(|f| is_binary(f.data_type()))
    {
        return None;
    }
    let name_column = NAME_FIELDS.iter().find_map(|name| {
        let column = Column::new(image.relation.clone(), *name);
        schema
            .field_from_column(&column)
            .ok()
            .filter(|f| is_string(f.data_type()))
            .map(|_| column)
    })?;
    let mut args = args.to_vec();
    args[image_at] = named_struct(vec![
        lit(BYTES_FIELD),
        Expr::Column(image.clone()),
        lit(NAME_FIELDS[0]),
        Expr::Column(name_column),
    ]);
    Some(args)
}

/// [`name_rows_in_errors`] as a `ScalarUDFImpl::simplify` result for `udf`.
pub fn simplify_with_row_names(
    udf: impl FnOnce() -> ScalarUDF,
    args: Vec<Expr>,
    image_at: usize,
    info: &SimplifyContext,
) -> ExprSimplifyResult {
    match name_rows_in_errors(&args, image_at, info) {
        Some(named) => ExprSimplifyResult::Simplified(Expr::ScalarFunction(
            ScalarFunction::new_udf(Arc::new(udf()), named),
        )),
        None => ExprSimplifyResult::Original(args),
    }
}

/// Apply `clip.on_error` to per-row image outcomes: with `null`, failed
/// rows become NULL; with `error`, the first failed (non-NULL) row fails the
/// query, naming the row (its path or key when the argument carries one)
/// and the reason.
pub fn apply_on_error<T>(
    function: &str,
    options: &ClipOptions,
    images: &ImageRows,
    outcomes: Vec<std::result::Result<T, ImageError>>,
) -> Result<Vec<Option<T>>> {
    let mut out = Vec::with_capacity(outcomes.len());
    for (row, (outcome, bytes)) in outcomes.into_iter().zip(&images.bytes).enumerate() {
        match outcome {
            Ok(v) => out.push(Some(v)),
            Err(e) if bytes.is_some() && options.on_error == OnErrorSetting::Error => {
                return exec_err!(
                    "{function}: {} cannot be used: {e} \
                     (SET clip.on_error = 'null' to get NULL for such rows instead)",
                    images.describe(row)
                );
            }
            Err(_) => out.push(None),
        }
    }
    Ok(out)
}
