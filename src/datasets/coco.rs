//! COCO captions into triplets (`capstream dataset import-coco`).
//!
//! This module owns reading the two public COCO caption formats and mapping them to
//! the triplet layout; it does not decode or re-encode images (their file bytes are
//! stored as they are).
//!
//! - The captions file (`captions_train2014.json`, `captions_val2014.json`):
//!   `images[]` with `id` and `file_name`, `annotations[]` with `image_id`, `id` and
//!   `caption`. Each image becomes one row with id = the COCO image id, its captions in
//!   annotation-id order (trimmed; blank ones dropped).
//! - Optionally Karpathy's split file (`dataset_coco.json`): `images[]` with
//!   `filename`, `split` (`train`, `restval`, `val`, `test`), `cocoid` and
//!   `sentences[].raw`. It sets each row's `split` (`restval` counts as `train`, as in
//!   Karpathy's own training code) and supplies captions for images the captions file
//!   has none for. Rows it does not list keep a null split.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::datasets::triplets::splits;
use crate::datasets::Triplet;
use crate::dsp::wav::write_wav_pcm16;
use crate::error::{Error, Result};
use crate::speech::Speaker;

#[derive(Debug, Deserialize)]
struct CaptionsFile {
    images: Vec<CocoImage>,
    #[serde(default)]
    annotations: Vec<CocoAnnotation>,
}

#[derive(Debug, Deserialize)]
struct CocoImage {
    id: u64,
    file_name: String,
}

#[derive(Debug, Deserialize)]
struct CocoAnnotation {
    image_id: u64,
    #[serde(default)]
    id: u64,
    caption: String,
}

#[derive(Debug, Deserialize)]
struct KarpathyFile {
    images: Vec<KarpathyImage>,
}

#[derive(Debug, Deserialize)]
struct KarpathyImage {
    filename: String,
    split: String,
    #[serde(default)]
    cocoid: Option<u64>,
    #[serde(default)]
    sentences: Vec<KarpathySentence>,
}

#[derive(Debug, Deserialize)]
struct KarpathySentence {
    raw: String,
}

/// What to import.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Folder the captions file's `file_name`s are relative to.
    pub images: PathBuf,
    /// The COCO captions JSON.
    pub annotations: PathBuf,
    /// Karpathy's split file, if any.
    pub karpathy: Option<PathBuf>,
    /// Speak the first caption of each row into `audio`.
    pub speaker: Option<Speaker>,
    /// Skip images whose file is missing instead of failing.
    pub skip_missing: bool,
    /// Threads for speaking.
    pub threads: usize,
    /// Image files larger than this stop the import, naming the file.
    pub max_image_bytes: u64,
}

/// Default [`ImportOptions::max_image_bytes`].
pub const DEFAULT_MAX_IMAGE_BYTES: u64 = 50 << 20;

/// The largest annotations or split file read (COCO's train captions are about 90 MB).
const MAX_JSON_BYTES: u64 = 2 << 30;

/// What was imported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportSummary {
    /// Rows made.
    pub rows: usize,
    /// Images skipped because no caption was found for them.
    pub no_captions: usize,
    /// Images skipped because their file is missing (with `skip_missing`).
    pub missing: usize,
    /// Rows that got a split from the Karpathy file.
    pub with_split: usize,
}

/// At most `cap` bytes of `path`: a larger file is an error naming it, found from its
/// size and checked again while reading (it may grow, or be a device).
fn read_capped(path: &Path, cap: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let too_big = |n: u64| {
        std::io::Error::other(format!("{n} bytes or more, above the limit of {cap} bytes"))
    };
    if len > cap {
        return Err(too_big(len));
    }
    let mut out = Vec::with_capacity(len as usize);
    file.take(cap + 1).read_to_end(&mut out)?;
    if out.len() as u64 > cap {
        return Err(too_big(cap + 1));
    }
    Ok(out)
}

/// `file_name` as a path inside the images folder: relative, with no `..`, so that a
/// captions file cannot make the import read outside it.
fn inside(images: &Path, file_name: &str, annotations: &Path, id: u64) -> Result<PathBuf> {
    use std::path::Component;
    let rel = Path::new(file_name);
    let ok = !file_name.is_empty()
        && rel
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if !ok {
        return Err(Error::Pipeline {
            path: annotations.to_path_buf(),
            message: format!(
                "image {id}: file_name {file_name:?} is absolute or leaves the images folder"
            ),
        });
    }
    Ok(images.join(rel))
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let text = read_capped(path, MAX_JSON_BYTES).map_err(|e| Error::io(path, e))?;
    serde_json::from_slice(&text).map_err(|e| Error::Pipeline {
        path: path.to_path_buf(),
        message: format!("not a COCO file of the expected layout: {e}"),
    })
}

fn karpathy_split(name: &str, path: &Path) -> Result<&'static str> {
    Ok(match name {
        "train" | "restval" => splits::TRAIN,
        "val" => splits::VAL,
        "test" => splits::TEST,
        other => {
            return Err(Error::Pipeline {
                path: path.to_path_buf(),
                message: format!("unknown split {other:?} (train, restval, val, test)"),
            })
        }
    })
}

/// Reads the files and builds the rows, in the captions file's image order.
pub fn import_coco(opts: &ImportOptions) -> Result<(Vec<Triplet>, ImportSummary)> {
    let caps: CaptionsFile = read_json(&opts.annotations)?;
    // Karpathy entries by file name and by COCO id: older copies lack `cocoid`.
    let mut by_name: HashMap<String, (&'static str, Vec<String>)> = HashMap::new();
    let mut by_id: HashMap<u64, String> = HashMap::new();
    if let Some(kp) = &opts.karpathy {
        let k: KarpathyFile = read_json(kp)?;
        for im in k.images {
            let split = karpathy_split(&im.split, kp)?;
            let sentences = im.sentences.into_iter().map(|s| s.raw).collect();
            if let Some(id) = im.cocoid {
                by_id.insert(id, im.filename.clone());
            }
            by_name.insert(im.filename, (split, sentences));
        }
    }
    let mut anns: HashMap<u64, Vec<(u64, String)>> = HashMap::new();
    for a in caps.annotations {
        anns.entry(a.image_id).or_default().push((a.id, a.caption));
    }
    let mut summary = ImportSummary::default();
    let mut rows = Vec::new();
    for im in &caps.images {
        let base = Path::new(&im.file_name)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or(&im.file_name)
            .to_string();
        let kp = by_name
            .get(&base)
            .or_else(|| by_id.get(&im.id).and_then(|n| by_name.get(n)));
        let mut list = anns.remove(&im.id).unwrap_or_default();
        list.sort_by_key(|(id, _)| *id);
        let mut captions: Vec<String> = list
            .into_iter()
            .map(|(_, c)| c.trim().to_string())
            .filter(|c| !c.is_empty())
            .collect();
        if captions.is_empty() {
            if let Some((_, s)) = kp {
                captions = s
                    .iter()
                    .map(|c| c.trim().to_string())
                    .filter(|c| !c.is_empty())
                    .collect();
            }
        }
        if captions.is_empty() {
            summary.no_captions += 1;
            continue;
        }
        let path = inside(&opts.images, &im.file_name, &opts.annotations, im.id)?;
        let image = match read_capped(&path, opts.max_image_bytes) {
            Ok(b) => b,
            Err(e) if opts.skip_missing && e.kind() == std::io::ErrorKind::NotFound => {
                summary.missing += 1;
                continue;
            }
            Err(e) => return Err(Error::io(&path, e)),
        };
        let split = kp.map(|(s, _)| s.to_string());
        summary.with_split += usize::from(split.is_some());
        rows.push(Triplet {
            id: im.id.to_string(),
            image,
            captions,
            audio: None,
            split,
        });
    }
    if let Some(s) = &opts.speaker {
        speak_first_captions(&mut rows, s, opts.threads)?;
    }
    summary.rows = rows.len();
    Ok((rows, summary))
}

/// Speaks each row's first caption into its `audio` (16-bit PCM WAV), on `threads`
/// threads; each utterance is its own eSpeak NG process, so order does not matter.
pub fn speak_first_captions(rows: &mut [Triplet], speaker: &Speaker, threads: usize) -> Result<()> {
    speaker.validate()?;
    let chunk = rows.len().div_ceil(threads.max(1)).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = rows
            .chunks_mut(chunk)
            .map(|part| {
                s.spawn(move || -> Result<()> {
                    for t in part {
                        let first = t.captions.first().map(String::as_str).unwrap_or("");
                        let audio = speaker.speak(first)?;
                        t.audio = Some(write_wav_pcm16(&audio, speaker.sample_rate));
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join()
                .unwrap_or_else(|_| Err(Error::Runtime("speaking thread panicked".into())))?;
        }
        Ok(())
    })
}
