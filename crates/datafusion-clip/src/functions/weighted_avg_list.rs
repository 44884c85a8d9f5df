//! `weighted_avg_list(list, weight)`: the element-wise weighted mean of the
//! lists of a group — a multi-model ensemble is the weighted mean of each
//! model's `clip_zero_shot_probs` for an image, its prediction the
//! `array_argmax` of that.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type};
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, Documentation, Signature, Volatility,
};
use datafusion_macros::user_doc;

use super::utils::args::{float_list_rows, is_float_list};

#[user_doc(
    doc_section(label = "CLIP Functions"),
    description = "Aggregate: the element-wise weighted mean of the group's lists of floats, \
`sum(weight * list) / sum(weight)`, computed in f64. Rows whose list or weight is NULL are left out; \
lists of different lengths, negative weights or a non-finite weight are errors. NULL when no row \
counts or the weights sum to 0.",
    syntax_example = "weighted_avg_list(list, weight)",
    sql_example = r#"```sql
> SELECT key, array_argmax(weighted_avg_list(probs, w)) AS ensemble_prediction
  FROM per_model_probs JOIN model_weights USING (model)
  GROUP BY key;
```"#,
    argument(
        name = "list",
        description = "A list of floats, e.g. `clip_zero_shot_probs(...)`."
    ),
    argument(name = "weight", description = "A non-negative number."),
    related_udf(name = "array_argmax"),
    related_udf(name = "clip_zero_shot_probs")
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct WeightedAvgList {
    signature: Signature,
}

impl Default for WeightedAvgList {
    fn default() -> Self {
        Self::new()
    }
}

impl WeightedAvgList {
    pub fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

fn f32_list_type() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(DataType::Float32, true)))
}

fn f64_list_type() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true)))
}

impl AggregateUDFImpl for WeightedAvgList {
    fn name(&self) -> &str {
        "weighted_avg_list"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let [list, weight] = arg_types else {
            return plan_err!(
                "weighted_avg_list takes (list, weight), got {} arguments",
                arg_types.len()
            );
        };
        if !is_float_list(list) && list != &DataType::Null {
            return plan_err!(
                "weighted_avg_list: the first argument must be a list of floats, got {list}"
            );
        }
        if !weight.is_numeric() && weight != &DataType::Null {
            return plan_err!("weighted_avg_list: the weight must be a number, got {weight}");
        }
        Ok(vec![list.clone(), DataType::Float64])
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(f32_list_type())
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(WeightedAvgAccumulator::default()))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![
            Arc::new(Field::new(
                format!("{}[weighted_sums]", args.name),
                f64_list_type(),
                true,
            )),
            Arc::new(Field::new(
                format!("{}[total_weight]", args.name),
                DataType::Float64,
                true,
            )),
        ])
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

/// Running `sum(weight * list)` and `sum(weight)`.
#[derive(Debug, Default)]
struct WeightedAvgAccumulator {
    sums: Option<Vec<f64>>,
    total_weight: f64,
}

impl WeightedAvgAccumulator {
    /// Add `weighted` (already multiplied by its weights) and those weights' sum.
    fn add(&mut self, weighted: &[f64], weight: f64) -> Result<()> {
        if !weight.is_finite() || weight < 0.0 {
            return exec_err!(
                "weighted_avg_list: weights must be finite and non-negative, got {weight}"
            );
        }
        let sums = self.sums.get_or_insert_with(|| vec![0.0; weighted.len()]);
        if sums.len() != weighted.len() {
            return exec_err!(
                "weighted_avg_list: the lists of a group have different lengths ({} and {})",
                sums.len(),
                weighted.len()
            );
        }
        sums.iter_mut().zip(weighted).for_each(|(s, v)| *s += v);
        self.total_weight += weight;
        Ok(())
    }
}

impl Accumulator for WeightedAvgAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let [lists, weights] = values else {
            return exec_err!("weighted_avg_list: expected (list, weight)");
        };
        let rows = float_list_rows("weighted_avg_list", lists)?;
        let weights = weights.as_primitive::<Float64Type>();
        for (i, row) in rows.iter().enumerate() {
            if let (Some(list), true) = (row, weights.is_valid(i)) {
                let weight = weights.value(i);
                let weighted: Vec<f64> = list.iter().map(|&v| weight * f64::from(v)).collect();
                self.add(&weighted, weight)?;
            }
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let [sums, totals] = states else {
            return exec_err!("weighted_avg_list: expected two state columns");
        };
        let sums = sums.as_list::<i32>();
        let totals = totals.as_primitive::<Float64Type>();
        for i in 0..sums.len() {
            if sums.is_null(i) || totals.is_null(i) {
                continue;
            }
            let part = sums.value(i);
            let part: &Float64Array = part.as_primitive();
            self.add(part.values(), totals.value(i))?;
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let sums = match &self.sums {
            Some(sums) => ScalarValue::List(ScalarValue::new_list_nullable(
                &sums
                    .iter()
                    .map(|&v| ScalarValue::Float64(Some(v)))
                    .collect::<Vec<_>>(),
                &DataType::Float64,
            )),
            None => ScalarValue::try_from(&f64_list_type())?,
        };
        Ok(vec![sums, ScalarValue::Float64(Some(self.total_weight))])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        match &self.sums {
            Some(sums) if self.total_weight > 0.0 => {
                let values: Vec<ScalarValue> = sums
                    .iter()
                    .map(|&s| ScalarValue::Float32(Some((s / self.total_weight) as f32)))
                    .collect();
                Ok(ScalarValue::List(ScalarValue::new_list_nullable(
                    &values,
                    &DataType::Float32,
                )))
            }
            _ => ScalarValue::try_from(&f32_list_type()),
        }
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.sums.as_ref().map_or(0, |s| s.capacity() * 8)
    }
}
