//! `[sink] columns`: which of the pipeline's output columns a sink writes.
//!
//! A backfill wants results, not the pixels and spectrograms the stages passed each
//! other: at 384 px the decoded image alone is 442 KB a row. This module turns the
//! setting into the schema a sink writes and projects batches onto it; it knows column
//! names only through [`crate::schema`].

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::schema::{columns, results_of};

/// What `columns` says: `"results"` (the default), `"all"`, or exact column names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Spelled")]
pub enum Columns {
    /// Everything but [`crate::schema::INTERMEDIATE_COLUMNS`].
    #[default]
    Results,
    /// Every column the last stage emits.
    All,
    /// These columns, in this order.
    Exact(Vec<String>),
}

/// The two ways a pipeline file can write the key.
#[derive(Deserialize)]
#[serde(untagged)]
enum Spelled {
    One(String),
    Many(Vec<String>),
}

impl TryFrom<Spelled> for Columns {
    type Error = String;

    fn try_from(s: Spelled) -> std::result::Result<Columns, String> {
        match s {
            Spelled::One(p) if p == "results" => Ok(Columns::Results),
            Spelled::One(p) if p == "all" => Ok(Columns::All),
            Spelled::One(p) => Err(format!(
                "expected \"results\", \"all\" or a list of column names, not {p:?}"
            )),
            Spelled::Many(names) => Ok(Columns::Exact(names)),
        }
    }
}

/// Columns a list must name: without them a row cannot be resumed, deduplicated or
/// told ok from failed.
const REQUIRED: [&str; 2] = [columns::ID, columns::STATUS];

impl Columns {
    /// The schema a sink writes, given the pipeline's output schema; names the first
    /// problem with a list.
    pub fn select(&self, full: &Schema) -> Result<SchemaRef> {
        let bad = |m: String| Error::Config(format!("[sink] columns: {m}"));
        match self {
            Columns::All => Ok(std::sync::Arc::new(full.clone())),
            Columns::Results => Ok(results_of(full)),
            Columns::Exact(names) => {
                let mut fields = Vec::with_capacity(names.len());
                for (k, name) in names.iter().enumerate() {
                    if names[..k].contains(name) {
                        return Err(bad(format!("{name:?} is listed twice")));
                    }
                    let f = full.field_with_name(name).map_err(|_| {
                        let have: Vec<&str> =
                            full.fields().iter().map(|f| f.name().as_str()).collect();
                        bad(format!(
                            "the pipeline has no column {name:?}; it has {}",
                            have.join(", ")
                        ))
                    })?;
                    fields.push(f.clone());
                }
                for need in REQUIRED {
                    if !names.iter().any(|n| n == need) {
                        return Err(bad(format!("a list must name {need:?}")));
                    }
                }
                Ok(std::sync::Arc::new(Schema::new_with_metadata(
                    fields,
                    full.metadata().clone(),
                )))
            }
        }
    }
}

/// `batch` reduced to the columns of `schema`, by name; a batch already in `schema`
/// is returned as it is.
pub fn project(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    if batch.schema().fields() == schema.fields() {
        return Ok(batch.clone());
    }
    let cols = schema
        .fields()
        .iter()
        .map(|f| {
            batch.column_by_name(f.name()).cloned().ok_or_else(|| {
                Error::Runtime(format!(
                    "the sink writes column {:?}, which its input lacks",
                    f.name()
                ))
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(schema.clone(), cols)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{Edge, INTERMEDIATE_COLUMNS};

    #[derive(Deserialize)]
    struct T {
        #[serde(default)]
        columns: Columns,
    }

    fn parse(s: &str) -> std::result::Result<Columns, String> {
        toml::from_str::<T>(s)
            .map(|t| t.columns)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn results_is_the_default_and_drops_exactly_the_intermediates() {
        assert_eq!(parse("").unwrap(), Columns::Results);
        let full = Edge::Scored.schema();
        let kept = Columns::Results.select(&full).unwrap();
        let present = INTERMEDIATE_COLUMNS
            .iter()
            .filter(|c| full.field_with_name(c).is_ok())
            .count();
        assert_eq!(
            present,
            INTERMEDIATE_COLUMNS.len() - 1,
            "all but the source's image"
        );
        assert_eq!(kept.fields().len(), full.fields().len() - present);
        for f in full.fields() {
            let dropped = INTERMEDIATE_COLUMNS.contains(&f.name().as_str());
            assert_eq!(
                kept.field_with_name(f.name()).is_err(),
                dropped,
                "{}",
                f.name()
            );
        }
        assert_eq!(*Columns::All.select(&full).unwrap(), *full);
    }

    #[test]
    fn a_list_is_exact_and_its_mistakes_are_named() {
        let c = parse(r#"columns = ["id", "status", "caption"]"#).unwrap();
        let s = c.select(&Edge::Scored.schema()).unwrap();
        let names: Vec<&str> = s.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["id", "status", "caption"]);
        let e = parse(r#"columns = "some""#).unwrap_err();
        assert!(e.contains("expected \"results\", \"all\""), "{e}");
        for (list, want) in [
            (r#"["id", "status", "captoin"]"#, "no column \"captoin\""),
            (r#"["id", "caption"]"#, "must name \"status\""),
            (r#"["id", "status", "id"]"#, "\"id\" is listed twice"),
        ] {
            let e = parse(&format!("columns = {list}"))
                .unwrap()
                .select(&Edge::Scored.schema())
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{list}: {e}");
        }
    }
}
