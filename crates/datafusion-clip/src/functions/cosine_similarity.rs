//! `cosine_similarity(a, b)`: the cosine of the angle between two vectors.

use std::sync::Arc;

use datafusion::arrow::array::Float32Array;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::utils::take_function_args;
use datafusion::common::{Result, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use datafusion_macros::user_doc;

use super::utils::args::{float_list_rows, is_float_list, maybe_scalar};

#[user_doc(
    doc_section(label = "CLIP Functions"),
    description = "Cosine similarity of two vectors (lists of floats of the same length, e.g. CLIP embeddings): \
`a·b / (|a| |b|)`. NULL when either is NULL or has zero length; an error when their lengths differ.",
    syntax_example = "cosine_similarity(a, b)",
    sql_example = r#"```sql
> SELECT cosine_similarity([1.0, 0.0], [1.0, 1.0]) AS c;
+------------+
| c          |
+------------+
| 0.70710677 |
+------------+
```"#,
    argument(name = "a", description = "A vector (list of floats)."),
    argument(name = "b", description = "A vector of the same length."),
    related_udf(name = "clip_embed_image"),
    related_udf(name = "clip_embed_text")
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct CosineSimilarity {
    signature: Signature,
}

impl Default for CosineSimilarity {
    fn default() -> Self {
        Self::new()
    }
}

impl CosineSimilarity {
    pub fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for CosineSimilarity {
    fn name(&self) -> &str {
        "cosine_similarity"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let [a, b] = take_function_args(self.name(), arg_types)?;
        for t in [a, b] {
            if !is_float_list(t) && t != &DataType::Null {
                return plan_err!("cosine_similarity expects two lists of floats, got {t}");
            }
        }
        if let (DataType::FixedSizeList(_, n), DataType::FixedSizeList(_, m)) = (a, b)
            && n != m
        {
            return plan_err!(
                "cosine_similarity: the vectors have different lengths ({n} and {m})"
            );
        }
        Ok(arg_types.to_vec())
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float32)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = args.number_rows;
        let [a, b] = take_function_args(self.name(), args.args)?;
        let all_scalar =
            matches!(a, ColumnarValue::Scalar(_)) && matches!(b, ColumnarValue::Scalar(_));
        // A constant side (a query embedding) is read once, not once per row.
        let a_rows = rows_of(self.name(), a, n)?;
        let b_rows = rows_of(self.name(), b, n)?;
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let (x, y) = (a_rows.get(i), b_rows.get(i));
            out.push(match (x, y) {
                (Some(x), Some(y)) => {
                    if x.len() != y.len() {
                        return exec_err!(
                            "cosine_similarity: the vectors in row {i} have different lengths ({} and {})",
                            x.len(),
                            y.len()
                        );
                    }
                    cosine(x, y)
                }
                _ => None,
            });
        }
        maybe_scalar(Arc::new(Float32Array::from(out)), all_scalar)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

/// A vector argument, constant or per row.
enum Rows {
    Constant(Option<Vec<f32>>),
    PerRow(Vec<Option<Vec<f32>>>),
}

impl Rows {
    fn get(&self, i: usize) -> Option<&[f32]> {
        match self {
            Rows::Constant(v) => v.as_deref(),
            Rows::PerRow(rows) => rows.get(i).and_then(|r| r.as_deref()),
        }
    }
}

fn rows_of(function: &str, value: ColumnarValue, n: usize) -> Result<Rows> {
    Ok(match value {
        ColumnarValue::Scalar(s) => Rows::Constant(
            float_list_rows(function, &s.to_array_of_size(1)?)?
                .pop()
                .flatten(),
        ),
        ColumnarValue::Array(a) => {
            let rows = float_list_rows(function, &a)?;
            if rows.len() != n {
                return exec_err!("{function}: expected {n} rows, got {}", rows.len());
            }
            Rows::PerRow(rows)
        }
    })
}

/// Cosine in f64 accumulation: embeddings are unit-length, so the result
/// should be exact to f32 precision.
fn cosine(x: &[f32], y: &[f32]) -> Option<f32> {
    let (mut dot, mut xx, mut yy) = (0f64, 0f64, 0f64);
    for (&a, &b) in x.iter().zip(y) {
        let (a, b) = (f64::from(a), f64::from(b));
        dot += a * b;
        xx += a * a;
        yy += b * b;
    }
    if xx == 0.0 || yy == 0.0 {
        return None;
    }
    Some((dot / (xx.sqrt() * yy.sqrt())) as f32)
}

#[cfg(test)]
mod tests {
    use super::cosine;

    #[test]
    fn cosine_of_known_vectors() {
        assert_eq!(cosine(&[1.0, 0.0], &[2.0, 0.0]), Some(1.0));
        assert_eq!(cosine(&[1.0, 0.0], &[0.0, 3.0]), Some(0.0));
        assert!(
            (cosine(&[1.0, 0.0], &[1.0, 1.0]).unwrap() - std::f32::consts::FRAC_1_SQRT_2).abs()
                < 1e-7
        );
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 1.0]), None);
    }
}
