//! One pipeline, one input with error rows, both modes: every standard counter of
//! every stage ends at the same value, because both modes drive stages through the
//! same loop (`pipeline::StageChain`) and count their sources and sinks alike.
//!
//! Each process writes its final metrics with `--metrics-file`; the NATS roles'
//! files together must equal the embedded run's.

use std::collections::BTreeMap;
use std::path::Path;

use capstream::telemetry::names;

use crate::nats_util::{committed, NatsServer, Proc};
use crate::util::{capstream, repo, write_images};

/// The counters whose values must agree. Batch counts and histograms do not: a
/// micro-batcher and a pull batch differently by design.
const COUNTERS: [&str; 5] = [
    names::RECORDS_IN,
    names::RECORDS_OUT,
    names::RECORDS_FAILED,
    names::RECORDS_SKIPPED,
    names::ROWS_COMMITTED,
];

fn pipeline_text(mode: &str) -> String {
    let model = repo().join("tests/fixtures/blip/tiny_b");
    format!(
        r#"
name = "parity"
mode = "{mode}"
[batch]
max_rows = 4
max_delay_ms = 20
[nats]
commit_interval_ms = 200
idle_wait_ms = 300
[source]
type = "files"
max_file_bytes = 20000
[[stage]]
type = "decode_image"
[[stage]]
type = "caption"
model = "{}"
device = "cpu"
max_new_tokens = 6
[sink]
type = "parquet"
"#,
        model.display()
    )
}

/// Nonzero counter series of a Prometheus text file, keyed by name and labels.
fn counters(path: &Path) -> BTreeMap<String, u64> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("metrics file {}: {e}", path.display()));
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let name = series.split('{').next().unwrap_or(series);
        if !COUNTERS.contains(&name) {
            continue;
        }
        let v: f64 = value.parse().unwrap();
        if v != 0.0 {
            out.insert(series.to_string(), v as u64);
        }
    }
    out
}

fn value(m: &BTreeMap<String, u64>, name: &str, stage: &str) -> u64 {
    m.iter()
        .filter(|(k, _)| k.starts_with(name) && k.contains(&format!("stage=\"{stage}\"")))
        .map(|(_, v)| v)
        .sum()
}

#[test]
fn both_modes_count_the_same_records_in_out_failed_and_committed() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    write_images(&input, 6, 32, 24);
    for bad in ["not-an-image.png", "truncated.jpg"] {
        std::fs::copy(
            repo().join("tests/fixtures/images").join(bad),
            input.join(bad),
        )
        .unwrap();
    }
    // Over the source's max_file_bytes: an error row made by the source itself.
    std::fs::write(input.join("huge.png"), vec![0u8; 30_000]).unwrap();
    let n: u64 = 9;

    let emb_file = dir.path().join("embedded.prom");
    let p = crate::util::pipeline(dir.path(), &pipeline_text("embedded"));
    let r = capstream(&[
        "run",
        "--pipeline",
        p.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--output",
        dir.path().join("out-embedded").to_str().unwrap(),
        "--metrics-file",
        emb_file.to_str().unwrap(),
        "--no-progress",
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let embedded = counters(&emb_file);

    // The same stages as separate NATS roles, each writing its own file at exit.
    let server = NatsServer::start(true);
    let ndir = dir.path().join("nats");
    std::fs::create_dir_all(&ndir).unwrap();
    let p = server.pipeline(&ndir, &pipeline_text("nats"));
    let (p, url) = (p.to_str().unwrap().to_string(), server.url());
    let out = dir.path().join("out-nats");
    let file = |role: &str| ndir.join(format!("{role}.prom"));
    let role = |name: &str, extra: &[&str]| {
        let f = file(name);
        let mut args = extra.to_vec();
        args.extend([
            "--pipeline",
            &p,
            "--nats",
            &url,
            "--metrics-file",
            f.to_str().unwrap(),
        ]);
        Proc::spawn(name, &args, &ndir)
    };
    let mut procs = vec![
        role("decode_image", &["worker", "--stage", "decode_image"]),
        role("caption", &["worker", "--stage", "caption"]),
        role("sink", &["sink", "--output", out.to_str().unwrap()]),
    ];
    let sub = role("submit", &["submit", "--input", input.to_str().unwrap()]);
    let ok = crate::util::wait_for(120, || {
        committed(&out).len() >= n as usize && file("submit").is_file()
    });
    let logs = || {
        procs
            .iter()
            .chain(std::iter::once(&sub))
            .map(|p| format!("--- {}\n{}", p.name, p.log()))
            .collect::<String>()
    };
    assert!(ok, "the NATS run did not commit {n} rows:\n{}", logs());
    // Settled: the sink has acknowledged what it committed, so no worker holds a
    // message that could still be redelivered and counted twice.
    std::thread::sleep(std::time::Duration::from_millis(500));
    for proc in &mut procs {
        assert!(
            proc.terminate(30),
            "{} did not stop cleanly:\n{}",
            proc.name,
            proc.log()
        );
    }
    let mut nats = BTreeMap::new();
    for name in ["submit", "decode_image", "caption", "sink"] {
        for (k, v) in counters(&file(name)) {
            assert!(
                nats.insert(k.clone(), v).is_none(),
                "{k} in two roles' files"
            );
        }
    }

    // The figures themselves, so that agreeing on nothing cannot pass.
    for (what, m) in [("embedded", &embedded), ("nats", &nats)] {
        let v = |name: &str, stage: &str| value(m, name, stage);
        assert_eq!(v(COUNTERS[1], "source"), n, "{what}: {m:#?}");
        assert_eq!(v(COUNTERS[2], "source"), 1, "{what}: the oversized file");
        assert_eq!(v(COUNTERS[0], "decode_image"), n, "{what}: {m:#?}");
        assert_eq!(
            v(COUNTERS[2], "decode_image"),
            2,
            "{what}: the two bad images"
        );
        assert_eq!(
            v(COUNTERS[2], "caption"),
            0,
            "{what}: error rows pass through"
        );
        assert_eq!(v(COUNTERS[1], "caption"), n, "{what}: {m:#?}");
        assert_eq!(v(COUNTERS[0], "sink"), n, "{what}: {m:#?}");
        assert_eq!(v(COUNTERS[4], "sink"), n, "{what}: {m:#?}");
    }
    assert_eq!(
        embedded, nats,
        "embedded (left) and NATS (right) counters differ"
    );
}
