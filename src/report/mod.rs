//! `capstream report`: one self-contained HTML file from a run folder.
//!
//! A run folder is a pipeline's output (`part-*.parquet`, `metrics.json`) and/or a
//! training folder (`train_log.jsonl`, also looked for one level down). The report has a
//! metrics dashboard, a sortable image/caption grid with per-image scores, audio players
//! with waveform and log-mel plots for sample rows (reference against generated), and
//! training curves. Everything is inline (SVG, PNG and WAV as data URIs), so the file can
//! be mailed or archived alone. This module reads files and writes HTML; it computes no
//! metric of its own beyond the log-mels it plots.

mod html;
pub mod plots;
mod rows;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

pub use rows::{read_run, RunRow, MEDIA_COLUMNS};

use crate::dsp::mel::{melspectrogram, power_to_db, DbRef, MelParams};
use crate::dsp::resample::{resample, Quality};
use crate::dsp::wav::read_wav;
use crate::error::{Error, Result};
use html::{escape, PAGE_END, PAGE_START};
use plots::{heatmap_png, line_chart, png_data_uri, wav_data_uri, waveform_series, Series};

/// What goes into the report.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// Rows shown in the grid (the rest are counted, not shown).
    pub grid_rows: usize,
    /// Rows with audio players and waveform/log-mel plots.
    pub audio_rows: usize,
    /// Side of the thumbnails, pixels.
    pub thumbnail: u32,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            grid_rows: 500,
            audio_rows: 6,
            thumbnail: 96,
        }
    }
}

/// The sample rate plots and players resample to.
const PLOT_SR: u32 = 16000;

/// Training logs in `dir` or one level below.
fn training_logs(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let direct = dir.join("train_log.jsonl");
    if direct.is_file() {
        out.push(direct);
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        let mut subs: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path().join("train_log.jsonl")))
            .filter(|p| p.is_file())
            .collect();
        subs.sort();
        out.extend(subs);
    }
    out
}

/// Builds the HTML report of `dir`.
pub fn build_report(dir: &Path, opts: &ReportOptions) -> Result<String> {
    if !dir.is_dir() {
        return Err(Error::io(
            dir,
            std::io::Error::new(std::io::ErrorKind::NotFound, "not a folder"),
        ));
    }
    let rows = read_run(dir, opts.grid_rows.max(opts.audio_rows))?;
    let metrics_path = dir.join("metrics.json");
    let metrics: Option<serde_json::Value> = if metrics_path.is_file() {
        let text =
            std::fs::read_to_string(&metrics_path).map_err(|e| Error::io(&metrics_path, e))?;
        Some(serde_json::from_str(&text)?)
    } else {
        None
    };
    let logs = training_logs(dir);
    if rows.is_empty() && logs.is_empty() && metrics.is_none() {
        return Err(Error::Config(format!(
            "{}: no part-*.parquet, metrics.json or train_log.jsonl to report on",
            dir.display()
        )));
    }

    let mut body = String::new();
    let title = format!("capstream report: {}", dir.display());
    let _ = write!(body, "<h1>{}</h1>", escape(&title));
    summary(&mut body, &rows, metrics.as_ref());
    for log in &logs {
        training_section(&mut body, log)?;
    }
    if !rows.is_empty() {
        audio_section(&mut body, &rows, opts)?;
        grid_section(&mut body, &rows, metrics.as_ref(), opts)?;
    }
    Ok(format!(
        "{}{}{}",
        PAGE_START.replace("{title}", &escape(&title)),
        body,
        PAGE_END
    ))
}

fn card(body: &mut String, label: &str, value: &str) {
    let _ = write!(
        body,
        "<div class=card><div class=v>{}</div><div class=l>{}</div></div>",
        escape(value),
        escape(label)
    );
}

fn fmt(v: f64) -> String {
    if !v.is_finite() {
        "–".into()
    } else if v.abs() >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.4}")
    }
}

fn summary(body: &mut String, rows: &[RunRow], metrics: Option<&serde_json::Value>) {
    body.push_str("<h2>Summary</h2><div class=cards>");
    let total = rows.len();
    let ok = rows.iter().filter(|r| r.status == "ok").count();
    card(body, "rows", &total.to_string());
    card(body, "ok", &ok.to_string());
    card(body, "errors", &(total - ok).to_string());
    let with_refs = rows.iter().filter(|r| !r.references.is_empty()).count();
    card(body, "rows with references", &with_refs.to_string());
    body.push_str("</div>");
    if let Some(corpus) = metrics
        .and_then(|m| m.get("corpus"))
        .and_then(|c| c.as_object())
    {
        body.push_str("<h2>Caption metrics (corpus)</h2><div class=cards>");
        for (k, v) in corpus {
            if let Some(x) = v.as_f64() {
                card(body, k, &fmt(x));
            }
        }
        body.push_str("</div>");
        if let Some(note) = metrics
            .and_then(|m| m.get("notes"))
            .and_then(|n| n.as_array())
        {
            for n in note.iter().filter_map(|n| n.as_str()) {
                let _ = write!(body, "<p class=note>{}</p>", escape(n));
            }
        }
    }
    if let Some(audio) = metrics
        .and_then(|m| m.get("audio"))
        .and_then(|c| c.as_object())
    {
        body.push_str("<h2>Audio metrics (mean over scored rows)</h2><div class=cards>");
        for (k, v) in audio {
            if let Some(x) = v.as_f64() {
                card(body, k, &fmt(x));
            }
        }
        body.push_str("</div>");
    }
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.status != "ok") {
        *kinds
            .entry(r.error_kind.as_deref().unwrap_or("unknown"))
            .or_default() += 1;
    }
    if !kinds.is_empty() {
        body.push_str(
            "<h3>Errors by kind</h3><table class=small><tr><th>error_kind</th><th>rows</th></tr>",
        );
        for (k, n) in kinds {
            let _ = write!(body, "<tr><td>{}</td><td>{n}</td></tr>", escape(k));
        }
        body.push_str("</table>");
    }
}

fn training_section(body: &mut String, log: &Path) -> Result<()> {
    let text = std::fs::read_to_string(log).map_err(|e| Error::io(log, e))?;
    let records: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let _ = write!(
        body,
        "<h2>Training: {}</h2>",
        escape(&log.display().to_string())
    );
    let steps: Vec<&serde_json::Value> = records.iter().filter(|r| r["event"] == "step").collect();
    let epochs: Vec<&serde_json::Value> =
        records.iter().filter(|r| r["event"] == "epoch").collect();
    let series_of = |recs: &[&serde_json::Value], x: &str, key: &str| Series {
        name: key.to_string(),
        points: recs
            .iter()
            .filter_map(|r| Some((r[x].as_f64()?, r[key].as_f64()?)))
            .collect(),
    };
    let keys = |recs: &[&serde_json::Value], skip: &[&str]| -> Vec<String> {
        let mut k: Vec<String> = recs
            .iter()
            .flat_map(|r| r.as_object().into_iter().flat_map(|o| o.keys().cloned()))
            .filter(|k| !skip.contains(&k.as_str()))
            .collect();
        k.sort();
        k.dedup();
        k
    };
    body.push_str("<div class=plots>");
    for key in keys(&steps, &["event", "epoch", "step", "lr"]) {
        let s = series_of(&steps, "step", &key);
        if !s.points.is_empty() {
            body.push_str(&line_chart(&key, "step", "loss", &[s], (560, 300))?);
        }
    }
    let timing = [
        "event",
        "epoch",
        "step",
        "seconds",
        "train_seconds",
        "val_seconds",
        "val_captioned",
    ];
    for key in keys(&epochs, &timing) {
        let s = series_of(&epochs, "epoch", &key);
        if !s.points.is_empty() {
            body.push_str(&line_chart(&key, "epoch", "", &[s], (360, 240))?);
        }
    }
    body.push_str("</div>");
    Ok(())
}

/// Mono samples at [`PLOT_SR`] from WAV bytes.
fn samples(wav: &[u8]) -> Option<Vec<f32>> {
    let a = read_wav(wav, 600.0).ok()?;
    let y = a.mono();
    if a.sample_rate == PLOT_SR {
        return Some(y);
    }
    resample(&[y], a.sample_rate, PLOT_SR, Quality::Fast)
        .ok()
        .map(|mut v| v.remove(0))
}

fn log_mel(y: &[f32]) -> (Vec<f32>, usize) {
    let p = MelParams::default_16k();
    let (mel, frames) = melspectrogram(y, &p);
    (power_to_db(&mel, DbRef::Max, 1e-10, Some(80.0)), frames)
}

fn audio_section(body: &mut String, rows: &[RunRow], opts: &ReportOptions) -> Result<()> {
    let chosen: Vec<&RunRow> = rows
        .iter()
        .filter(|r| r.speech_wav.is_some() || r.neural_wav.is_some())
        .take(opts.audio_rows)
        .collect();
    if chosen.is_empty() {
        return Ok(());
    }
    body.push_str("<h2>Audio samples</h2><p class=note>Log-mels: 16 kHz, n_fft 1024, hop 256, 80 Slaney bands, dB relative to each clip's maximum (80 dB range).</p>");
    for r in chosen {
        let _ = write!(
            body,
            "<div class=sample><h3>{}</h3><p>{}</p><div class=players>",
            escape(&r.id),
            escape(r.caption.as_deref().unwrap_or(""))
        );
        let tracks = [
            ("reference audio", r.reference_audio.as_ref()),
            ("spoken caption (eSpeak NG)", r.speech_wav.as_ref()),
            ("neural audio", r.neural_wav.as_ref()),
        ];
        for (label, wav) in tracks {
            if let Some(w) = wav {
                let _ = write!(
                    body,
                    "<figure><figcaption>{label}</figcaption><audio controls preload=none src=\"{}\"></audio></figure>",
                    wav_data_uri(w)
                );
            }
        }
        body.push_str("</div><div class=plots>");
        let mut waves = Vec::new();
        for (label, wav) in tracks {
            if let Some(y) = wav.and_then(|w| samples(w)) {
                waves.push((label, y));
            }
        }
        let series: Vec<Series> = waves
            .iter()
            .map(|(l, y)| waveform_series(l, y, PLOT_SR, 600))
            .collect();
        body.push_str(&line_chart(
            "waveform",
            "seconds",
            "amplitude",
            &series,
            (620, 260),
        )?);
        for (label, y) in &waves {
            let (mel, frames) = log_mel(y);
            if frames == 0 {
                continue;
            }
            let uri = heatmap_png(&mel, 80, frames, -80.0, 0.0, 2)?;
            let _ = write!(
                body,
                "<figure><figcaption>log-mel: {label}</figcaption><img class=mel src=\"{uri}\"></figure>"
            );
        }
        body.push_str("</div></div>");
    }
    Ok(())
}

fn grid_section(
    body: &mut String,
    rows: &[RunRow],
    metrics: Option<&serde_json::Value>,
    opts: &ReportOptions,
) -> Result<()> {
    // Per-item corpus-level scores (CIDEr-D) live in metrics.json, by id.
    let mut extra: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    if let Some(items) = metrics
        .and_then(|m| m.get("per_item"))
        .and_then(|p| p.as_array())
    {
        for it in items {
            if let (Some(id), Some(obj)) = (it["id"].as_str(), it.as_object()) {
                let scores = obj
                    .iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_f64()?)))
                    .collect();
                extra.insert(id.to_string(), scores);
            }
        }
    }
    let mut score_names: Vec<String> = rows
        .iter()
        .flat_map(|r| r.scores.keys().cloned())
        .chain(extra.values().flat_map(|m| m.keys().cloned()))
        .collect();
    score_names.sort();
    score_names.dedup();
    let shown = rows.len().min(opts.grid_rows);
    // Result-only output (`[sink] columns = "results"`) has no pixels to draw from.
    let thumbs = rows.iter().any(|r| r.thumbnail.is_some());
    let _ = write!(
        body,
        "<h2>Images and captions</h2><p class=note>{shown} of {} rows shown; click a column header to sort.{}</p>",
        rows.len(),
        if thumbs {
            ""
        } else {
            " No thumbnails: the output holds no pixels (write them with [sink] columns = \"all\")."
        }
    );
    body.push_str("<table class=grid id=grid><thead><tr>");
    if thumbs {
        body.push_str("<th>image</th>");
    }
    body.push_str("<th data-type=text>id</th><th data-type=text>status</th><th data-type=text>caption</th><th>references</th>");
    for s in &score_names {
        let _ = write!(body, "<th data-type=num>{}</th>", escape(s));
    }
    body.push_str("</tr></thead><tbody>");
    for r in rows.iter().take(shown) {
        let thumb = match &r.thumbnail {
            Some(img) => {
                let small = image::imageops::thumbnail(img, opts.thumbnail, opts.thumbnail);
                format!("<td><img src=\"{}\"></td>", png_data_uri(&small)?)
            }
            None if thumbs => "<td></td>".to_string(),
            None => String::new(),
        };
        let caption = match (&r.caption, r.status.as_str()) {
            (Some(c), _) => escape(c),
            (None, "ok") => String::new(),
            (None, _) => format!(
                "<span class=err>{}: {}</span>",
                escape(r.error_kind.as_deref().unwrap_or("error")),
                escape(r.error.as_deref().unwrap_or(""))
            ),
        };
        let refs: String = r
            .references
            .iter()
            .map(|x| format!("<li>{}</li>", escape(x)))
            .collect();
        let _ = write!(
            body,
            "<tr>{thumb}<td class=id>{}</td><td>{}</td><td>{caption}</td><td><ul>{refs}</ul></td>",
            escape(&r.id),
            escape(&r.status)
        );
        for s in &score_names {
            let v = r
                .scores
                .get(s)
                .copied()
                .or_else(|| extra.get(&r.id).and_then(|m| m.get(s)).copied());
            match v {
                Some(x) if x.is_finite() => {
                    let _ = write!(body, "<td data-v=\"{x}\">{}</td>", fmt(x));
                }
                _ => body.push_str("<td data-v=\"\"></td>"),
            }
        }
        body.push_str("</tr>");
    }
    body.push_str("</tbody></table>");
    Ok(())
}
