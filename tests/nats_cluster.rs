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
    assert!(sub.exits_ok(180), "{}", sub.log());
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
    let cluster = Cluster::start();
    let urls = cluster.urls();
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path();
    // The records go in as twelve submissions, each into a pipeline still busy with
    // the last: a step-down while one is published and another while the decode worker
    // and the sink work on it. Counting step-downs against however long one
    // submission happens to take let a fast machine finish before ten took effect.
    let rounds = 12;
    let per_round = 50;
    let n = rounds * per_round;
    let all_in = dir.path().join("all");
    let files = write_images(&all_in, n, 24, 16);
    let inputs: Vec<_> = (0..rounds)
        .map(|r| {
            let d = dir.path().join(format!("in{r:02}"));
            std::fs::create_dir_all(&d).unwrap();
            for f in &files[r * per_round..(r + 1) * per_round] {
                std::fs::rename(f, d.join(f.file_name().unwrap())).unwrap();
            }
            d
        })
        .collect();
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
    // Every stream leader and consumer leader of the pipeline's edges, in turn.
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
    let all = |procs: &[&Proc]| {
        procs
            .iter()
            .map(|p| format!("--- {} ---\n{}", p.name, p.log()))
            .collect::<String>()
    };
    // A step-down is refused while the group it names is still electing the leader
    // the last one made; it is asked again until it takes effect.
    let mut k = 0;
    let mut step_down = |procs: &[&Proc]| {
        let s = subjects[k % subjects.len()].clone();
        k += 1;
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            match rt.block_on(capstream::transport::pull::step_down(
                &conn.client,
                s.clone(),
            )) {
                Ok(()) => return,
                Err(e) => {
                    assert!(Instant::now() < end, "{e}\n{}", all(procs));
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
    };
    for (r, input) in inputs.iter().enumerate() {
        let mut sub = role(
            &format!("submit{r:02}"),
            &["submit", "--input", input.to_str().unwrap()],
        );
        step_down(&[&decode, &sink, &sub]);
        assert!(sub.exits_ok(180), "{}", sub.log());
        step_down(&[&decode, &sink]);
    }
    assert!(
        wait_rows(&out, n, 150),
        "{} of {n} rows after {k} step-downs\n{}",
        committed(&out).len(),
        all(&[&decode, &sink])
    );
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
