//! Stratified train/val/test splits of a triplet file (`capstream dataset split`).
//!
//! This module owns choosing each row's `split` from a stratification key. Rows are
//! grouped by key; within each group a seeded shuffle picks `round(test × n)` test rows
//! and `round(val × n)` validation rows, so every class is within one row of its target
//! proportion. The shuffle of a class depends only on `(seed, key)`, not on the other
//! classes, so adding a class does not reshuffle the others.
//!
//! The key of a row is the value of a Utf8 column of the file when it has one of that
//! name (`id`, `split` or a column another tool added; null is the empty key), or one of
//! the derived keys for synthetic data: `shape` (the first shape word of the first
//! caption) and `colour` (its first colour word).

use std::collections::BTreeMap;
use std::path::Path;

use arrow::array::{Array, StringArray};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;

use crate::datasets::synth::{Colour, Shape};
use crate::datasets::triplets::splits;
use crate::datasets::{read_triplets, write_triplets, Triplet};
use crate::error::{Error, Result};
use crate::train::SplitMix64;

/// Split fractions and seed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SplitOptions {
    /// Fraction of each class that goes to `test`.
    pub test: f64,
    /// Fraction of each class that goes to `val`.
    pub val: f64,
    /// Shuffle seed.
    pub seed: u64,
}

/// Rows per split of one class.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClassCounts {
    /// Training rows.
    pub train: usize,
    /// Validation rows.
    pub val: usize,
    /// Test rows.
    pub test: usize,
}

/// FNV-1a: a stable hash of the key, so a class's stream does not depend on the platform.
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The split name of each row, stratified by `keys` (one per row), and the counts per
/// class.
pub fn stratify(
    keys: &[String],
    opts: &SplitOptions,
) -> Result<(Vec<&'static str>, BTreeMap<String, ClassCounts>)> {
    let ok = |f: f64| (0.0..=1.0).contains(&f);
    if !ok(opts.test) || !ok(opts.val) || opts.test + opts.val > 1.0 {
        return Err(Error::Config(
            "split: --test and --val must be in 0..1 and sum to at most 1".into(),
        ));
    }
    let mut classes: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, k) in keys.iter().enumerate() {
        classes.entry(k.as_str()).or_default().push(i);
    }
    let mut out = vec![splits::TRAIN; keys.len()];
    let mut counts = BTreeMap::new();
    for (key, mut rows) in classes {
        let n = rows.len();
        SplitMix64::new(opts.seed, fnv(key)).shuffle(&mut rows);
        let n_test = (opts.test * n as f64).round() as usize;
        let n_val = ((opts.val * n as f64).round() as usize).min(n - n_test.min(n));
        let n_test = n_test.min(n);
        for (j, &r) in rows.iter().enumerate() {
            out[r] = if j < n_test {
                splits::TEST
            } else if j < n_test + n_val {
                splits::VAL
            } else {
                splits::TRAIN
            };
        }
        counts.insert(
            key.to_string(),
            ClassCounts {
                train: n - n_test - n_val,
                val: n_val,
                test: n_test,
            },
        );
    }
    Ok((out, counts))
}

/// The derived key `shape` or `colour` of a row: the first such word of its first
/// caption, or the empty key.
pub fn derived_key(t: &Triplet, by: &str) -> Option<String> {
    let words: Vec<&str> = match by {
        "shape" => Shape::ALL
            .iter()
            .flat_map(|s| [s.word(), s.plural()])
            .collect(),
        "colour" | "color" => Colour::ALL.iter().map(|c| c.word()).collect(),
        _ => return None,
    };
    let first = t.captions.first().map(String::as_str).unwrap_or("");
    let key = first
        .split(|c: char| !c.is_alphanumeric())
        .find(|w| words.contains(w))
        .unwrap_or("");
    // Plurals count as their shape.
    let key = Shape::ALL
        .iter()
        .find(|s| s.plural() == key)
        .map_or(key, |s| s.word());
    Some(key.to_string())
}

/// The values of a Utf8 column of a Parquet file, or `None` when it has no such column.
fn column_values(path: &Path, column: &str) -> Result<Option<Vec<String>>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)?;
    let Some(idx) = builder
        .schema()
        .fields()
        .iter()
        .position(|f| f.name() == column)
    else {
        return Ok(None);
    };
    let mask = ProjectionMask::roots(builder.parquet_schema(), [idx]);
    let reader = builder.with_projection(mask).build()?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch?;
        let col = cast(batch.column(0), &DataType::Utf8).map_err(|e| Error::Pipeline {
            path: path.to_path_buf(),
            message: format!("column {column:?} is not text: {e}"),
        })?;
        let col = col
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| Error::Config(format!("column {column:?} is not text")))?;
        out.extend((0..col.len()).map(|i| {
            if col.is_valid(i) {
                col.value(i).to_string()
            } else {
                String::new()
            }
        }));
    }
    Ok(Some(out))
}

/// Reads `input`, assigns `split` stratified by `by`, writes `output` (the triplet
/// layout; other columns are not kept). Returns the counts per class.
pub fn split_file(
    input: &Path,
    output: &Path,
    by: &str,
    opts: &SplitOptions,
) -> Result<BTreeMap<String, ClassCounts>> {
    let mut rows = read_triplets(input)?;
    let keys = match column_values(input, by)? {
        Some(k) => k,
        None => rows
            .iter()
            .map(|t| derived_key(t, by))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                Error::Config(format!(
                    "split: {} has no column {by:?}, and it is not a derived key \
                     (shape, colour)",
                    input.display()
                ))
            })?,
    };
    if keys.len() != rows.len() {
        return Err(Error::Config(format!(
            "split: column {by:?} has {} values for {} rows",
            keys.len(),
            rows.len()
        )));
    }
    let (assigned, counts) = stratify(&keys, opts)?;
    for (t, s) in rows.iter_mut().zip(assigned) {
        t.split = Some(s.to_string());
    }
    write_triplets(output, &rows)?;
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_within_one_row_and_seeded() {
        let keys: Vec<String> = (0..103).map(|i| format!("k{}", i % 7)).collect();
        let opts = SplitOptions {
            test: 0.1,
            val: 0.2,
            seed: 3,
        };
        let (a, counts) = stratify(&keys, &opts).unwrap();
        for (k, c) in &counts {
            let n = (c.train + c.val + c.test) as f64;
            assert!((c.test as f64 - 0.1 * n).abs() <= 1.0, "{k}: {c:?}");
            assert!((c.val as f64 - 0.2 * n).abs() <= 1.0, "{k}: {c:?}");
        }
        assert_eq!(stratify(&keys, &opts).unwrap().0, a);
        let other = SplitOptions { seed: 4, ..opts };
        assert_ne!(stratify(&keys, &other).unwrap().0, a);
    }
}
