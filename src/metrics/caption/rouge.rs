//! ROUGE-L as pycocoevalcap's `Rouge` computes it (`rouge/rouge.py`, metrics.md §3).
//!
//! This module owns the LCS-based F-measure and numpy's `mean` (pairwise summation,
//! shared with CIDEr-D so corpus means match numpy to the last bit). It takes token
//! lists and must not tokenize or do I/O.
//!
//! Per item: for every reference, `lcs/len(candidate)` is a precision and
//! `lcs/len(reference)` a recall; **P and R are maxed independently** (possibly over
//! different references), then `F = (1+β²)·P·R / (R + β²·P)` with β = 1.2, or 0 when
//! either is 0. The corpus score is the mean over items.
//!
//! pycocoevalcap splits on a single space, so an empty caption is one empty token: an
//! empty token list here stands for that `['']` (length 1, and equal to another empty
//! caption's token).

use super::bleu::{check_corpus, CorpusError, Interner};

/// pycocoevalcap's β.
const BETA: f64 = 1.2;

/// ROUGE-L of one candidate against its references.
///
/// Returns [`CorpusError::NoReferences`] (index 0) when `references` is empty, where
/// pycocoevalcap asserts.
pub fn rouge_l<T: AsRef<str>>(candidate: &[T], references: &[Vec<T>]) -> Result<f64, CorpusError> {
    if references.is_empty() {
        return Err(CorpusError::NoReferences { index: 0 });
    }
    let mut scorer = Scorer::default();
    Ok(scorer.score(candidate, references))
}

/// ROUGE-L per item and their mean (pycocoevalcap `Rouge().compute_score`).
pub fn rouge_l_corpus<T: AsRef<str>>(
    candidates: &[Vec<T>],
    references: &[Vec<Vec<T>>],
) -> Result<(f64, Vec<f64>), CorpusError> {
    check_corpus(candidates, references)?;
    let mut scorer = Scorer::default();
    let per_item: Vec<f64> = candidates
        .iter()
        .zip(references)
        .map(|(c, refs)| scorer.score(c, refs))
        .collect();
    Ok((numpy_mean(&per_item), per_item))
}

/// Reusable state: the token interner (ids only need to agree between a candidate
/// and its references, so one map serves the corpus), id buffers and one DP row.
#[derive(Default)]
struct Scorer<'a> {
    interner: Interner<'a>,
    cand: Vec<u32>,
    reference: Vec<u32>,
    row: Vec<u32>,
}

/// Id that stands for the empty token of an empty caption (`"".split(" ") == ['']`).
const EMPTY_TOKEN: u32 = u32::MAX;

impl<'a> Scorer<'a> {
    fn score<T: AsRef<str>>(&mut self, candidate: &'a [T], references: &'a [Vec<T>]) -> f64 {
        self.interner.ids_into(candidate, &mut self.cand);
        if self.cand.is_empty() {
            self.cand.push(EMPTY_TOKEN);
        }
        let (mut prec_max, mut rec_max) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
        for reference in references {
            self.interner.ids_into(reference, &mut self.reference);
            if self.reference.is_empty() {
                self.reference.push(EMPTY_TOKEN);
            }
            let lcs = lcs_len(&self.reference, &self.cand, &mut self.row) as f64;
            prec_max = prec_max.max(lcs / self.cand.len() as f64);
            rec_max = rec_max.max(lcs / self.reference.len() as f64);
        }
        if prec_max != 0.0 && rec_max != 0.0 {
            let beta2 = BETA.powi(2);
            ((1.0 + beta2) * prec_max * rec_max) / (rec_max + beta2 * prec_max)
        } else {
            0.0
        }
    }
}

/// Length of the longest common subsequence (one DP row, O(|a|·|b|)).
fn lcs_len(a: &[u32], b: &[u32], row: &mut Vec<u32>) -> u32 {
    let (long, short) = if a.len() >= b.len() { (a, b) } else { (b, a) };
    row.clear();
    row.resize(short.len() + 1, 0);
    for &x in long {
        let mut diagonal = 0;
        for (j, &y) in short.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if x == y {
                diagonal + 1
            } else {
                above.max(row[j])
            };
            diagonal = above;
        }
    }
    row[short.len()]
}

/// `np.mean` of a float64 vector: numpy's pairwise summation (8-way unrolled blocks of
/// up to 128, halving above), then one division, so means match numpy bit for bit.
pub(crate) fn numpy_mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    pairwise_sum(values) / values.len() as f64
}

fn pairwise_sum(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        let mut res = 0.0;
        for &x in a {
            res += x;
        }
        res
    } else if n <= 128 {
        let mut r = [0.0f64; 8];
        r.copy_from_slice(&a[..8]);
        let mut i = 8;
        while i < n - n % 8 {
            for j in 0..8 {
                r[j] += a[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for &x in &a[i..] {
            res += x;
        }
        res
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        pairwise_sum(&a[..n2]) + pairwise_sum(&a[n2..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn lcs_basics() {
        let mut row = Vec::new();
        assert_eq!(lcs_len(&[1, 2, 3, 4], &[2, 4], &mut row), 2);
        assert_eq!(lcs_len(&[], &[2, 4], &mut row), 0);
        assert_eq!(lcs_len(&[1, 2, 1, 2], &[2, 1, 2, 1], &mut row), 3);
    }

    #[test]
    fn empty_captions_are_one_empty_token() {
        let empty: Vec<String> = Vec::new();
        assert_eq!(rouge_l(&empty, std::slice::from_ref(&empty)).unwrap(), 1.0);
        assert_eq!(rouge_l(&empty, &[toks("a dog")]).unwrap(), 0.0);
    }

    #[test]
    fn pairwise_sum_matches_plain_sum_on_exact_values() {
        let v: Vec<f64> = (0..1000).map(f64::from).collect();
        assert_eq!(numpy_mean(&v), 499.5);
    }
}
