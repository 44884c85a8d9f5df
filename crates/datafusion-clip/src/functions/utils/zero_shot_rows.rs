//! What `clip_zero_shot` and `clip_zero_shot_probs` share: reading their
//! arguments, embedding the images (or taking given embeddings), finding
//! the classifier of each row's labels and templates, and scoring.
//!
//! Label lists usually arrive as one constant, or as a column repeating one
//! array (a scalar subquery over a class-name table). Rows are grouped by
//! their (labels, templates) so each distinct classifier is looked up once
//! per batch, and the classifier cache builds it once per process.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{Result, exec_err, plan_err};
use datafusion::logical_expr::{ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs};

use super::args::{
    StringLists, embed_dim_at_planning, float_list_rows, is_float_list, is_string, is_string_list,
    load_model, model_name_at_execution, model_name_at_planning, parse_model,
};
use super::image_arg::{apply_on_error, image_rows, is_image_type};
use crate::config::ClipOptions;
use crate::engine::classifier::{DEFAULT_TEMPLATE, classifier, validate_templates};
use crate::engine::encode::embed_images;
use crate::engine::worker::wait_off_runtime;
use crate::engine::{Classifier, Prediction};
use crate::error::in_function;
use clip_model::embed::normalize_in_place;

/// Argument types both zero-shot functions accept: (model, image bytes or
/// embedding, labels [, templates]).
pub fn check_argument_types(function: &str, arg_types: &[DataType]) -> Result<Vec<DataType>> {
    if !(3..=4).contains(&arg_types.len()) {
        return plan_err!(
            "{function} takes (model, image_or_embedding, labels [, templates]), got {} arguments",
            arg_types.len()
        );
    }
    if !is_string(&arg_types[0]) {
        return plan_err!(
            "{function}: the model argument must be a string, got {}",
            arg_types[0]
        );
    }
    let input = &arg_types[1];
    if !is_image_type(input) && !is_float_list(input) && input != &DataType::Null {
        return plan_err!(
            "{function}: the second argument must be image bytes (Binary), an image struct with a \
             binary 'bytes' field, or an embedding (a list of floats, e.g. from clip_embed_image), \
             got {input}"
        );
    }
    for (i, what) in [(2, "labels"), (3, "templates")] {
        if let Some(t) = arg_types.get(i)
            && !is_string_list(t)
            && t != &DataType::Null
        {
            return plan_err!(
                "{function}: {what} must be a list of strings, e.g. ['cat', 'dog'] or \
                 (SELECT array_agg(name ORDER BY idx) FROM classes), got {t}"
            );
        }
    }
    Ok(arg_types.to_vec())
}

/// Planning-time checks that need the model: an embedding argument of
/// fixed width must match the model's.
pub fn check_planning(function: &str, args: &ReturnFieldArgs, options: &ClipOptions) -> Result<()> {
    let name = model_name_at_planning(function, args.scalar_arguments.first().copied().flatten())?;
    let model = parse_model(function, &name)?;
    if let Some(DataType::FixedSizeList(_, n)) =
        args.arg_fields.get(1).map(|f: &FieldRef| f.data_type())
    {
        let dim = embed_dim_at_planning(function, &model, options)?;
        if *n as usize != dim {
            return plan_err!(
                "{function}: the embedding has {n} dimensions but model '{name}' has {dim}"
            );
        }
    }
    // Constant labels and templates can be checked before any image is read.
    if let Some(Some(labels)) = args.scalar_arguments.get(2) {
        let labels = StringLists::from_value(
            function,
            "labels",
            &ColumnarValue::Scalar((*labels).clone()),
        )?;
        match labels.get(0) {
            None => {
                return plan_err!(
                    "{function}: the labels argument is NULL; give a list of class names such as \
                     ['cat', 'dog']"
                );
            }
            Some([]) => {
                return plan_err!(
                    "{function}: the labels list is empty; zero-shot needs at least one label"
                );
            }
            Some(_) => {}
        }
    }
    if let Some(Some(templates)) = args.scalar_arguments.get(3) {
        let templates = StringLists::from_value(
            function,
            "templates",
            &ColumnarValue::Scalar((*templates).clone()),
        )?;
        match templates.get(0) {
            Some(t) => validate_templates(t).map_err(in_function(function))?,
            None => {
                return plan_err!(
                    "{function}: the templates argument is NULL; leave it out for the default \
                     ['a photo of a {{}}.'] or give a list of templates"
                );
            }
        }
    }
    Ok(())
}

/// Per row: the classifier used and the prediction, or `None` (NULL row).
pub struct ZeroShotRows {
    pub rows: Vec<Option<(Arc<Classifier>, Prediction)>>,
    /// Every argument was a constant: the caller returns a scalar.
    pub all_scalar: bool,
}

/// `function`'s rows for `args`; `options` are the function's own settings,
/// which the session's replace (see [`ClipOptions::resolve`]).
pub fn zero_shot_rows(
    function: &str,
    args: ScalarFunctionArgs,
    options: &ClipOptions,
) -> Result<ZeroShotRows> {
    let options = ClipOptions::resolve(&args.config_options, options)?;
    let n = args.number_rows;
    let mut values = args.args.into_iter();
    let (Some(model_arg), Some(input_arg), Some(labels_arg)) =
        (values.next(), values.next(), values.next())
    else {
        return exec_err!("{function}: expected (model, image_or_embedding, labels [, templates])");
    };
    let templates_arg = values.next();
    let all_scalar = [Some(&input_arg), Some(&labels_arg), templates_arg.as_ref()]
        .into_iter()
        .flatten()
        .all(|v| matches!(v, ColumnarValue::Scalar(_)));

    let name = model_name_at_execution(function, &model_arg)?;
    let labels = StringLists::from_value(function, "labels", &labels_arg)?;
    let templates = match &templates_arg {
        Some(t) => StringLists::from_value(function, "templates", t)?,
        None => StringLists::Constant(Some(vec![DEFAULT_TEMPLATE.to_string()])),
    };
    let input = input_arg.into_array(n)?;

    // Rows that can produce a result at all.
    let wanted: Vec<bool> = (0..n)
        .map(|i| !input.is_null(i) && labels.get(i).is_some() && templates.get(i).is_some())
        .collect();
    if !wanted.iter().any(|w| *w) {
        return Ok(ZeroShotRows {
            rows: vec![None; n],
            all_scalar,
        });
    }
    let model = load_model(function, &name, &options)?;

    let embeddings: Vec<Option<Vec<f32>>> = if is_image_type(input.data_type()) {
        let mut images = image_rows(function, &input)?;
        // Rows whose labels are NULL need no image work.
        for (bytes, wanted) in images.bytes.iter_mut().zip(&wanted) {
            if !wanted {
                *bytes = None;
            }
        }
        let outcomes =
            embed_images(&model, &images.bytes, &options).map_err(in_function(function))?;
        apply_on_error(function, &options, &images, outcomes)?
    } else {
        let mut rows = float_list_rows(function, &input)?;
        for v in rows.iter_mut().flatten() {
            if v.len() != model.embed_dim {
                return exec_err!(
                    "{function}: an embedding has {} dimensions but model '{name}' has {}",
                    v.len(),
                    model.embed_dim
                );
            }
            normalize_in_place(v);
        }
        rows
    };

    // Group consecutive rows that share labels and templates.
    let mut out: Vec<Option<(Arc<Classifier>, Prediction)>> = vec![None; n];
    let mut i = 0;
    while i < n {
        let (Some(l), Some(t), Some(_)) = (labels.get(i), templates.get(i), embeddings[i].as_ref())
        else {
            i += 1;
            continue;
        };
        let mut group = vec![i];
        let mut j = i + 1;
        while j < n && labels.same(i, j) && templates.same(i, j) {
            if embeddings[j].is_some() {
                group.push(j);
            }
            j += 1;
        }
        let c = classifier(&model, l, t, options.batch_size_on(&model.device))
            .map_err(in_function(function))?;
        let mut flat = Vec::with_capacity(group.len() * c.dim);
        for &row in &group {
            if let Some(e) = &embeddings[row] {
                flat.extend_from_slice(e);
            }
        }
        // Scoring is a (rows x dim) x (dim x labels) product: off the async
        // scheduler like the forward passes.
        let predictions = wait_off_runtime(|| c.predict(&flat)).map_err(in_function(function))?;
        for (&row, p) in group.iter().zip(predictions) {
            out[row] = Some((Arc::clone(&c), p));
        }
        i = j;
    }
    Ok(ZeroShotRows {
        rows: out,
        all_scalar,
    })
}
