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
fn result_schema_file_equals_the_code() {
    use capstream::schema::{results_of, INTERMEDIATE_COLUMNS, RESULTS};
    let path = repo().join("schemas/results.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let results = results_of(&Edge::Scored.schema());
    assert_eq!(text, schema_to_json(&results).unwrap());
    assert_eq!(schema_from_json(&text).unwrap(), *results);
    for col in INTERMEDIATE_COLUMNS {
        assert!(
            results.field_with_name(col).is_err(),
            "{col} is not a result"
        );
    }
    for col in [
        "id",
        "status",
        "error",
        "caption",
        "speech_wav",
        "audio_mcd",
    ] {
        assert!(results.field_with_name(col).is_ok(), "{col} is a result");
    }
    let out = capstream(&["schema", RESULTS]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), text);
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

/// `text` cut into its YAML documents.
fn yaml_docs(text: &str) -> Vec<&str> {
    text.split("\n---\n").collect()
}

#[test]
fn deploy_files_publish_on_loopback_and_hold_no_secret() {
    let compose = std::fs::read_to_string(repo().join("deploy/compose.yaml")).unwrap();
    let mut published = 0;
    for line in compose
        .lines()
        .filter(|l| l.trim_start().starts_with("ports:"))
    {
        for port in line.split('"').skip(1).step_by(2) {
            assert!(
                port.starts_with("127.0.0.1:"),
                "published beyond loopback: {line}"
            );
            published += 1;
        }
    }
    assert!(published >= 3, "{published} ports");
    let k8s_workers = std::fs::read_to_string(repo().join("deploy/k8s/workers.yaml")).unwrap();
    for (name, text) in [
        ("compose.yaml", &compose),
        ("k8s/workers.yaml", &k8s_workers),
    ] {
        for line in text.lines() {
            // Secrets are files: only *_FILE variables may name them.
            for var in ["CAPSTREAM_NATS_PASSWORD", "CAPSTREAM_NATS_TOKEN"] {
                if let Some(at) = line.find(var) {
                    assert!(
                        line[at + var.len()..].starts_with("_FILE"),
                        "{name}: a secret in the environment: {line}"
                    );
                }
            }
        }
    }
    // Every capstream pod reads its credentials from the Secret, and every pod that
    // serves the monitoring port is probed on both endpoints.
    for doc in yaml_docs(&k8s_workers)
        .iter()
        .filter(|d| d.contains("image: capstream"))
    {
        assert!(doc.contains("secretName: capstream-nats-client"), "{doc}");
        assert!(doc.contains("CAPSTREAM_NATS_TLS_CERT_FILE"), "{doc}");
        if doc.contains("--metrics-addr") {
            assert!(
                doc.contains("path: /healthz") && doc.contains("path: /readyz"),
                "{doc}"
            );
        }
    }
}

#[test]
fn shipped_nats_configs_require_tls_and_users_and_are_valid() {
    let secrets = crate::nats_util::Secrets::make();
    let k8s = std::fs::read_to_string(repo().join("deploy/k8s/nats.yaml")).unwrap();
    let mut confs: Vec<(String, String)> =
        ["single.conf", "nats-1.conf", "nats-2.conf", "nats-3.conf"]
            .iter()
            .map(|f| {
                (
                    f.to_string(),
                    std::fs::read_to_string(secrets.path(f)).unwrap(),
                )
            })
            .collect();
    // The Kubernetes ConfigMap's nats.conf, as the pod sees it (auth/ next to it).
    let body: String = k8s
        .split("nats.conf: |\n")
        .nth(1)
        .unwrap()
        .split("\n---")
        .next()
        .unwrap()
        .lines()
        .map(|l| format!("{}\n", l.strip_prefix("    ").unwrap_or(l)))
        .collect();
    confs.push((
        "k8s nats.conf".into(),
        body.replace("\"auth/auth.conf\"", "\"auth.conf\""),
    ));
    for (name, text) in &confs {
        assert!(
            text.contains("include \"") && text.contains("auth.conf"),
            "{name}: no users"
        );
        assert!(
            text.contains("verify: true"),
            "{name}: client certificates not required"
        );
        if text.contains("cluster {") {
            let cluster = &text[text.find("cluster {").unwrap()..];
            assert!(cluster.contains("tls {"), "{name}: routes without TLS");
        }
        // nats-server itself accepts it, with the environment make-secrets.sh writes.
        let path = secrets.path(&format!("check-{}.conf", name.replace(' ', "-")));
        std::fs::write(&path, text).unwrap();
        let mut env = secrets.server_env();
        env.push((
            "NATS_STORE_DIR".into(),
            secrets.path("store").display().to_string(),
        ));
        env.push(("POD_NAME".into(), "nats-0".into()));
        let out = std::process::Command::new(crate::nats_util::NATS_SERVER)
            .args(["-t", "-c"])
            .arg(&path)
            .envs(env)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The image a role's YAML block names, and the stage it runs (`None` for sink and
/// submit).
fn role_image(block: &str) -> Option<(Option<String>, String)> {
    let image = block
        .lines()
        .find_map(|l| l.trim().strip_prefix("image: capstream"))?;
    let image = format!("capstream{}", image.split_whitespace().next()?);
    let stage = block
        .split("\"--stage\", \"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .map(str::to_string);
    Some((stage, image))
}

#[test]
fn roles_that_run_no_model_use_the_lean_image() {
    let cfg = PipelineConfig::load(&repo().join("pipelines/nats.toml")).unwrap();
    let runs_model = |stage: &str| {
        cfg.stages
            .iter()
            .find(|s| s.name() == stage)
            .unwrap_or_else(|| panic!("{stage} is not in pipelines/nats.toml"))
            .needs_model_side()
    };
    let k8s = std::fs::read_to_string(repo().join("deploy/k8s/workers.yaml")).unwrap();
    let compose = std::fs::read_to_string(repo().join("deploy/compose.yaml")).unwrap();
    // Compose services inherit the lean image from x-worker unless they name another.
    let lean_default = compose.contains("x-worker: &worker\n  image: capstream-lean:latest");
    assert!(lean_default, "x-worker must default to capstream-lean");
    let mut blocks: Vec<String> = Vec::new();
    for line in compose.lines() {
        let service = line.starts_with("  ") && !line.starts_with("   ") && line.ends_with(':');
        if service || blocks.is_empty() {
            blocks.push(String::new());
        }
        let last = blocks.last_mut().unwrap();
        last.push_str(line);
        last.push('\n');
    }
    let services: Vec<String> = blocks
        .into_iter()
        .filter(|s| s.contains("<<: *worker"))
        .map(|s| {
            if s.contains("image: capstream") {
                s.to_string()
            } else {
                format!("image: capstream-lean:latest\n{s}")
            }
        })
        .collect();
    let mut seen = (0, 0);
    for (file, block) in yaml_docs(&k8s)
        .into_iter()
        .map(|d| ("k8s/workers.yaml", d.to_string()))
        .chain(services.into_iter().map(|s| ("compose.yaml", s)))
    {
        let Some((stage, image)) = role_image(&block) else {
            continue;
        };
        let model = stage.as_deref().is_some_and(runs_model);
        let want = if model {
            "capstream:latest"
        } else {
            "capstream-lean:latest"
        };
        assert_eq!(image, want, "{file}: the role running {stage:?}");
        if model {
            seen.0 += 1;
        } else {
            seen.1 += 1;
        }
    }
    // caption and neural_audio in both files; decode, speak, score, sink and submit
    // in both. Every worker's stage is in the pipeline it names (runs_model panics
    // otherwise).
    assert_eq!(seen, (4, 10), "model roles, lean roles");
}

#[test]
fn the_openapi_file_names_every_route_code_and_kind_the_server_has() {
    use capstream::schema::ErrorKind;
    use capstream::serve::{code_of_kind, kinds, Endpoint};
    let text = std::fs::read_to_string(repo().join("schemas/openapi.yaml")).unwrap();
    let paths = &text[text.find("\npaths:").expect("a paths section")..];
    for path in ["/healthz", "/readyz", "/metrics"]
        .into_iter()
        .chain(Endpoint::ALL.map(|e| e.path()))
    {
        assert!(
            paths.contains(&format!("\n  {path}:")),
            "{path} is not in openapi.yaml"
        );
    }
    // Every code either endpoint can answer, from the row kinds and the request kinds.
    let mut codes: Vec<u16> = ErrorKind::ALL
        .iter()
        .map(|k| code_of_kind(k.as_str()))
        .collect();
    codes.extend([200, 400, 401, 408, 413, 415, 429, 503, 504]);
    for e in Endpoint::ALL {
        let start = paths.find(&format!("\n  {}:", e.path())).unwrap();
        let section = &paths[start + 3..];
        let end = section.find("\n  /").unwrap_or(section.len());
        let section = &section[..end];
        for code in &codes {
            assert!(
                section.contains(&format!("'{code}':")),
                "{}: status {code} is not documented",
                e.path()
            );
        }
    }
    for kind in ErrorKind::ALL
        .iter()
        .map(|k| k.as_str())
        .filter(|k| code_of_kind(k) == 422)
        .chain([
            kinds::BAD_REQUEST,
            kinds::UNSUPPORTED_MEDIA_TYPE,
            kinds::UNAUTHORIZED,
            kinds::OVERLOADED,
            kinds::UNAVAILABLE,
            ErrorKind::InvalidOptions.as_str(),
        ])
    {
        assert!(
            text.contains(kind),
            "error_kind {kind} is not in openapi.yaml"
        );
    }
    for param in ["prompt", "num_beams", "max_new_tokens"] {
        assert!(
            text.contains(&format!("name: {param}")),
            "query parameter {param}"
        );
    }
}
