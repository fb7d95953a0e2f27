//! `capstream report`: one self-contained HTML file with every output row in the grid,
//! audio players, plots and training curves, that Chromium renders.

use std::process::Command;

use crate::util::{capstream, read_output, repo, run_pipeline};

#[test]
fn report_of_a_run_has_every_row_and_renders_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let res = run_pipeline(
        &repo().join("pipelines/default.toml"),
        &repo().join("tests/fixtures/images"),
        &out,
        &[],
    );
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    // A training log one level down is found and plotted.
    std::fs::create_dir_all(out.join("audio_training")).unwrap();
    std::fs::copy(
        repo().join("tests/fixtures/neural_audio/model/train_log.jsonl"),
        out.join("audio_training/train_log.jsonl"),
    )
    .unwrap();
    let html_path = dir.path().join("report.html");
    let r = capstream(&[
        "report",
        out.to_str().unwrap(),
        "--out",
        html_path.to_str().unwrap(),
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let html = std::fs::read_to_string(&html_path).unwrap();

    let rows: usize = read_output(&out).iter().map(|b| b.num_rows()).sum();
    let ok = html.matches("<td>ok</td>").count();
    let errors = html.matches("<td>error</td>").count();
    assert_eq!(ok + errors, rows, "every output row in the grid");
    assert_eq!(errors, 4, "the fixture's broken images");
    assert!(
        html.contains("<span class=err>decode:"),
        "error rows say why"
    );
    // Speech and neural audio players for each of the 4 good rows.
    assert_eq!(html.matches("data:audio/wav;base64,").count(), 8);
    assert!(html.contains("Training: ") && html.contains("\ngenerator_loss\n"));
    assert!(html.matches("<svg").count() >= 10, "charts are inline SVG");
    assert_eq!(
        html.matches("<img class=mel").count(),
        8,
        "log-mels of both tracks"
    );
    assert!(!html.contains("src=\"http"), "nothing is fetched");
    // The default output holds results, not pixels: the grid says so and drops only
    // the thumbnail column.
    assert!(read_output(&out)[0].column_by_name("pixels").is_none());
    assert!(html.contains("No thumbnails: the output holds no pixels"));
    assert!(!html.contains("<th>image</th>") && !html.contains("<img src=\"data:image/png"));

    let png = dir.path().join("shot.png");
    let shot = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1280,2400",
        ])
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", html_path.display()))
        .output()
        .expect("chromium (installed by .ci/setup)");
    assert!(
        shot.status.success(),
        "{}",
        String::from_utf8_lossy(&shot.stderr)
    );
    let img = image::open(&png).unwrap().to_rgb8();
    assert_eq!(img.dimensions(), (1280, 2400));
    let mut colours: Vec<[u8; 3]> = img.pixels().map(|p| p.0).collect();
    colours.sort_unstable();
    colours.dedup();
    assert!(
        colours.len() > 500,
        "the page rendered ({} colours)",
        colours.len()
    );
}
