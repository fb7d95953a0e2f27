//! Which examples a training run learns from and which it validates on.
//!
//! Rows whose split is `val` validate, `test` rows are never seen, and when no row is
//! `val` a seeded share of the rest validates. Shared by every training loop so that
//! the caption model and the audio generator of one dataset hold out the same rows.

use capstream::datasets::triplets::splits;
use capstream::train::rng::SplitMix64;

/// Indices of training and validation rows, each ascending.
pub fn split_indices(
    row_splits: &[Option<&str>],
    val_fraction: f64,
    seed: u64,
) -> (Vec<usize>, Vec<usize>) {
    let is = |i: usize, s: &str| row_splits[i] == Some(s);
    let mut train: Vec<usize> = (0..row_splits.len())
        .filter(|&i| !is(i, splits::VAL) && !is(i, splits::TEST))
        .collect();
    let mut val: Vec<usize> = (0..row_splits.len())
        .filter(|&i| is(i, splits::VAL))
        .collect();
    if val.is_empty() && val_fraction > 0.0 && train.len() > 1 {
        let n = ((train.len() as f64 * val_fraction).round() as usize).clamp(1, train.len() - 1);
        SplitMix64::new(seed, u64::MAX).shuffle(&mut train);
        val = train.split_off(train.len() - n);
        train.sort_unstable();
        val.sort_unstable();
    }
    (train, val)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn val_rows_validate_test_rows_are_left_out() {
        let s = [
            Some("train"),
            Some("val"),
            Some("test"),
            None,
            Some("train"),
        ];
        assert_eq!(split_indices(&s, 0.5, 0), (vec![0, 3, 4], vec![1]));
    }

    #[test]
    fn without_val_rows_a_seeded_share_validates() {
        let s = vec![Some("train"); 10];
        let (a, b) = split_indices(&s, 0.2, 7);
        assert_eq!((a.len(), b.len()), (8, 2));
        assert_eq!(split_indices(&s, 0.2, 7), (a, b));
    }
}
