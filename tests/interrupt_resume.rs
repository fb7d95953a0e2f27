//! SIGINT midway, then `--resume`: the union has every id exactly once, and every
//! committed file is readable. `kill -9` keeps what the commit interval committed. A
//! second run into a folder in use fails at once and leaves the first one's work alone.

use std::collections::HashSet;
use std::io::Write;
use std::process::Command;

use crate::util::{
    parts, pipeline, read_output, run_pipeline, spawn_streaming_run, wait_for, write_images,
};

const PIPELINE: &str = r#"
name = "resume-test"
channel_capacity = 1
[batch]
max_rows = 2
max_delay_ms = 10
[source]
type = "files"
[[stage]]
type = "decode_image"
image_size = 64
[sink]
type = "parquet"
max_file_rows = 4
"#;

#[test]
fn interrupt_then_resume_gives_every_id_once() {
    let dir = tempfile::tempdir().unwrap();
    let images = write_images(&dir.path().join("in"), 40, 120, 90);
    let p = pipeline(dir.path(), PIPELINE);
    let out = dir.path().join("out");

    // Paths arrive on stdin, so the interrupt lands while the input is unfinished.
    let (mut child, mut stdin) = spawn_streaming_run(&p, &out, &[]);
    // Watch the log so stdin is closed only after the signal was handled: otherwise
    // the input may end (and the run finish cleanly) before the handler runs.
    let stderr = child.stderr.take().unwrap();
    let (seen_tx, seen_rx) = std::sync::mpsc::channel();
    let log = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut all = String::new();
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if line.contains("Signal received") {
                let _ = seen_tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    for img in &images[..12] {
        writeln!(stdin, "{}", img.display()).unwrap();
    }
    stdin.flush().unwrap();
    assert!(
        wait_for(30, || out.is_dir() && !parts(&out).is_empty()),
        "a first file is committed"
    );
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    assert!(
        seen_rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .is_ok(),
        "the signal is handled"
    );
    // Like `find … | capstream run`: the producer dies with the signal, stdin ends.
    drop(stdin);
    let res = child.wait_with_output().unwrap();
    let log = log.join().unwrap();
    assert_eq!(res.status.code(), Some(130), "{log}");
    let stdout = String::from_utf8_lossy(&res.stdout);
    assert!(stdout.starts_with("interrupted: 12 rows"), "{stdout}");
    let first = read_output(&out);
    let first_ids: HashSet<String> = crate::util::ids(&first).into_iter().collect();
    assert_eq!(
        first_ids.len(),
        12,
        "in-flight rows were drained and committed"
    );
    let names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n != capstream::sinks::LOCK_FILE)
        .collect();
    assert!(
        names
            .iter()
            .all(|n| n.starts_with("part-") && n.ends_with(".parquet")),
        "{names:?}"
    );

    let res = run_pipeline(&p, &dir.path().join("in"), &out, &["--resume"]);
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    assert!(String::from_utf8_lossy(&res.stdout)
        .starts_with("done: 28 rows (28 ok, 0 errors, 12 skipped"));

    let all = crate::util::ids(&read_output(&out));
    assert_eq!(all.len(), 40, "no duplicates");
    let unique: HashSet<String> = all.into_iter().collect();
    let want: HashSet<String> = images
        .iter()
        .map(|p| capstream::sources::content_id(&std::fs::read(p).unwrap()))
        .collect();
    assert_eq!(unique, want, "every id exactly once");
}

/// Files in `dir` whose name ends with `suffix`.
fn named(dir: &std::path::Path, suffix: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(suffix))
        .collect()
}

fn committed(out: &std::path::Path) -> HashSet<String> {
    capstream::sinks::committed_ids(out).unwrap()
}

#[test]
fn kill_9_keeps_the_parts_the_commit_interval_committed_and_resume_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let images = write_images(&dir.path().join("in"), 30, 64, 48);
    // Files far from full: only the interval commits them.
    let p = pipeline(
        dir.path(),
        &PIPELINE.replace(
            "max_file_rows = 4",
            "max_file_rows = 10000\ncommit_interval_ms = 300",
        ),
    );
    let out = dir.path().join("out");
    let (mut child, mut stdin) = spawn_streaming_run(&p, &out, &[]);
    // Three intervals' worth of input, each committed before the next is fed.
    for (k, chunk) in images[..24].chunks(8).enumerate() {
        for img in chunk {
            writeln!(stdin, "{}", img.display()).unwrap();
        }
        stdin.flush().unwrap();
        let want = 8 * (k + 1);
        assert!(
            wait_for(30, || out.is_dir() && committed(&out).len() == want),
            "{want} rows committed by the interval, with the run still going"
        );
    }
    for img in &images[24..27] {
        writeln!(stdin, "{}", img.display()).unwrap();
    }
    stdin.flush().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    drop(stdin);

    let survived = committed(&out);
    assert!(survived.len() >= 24, "{} rows survived", survived.len());
    assert!(named(&out, ".parquet").len() >= 3, "one part per interval");
    let res = run_pipeline(&p, &dir.path().join("in"), &out, &["--resume"]);
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let stdout = String::from_utf8_lossy(&res.stdout);
    let done = 30 - survived.len();
    assert!(
        stdout.starts_with(&format!(
            "done: {done} rows ({done} ok, 0 errors, {} skipped",
            survived.len()
        )),
        "{stdout}"
    );
    assert!(
        named(&out, ".tmp").is_empty(),
        "the killed run's open part is gone"
    );
    let all = crate::util::ids(&read_output(&out));
    assert_eq!(all.len(), 30, "no duplicates");
    let want: HashSet<String> = images
        .iter()
        .map(|p| capstream::sources::content_id(&std::fs::read(p).unwrap()))
        .collect();
    assert_eq!(all.into_iter().collect::<HashSet<_>>(), want);
}

#[test]
fn a_second_run_into_a_folder_in_use_fails_at_once_and_harms_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let images = write_images(&dir.path().join("in"), 6, 64, 48);
    let p = pipeline(
        dir.path(),
        // Nothing commits while the second run tries its luck.
        &PIPELINE.replace(
            "max_file_rows = 4",
            "max_file_rows = 10000\ncommit_interval_ms = 600000",
        ),
    );
    let out = dir.path().join("out");
    let (child, mut stdin) = spawn_streaming_run(&p, &out, &[]);
    for img in &images[..3] {
        writeln!(stdin, "{}", img.display()).unwrap();
    }
    stdin.flush().unwrap();
    assert!(
        wait_for(30, || out.is_dir() && named(&out, ".tmp").len() == 1),
        "the first run has an open part"
    );
    let open = named(&out, ".tmp");
    let started = std::time::Instant::now();
    let second = run_pipeline(&p, &dir.path().join("in"), &out, &["--resume"]);
    assert!(!second.status.success());
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        err.contains(&format!(
            "another capstream run or sink is writing to {}",
            out.display()
        )),
        "{err}"
    );
    assert!(started.elapsed().as_secs() < 20, "it fails at once");
    assert_eq!(named(&out, ".tmp"), open, "the open part is untouched");
    for img in &images[3..] {
        writeln!(stdin, "{}", img.display()).unwrap();
    }
    drop(stdin);
    let res = child.wait_with_output().unwrap();
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    assert_eq!(crate::util::ids(&read_output(&out)).len(), 6);
}
