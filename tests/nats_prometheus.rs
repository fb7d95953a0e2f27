//! Debian's Prometheus, started with `deploy/prometheus/prometheus.yml`, scrapes a
//! running worker found through file discovery; a capstream metric is read back
//! through Prometheus' HTTP API.

use std::process::{Command, Stdio};

use crate::nats_util::{http10_get, NatsServer, Proc};
use crate::util::{free_port, repo, wait_for};

const PROMETHEUS: &str = "/usr/bin/prometheus";

#[test]
fn prometheus_scrapes_a_worker_with_the_deploy_config() {
    let server = NatsServer::start(true);
    let dir = tempfile::tempdir().unwrap();
    let p = server.pipeline(
        dir.path(),
        r#"
name = "scraped"
mode = "nats"
[nats]
idle_wait_ms = 300
[source]
type = "files"
[[stage]]
type = "decode_image"
image_size = 16
[sink]
type = "parquet"
"#,
    );
    let metrics_port = free_port();
    let addr = format!("127.0.0.1:{metrics_port}");
    let mut worker = Proc::spawn(
        "worker",
        &[
            "worker",
            "--stage",
            "decode_image",
            "--pipeline",
            p.to_str().unwrap(),
            "--nats",
            &server.url(),
            "--metrics-addr",
            &addr,
        ],
        dir.path(),
    );
    // The deploy config as shipped, beside a target file naming the worker (file
    // discovery reads `targets/*.json` next to the config).
    let prom = dir.path().join("prometheus");
    std::fs::create_dir_all(prom.join("targets")).unwrap();
    std::fs::copy(
        repo().join("deploy/prometheus/prometheus.yml"),
        prom.join("prometheus.yml"),
    )
    .unwrap();
    std::fs::write(
        prom.join("targets/workers.json"),
        format!(r#"[{{"targets": ["{addr}"], "labels": {{"role": "worker"}}}}]"#),
    )
    .unwrap();
    let web = free_port();
    let mut child = Command::new(PROMETHEUS)
        .arg(format!(
            "--config.file={}",
            prom.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            prom.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{web}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus (apt-get install prometheus)");
    let mut body = String::new();
    let found = wait_for(45, || {
        body = http10_get(
            web,
            "/api/v1/query?query=capstream_nats_consumer_pending_messages",
        )
        .unwrap_or_default();
        body.contains("\"stage\":\"decode_image\"")
    });
    let _ = child.kill();
    let _ = child.wait();
    assert!(found, "{body}\n{}", worker.log());
    assert!(body.contains("\"job\":\"capstream-workers\""), "{body}");
    assert!(body.contains("\"pipeline\":\"scraped\""), "{body}");
    assert!(worker.terminate(30), "{}", worker.log());
}

#[test]
fn readyz_follows_the_nats_connection_and_healthz_the_loops() {
    let mut server = NatsServer::start(true);
    let dir = tempfile::tempdir().unwrap();
    let p = server.pipeline(
        dir.path(),
        r#"
name = "probes"
mode = "nats"
[nats]
idle_wait_ms = 300
[source]
type = "files"
[[stage]]
type = "decode_image"
image_size = 16
[sink]
type = "parquet"
"#,
    );
    let port = free_port();
    let mut worker = Proc::spawn(
        "worker",
        &[
            "worker",
            "--stage",
            "decode_image",
            "--pipeline",
            p.to_str().unwrap(),
            "--nats",
            &server.url(),
            "--metrics-addr",
            &format!("127.0.0.1:{port}"),
        ],
        dir.path(),
    );
    let get = |path: &str| crate::nats_util::http10_status(port, path);
    assert!(
        wait_for(20, || get("/readyz").map(|(s, _)| s) == Some(200)),
        "{:?}\n{}",
        get("/readyz"),
        worker.log()
    );
    assert_eq!(get("/healthz").unwrap(), (200, "ok\n".to_string()));
    assert_eq!(get("/nope").unwrap().0, 404);
    // The server goes away: the worker is still live, no longer ready, and says why.
    server.kill();
    assert!(
        wait_for(20, || get("/readyz").map(|(s, _)| s) == Some(503)),
        "{:?}",
        get("/readyz")
    );
    let (_, why) = get("/readyz").unwrap();
    assert!(why.contains("NATS connected"), "{why}");
    assert_eq!(get("/healthz").unwrap().0, 200);
    worker.kill();
}
