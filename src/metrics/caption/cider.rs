//! CIDEr-D as pycocoevalcap's `Cider` computes it (`cider/cider_scorer.py`,
//! metrics.md §3): n = 4, σ = 6.
//!
//! This module owns the TF-IDF n-gram vectors, document frequencies and the similarity.
//! It takes token lists and must not tokenize or do I/O. Scores depend on the whole
//! evaluated set (document frequencies and `log N`), so there is only a corpus entry
//! point; a one-item corpus always scores 0, as in the Python.
//!
//! - Counts: raw n-gram counts, n = 1..4.
//! - `df[g]`: number of items whose references (as a set) contain g; candidates never
//!   count. Weights: `tf · (ln N − ln max(1, df))`.
//! - "Length" is the bigram count (pycocoevalcap's quirk), used in the Gaussian
//!   penalty `exp(−(len_h − len_r)² / (2σ²))`.
//! - Similarity per order: `Σ_{g∈hyp} min(v_h, v_r)·v_r / (‖v_h‖·‖v_r‖)` (the division
//!   only when both norms are non-zero); per item `10 · mean_n(Σ_refs sim_n) / |refs|`.
//!
//! Sums run in the Python's order (n-grams in first-occurrence order, references in
//! order, numpy's pairwise mean) so results match to the last bit or two.

use std::collections::HashMap;

use super::bleu::{check_corpus, ngram_key, CorpusError, FxBuild, Interner, MAX_ORDER};
use super::rouge::numpy_mean;

/// pycocoevalcap's σ for the length penalty.
const SIGMA: f64 = 6.0;

/// One sentence as pycocoevalcap's `precook` sees it: distinct n-grams (dense ids) with
/// their counts, in first-occurrence order (orders 1..4, positions ascending), plus the
/// bigram count that serves as its "length".
#[derive(Default, Clone)]
struct Counts {
    grams: Vec<(u32, u32)>,
    /// `grams[order_start[n]..order_start[n + 1]]` are the n-grams of order n + 1.
    order_start: [usize; MAX_ORDER + 1],
    length: u32,
}

/// A sentence's TF-IDF vector (values parallel to `Counts::grams`) and per-order norms.
#[derive(Default, Clone)]
struct Vector {
    values: Vec<f64>,
    norms: [f64; MAX_ORDER],
}

/// Dense ids for n-gram keys, shared by the whole corpus.
#[derive(Default)]
struct GramIds {
    ids: HashMap<u128, u32, FxBuild>,
}

impl GramIds {
    fn id(&mut self, key: u128) -> u32 {
        let next = self.ids.len() as u32;
        *self.ids.entry(key).or_insert(next)
    }
}

/// `precook`: counts in first-occurrence order. `seen` is a scratch map from n-gram id
/// to its slot in `out.grams` (+1; 0 = unseen), reset before returning.
fn precook(token_ids: &[u32], grams: &mut GramIds, seen: &mut Vec<u32>, out: &mut Counts) {
    out.grams.clear();
    out.length = 0;
    for n in 1..=MAX_ORDER {
        out.order_start[n - 1] = out.grams.len();
        for window in token_ids.windows(n) {
            let id = grams.id(ngram_key(window));
            let slot = id as usize;
            if slot >= seen.len() {
                seen.resize(slot + 1, 0);
            }
            match seen[slot] {
                0 => {
                    out.grams.push((id, 1));
                    seen[slot] = out.grams.len() as u32;
                }
                at => out.grams[at as usize - 1].1 += 1,
            }
        }
        if n == 2 {
            out.length = token_ids.len().saturating_sub(1) as u32;
        }
    }
    out.order_start[MAX_ORDER] = out.grams.len();
    for &(id, _) in &out.grams {
        seen[id as usize] = 0;
    }
}

/// `counts2vec`: TF-IDF values and per-order norms.
fn to_vector(counts: &Counts, ref_len: f64, log_df: &[f64], out: &mut Vector) {
    out.values.clear();
    for n in 0..MAX_ORDER {
        let mut norm = 0.0;
        for &(id, tf) in &counts.grams[counts.order_start[n]..counts.order_start[n + 1]] {
            let value = f64::from(tf) * (ref_len - log_df[id as usize]);
            norm += value * value;
            out.values.push(value);
        }
        out.norms[n] = norm.sqrt();
    }
}

/// CIDEr-D per item and their mean (pycocoevalcap `Cider().compute_score`).
pub fn cider_d<T: AsRef<str>>(
    candidates: &[Vec<T>],
    references: &[Vec<Vec<T>>],
) -> Result<(f64, Vec<f64>), CorpusError> {
    check_corpus(candidates, references)?;
    let mut tokens = Interner::default();
    let mut grams = GramIds::default();
    let mut seen = Vec::new();
    let mut ids = Vec::new();

    // Count every sentence once; references of item i are refs[ref_start[i]..ref_start[i+1]].
    let mut cand_counts = Vec::with_capacity(candidates.len());
    let mut ref_counts: Vec<Counts> = Vec::new();
    let mut ref_start = Vec::with_capacity(references.len() + 1);
    for (candidate, refs) in candidates.iter().zip(references) {
        let mut counts = Counts::default();
        tokens.ids_into(candidate, &mut ids);
        precook(&ids, &mut grams, &mut seen, &mut counts);
        cand_counts.push(counts);
        ref_start.push(ref_counts.len());
        for reference in refs {
            let mut counts = Counts::default();
            tokens.ids_into(reference, &mut ids);
            precook(&ids, &mut grams, &mut seen, &mut counts);
            ref_counts.push(counts);
        }
    }
    ref_start.push(ref_counts.len());

    // Document frequency: each item counts an n-gram once, whatever its references.
    let mut df = vec![0u32; grams.ids.len()];
    let mut marked = vec![u32::MAX; grams.ids.len()];
    for item in 0..candidates.len() {
        for counts in &ref_counts[ref_start[item]..ref_start[item + 1]] {
            for &(id, _) in &counts.grams {
                if marked[id as usize] != item as u32 {
                    marked[id as usize] = item as u32;
                    df[id as usize] += 1;
                }
            }
        }
    }
    let log_df: Vec<f64> = df.iter().map(|&d| f64::from(d).max(1.0).ln()).collect();
    let ref_len = (candidates.len() as f64).ln();

    // Scratch: reference values by n-gram id (0 where absent), reset after each pair.
    let mut ref_value = vec![0.0f64; grams.ids.len()];
    let (mut hyp_vec, mut ref_vec) = (Vector::default(), Vector::default());
    let gauss_den = 2.0 * SIGMA.powi(2);
    let mut scores = Vec::with_capacity(candidates.len());
    for (item, hyp) in cand_counts.iter().enumerate() {
        to_vector(hyp, ref_len, &log_df, &mut hyp_vec);
        let refs = &ref_counts[ref_start[item]..ref_start[item + 1]];
        let mut score = [0.0f64; MAX_ORDER];
        for reference in refs {
            to_vector(reference, ref_len, &log_df, &mut ref_vec);
            for (&(id, _), &value) in reference.grams.iter().zip(&ref_vec.values) {
                ref_value[id as usize] = value;
            }
            let delta = f64::from(hyp.length) - f64::from(reference.length);
            let penalty = std::f64::consts::E.powf(-(delta * delta) / gauss_den);
            for (n, total) in score.iter_mut().enumerate() {
                let range = hyp.order_start[n]..hyp.order_start[n + 1];
                let mut val = 0.0;
                for (&(id, _), &vh) in hyp.grams[range.clone()].iter().zip(&hyp_vec.values[range]) {
                    let vr = ref_value[id as usize];
                    val += vh.min(vr) * vr;
                }
                if hyp_vec.norms[n] != 0.0 && ref_vec.norms[n] != 0.0 {
                    val /= hyp_vec.norms[n] * ref_vec.norms[n];
                }
                val *= penalty;
                *total += val;
            }
            for &(id, _) in &reference.grams {
                ref_value[id as usize] = 0.0;
            }
        }
        let mut avg = numpy_mean(&score);
        avg /= refs.len() as f64;
        avg *= 10.0;
        scores.push(avg);
    }
    Ok((numpy_mean(&scores), scores))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn one_item_corpus_scores_zero() {
        let (corpus, per_item) =
            cider_d(&[toks("a dog runs")], &[vec![toks("a dog runs")]]).unwrap();
        assert_eq!(corpus, 0.0);
        assert_eq!(per_item, vec![0.0]);
    }

    #[test]
    fn two_identical_items_score_ten() {
        let cands = vec![toks("a dog runs fast"), toks("a cat sleeps on a mat")];
        let refs = vec![
            vec![toks("a dog runs fast")],
            vec![toks("a cat sleeps on a mat")],
        ];
        let (corpus, per_item) = cider_d(&cands, &refs).unwrap();
        // metrics.md §3: identical captions over two images give 10 each.
        for s in per_item {
            assert!((s - 10.0).abs() < 1e-12, "{s}");
        }
        assert!((corpus - 10.0).abs() < 1e-12);
    }

    #[test]
    fn precook_keeps_first_occurrence_order() {
        let mut grams = GramIds::default();
        let (mut seen, mut counts) = (Vec::new(), Counts::default());
        precook(&[5, 6, 5, 6], &mut grams, &mut seen, &mut counts);
        // Unigrams 5, 6; bigrams (5,6)×2, (6,5); trigrams ×2; one 4-gram.
        let tf: Vec<u32> = counts.grams.iter().map(|&(_, c)| c).collect();
        assert_eq!(tf, vec![2, 2, 2, 1, 1, 1, 1]);
        assert_eq!(counts.order_start, [0, 2, 4, 6, 7]);
        assert_eq!(counts.length, 3);
        assert!(seen.iter().all(|&s| s == 0));
    }
}
