//! `array_argmax(list)`: the 0-based position of a list's largest value —
//! the predicted class of a probability vector, e.g. of an ensemble's
//! averaged `clip_zero_shot_probs`.

use std::sync::Arc;

use datafusion::arrow::array::Int32Array;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::utils::take_function_args;
use datafusion::common::{Result, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use datafusion_macros::user_doc;

use super::utils::args::{float_list_rows, is_float_list, maybe_scalar};

#[user_doc(
    doc_section(label = "CLIP Functions"),
    description = "The 0-based position of the largest value of a list of floats; the first one when \
several are equal (as `argmax` in NumPy and PyTorch). NaN values are never the largest. NULL for a \
NULL or empty list, or one of only NaN.",
    syntax_example = "array_argmax(list)",
    sql_example = r#"```sql
> SELECT array_argmax([0.1, 0.7, 0.7, 0.2]) AS i;
+---+
| i |
+---+
| 1 |
+---+
```"#,
    argument(
        name = "list",
        description = "A list of floats, e.g. from `clip_zero_shot_probs`."
    ),
    related_udf(name = "clip_zero_shot_probs"),
    related_udf(name = "weighted_avg_list")
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ArrayArgmax {
    signature: Signature,
}

impl Default for ArrayArgmax {
    fn default() -> Self {
        Self::new()
    }
}

impl ArrayArgmax {
    pub fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for ArrayArgmax {
    fn name(&self) -> &str {
        "array_argmax"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let [list] = take_function_args(self.name(), arg_types)?;
        if !is_float_list(list) && list != &DataType::Null {
            return plan_err!("array_argmax expects a list of floats, got {list}");
        }
        Ok(arg_types.to_vec())
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int32)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [list] = take_function_args(self.name(), args.args)?;
        let all_scalar = matches!(list, ColumnarValue::Scalar(_));
        let rows = float_list_rows(self.name(), &list.into_array(args.number_rows)?)?;
        let out: Int32Array = rows
            .iter()
            .map(|row| row.as_deref().and_then(argmax))
            .collect();
        maybe_scalar(Arc::new(out), all_scalar)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

/// First position of the largest non-NaN value.
pub fn argmax(values: &[f32]) -> Option<i32> {
    let mut best: Option<(usize, f32)> = None;
    for (i, &v) in values.iter().enumerate() {
        if v.is_nan() {
            continue;
        }
        if best.is_none_or(|(_, b)| v > b) {
            best = Some((i, v));
        }
    }
    best.and_then(|(i, _)| i32::try_from(i).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_largest_wins_and_nan_never_does() {
        assert_eq!(argmax(&[0.1, 0.7, 0.7, 0.2]), Some(1));
        assert_eq!(argmax(&[f32::NAN, 0.5, f32::NAN, 0.4]), Some(1));
        assert_eq!(argmax(&[-3.0]), Some(0));
        assert_eq!(argmax(&[]), None);
        assert_eq!(argmax(&[f32::NAN]), None);
    }
}
