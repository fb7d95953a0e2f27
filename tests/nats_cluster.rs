//! A 3-node JetStream cluster (deploy/nats/cluster, TLS routes and clients) with R3
//! streams: one node stopped mid-run and restarted, and stream and consumer leaders
//! stepped down again and again mid-run; every id still committed exactly once.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use capstream::config::PipelineConfig;
use capstream::transport::Connection;

use crate::nats_util::{committed, runtime, wait_rows, Cluster, Proc};
use crate::util::write_images;

#[test]
fn a_node_lost_and_restarted_mid_run_loses_and_duplicates_nothing() {
    let mut cluster = Cluster::start();
    let urls = cluster.urls();
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path();
    let input = dir.path().join("in");
    let n = 200;
    write_images(&input, n, 24, 16);
    let p = cluster.secrets.pipeline(
        dir.path(),
        r#"
name = "cluster"
mode = "nats"
[batch]
max_rows = 8
max_delay_ms = 10
[nats]
replicas = 3
ack_wait_ms = 2000
commit_interval_ms = 200
idle_wait_ms = 300
max_backlog = 30
[source]
type = "files"
[[stage]]
type = "decode_image"
image_size = 16
[sink]
type = "parquet"
"#,
    );
    // The cluster is up once it has a JetStream leader and takes R3 streams.
    let cfg = PipelineConfig::load(&p).unwrap();
    let rt = runtime();
    let end = Instant::now() + Duration::from_secs(40);
    loop {
        match rt.block_on(Connection::open(&urls, "test", &cfg)) {
            Ok(_) => break,
            Err(e) => {
                assert!(
                    Instant::now() < end,
                    "cluster not ready: {e}\n{}",
                    cluster.logs()
                );
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    }
    let out = dir.path().join("out");
    let role = |name: &str, args: &[&str]| {
        let mut a = args.to_vec();
        a.extend(["--pipeline", p.to_str().unwrap(), "--nats", &urls]);
        Proc::spawn(name, &a, logs)
    };
    let mut decode = role("decode", &["worker", "--stage", "decode_image"]);
    let mut sink = role("sink", &["sink", "--output", out.to_str().unwrap()]);
    let mut sub = role("submit", &["submit", "--input", input.to_str().unwrap()]);
    let all = |procs: &[&Proc]| {
        procs
            .iter()
            .map(|p| format!("--- {} ---\n{}", p.name, p.log()))
            .collect::<String>()
    };
    assert!(wait_rows(&out, 20, 60), "{}", all(&[&decode, &sink, &sub]));
    cluster.stop(2);
    std::thread::sleep(Duration::from_secs(2));
    let partial = committed(&out).len();
    cluster.restart(2);
    assert!(
        wait_rows(&out, n, 90),
        "{} of {n} rows ({partial} when node 2 came back)\n{}",
        committed(&out).len(),
        all(&[&decode, &sink, &sub])
    );
    assert!(sub.child.wait().unwrap().success(), "{}", sub.log());
    std::thread::sleep(Duration::from_millis(800));
    let mut c: HashMap<String, usize> = HashMap::new();
    for id in committed(&out) {
        *c.entry(id).or_insert(0) += 1;
    }
    assert_eq!(c.len(), n);
    assert!(c.values().all(|&k| k == 1), "an id twice");
    for p in [&mut decode, &mut sink] {
        assert!(p.terminate(30), "{} did not drain\n{}", p.name, p.log());
    }
}

#[test]
fn leader_step_downs_again_and_again_mid_run_lose_and_duplicate_nothing() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let cluster = Cluster::start();
    let urls = cluster.urls();
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path();
    let input = dir.path().join("in");
    let n = 600;
    write_images(&input, n, 24, 16);
    let p = cluster.secrets.pipeline(
        dir.path(),
        r#"
name = "stepdown"
mode = "nats"
[batch]
max_rows = 8
max_delay_ms = 10
[nats]
replicas = 3
ack_wait_ms = 3000
commit_interval_ms = 200
idle_wait_ms = 300
max_backlog = 20
stall_after_ms = 3000
[source]
type = "files"
[[stage]]
type = "decode_image"
image_size = 16
[sink]
type = "parquet"
"#,
    );
    let cfg = PipelineConfig::load(&p).unwrap();
    let rt = runtime();
    let end = Instant::now() + Duration::from_secs(40);
    let conn = loop {
        match rt.block_on(Connection::open(&urls, "test", &cfg)) {
            Ok(c) => break c,
            Err(e) => {
                assert!(
                    Instant::now() < end,
                    "cluster not ready: {e}\n{}",
                    cluster.logs()
                );
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    };
    let out = dir.path().join("out");
    let role = |name: &str, args: &[&str]| {
        let mut a = args.to_vec();
        a.extend(["--pipeline", p.to_str().unwrap(), "--nats", &urls]);
        Proc::spawn(name, &a, logs)
    };
    let mut decode = role("decode", &["worker", "--stage", "decode_image"]);
    let mut sink = role("sink", &["sink", "--output", out.to_str().unwrap()]);
    let mut sub = role("submit", &["submit", "--input", input.to_str().unwrap()]);
    // Every stream leader and consumer leader of the pipeline's edges, one after the
    // other, two step-downs a second, until the output is complete.
    let stop = Arc::new(AtomicBool::new(false));
    let subjects: Vec<String> = conn
        .topology
        .wire_edges()
        .flat_map(|e| {
            [
                format!("$JS.API.STREAM.LEADER.STEPDOWN.{}", e.stream),
                format!("$JS.API.CONSUMER.LEADER.STEPDOWN.{}.{}", e.stream, e.to),
            ]
        })
        .collect();
    let client = conn.client.clone();
    let flag = stop.clone();
    let stepper = std::thread::spawn(move || {
        let rt = runtime();
        let mut done = 0;
        let mut k = 0;
        while !flag.load(Ordering::Relaxed) {
            let s = subjects[k % subjects.len()].clone();
            k += 1;
            if rt
                .block_on(capstream::transport::pull::step_down(&client, s))
                .is_ok()
            {
                done += 1;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        done
    });
    let all = |procs: &[&Proc]| {
        procs
            .iter()
            .map(|p| format!("--- {} ---\n{}", p.name, p.log()))
            .collect::<String>()
    };
    let complete = wait_rows(&out, n, 150);
    stop.store(true, Ordering::Relaxed);
    let step_downs = stepper.join().unwrap();
    assert!(
        complete,
        "{} of {n} rows after {step_downs} step-downs\n{}",
        committed(&out).len(),
        all(&[&decode, &sink, &sub])
    );
    assert!(step_downs >= 10, "only {step_downs} step-downs took effect");
    eprintln!("{step_downs} leader step-downs during the run");
    assert!(sub.child.wait().unwrap().success(), "{}", sub.log());
    std::thread::sleep(Duration::from_millis(800));
    let mut c: HashMap<String, usize> = HashMap::new();
    for id in committed(&out) {
        *c.entry(id).or_insert(0) += 1;
    }
    assert_eq!(c.len(), n);
    assert!(c.values().all(|&k| k == 1), "an id twice");
    for p in [&mut decode, &mut sink] {
        assert!(p.terminate(30), "{} did not drain\n{}", p.name, p.log());
    }
}
