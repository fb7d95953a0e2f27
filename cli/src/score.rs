//! `capstream score`: caption metrics of candidates against references (COCO protocol:
//! pycocoevalcap BLEU-1..4, ROUGE-L, CIDEr-D; NLTK METEOR), or of a run folder.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use arrow::array::{Array, ListArray, StringArray};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use clap::Args;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::json;

use capstream::metrics::caption::corpus::{score_corpus, CaptionItem};
use capstream::metrics::caption::meteor::Meteor;
use capstream::metrics::caption::wordnet::WordNet;
use capstream::schema::{references_type, string_list};
use capstream::stages::score::{write_run_metrics, METRICS_FILE};

#[derive(Debug, Args)]
pub struct ScoreArgs {
    /// Candidates: JSONL lines `{"id", "caption"}`, or Parquet with `id` and `caption`.
    #[arg(long, requires = "references", conflicts_with = "run")]
    candidates: Option<PathBuf>,
    /// References: JSONL lines `{"id", "references": [...]}`, or Parquet with `id` and
    /// `references` (or `captions`, the triplet layout).
    #[arg(long, requires = "candidates")]
    references: Option<PathBuf>,
    /// Score a pipeline run folder instead (its `caption` and `references` columns);
    /// writes RUN/metrics.json.
    #[arg(long)]
    run: Option<PathBuf>,
    /// Skip METEOR (no WordNet needed).
    #[arg(long)]
    no_meteor: bool,
    /// WordNet 3.0 dict folder (default /usr/share/wordnet, or $WNSEARCHDIR).
    #[arg(long)]
    wordnet: Option<PathBuf>,
    /// Print the whole result as one JSON document (corpus and per item).
    #[arg(long)]
    json: bool,
}

fn meteor(args: &ScoreArgs) -> Result<Option<Meteor>> {
    if args.no_meteor {
        return Ok(None);
    }
    let wn = match &args.wordnet {
        Some(d) => WordNet::open(d)?,
        None => WordNet::open_default()?,
    };
    Ok(Some(Meteor::new(wn)))
}

fn is_parquet(p: &Path) -> bool {
    p.extension().and_then(|e| e.to_str()) == Some("parquet")
}

/// `(id, values)` rows of a JSONL or Parquet file; `field` is a string (candidates) or
/// a list of strings (references). Duplicate ids are an error naming the id.
fn read_rows(path: &Path, fields: &[&str], list: bool) -> Result<Vec<(String, Vec<String>)>> {
    let mut rows = Vec::new();
    if is_parquet(path) {
        let file =
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        for batch in ParquetRecordBatchReaderBuilder::try_new(file)?.build()? {
            let b = batch?;
            let ids = b
                .column_by_name("id")
                .with_context(|| format!("{}: no id column", path.display()))?;
            let ids = cast(ids, &DataType::Utf8)?;
            let ids = ids
                .as_any()
                .downcast_ref::<StringArray>()
                .context("id as strings")?;
            let col = fields
                .iter()
                .find_map(|f| b.column_by_name(f))
                .with_context(|| {
                    format!("{}: no {} column", path.display(), fields.join(" or "))
                })?;
            if list {
                let col = cast(col, &references_type())?;
                let col = col
                    .as_any()
                    .downcast_ref::<ListArray>()
                    .context("list of strings")?;
                for i in 0..b.num_rows() {
                    let v = string_list(col, i);
                    rows.push((ids.value(i).to_string(), v));
                }
            } else {
                let col = cast(col, &DataType::Utf8)?;
                let col = col
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .context("strings")?;
                for i in 0..b.num_rows() {
                    let v = if col.is_valid(i) {
                        vec![col.value(i).to_string()]
                    } else {
                        vec![]
                    };
                    rows.push((ids.value(i).to_string(), v));
                }
            }
        }
    } else {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let v: serde_json::Value = serde_json::from_str(line)
                .with_context(|| format!("{}:{}: not JSON", path.display(), n + 1))?;
            let id = match &v["id"] {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(x) => x.to_string(),
                _ => bail!("{}:{}: no \"id\"", path.display(), n + 1),
            };
            let field = fields
                .iter()
                .find(|f| !v[**f].is_null())
                .with_context(|| format!("{}:{}: no {:?}", path.display(), n + 1, fields))?;
            let values = if list {
                v[*field]
                    .as_array()
                    .with_context(|| {
                        format!("{}:{}: {field} must be a list", path.display(), n + 1)
                    })?
                    .iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            } else {
                vec![v[*field]
                    .as_str()
                    .with_context(|| {
                        format!("{}:{}: {field} must be a string", path.display(), n + 1)
                    })?
                    .to_string()]
            };
            rows.push((id, values));
        }
    }
    let mut seen = HashSet::new();
    for (id, _) in &rows {
        if !seen.insert(id.as_str()) {
            bail!("{}: id {id:?} appears more than once", path.display());
        }
    }
    Ok(rows)
}

pub fn run(args: ScoreArgs) -> Result<ExitCode> {
    super::init_logging("warn");
    let meteor = meteor(&args)?;
    if let Some(dir) = &args.run {
        let m = write_run_metrics(dir, meteor.as_ref())?;
        if args.json {
            println!("{m}");
        } else {
            println!(
                "{}: {} items scored",
                dir.join(METRICS_FILE).display(),
                m["items_scored"]
            );
            if let Some(c) = m["corpus"].as_object() {
                for (k, v) in c {
                    println!("  {k}: {v}");
                }
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let (Some(cpath), Some(rpath)) = (&args.candidates, &args.references) else {
        bail!("give --candidates and --references, or --run DIR");
    };
    let cands = read_rows(cpath, &["caption"], false)?;
    let refs: HashMap<String, Vec<String>> = read_rows(rpath, &["references", "captions"], true)?
        .into_iter()
        .collect();
    let mut items = Vec::new();
    let (mut no_refs, mut empty) = (Vec::new(), 0usize);
    let mut matched = HashSet::new();
    for (id, c) in cands {
        match refs
            .get(&id)
            .filter(|r| r.iter().any(|x| !x.trim().is_empty()))
        {
            Some(r) => {
                matched.insert(id.clone());
                let candidate = c.into_iter().next().unwrap_or_default();
                if candidate.trim().is_empty() {
                    empty += 1;
                }
                items.push(CaptionItem {
                    id,
                    candidate,
                    references: r.iter().filter(|x| !x.trim().is_empty()).cloned().collect(),
                });
            }
            None => no_refs.push(id),
        }
    }
    let mut unused: Vec<&String> = refs.keys().filter(|k| !matched.contains(*k)).collect();
    unused.sort();
    if items.is_empty() {
        bail!(
            "no candidate id has references ({} candidates without references)",
            no_refs.len()
        );
    }
    if !no_refs.is_empty() {
        eprintln!(
            "warning: {} candidate(s) have no references and are not scored (first: {})",
            no_refs.len(),
            no_refs[0]
        );
    }
    if !unused.is_empty() {
        eprintln!(
            "warning: {} reference id(s) have no candidate (first: {})",
            unused.len(),
            unused[0]
        );
    }
    if empty > 0 {
        eprintln!("warning: {empty} empty candidate caption(s), scored as empty");
    }
    let (corpus, per_item) = score_corpus(&items, meteor.as_ref()).map_err(anyhow::Error::msg)?;
    let out = json!({
        "corpus": corpus,
        "per_item": per_item,
        "items": items.len(),
        "candidates_without_references": no_refs,
        "references_without_candidates": unused,
        "empty_candidates": empty,
        "notes": capstream::stages::score::NOTES,
    });
    if args.json {
        println!("{out}");
    } else {
        for (k, v) in out["corpus"].as_object().into_iter().flatten() {
            println!("{k}: {v}");
        }
        println!("items: {}", items.len());
        println!("note: {}", capstream::stages::score::NOTES[0]);
    }
    Ok(ExitCode::SUCCESS)
}
