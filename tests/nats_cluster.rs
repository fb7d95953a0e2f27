//! A 3-node JetStream cluster (deploy/nats/cluster) with R3 streams: one node stopped
//! mid-run and restarted, every id still committed exactly once.

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
                assert!(Instant::now() < end, "cluster not ready: {e}");
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
