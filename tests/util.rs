//! Shared helpers for the integration tests.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use arrow::array::{Array, RecordBatch, StringArray};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

pub const BIN: &str = env!("CARGO_BIN_EXE_capstream");

pub fn repo() -> PathBuf {
    // The tests belong to cli/, one folder below the repository root.
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// Panics, once, with what to do when `capstream-torch` is not beside `capstream`:
/// `cargo test` builds only the binaries of the package under test, and every model
/// command and stage is handed over to it.
pub fn model_side_built() {
    static CHECK: std::sync::Once = std::sync::Once::new();
    CHECK.call_once(|| {
        let torch = Path::new(BIN).with_file_name("capstream-torch");
        assert!(
            torch.is_file(),
            "{} is not built; run `cargo build --release --workspace` (make test does) before `cargo test`",
            torch.display()
        );
    });
}

/// Runs `capstream ARGS` to completion, from the repository root as a user would
/// (`cargo test` runs tests in `cli/`, where defaults such as
/// `pipelines/backfill.toml` do not resolve).
pub fn capstream(args: &[&str]) -> Output {
    model_side_built();
    Command::new(BIN)
        .current_dir(repo())
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run capstream")
}

/// Runs `capstream run` on a pipeline file with `--no-progress` and any extra args.
pub fn run_pipeline(pipeline: &Path, input: &Path, output: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "run",
        "--pipeline",
        pipeline.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--no-progress",
    ];
    args.extend_from_slice(extra);
    capstream(&args)
}

/// Starts `capstream run --input -` on `pipeline`, with paths to be written to the
/// returned stdin (so a test controls when the input ends) and output captured.
pub fn spawn_streaming_run(
    pipeline: &Path,
    output: &Path,
    extra: &[&str],
) -> (std::process::Child, std::process::ChildStdin) {
    model_side_built();
    let mut child = std::process::Command::new(BIN)
        .current_dir(repo())
        .args([
            "run",
            "--pipeline",
            pipeline.to_str().unwrap(),
            "--input",
            "-",
        ])
        .args(["--output", output.to_str().unwrap(), "--no-progress"])
        .args(extra)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start capstream");
    let stdin = child.stdin.take().expect("stdin is piped");
    (child, stdin)
}

/// A copy in `dir` of the repository's `pipelines/<name>` that writes every column
/// (`[sink] columns = "all"`), for tests that check intermediate columns.
pub fn with_all_columns(dir: &Path, name: &str) -> PathBuf {
    let text = std::fs::read_to_string(repo().join("pipelines").join(name)).unwrap();
    let results = "columns = \"results\"";
    assert!(text.contains(results), "{name} names its columns");
    let models = format!("\"{}/models/", repo().display());
    let text = text
        .replace("\"../models/", &models)
        .replace(results, "columns = \"all\"");
    pipeline(dir, &text)
}

/// Writes a pipeline file into `dir` and returns its path.
pub fn pipeline(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("pipeline.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// Committed part files of an output folder, sorted.
pub fn parts(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().to_string();
            n.starts_with("part-") && n.ends_with(".parquet")
        })
        .collect();
    v.sort();
    v
}

/// Every batch of every committed part file.
pub fn read_output(dir: &Path) -> Vec<RecordBatch> {
    parts(dir)
        .iter()
        .flat_map(|p| {
            let f = std::fs::File::open(p).unwrap();
            ParquetRecordBatchReaderBuilder::try_new(f)
                .unwrap()
                .build()
                .unwrap()
                .map(|b| b.unwrap())
                .collect::<Vec<_>>()
        })
        .collect()
}

pub fn strings(batch: &RecordBatch, col: &str) -> Vec<Option<String>> {
    let a = batch.column_by_name(col).unwrap();
    let a = a.as_any().downcast_ref::<StringArray>().unwrap();
    (0..a.len())
        .map(|i| a.is_valid(i).then(|| a.value(i).to_string()))
        .collect()
}

/// `uri` (file name only) → (status, error_kind, error) for every output row.
pub fn outcomes(
    batches: &[RecordBatch],
) -> HashMap<String, (String, Option<String>, Option<String>)> {
    let mut m = HashMap::new();
    for b in batches {
        let uri = strings(b, "uri");
        let status = strings(b, "status");
        let kind = strings(b, "error_kind");
        let err = strings(b, "error");
        for i in 0..b.num_rows() {
            let name = Path::new(uri[i].as_deref().unwrap())
                .file_name()
                .unwrap()
                .to_string_lossy()
                .to_string();
            let prev = m.insert(
                name.clone(),
                (status[i].clone().unwrap(), kind[i].clone(), err[i].clone()),
            );
            assert!(prev.is_none(), "two rows for {name}");
        }
    }
    m
}

/// All ids of all rows.
pub fn ids(batches: &[RecordBatch]) -> Vec<String> {
    batches
        .iter()
        .flat_map(|b| strings(b, "id").into_iter().map(|s| s.unwrap()))
        .collect()
}

/// Writes `n` distinct small JPEGs into `dir`.
pub fn write_images(dir: &Path, n: usize, w: u32, h: u32) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    (0..n)
        .map(|k| {
            // Blue also carries k / 256: the rest of the pattern repeats every 256
            // images, and ids are content hashes (97 is odd, so 256 blocks differ).
            let img = image::RgbImage::from_fn(w, h, |x, y| {
                image::Rgb([
                    (x * 7 + k as u32) as u8,
                    (y * 3 + 2 * k as u32) as u8,
                    (k * 13 + (k >> 8) * 97) as u8,
                ])
            });
            let p = dir.join(format!("img{k:04}.jpg"));
            img.save(&p).unwrap();
            p
        })
        .collect()
}

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    // Never the same port twice in one test process: the kernel may hand a port just
    // released to the next bind, and two servers of one cluster would then collide.
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if GIVEN.lock().unwrap().insert(port) {
            return port;
        }
    }
}

/// A plain HTTP GET on loopback; returns the body.
pub fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

/// Waits up to `secs` for `cond`, polling.
pub fn wait_for(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    false
}

/// The records of a training run's `train_log.jsonl`.
pub fn train_log(out: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(out.join("train_log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The records of one `event` kind.
pub fn events<'a>(log: &'a [serde_json::Value], kind: &str) -> Vec<&'a serde_json::Value> {
    log.iter().filter(|v| v["event"] == kind).collect()
}

/// A file's bytes, naming the file when it cannot be read.
pub fn bytes(p: PathBuf) -> Vec<u8> {
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}
