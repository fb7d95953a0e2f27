//! Dynamic time warping of two feature sequences.
//!
//! Used to align an utterance with the concatenation of its words spoken one by one
//! (`train::audio`'s durations): the classic symmetric DTW (steps (1,0), (0,1), (1,1),
//! each costing the Euclidean distance of the frames it lands on), which is monotone
//! and covers both sequences end to end. O(n·m) time and memory; the sequences it
//! serves are a few hundred frames.

/// For every frame of `a` (`n` frames of `dim` values, frame-major), the frame of `b`
/// (`m` frames) the optimal warping path first matches it with. Non-decreasing, starts
/// at 0 and ends at `m − 1`. Empty when either sequence is.
pub fn dtw_match(a: &[f32], b: &[f32], dim: usize) -> Vec<usize> {
    if dim == 0 {
        return Vec::new();
    }
    let (n, m) = (a.len() / dim, b.len() / dim);
    if n == 0 || m == 0 {
        return Vec::new();
    }
    let dist = |i: usize, j: usize| -> f64 {
        a[i * dim..(i + 1) * dim]
            .iter()
            .zip(&b[j * dim..(j + 1) * dim])
            .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
            .sum::<f64>()
            .sqrt()
    };
    let mut cost = vec![f64::INFINITY; n * m];
    for i in 0..n {
        for j in 0..m {
            let best = match (i, j) {
                (0, 0) => 0.0,
                (0, _) => cost[j - 1],
                (_, 0) => cost[(i - 1) * m],
                _ => cost[(i - 1) * m + j - 1]
                    .min(cost[(i - 1) * m + j])
                    .min(cost[i * m + j - 1]),
            };
            cost[i * m + j] = best + dist(i, j);
        }
    }
    // Walk back from the end, preferring the diagonal on ties.
    let mut matched = vec![0usize; n];
    let (mut i, mut j) = (n - 1, m - 1);
    loop {
        matched[i] = j;
        if i == 0 && j == 0 {
            break;
        }
        if i == 0 {
            j -= 1;
        } else if j == 0 {
            i -= 1;
        } else {
            let diag = cost[(i - 1) * m + j - 1];
            let up = cost[(i - 1) * m + j];
            let left = cost[i * m + j - 1];
            if diag <= up && diag <= left {
                i -= 1;
                j -= 1;
            } else if up <= left {
                i -= 1;
            } else {
                j -= 1;
            }
        }
    }
    matched
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stretched_copy_maps_back_to_its_source() {
        // b = [0, 1, 2, 3]; a repeats each value twice.
        let b = [0.0f32, 1.0, 2.0, 3.0];
        let a = [0.0f32, 0.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0];
        assert_eq!(dtw_match(&a, &b, 1), vec![0, 0, 1, 1, 2, 2, 3, 3]);
    }

    #[test]
    fn a_compressed_copy_skips_frames_and_stays_monotone() {
        let b = [0.0f32, 0.0, 5.0, 5.0, 9.0, 9.0];
        let a = [0.0f32, 5.0, 9.0];
        let m = dtw_match(&a, &b, 1);
        assert_eq!(m.len(), 3);
        assert_eq!(m[0], 0);
        assert!(m.windows(2).all(|w| w[0] <= w[1]), "{m:?}");
        assert_eq!(b[m[1]], 5.0);
        assert_eq!(m[2], 4, "the first frame of the last value");
    }

    #[test]
    fn empty_inputs_give_no_path() {
        assert!(dtw_match(&[], &[1.0], 1).is_empty());
        assert!(dtw_match(&[1.0], &[], 1).is_empty());
        assert!(dtw_match(&[1.0], &[1.0], 0).is_empty());
    }
}
