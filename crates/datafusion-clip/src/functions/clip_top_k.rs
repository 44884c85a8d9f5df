//! `clip_top_k(query, candidates, k)`: the positions of the `k` candidates
//! most similar to each query, for retrieval over embeddings.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int32Builder, ListBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Float32Type};
use datafusion::common::utils::take_function_args;
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use datafusion_macros::user_doc;

use super::utils::args::{float_list_rows, is_float_list, maybe_scalar};
use crate::engine::ranking::{Candidates, RankingError};

#[user_doc(
    doc_section(label = "CLIP Functions"),
    description = "The 0-based positions, best first, of the `k` vectors in `candidates` most similar \
to `query` by dot product (the cosine for CLIP's unit-length embeddings): retrieval, as CLIP_benchmark \
ranks it. Equal scores rank the lower position first. `candidates` is usually one list for the whole \
query, a scalar subquery such as `(SELECT array_agg(embedding ORDER BY id) FROM images)`; it is held \
once and scored in chunks of queries, so 5,000 queries against 25,000 candidates never hold the \
5,000 x 25,000 scores. NULL candidates are never ranked; a NULL query gives NULL.",
    syntax_example = "clip_top_k(query, candidates, k)",
    sql_example = r#"```sql
> SELECT clip_top_k([1.0, 0.0], [[0.0, 1.0], [0.6, 0.8], [1.0, 0.0]], 2) AS top;
+--------+
| top    |
+--------+
| [2, 1] |
+--------+
```"#,
    argument(
        name = "query",
        description = "A vector (list of floats), e.g. a caption's embedding."
    ),
    argument(
        name = "candidates",
        description = "A list of vectors of the same width, e.g. every image's embedding."
    ),
    argument(name = "k", description = "How many positions to return (at least 1)."),
    related_udf(name = "cosine_similarity"),
    related_udf(name = "clip_embed_text")
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ClipTopK {
    signature: Signature,
}

impl Default for ClipTopK {
    fn default() -> Self {
        Self::new()
    }
}

impl ClipTopK {
    pub fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

/// The element type of a list type, if it is one.
fn list_element(t: &DataType) -> Option<&DataType> {
    match t {
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            Some(f.data_type())
        }
        _ => None,
    }
}

impl ScalarUDFImpl for ClipTopK {
    fn name(&self) -> &str {
        "clip_top_k"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let [query, candidates, k] = take_function_args(self.name(), arg_types)?;
        if !is_float_list(query) && query != &DataType::Null {
            return plan_err!("clip_top_k: the query must be a list of floats, got {query}");
        }
        let is_list_of_vectors = list_element(candidates).is_some_and(is_float_list);
        if !is_list_of_vectors && candidates != &DataType::Null {
            return plan_err!(
                "clip_top_k: the candidates must be a list of float lists \
                 (e.g. (SELECT array_agg(embedding) FROM images)), got {candidates}"
            );
        }
        if !k.is_integer() && k != &DataType::Null {
            return plan_err!("clip_top_k: k must be an integer, got {k}");
        }
        Ok(vec![query.clone(), candidates.clone(), DataType::Int64])
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::List(Arc::new(Field::new_list_field(
            DataType::Int32,
            true,
        ))))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = args.number_rows;
        let [query, candidates, k] = take_function_args(self.name(), args.args)?;
        let k = match k {
            ColumnarValue::Scalar(ScalarValue::Int64(Some(k))) if k >= 1 => k as usize,
            ColumnarValue::Scalar(ScalarValue::Int64(Some(k))) => {
                return exec_err!("clip_top_k: k must be at least 1, got {k}");
            }
            ColumnarValue::Scalar(_) => return exec_err!("clip_top_k: k is NULL"),
            ColumnarValue::Array(_) => {
                return exec_err!("clip_top_k: k must be a constant, not a column");
            }
        };
        let all_scalar = matches!(query, ColumnarValue::Scalar(_))
            && matches!(candidates, ColumnarValue::Scalar(_));
        let queries = float_list_rows(self.name(), &query.into_array(n)?)?;
        let query_refs: Vec<Option<&[f32]>> = queries.iter().map(|q| q.as_deref()).collect();
        let ranked = match candidates {
            // One list for every row: held once, scored in chunks.
            ColumnarValue::Scalar(scalar) => {
                let lists: ArrayRef = match scalar {
                    ScalarValue::List(list) => list,
                    ScalarValue::LargeList(list) => list,
                    ScalarValue::FixedSizeList(list) => list,
                    other => other.to_array_of_size(1)?,
                };
                match candidates_of_row(self.name(), &lists, 0)? {
                    Some(candidates) => candidates
                        .top_k(&query_refs, k)
                        .or_else(|e| exec_err!("clip_top_k: {e}"))?,
                    None => vec![None; n],
                }
            }
            ColumnarValue::Array(lists) => {
                let mut ranked = Vec::with_capacity(n);
                for (i, query) in query_refs.iter().enumerate() {
                    ranked.push(match candidates_of_row(self.name(), &lists, i)? {
                        Some(candidates) => candidates
                            .top_k(&[*query], k)
                            .or_else(|e| exec_err!("clip_top_k: row {i}: {e}"))?
                            .pop()
                            .flatten(),
                        None => None,
                    });
                }
                ranked
            }
        };
        let mut out = ListBuilder::new(Int32Builder::new());
        for positions in ranked {
            match positions {
                Some(positions) => {
                    for p in positions {
                        out.values().append_value(p as i32);
                    }
                    out.append(true);
                }
                None => out.append(false),
            }
        }
        maybe_scalar(Arc::new(out.finish()), all_scalar)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

/// The candidates in row `i` of a list of float lists; `None` when the
/// row is NULL. Float32 vectors of one width (what `array_agg` of an
/// embedding column gives) are copied once, straight from Arrow's buffer.
fn candidates_of_row(function: &str, lists: &ArrayRef, i: usize) -> Result<Option<Candidates>> {
    if lists.is_null(i) {
        return Ok(None);
    }
    let inner = match lists.data_type() {
        DataType::List(_) => lists.as_list::<i32>().value(i),
        DataType::LargeList(_) => lists.as_list::<i64>().value(i),
        DataType::FixedSizeList(_, _) => lists.as_fixed_size_list().value(i),
        DataType::Null => return Ok(None),
        other => return exec_err!("{function}: expected a list of float lists, got {other}"),
    };
    let fail = |e: RankingError| exec_err!("{function}: {e}");
    if let DataType::FixedSizeList(field, width) = inner.data_type()
        && field.data_type() == &DataType::Float32
    {
        let vectors = inner.as_fixed_size_list();
        let values = vectors.values().as_primitive::<Float32Type>();
        if values.null_count() == 0 {
            let width = *width as usize;
            let raw = values.values();
            let mut flat = Vec::with_capacity(vectors.len() * width);
            let mut positions = Vec::with_capacity(vectors.len());
            for row in 0..vectors.len() {
                if vectors.is_null(row) {
                    continue;
                }
                let start = vectors.value_offset(row) as usize;
                flat.extend_from_slice(&raw[start..start + width]);
                positions.push(row);
            }
            return Candidates::from_flat(flat, positions, width)
                .map(Some)
                .or_else(fail);
        }
    }
    let rows = float_list_rows(function, &inner)?;
    Candidates::new(&rows).map(Some).or_else(fail)
}
