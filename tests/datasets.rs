//! `capstream dataset`: synthetic scenes, stratified splits and the COCO import.

use std::collections::{BTreeMap, HashSet};

use capstream::datasets::synth::{
    synthesize, Colour, Relation, Scene, Shape, Size, Synth, SynthOptions, NUMBERS,
};
use capstream::datasets::{read_triplets, write_triplets};
use capstream::dsp::wav::read_wav_mono;
use capstream::speech::Speaker;

use crate::util::{capstream, repo};

fn synth(count: usize, seed: u64, speak: bool) -> Vec<Synth> {
    synthesize(&SynthOptions {
        count,
        seed,
        size: 128,
        speaker: speak.then(Speaker::default),
        threads: 2,
        ..Default::default()
    })
    .unwrap()
}

fn ok(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn synth_is_deterministic_per_seed() {
    let a = synth(40, 5, false);
    let b = synthesize(&SynthOptions {
        count: 40,
        seed: 5,
        speaker: None,
        threads: 1,
        ..Default::default()
    })
    .unwrap();
    let ta: Vec<_> = a.iter().map(|r| r.triplet.clone()).collect();
    let tb: Vec<_> = b.iter().map(|r| r.triplet.clone()).collect();
    assert_eq!(ta, tb, "same seed, different thread count: same rows");
    let c = synth(40, 6, false);
    let differ = ta
        .iter()
        .zip(&c)
        .filter(|(x, y)| x.image != y.triplet.image)
        .count();
    assert!(
        differ >= 39,
        "another seed draws other scenes ({differ}/40)"
    );
    // Same seed → byte-identical Parquet.
    let dir = tempfile::tempdir().unwrap();
    let (p, q) = (dir.path().join("a.parquet"), dir.path().join("b.parquet"));
    write_triplets(&p, &ta).unwrap();
    write_triplets(&q, &tb).unwrap();
    assert_eq!(std::fs::read(&p).unwrap(), std::fs::read(&q).unwrap());
    assert_eq!(read_triplets(&p).unwrap(), ta);
}

/// Checks one caption against the scene: every colour word is followed by a drawn shape
/// of that colour, with the right number, determiner and size; every group is named;
/// spatial words hold for the drawn centres. Returns the relation words seen.
fn check_caption(scene: &Scene, caption: &str) -> Vec<String> {
    let toks: Vec<&str> = caption
        .split([' ', ',', ':'])
        .filter(|t| !t.is_empty())
        .collect();
    let colour = |t: &str| Colour::ALL.into_iter().find(|c| c.word() == t);
    let shape = |t: &str| {
        Shape::ALL.into_iter().find_map(|s| {
            (s.word() == t)
                .then_some((s, false))
                .or((s.plural() == t).then_some((s, true)))
        })
    };
    let size = |t: &str| Size::ALL.into_iter().find(|s| s.word() == t);
    let mut named = HashSet::new();
    let mut pairs: Vec<(usize, Shape, Colour)> = Vec::new();
    for (i, t) in toks.iter().enumerate() {
        if let Some((s, _)) = shape(t) {
            assert!(
                i > 0 && colour(toks[i - 1]).is_some(),
                "{caption:?}: bare {s:?}"
            );
        }
        let Some(c) = colour(t) else { continue };
        let (s, plural) = shape(toks.get(i + 1).copied().unwrap_or(""))
            .unwrap_or_else(|| panic!("{caption:?}: colour {t} without a shape"));
        let g = scene
            .groups
            .iter()
            .find(|g| g.shape == s && g.colour == c)
            .unwrap_or_else(|| panic!("{caption:?}: no {t} {s:?} drawn: {scene:?}"));
        assert_eq!(plural, g.count > 1, "{caption:?}: number of {s:?}");
        let mut j = i - 1;
        if let Some(z) = size(toks[j]) {
            assert_eq!(z, g.size, "{caption:?}: size of {s:?}");
            j -= 1;
        }
        let det = toks[j];
        if g.count == 1 {
            assert!(
                ["a", "an", "one", "the", "single"].contains(&det),
                "{caption:?}: {det}"
            );
        } else {
            assert_eq!(det, NUMBERS[g.count], "{caption:?}: count of {s:?}");
        }
        named.insert((s, c));
        pairs.push((i, s, c));
    }
    for g in &scene.groups {
        assert!(
            named.contains(&(g.shape, g.colour)),
            "{caption:?} omits {g:?}"
        );
    }
    let mut rels = Vec::new();
    for (k, t) in toks.iter().enumerate() {
        let next = toks.get(k + 1).copied().unwrap_or("");
        let word = match (*t, next) {
            ("left", "of") | ("right", "of") | ("next", "to") => *t,
            ("above", _) | ("below", _) | ("underneath", _) => *t,
            ("side", "by") => "side",
            _ => continue,
        };
        let before = pairs.iter().rev().find(|p| p.0 < k).unwrap();
        let after = if word == "side" {
            // "A and B side by side": the two pairs before.
            pairs.iter().rev().filter(|p| p.0 < k).nth(1).unwrap()
        } else {
            pairs.iter().find(|p| p.0 > k).unwrap()
        };
        let a = scene
            .single(before.1, before.2)
            .expect("relations name single objects");
        let b = scene
            .single(after.1, after.2)
            .expect("relations name single objects");
        let rel = Scene::relation(a, b);
        let (dx, dy) = (a.x - b.x, a.y - b.y);
        match word {
            "left" => assert!(
                rel == Some(Relation::LeftOf) && dx < -dy.abs(),
                "{caption:?}"
            ),
            "right" => assert!(
                rel == Some(Relation::RightOf) && dx > dy.abs(),
                "{caption:?}"
            ),
            "above" => assert!(
                rel == Some(Relation::Above) && dy < -dx.abs(),
                "{caption:?}"
            ),
            "below" | "underneath" => {
                assert!(rel == Some(Relation::Below) && dy > dx.abs(), "{caption:?}")
            }
            _ => assert!(dx.abs() > dy.abs(), "{caption:?}: side by side"),
        }
        rels.push(word.to_string());
    }
    rels
}

#[test]
fn synth_captions_name_exactly_what_was_drawn() {
    let rows = synth(300, 11, false);
    let (mut shapes, mut colours, mut sizes, mut counts, mut rels) = (
        HashSet::new(),
        HashSet::new(),
        HashSet::new(),
        HashSet::new(),
        HashSet::new(),
    );
    let mut backgrounds = HashSet::new();
    for r in &rows {
        let sc = &r.scene;
        let n: usize = sc.groups.iter().map(|g| g.count).sum();
        assert!((1..=4).contains(&n) && n == sc.objects.len());
        let caps = &r.triplet.captions;
        assert_eq!(caps.len(), 5);
        assert_eq!(caps.iter().collect::<HashSet<_>>().len(), 5, "{caps:?}");
        for c in caps {
            rels.extend(check_caption(sc, c));
        }
        // The pixel at each object's centre has the object's colour.
        let img = image::load_from_memory(&r.triplet.image).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (128, 128));
        for o in &sc.objects {
            let p = img.get_pixel(o.x as u32, o.y as u32).0;
            let want = o.colour.rgb();
            for ch in 0..3 {
                assert!(
                    (f32::from(p[ch]) - want[ch]).abs() < 40.0,
                    "{}: centre of {o:?} is {p:?}",
                    r.triplet.id
                );
            }
            shapes.insert(o.shape);
            colours.insert(o.colour);
            sizes.insert(o.size);
        }
        counts.extend(sc.groups.iter().map(|g| g.count));
        backgrounds.insert(sc.background.word());
    }
    assert_eq!(shapes.len(), 8);
    assert_eq!(colours.len(), 10);
    assert_eq!(sizes.len(), 3);
    assert_eq!(counts.len(), 4, "counts 1-4: {counts:?}");
    assert_eq!(backgrounds.len(), 5);
    for w in ["left", "right", "above", "below", "next"] {
        assert!(
            rels.contains(w),
            "no {w:?} relation in 300 scenes: {rels:?}"
        );
    }
}

#[test]
fn synth_cli_speaks_a_caption_per_image() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s.parquet");
    let o = capstream(&[
        "dataset",
        "synth",
        "--count",
        "4",
        "--seed",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    ok(&o);
    let rows = read_triplets(&out).unwrap();
    assert_eq!(rows.len(), 4);
    for r in &rows {
        assert_eq!(r.captions.len(), 5);
        assert!(r.split.is_none());
        let (sr, y) = read_wav_mono(r.audio.as_ref().unwrap(), 60.0).unwrap();
        assert_eq!(sr, 16000);
        let rms = (y.iter().map(|v| v * v).sum::<f32>() / y.len() as f32).sqrt();
        assert!(
            y.len() > 8000 && rms > 0.01,
            "{}: {} samples rms {rms}",
            r.id,
            y.len()
        );
    }
    // The library gives the same rows, so the CLI only parses arguments.
    let lib: Vec<_> = synth(4, 2, true).into_iter().map(|r| r.triplet).collect();
    assert_eq!(lib, rows);
}

#[test]
fn stratified_split_keeps_class_proportions() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.parquet"), dir.path().join("b.parquet"));
    let rows: Vec<_> = synth(120, 3, false)
        .into_iter()
        .map(|r| r.triplet)
        .collect();
    write_triplets(&a, &rows).unwrap();
    let split = |by: &str, seed: &str| {
        ok(&capstream(&[
            "dataset",
            "split",
            "--in",
            a.to_str().unwrap(),
            "--out",
            b.to_str().unwrap(),
            "--by",
            by,
            "--test",
            "0.25",
            "--val",
            "0.1",
            "--seed",
            seed,
        ]));
        read_triplets(&b).unwrap()
    };
    for by in ["shape", "colour"] {
        let out = split(by, "1");
        assert_eq!(out.len(), rows.len());
        let mut classes: BTreeMap<String, (usize, usize, usize)> = BTreeMap::new();
        for (t, orig) in out.iter().zip(&rows) {
            assert_eq!(t.id, orig.id);
            let key = capstream::datasets::split::derived_key(t, by).unwrap();
            let e = classes.entry(key).or_default();
            e.0 += 1;
            match t.split.as_deref() {
                Some("test") => e.1 += 1,
                Some("val") => e.2 += 1,
                Some("train") => {}
                s => panic!("split {s:?}"),
            }
        }
        assert!(classes.len() >= 8, "{classes:?}");
        for (k, (n, test, val)) in &classes {
            let n = *n as f64;
            assert!(
                (*test as f64 - 0.25 * n).abs() <= 1.0,
                "{by} {k}: {test}/{n}"
            );
            assert!((*val as f64 - 0.1 * n).abs() <= 1.0, "{by} {k}: {val}/{n}");
        }
    }
    // Seeded: same seed, same split; another seed, another one.
    let s1: Vec<_> = split("id", "1").into_iter().map(|t| t.split).collect();
    let s1b: Vec<_> = split("id", "1").into_iter().map(|t| t.split).collect();
    assert_eq!(s1, s1b);
    let s2: Vec<_> = split("shape", "2").into_iter().map(|t| t.split).collect();
    let s3: Vec<_> = split("shape", "3").into_iter().map(|t| t.split).collect();
    assert_ne!(s2, s3);
    let bad = capstream(&[
        "dataset",
        "split",
        "--in",
        a.to_str().unwrap(),
        "--out",
        b.to_str().unwrap(),
        "--by",
        "nosuch",
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("nosuch"));
}

#[test]
fn import_coco_fixture_round_trip() {
    let fx = repo().join("tests/fixtures/coco");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("coco.parquet");
    let run = |karpathy: bool, speak: bool| {
        let mut args = vec![
            "dataset".to_string(),
            "import-coco".into(),
            "--images".into(),
            fx.join("val2014").display().to_string(),
            "--annotations".into(),
            fx.join("captions_val2014.json").display().to_string(),
            "--out".into(),
            out.display().to_string(),
        ];
        if karpathy {
            args.push("--karpathy".into());
            args.push(fx.join("dataset_coco.json").display().to_string());
        }
        if speak {
            args.push("--speak".into());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ok(&capstream(&args));
        read_triplets(&out).unwrap()
    };
    let rows = run(true, false);
    let ids: Vec<&str> = rows.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, ["42", "73", "74", "133"]);
    assert_eq!(
        rows[0].captions,
        ["A red tile.", "A red square on a table.", "Something red."]
    );
    assert_eq!(
        rows[1].captions,
        ["A green field.", "Grass seen from above."]
    );
    assert_eq!(
        rows[2].captions,
        ["A blue sky."],
        "blank captions are dropped"
    );
    assert_eq!(
        rows[3].captions,
        ["A yellow wall.", "Yellow paint."],
        "from Karpathy"
    );
    let splits: Vec<Option<&str>> = rows.iter().map(|t| t.split.as_deref()).collect();
    assert_eq!(splits, [Some("test"), Some("train"), None, Some("val")]);
    for t in &rows {
        let file = fx.join(format!(
            "val2014/COCO_val2014_{:012}.jpg",
            t.id.parse::<u64>().unwrap()
        ));
        assert_eq!(
            t.image,
            std::fs::read(&file).unwrap(),
            "image bytes as stored"
        );
        assert!(t.audio.is_none());
    }
    // Without the Karpathy file: no splits, and 133 has no captions at all.
    let rows = run(false, true);
    let ids: Vec<&str> = rows.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, ["42", "73", "74"]);
    assert!(rows.iter().all(|t| t.split.is_none()));
    for t in &rows {
        let (sr, y) = read_wav_mono(t.audio.as_ref().unwrap(), 60.0).unwrap();
        assert!(
            sr == 16000 && y.len() > 4000,
            "{}: spoken first caption",
            t.id
        );
    }
}

#[test]
fn import_coco_refuses_paths_outside_the_images_folder_and_oversized_files() {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    std::fs::create_dir_all(&images).unwrap();
    std::fs::write(dir.path().join("secret.jpg"), b"outside").unwrap();
    std::fs::write(images.join("big.jpg"), vec![0u8; 100]).unwrap();
    let import = |file_name: &str, extra: &[&str]| {
        let ann = dir.path().join("captions.json");
        let json = serde_json::json!({
            "images": [{"id": 1, "file_name": file_name}],
            "annotations": [{"id": 10, "image_id": 1, "caption": "A thing."}],
        });
        std::fs::write(&ann, json.to_string()).unwrap();
        let out = dir.path().join("out.parquet");
        let mut args = vec![
            "dataset",
            "import-coco",
            "--images",
            images.to_str().unwrap(),
            "--annotations",
            ann.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let res = capstream(&args);
        (
            res.status.success(),
            String::from_utf8_lossy(&res.stderr).to_string(),
        )
    };
    let secret = dir.path().join("secret.jpg");
    for name in [
        "../secret.jpg",
        secret.to_str().unwrap(),
        "a/../../secret.jpg",
    ] {
        let (ok, err) = import(name, &[]);
        assert!(!ok, "{name}");
        assert!(
            err.contains("image 1: file_name") && err.contains("leaves the images folder"),
            "{name}: {err}"
        );
    }
    let (ok, err) = import("big.jpg", &["--max-image-bytes", "50"]);
    assert!(!ok);
    assert!(
        err.contains("big.jpg") && err.contains("above the limit of 50 bytes"),
        "{err}"
    );
    let (ok, err) = import("./big.jpg", &[]);
    assert!(ok, "{err}");
}
