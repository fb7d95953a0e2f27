//! `pipelines/` and `schemas/` are data; these tests keep them equal to the code.

use std::path::Path;

use capstream::config::PipelineConfig;
use capstream::pipeline::Plan;
use capstream::schema::{schema_from_json, schema_to_json, Edge};

use crate::util::{capstream, repo};

#[test]
fn every_pipeline_file_parses_and_plans() {
    let dir = repo().join("pipelines");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let cfg = PipelineConfig::load(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        Plan::new(cfg).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let out = capstream(&["validate", p.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        n += 1;
    }
    assert!(n >= 2, "default.toml and backfill.toml at least");
}

#[test]
fn schema_files_equal_the_code() {
    for edge in Edge::ALL {
        let path = repo().join("schemas").join(format!("{}.json", edge.name()));
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            schema_from_json(&text).unwrap(),
            *edge.schema(),
            "{}",
            path.display()
        );
        assert_eq!(
            text,
            schema_to_json(&edge.schema()).unwrap(),
            "{} formatting",
            path.display()
        );
        let out = capstream(&["schema", edge.name()]);
        assert_eq!(String::from_utf8_lossy(&out.stdout), text);
    }
}

#[test]
fn default_and_backfill_pipelines_follow_the_edges() {
    let cfg = PipelineConfig::load(&repo().join("pipelines/default.toml")).unwrap();
    let plan = Plan::new(cfg).unwrap();
    assert_eq!(plan.schemas[1], Edge::Decoded.schema());
    assert_eq!(plan.schemas[2], Edge::Captioned.schema());
    let out = plan.output_schema();
    for col in [
        "caption",
        "speech_wav",
        "neural_wav",
        "neural_mel",
        "bleu_4",
        "audio_mcd",
    ] {
        assert!(
            out.field_with_name(col).is_ok(),
            "default output lacks {col}"
        );
    }
    let cfg = PipelineConfig::load(&repo().join("pipelines/backfill.toml")).unwrap();
    assert_eq!(
        Plan::new(cfg).unwrap().output_schema(),
        Edge::Scored.schema()
    );
}

#[test]
fn triplet_schema_file_equals_the_code() {
    let path = repo().join("schemas/triplets.json");
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        text,
        schema_to_json(&capstream::datasets::triplet_schema()).unwrap()
    );
    let out = capstream(&["schema", "triplets"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), text);
}

#[test]
fn mismatched_stages_fail_at_build_naming_both() {
    let text = r#"
name = "bad"
[source]
type = "files"
[[stage]]
type = "decode_image"
[[stage]]
type = "decode_image"
[sink]
type = "parquet"
"#;
    let cfg = PipelineConfig::parse(text, Path::new("bad.toml")).unwrap();
    let err = Plan::new(cfg).unwrap_err().to_string();
    assert_eq!(
        err,
        "schema mismatch between decode_image and decode_image: missing column \"image\""
    );
}

#[test]
fn unknown_key_in_a_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("typo.toml");
    std::fs::write(
        &p,
        "name = \"t\"\n[source]\ntype = \"files\"\n[[stage]]\ntype = \"decode_image\"\nmax_pixel = 5\n[sink]\ntype = \"parquet\"\n",
    )
    .unwrap();
    let out = capstream(&["validate", p.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("typo.toml") && err.contains("max_pixel"),
        "{err}"
    );
}

#[test]
fn prometheus_config_in_deploy_is_valid() {
    // promtool ships with Debian's prometheus package, which .ci/setup installs.
    let out = std::process::Command::new("promtool")
        .args(["check", "config"])
        .arg(repo().join("deploy/prometheus/prometheus.yml"))
        .output()
        .expect("promtool (Debian package prometheus) is installed by .ci/setup");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
