//! Ranking candidates by similarity to queries, in bounded memory: the
//! retrieval half of a CLIP evaluation (`clip_top_k`).
//!
//! Scores are dot products (the cosine for CLIP's unit-length embeddings)
//! computed as one f32 matrix product per chunk of queries, so ranking
//! 5,000 images against 25,000 captions holds the candidates once and one
//! chunk's scores (`QUERY_CHUNK` x candidates), never the whole score
//! matrix. Each query keeps its `k` best: highest score first, and among
//! equal scores the lower candidate position first (a stable order; a NaN
//! score ranks last).

use candle_core::{Device, Tensor};

/// Queries scored per matrix product.
pub const QUERY_CHUNK: usize = 256;

/// Why a ranking could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum RankingError {
    #[error("a query has {query} values but the candidates have {candidates}")]
    Width { query: usize, candidates: usize },

    #[error("candidates of different widths ({first} and {other})")]
    RaggedCandidates { first: usize, other: usize },

    #[error("scoring failed: {0}")]
    Compute(#[source] candle_core::Error),
}

impl From<candle_core::Error> for RankingError {
    fn from(e: candle_core::Error) -> Self {
        RankingError::Compute(clip_model::error::without_backtrace(e))
    }
}

/// The candidates, held once for many queries: NULL candidates are left
/// out of every ranking.
pub struct Candidates {
    /// (rows, width), row-major, on the CPU.
    matrix: Option<Tensor>,
    /// Position (0-based, in the caller's list) of each matrix row.
    positions: Vec<usize>,
    width: usize,
}

impl Candidates {
    /// Candidates of `width` from one flat row-major buffer, with the
    /// position each row has in the caller's list (rows that were NULL
    /// left out).
    pub fn from_flat(
        values: Vec<f32>,
        positions: Vec<usize>,
        width: usize,
    ) -> Result<Self, RankingError> {
        let matrix = if positions.is_empty() || width == 0 {
            None
        } else {
            // Transposed once here (width x rows), so each chunk's product
            // reads it contiguously.
            let rows = Tensor::from_vec(values, (positions.len(), width), &Device::Cpu)?;
            Some(rows.t()?.contiguous()?)
        };
        Ok(Self {
            matrix,
            positions,
            width,
        })
    }

    /// Candidates from one vector per row (`None`: a NULL candidate).
    pub fn new(rows: &[Option<Vec<f32>>]) -> Result<Self, RankingError> {
        let mut positions = Vec::new();
        let mut width = None;
        let mut values = Vec::new();
        for (i, row) in rows.iter().enumerate() {
            let Some(row) = row else { continue };
            match width {
                None => width = Some(row.len()),
                Some(w) if w != row.len() => {
                    return Err(RankingError::RaggedCandidates {
                        first: w,
                        other: row.len(),
                    });
                }
                Some(_) => {}
            }
            positions.push(i);
            values.extend_from_slice(row);
        }
        Self::from_flat(values, positions, width.unwrap_or(0))
    }

    /// For each query, the positions (0-based) of its `k` best candidates;
    /// `None` for a NULL query.
    pub fn top_k(
        &self,
        queries: &[Option<&[f32]>],
        k: usize,
    ) -> Result<Vec<Option<Vec<usize>>>, RankingError> {
        let mut out: Vec<Option<Vec<usize>>> =
            queries.iter().map(|q| q.map(|_| Vec::new())).collect();
        let Some(matrix) = &self.matrix else {
            return Ok(out);
        };
        let present: Vec<usize> = (0..queries.len())
            .filter(|&i| queries[i].is_some())
            .collect();
        let columns = self.positions.len();
        for chunk in present.chunks(QUERY_CHUNK) {
            let mut values = Vec::with_capacity(chunk.len() * self.width);
            for &i in chunk {
                let query = queries[i].unwrap_or_default();
                if query.len() != self.width {
                    return Err(RankingError::Width {
                        query: query.len(),
                        candidates: self.width,
                    });
                }
                values.extend_from_slice(query);
            }
            let queries = Tensor::from_vec(values, (chunk.len(), self.width), &Device::Cpu)?;
            let scores = queries.matmul(matrix)?.flatten_all()?.to_vec1::<f32>()?;
            for (&i, row) in chunk.iter().zip(scores.chunks_exact(columns)) {
                out[i] = Some(
                    best_k(row, k)
                        .into_iter()
                        .map(|j| self.positions[j])
                        .collect(),
                );
            }
        }
        Ok(out)
    }
}

/// Whether `score` ranks above `kept`: higher, and NaN never does.
fn beats(score: f32, kept: f32) -> bool {
    !score.is_nan() && (kept.is_nan() || score > kept)
}

/// Indices of the `k` highest scores: score descending, index ascending
/// among equals, NaN last. One pass keeping the best `k` seen, in order: a
/// score enters only when it beats the current k-th, and a later index
/// must be strictly higher to pass an earlier one.
pub fn best_k(scores: &[f32], k: usize) -> Vec<usize> {
    let k = k.min(scores.len());
    let mut best: Vec<usize> = Vec::with_capacity(k + 1);
    if k == 0 {
        return best;
    }
    for (i, &score) in scores.iter().enumerate() {
        if best.len() == k && !beats(score, scores[best[k - 1]]) {
            continue;
        }
        let at = best
            .iter()
            .position(|&j| beats(score, scores[j]))
            .unwrap_or(best.len());
        best.insert(at, i);
        best.truncate(k);
    }
    best
}

#[cfg(test)]
mod tests {
    use std::cmp::Ordering;

    use super::*;

    /// The definition, by sorting every index.
    fn best_k_by_sorting(scores: &[f32], k: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..scores.len()).collect();
        order.sort_by(|&a, &b| {
            let (x, y) = (scores[a], scores[b]);
            match (x.is_nan(), y.is_nan()) {
                (true, true) => a.cmp(&b),
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => y.partial_cmp(&x).unwrap_or(Ordering::Equal).then(a.cmp(&b)),
            }
        });
        order.truncate(k);
        order
    }

    #[test]
    fn best_k_agrees_with_a_full_sort() {
        let mut state = 7u64;
        for n in [0, 1, 5, 40, 300] {
            let scores: Vec<f32> = (0..n)
                .map(|_| {
                    state = state
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1_442_695_040_888_963_407);
                    match state >> 60 {
                        0 => f32::NAN,
                        1 => 0.5, // ties
                        _ => ((state >> 33) % 1000) as f32 / 1000.0,
                    }
                })
                .collect();
            for k in [1, 3, 10, 400] {
                assert_eq!(
                    best_k(&scores, k),
                    best_k_by_sorting(&scores, k),
                    "n {n} k {k}"
                );
            }
        }
    }

    #[test]
    fn best_k_orders_by_score_then_position() {
        let scores = [0.5, 0.9, 0.5, f32::NAN, 0.9, -1.0];
        assert_eq!(best_k(&scores, 3), [1, 4, 0]);
        assert_eq!(best_k(&scores, 6), [1, 4, 0, 2, 5, 3]);
        assert_eq!(best_k(&scores, 10).len(), 6);
        assert!(best_k(&scores, 0).is_empty());
    }

    #[test]
    fn top_k_skips_null_candidates_and_keeps_null_queries_null() {
        let candidates = Candidates::new(&[
            Some(vec![1.0, 0.0]),
            None,
            Some(vec![0.0, 1.0]),
            Some(vec![0.6, 0.8]),
        ])
        .unwrap();
        let q = [1.0f32, 0.0];
        let got = candidates.top_k(&[Some(&q), None], 2).unwrap();
        assert_eq!(got, [Some(vec![0, 3]), None]);
        let wrong = [1.0f32, 0.0, 0.0];
        assert!(matches!(
            candidates.top_k(&[Some(&wrong)], 1),
            Err(RankingError::Width { .. })
        ));
    }

    #[test]
    fn chunks_give_what_one_pass_gives() {
        // More queries than one chunk, scores checked against a plain loop.
        let rows: Vec<Option<Vec<f32>>> = (0..50)
            .map(|i| {
                Some(
                    (0..8)
                        .map(|j| ((i * 7 + j * 3) % 11) as f32 - 5.0)
                        .collect(),
                )
            })
            .collect();
        let candidates = Candidates::new(&rows).unwrap();
        let queries: Vec<Vec<f32>> = (0..QUERY_CHUNK + 17)
            .map(|i| (0..8).map(|j| ((i * 5 + j) % 13) as f32 - 6.0).collect())
            .collect();
        let refs: Vec<Option<&[f32]>> = queries.iter().map(|q| Some(q.as_slice())).collect();
        let got = candidates.top_k(&refs, 5).unwrap();
        for (q, top) in queries.iter().zip(got) {
            let scores: Vec<f32> = rows
                .iter()
                .map(|r| r.as_ref().unwrap().iter().zip(q).map(|(a, b)| a * b).sum())
                .collect();
            assert_eq!(top.unwrap(), best_k(&scores, 5));
        }
    }
}
