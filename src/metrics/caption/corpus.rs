//! The COCO caption protocol over a corpus: PTB tokenization, then BLEU-1..4, ROUGE-L
//! and CIDEr-D exactly as pycocoevalcap, and METEOR as NLTK 3.10 (not the Java METEOR
//! 1.5 that pycocoevalcap runs; see [`super::meteor`]). Corpus METEOR and ROUGE-L are
//! the means of the per-item values, as pycocoevalcap reports ROUGE-L.

use serde::Serialize;

use super::bleu::{coco_bleu, CorpusError};
use super::cider::cider_d;
use super::meteor::Meteor;
use super::ptb::tokenize_all;
use super::rouge::{rouge_l, rouge_l_corpus};

/// One candidate caption and its references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptionItem {
    /// Record id.
    pub id: String,
    /// The generated caption.
    pub candidate: String,
    /// Reference captions (at least one).
    pub references: Vec<String>,
}

/// Scores of one item. `cider_d` depends on the whole corpus (document frequencies).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ItemScores {
    /// Record id.
    pub id: String,
    /// pycocoevalcap per-image BLEU-1.
    pub bleu_1: f64,
    /// BLEU-2.
    pub bleu_2: f64,
    /// BLEU-3.
    pub bleu_3: f64,
    /// BLEU-4.
    pub bleu_4: f64,
    /// NLTK METEOR (absent when no WordNet was given).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meteor: Option<f64>,
    /// ROUGE-L.
    pub rouge_l: f64,
    /// CIDEr-D within this corpus.
    pub cider_d: f64,
}

/// Corpus scores.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CorpusScores {
    /// pycocoevalcap corpus BLEU-1.
    pub bleu_1: f64,
    /// BLEU-2.
    pub bleu_2: f64,
    /// BLEU-3.
    pub bleu_3: f64,
    /// BLEU-4.
    pub bleu_4: f64,
    /// Mean NLTK METEOR.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meteor: Option<f64>,
    /// Mean ROUGE-L.
    pub rouge_l: f64,
    /// CIDEr-D.
    pub cider_d: f64,
}

/// Per-row scores a stage can compute without the rest of the corpus.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RowScores {
    /// BLEU-1..4 (pycocoevalcap's per-image values).
    pub bleu: [f64; 4],
    /// NLTK METEOR.
    pub meteor: Option<f64>,
    /// ROUGE-L.
    pub rouge_l: f64,
}

/// Scores one candidate against its references (no corpus statistics needed). The PTB
/// tokenizer's lookahead crosses caption boundaries within one call, so in rare cases
/// (a caption ending in "I." before one starting "A ") a row's tokens, and so its scores,
/// differ from the same item's in a corpus run; `metrics.json` has the corpus ones.
pub fn score_row(
    candidate: &str,
    references: &[String],
    meteor: Option<&Meteor>,
) -> Result<RowScores, CorpusError> {
    let cand = tokenize_all(&[candidate]).pop().unwrap_or_default();
    let refs = tokenize_all(references);
    let bleu = coco_bleu(std::slice::from_ref(&cand), std::slice::from_ref(&refs))?;
    Ok(RowScores {
        bleu: bleu.per_item[0],
        meteor: meteor.map(|m| m.score(&refs, &cand)),
        rouge_l: rouge_l(&cand, &refs)?,
    })
}

/// Scores a corpus. Every item needs at least one reference.
pub fn score_corpus(
    items: &[CaptionItem],
    meteor: Option<&Meteor>,
) -> Result<(CorpusScores, Vec<ItemScores>), CorpusError> {
    // One tokenizer stream for all references and one for all candidates, item by item,
    // as pycocoevalcap calls the PTB jar: its lookahead crosses caption boundaries.
    let cands = tokenize_all(
        &items
            .iter()
            .map(|i| i.candidate.as_str())
            .collect::<Vec<_>>(),
    );
    let flat: Vec<&str> = items
        .iter()
        .flat_map(|i| i.references.iter().map(String::as_str))
        .collect();
    let mut flat_tokens = tokenize_all(&flat).into_iter();
    let refs: Vec<Vec<Vec<String>>> = items
        .iter()
        .map(|i| flat_tokens.by_ref().take(i.references.len()).collect())
        .collect();
    let bleu = coco_bleu(&cands, &refs)?;
    let (rouge, rouge_items) = rouge_l_corpus(&cands, &refs)?;
    let (cider, cider_items) = cider_d(&cands, &refs)?;
    let meteor_items: Option<Vec<f64>> = meteor.map(|m| {
        cands
            .iter()
            .zip(&refs)
            .map(|(c, r)| m.score(r, c))
            .collect()
    });
    let per_item = items
        .iter()
        .enumerate()
        .map(|(k, it)| ItemScores {
            id: it.id.clone(),
            bleu_1: bleu.per_item[k][0],
            bleu_2: bleu.per_item[k][1],
            bleu_3: bleu.per_item[k][2],
            bleu_4: bleu.per_item[k][3],
            meteor: meteor_items.as_ref().map(|m| m[k]),
            rouge_l: rouge_items[k],
            cider_d: cider_items[k],
        })
        .collect();
    let mean = |v: &[f64]| {
        if v.is_empty() {
            0.0
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
    Ok((
        CorpusScores {
            bleu_1: bleu.corpus[0],
            bleu_2: bleu.corpus[1],
            bleu_3: bleu.corpus[2],
            bleu_4: bleu.corpus[3],
            meteor: meteor_items.as_deref().map(mean),
            rouge_l: rouge,
            cider_d: cider,
        },
        per_item,
    ))
}

/// The best constant caption: of `candidates`, the one whose corpus CIDEr-D is highest
/// when it is the caption of every item of `references` (ties: the first). The floor
/// a captioner must beat to show it looks at the image. `None` without candidates.
pub fn best_constant(
    candidates: &[String],
    references: &[Vec<String>],
) -> Result<Option<(String, CorpusScores)>, CorpusError> {
    let mut best: Option<(String, CorpusScores)> = None;
    for c in candidates {
        let items: Vec<CaptionItem> = references
            .iter()
            .enumerate()
            .map(|(k, r)| CaptionItem {
                id: k.to_string(),
                candidate: c.clone(),
                references: r.clone(),
            })
            .collect();
        let (scores, _) = score_corpus(&items, None)?;
        if best
            .as_ref()
            .is_none_or(|(_, b)| scores.cider_d > b.cider_d)
        {
            best = Some((c.clone(), scores));
        }
    }
    Ok(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_constant_is_the_candidate_with_the_highest_cider_d() {
        let refs: Vec<Vec<String>> = [
            ["a red circle", "one red circle"],
            ["a red circle", "a small red circle"],
            ["a blue square", "one blue square"],
        ]
        .iter()
        .map(|r| r.iter().map(|s| s.to_string()).collect())
        .collect();
        let cands: Vec<String> = ["a blue square", "a red circle", "a green star"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (best, scores) = best_constant(&cands, &refs).unwrap().unwrap();
        assert_eq!(best, "a red circle");
        let (_, other) = best_constant(&cands[..1], &refs).unwrap().unwrap();
        assert!(scores.cider_d > other.cider_d && other.cider_d > 0.0);
        assert!(best_constant(&[], &refs).unwrap().is_none());
    }
}
