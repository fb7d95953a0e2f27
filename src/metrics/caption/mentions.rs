//! Object and colour mention accuracy of captions of the synthetic world.
//!
//! This module owns one question: does a caption name the shapes and colours an image
//! shows? It does not parse scenes or files. A synth image's reference captions
//! (`crate::datasets::synth`) each name every group's colour and shape, so the shape
//! kinds and colours named anywhere in an image's references are exactly what the image
//! shows; a candidate is compared with that union, set against set.
//!
//! Words are the synth vocabulary (`Shape::word`, `Shape::plural`, `Colour::word`),
//! matched on lowercase tokens split at every character that is not a letter or a digit,
//! so `circles,` counts as a circle and `redish` as no colour. Synth has no `grey`, so
//! no spelling variants are mapped.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::datasets::synth::{Colour, Shape};

/// Mention scores over a set of images.
///
/// Accuracies are shares of scored images whose named set equals the true set exactly;
/// recalls and precisions are micro-averaged (matches, true and named mentions summed
/// over images before dividing). A ratio whose denominator is zero (no image scored, or
/// no candidate naming any colour) is 0, so that every field is a finite number.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MentionScores {
    /// Images scored: those whose references name at least one shape.
    pub images: usize,
    /// Images left out because their references name no shape (not a synth scene).
    pub skipped: usize,
    /// Share of scored images whose candidate names exactly the true shape kinds.
    pub object_accuracy: f64,
    /// Share of scored images whose candidate names exactly the true colours.
    pub colour_accuracy: f64,
    /// True shape kinds the candidates name, over all true shape kinds.
    pub object_recall: f64,
    /// Named shape kinds that are true, over all named shape kinds.
    pub object_precision: f64,
    /// True colours the candidates name, over all true colours.
    pub colour_recall: f64,
    /// Named colours that are true, over all named colours.
    pub colour_precision: f64,
}

/// The shape kinds and colours one text names.
fn named(text: &str) -> (BTreeSet<Shape>, BTreeSet<Colour>) {
    let (mut shapes, mut colours) = (BTreeSet::new(), BTreeSet::new());
    let lower = text.to_lowercase();
    for token in lower.split(|c: char| !c.is_alphanumeric()) {
        if token.is_empty() {
            continue;
        }
        if let Some(s) = Shape::ALL
            .iter()
            .find(|s| s.word() == token || s.plural() == token)
        {
            shapes.insert(*s);
        }
        if let Some(c) = Colour::ALL.iter().find(|c| c.word() == token) {
            colours.insert(*c);
        }
    }
    (shapes, colours)
}

/// Running counts for one kind of mention (shapes or colours).
#[derive(Default)]
struct Tally {
    exact: usize,
    matched: usize,
    truth: usize,
    named: usize,
}

impl Tally {
    fn add<T: Ord>(&mut self, named: &BTreeSet<T>, truth: &BTreeSet<T>) {
        self.exact += usize::from(named == truth);
        self.matched += named.intersection(truth).count();
        self.truth += truth.len();
        self.named += named.len();
    }
}

/// `num / den`, or 0 when `den` is 0 (see [`MentionScores`]).
fn ratio(num: usize, den: usize) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

/// Scores `candidates[i]` against `references[i]` for every image `i`.
///
/// Candidates and references pair by index; entries of the longer slice beyond the
/// shorter one have nothing to pair with and are not scored.
pub fn mention_scores(candidates: &[&str], references: &[Vec<String>]) -> MentionScores {
    let (mut shapes, mut colours) = (Tally::default(), Tally::default());
    let (mut images, mut skipped) = (0usize, 0usize);
    for (candidate, refs) in candidates.iter().zip(references) {
        let (mut true_shapes, mut true_colours) = (BTreeSet::new(), BTreeSet::new());
        for r in refs {
            let (s, c) = named(r);
            true_shapes.extend(s);
            true_colours.extend(c);
        }
        if true_shapes.is_empty() {
            skipped += 1;
            continue;
        }
        images += 1;
        let (named_shapes, named_colours) = named(candidate);
        shapes.add(&named_shapes, &true_shapes);
        colours.add(&named_colours, &true_colours);
    }
    MentionScores {
        images,
        skipped,
        object_accuracy: ratio(shapes.exact, images),
        colour_accuracy: ratio(colours.exact, images),
        object_recall: ratio(shapes.matched, shapes.truth),
        object_precision: ratio(shapes.matched, shapes.named),
        colour_recall: ratio(colours.matched, colours.truth),
        colour_precision: ratio(colours.matched, colours.named),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(r: &[&str]) -> Vec<String> {
        r.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn tokens_plurals_and_case() {
        let (s, c) = named("Two RED Circles, a blue-square; crosses!");
        assert_eq!(
            s,
            BTreeSet::from([Shape::Circle, Shape::Square, Shape::Cross])
        );
        assert_eq!(c, BTreeSet::from([Colour::Red, Colour::Blue]));
        // Substrings are not words.
        let (s, c) = named("reddish circular starlike squares2");
        assert!(s.is_empty() && c.is_empty());
    }

    #[test]
    fn handmade_corpus() {
        let candidates = [
            // Exact on both.
            "a red circle and a blue square",
            // One shape of two, one wrong colour: shapes {circle} vs {circle, star},
            // colours {green} vs {red, yellow}.
            "a green circle",
            // Extra shape, colours exact: {triangle, heart} vs {triangle}.
            "two yellow triangles next to a yellow heart",
            // References name no shape: skipped.
            "a red circle",
        ];
        let references = vec![
            refs(&[
                "a red circle left of a blue square",
                "a blue square and a red circle",
            ]),
            refs(&["a red circle", "a yellow star above a red circle"]),
            refs(&["two yellow triangles", "a pair of Yellow Triangles"]),
            refs(&["a man riding a red bike"]),
        ];
        let m = mention_scores(&candidates, &references);
        assert_eq!(m.images, 3);
        assert_eq!(m.skipped, 1);
        // Shapes: exact 1 of 3; matched 2 + 1 + 1 = 4; true 2 + 2 + 1 = 5; named 2 + 1 + 2 = 5.
        assert_eq!(m.object_accuracy, 1.0 / 3.0);
        assert_eq!(m.object_recall, 4.0 / 5.0);
        assert_eq!(m.object_precision, 4.0 / 5.0);
        // Colours: exact 2 of 3; matched 2 + 0 + 1 = 3; true 2 + 2 + 1 = 5; named 2 + 1 + 1 = 4.
        assert_eq!(m.colour_accuracy, 2.0 / 3.0);
        assert_eq!(m.colour_recall, 3.0 / 5.0);
        assert_eq!(m.colour_precision, 3.0 / 4.0);
    }

    #[test]
    fn empty_candidates_and_nothing_scored_stay_finite() {
        let m = mention_scores(&["", "nothing at all"], &[refs(&["a red star"]), refs(&[])]);
        assert_eq!(m.images, 1);
        assert_eq!(m.skipped, 1);
        assert_eq!(m.object_accuracy, 0.0);
        assert_eq!(m.object_recall, 0.0);
        // Nothing named: precision's denominator is 0.
        assert_eq!(m.object_precision, 0.0);
        assert_eq!(m.colour_precision, 0.0);

        let none = mention_scores(&[], &[]);
        assert_eq!(none.images, 0);
        assert_eq!(none.skipped, 0);
        let v = serde_json::to_value(&none).unwrap();
        for k in [
            "object_accuracy",
            "colour_accuracy",
            "object_recall",
            "object_precision",
            "colour_recall",
            "colour_precision",
        ] {
            assert_eq!(v[k], serde_json::json!(0.0), "{k}");
        }
    }
}
