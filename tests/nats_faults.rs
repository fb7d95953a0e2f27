//! Distributed mode under faults, each role a separate process against a real
//! nats-server: a caption worker killed mid-run, a poison record, a sink restarted
//! mid-run. Every id must end in the output exactly once.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{new_null_array, ArrayRef, BinaryArray, RecordBatch, StringArray, UInt32Array};

use capstream::config::PipelineConfig;
use capstream::schema::{references_type, Edge};
use capstream::transport::codec::{encode, Outgoing};
use capstream::transport::{headers, Connection};

use crate::nats_util::{committed, runtime, wait_rows, NatsServer, Proc};
use crate::util::{free_port, http_get, repo, wait_for, write_images};

/// decode → caption (tiny_b) with fast redelivery settings.
fn pipeline_text(extra_nats: &str) -> String {
    pipeline_with(2000, 3, 6, extra_nats)
}

/// `tokens`: caption length, forced (a longer batch is easier to kill in the middle).
fn pipeline_with(ack_wait_ms: u64, max_deliver: u32, tokens: u32, extra_nats: &str) -> String {
    let model = repo().join("tests/fixtures/blip/tiny_b");
    format!(
        r#"
name = "faults"
mode = "nats"
[batch]
max_rows = 4
max_delay_ms = 20
[nats]
ack_wait_ms = {ack_wait_ms}
max_deliver = {max_deliver}
nak_delay_ms = 200
commit_interval_ms = 200
idle_wait_ms = 300
{extra_nats}
[source]
type = "files"
[[stage]]
type = "decode_image"
[[stage]]
type = "caption"
model = "{}"
device = "cpu"
threads = 1
max_new_tokens = {tokens}
min_new_tokens = {tokens}
[stage.batch]
max_rows = 2
max_delay_ms = 20
[sink]
type = "parquet"
"#,
        model.display()
    )
}

fn worker(name: &str, stage: &str, p: &Path, url: &str, logs: &Path, metrics: Option<u16>) -> Proc {
    let mut args = vec![
        "worker".to_string(),
        "--stage".into(),
        stage.into(),
        "--pipeline".into(),
        p.display().to_string(),
        "--nats".into(),
        url.into(),
    ];
    if let Some(port) = metrics {
        args.extend(["--metrics-addr".into(), format!("127.0.0.1:{port}")]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Proc::spawn(name, &args, logs)
}

fn sink(name: &str, p: &Path, url: &str, out: &Path, logs: &Path) -> Proc {
    Proc::spawn(
        name,
        &[
            "sink",
            "--pipeline",
            p.to_str().unwrap(),
            "--nats",
            url,
            "--output",
            out.to_str().unwrap(),
        ],
        logs,
    )
}

fn submit(p: &Path, url: &str, input: &Path, logs: &Path) -> Proc {
    Proc::spawn(
        "submit",
        &[
            "submit",
            "--pipeline",
            p.to_str().unwrap(),
            "--nats",
            url,
            "--input",
            input.to_str().unwrap(),
        ],
        logs,
    )
}

/// The value of an unlabelled-beyond-pipeline/stage metric in a scrape (0 if absent).
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && !l.starts_with('#'))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// Each id's number of rows.
fn counts(ids: &[String]) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for id in ids {
        *m.entry(id.clone()).or_insert(0) += 1;
    }
    m
}

fn logs_of(procs: &[&Proc]) -> String {
    procs
        .iter()
        .map(|p| format!("--- {} ---\n{}", p.name, p.log()))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn killing_one_of_two_caption_workers_loses_and_duplicates_nothing() {
    let server = NatsServer::start(true);
    let url = server.url();
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path();
    let input = dir.path().join("in");
    let n = 80;
    write_images(&input, n, 40, 30);
    let p = server.pipeline(dir.path(), &pipeline_with(2000, 3, 20, ""));
    let out = dir.path().join("out");

    let mut decode = worker("decode", "decode_image", &p, &url, logs, None);
    let mut victim = Proc::spawn_logging(
        "caption-1",
        &[
            "worker",
            "--stage",
            "caption",
            "--pipeline",
            p.to_str().unwrap(),
            "--nats",
            &url,
        ],
        logs,
        "info,capstream::transport::worker=debug",
    );
    let port = free_port();
    let mut survivor = worker("caption-2", "caption", &p, &url, logs, Some(port));
    let mut sink = sink("sink", &p, &url, &out, logs);
    let mut sub = submit(&p, &url, &input, logs);
    // Kill the victim mid-run while a batch is in its hands (started, not yet
    // acknowledged): the server redelivers it to the survivor after the ack wait.
    let end = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let log = victim.log();
        let (started, done) = (
            log.matches("Batch in inference.").count(),
            log.matches("Batch done.").count(),
        );
        if done >= 2 && started > done {
            break;
        }
        assert!(
            std::time::Instant::now() < end,
            "the victim never had a batch in hand\n{}",
            logs_of(&[&decode, &victim, &survivor, &sink, &sub])
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    victim.kill();
    assert!(
        wait_rows(&out, n, 60),
        "{} of {n} rows\n{}",
        committed(&out).len(),
        logs_of(&[&decode, &victim, &survivor, &sink, &sub])
    );
    assert!(sub.exits_ok(180), "{}", sub.log());
    // Let any late duplicate arrive before judging.
    std::thread::sleep(Duration::from_millis(800));
    let ids = committed(&out);
    let c = counts(&ids);
    assert_eq!(c.len(), n, "every id is in the output");
    assert!(c.values().all(|&k| k == 1), "an id twice: {c:?}");
    let metrics = http_get(port, "/metrics");
    let redeliveries = metric(&metrics, "capstream_nats_redeliveries_total");
    assert!(
        redeliveries >= 1.0,
        "the victim's batch came back to the survivor\n{metrics}"
    );
    assert!(
        metrics.contains(
            "capstream_nats_consumer_ack_pending_messages{pipeline=\"faults\",stage=\"caption\"}"
        ),
        "{metrics}"
    );
    assert!(metrics.contains("capstream_nats_publish_duration_seconds_bucket"));
    // SIGTERM drains and exits cleanly.
    for p in [&mut decode, &mut survivor, &mut sink] {
        assert!(p.terminate(30), "{} did not drain\n{}", p.name, p.log());
    }
}

/// A `decoded` batch whose pixels are not at the model's size: the caption stage
/// refuses it every time.
fn poison_batch() -> RecordBatch {
    poison_with_id("poison-record")
}

/// [`poison_batch`] with another record id.
fn poison_with_id(id: &str) -> RecordBatch {
    let schema = Edge::Decoded.schema();
    let cols: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|f| -> ArrayRef {
            match f.name().as_str() {
                "id" => Arc::new(StringArray::from(vec![id])),
                "uri" => Arc::new(StringArray::from(vec!["poison.png"])),
                "status" => Arc::new(StringArray::from(vec!["ok"])),
                "width" | "height" | "pixels_width" | "pixels_height" => {
                    Arc::new(UInt32Array::from(vec![7u32]))
                }
                "pixels" => Arc::new(BinaryArray::from(vec![&[0u8; 7 * 7 * 3][..]])),
                "references" => new_null_array(&references_type(), 1),
                _ => new_null_array(f.data_type(), 1),
            }
        })
        .collect();
    RecordBatch::try_new(schema, cols).unwrap()
}

#[test]
fn a_poison_record_is_dead_lettered_and_becomes_an_error_row() {
    let server = NatsServer::start(true);
    let url = server.url();
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path();
    let input = dir.path().join("in");
    let n = 6;
    write_images(&input, n, 40, 30);
    let p = server.pipeline(dir.path(), &pipeline_text(""));
    let out = dir.path().join("out");
    let cfg = PipelineConfig::load(&p).unwrap();

    // The poison goes straight onto the caption stage's stream, as a broken upstream
    // worker would publish it.
    let rt = runtime();
    let conn = rt.block_on(Connection::open(&url, "test", &cfg)).unwrap();
    let edge = conn.topology.edges[1].clone();
    rt.block_on(async {
        let b = poison_batch();
        let o = Outgoing {
            subject: &edge.subject,
            stage: "decode_image",
            edge: &edge.label(),
            message_id: "poison",
            extra: vec![],
        };
        conn.send(&o, 1, encode(&b, conn.nats.compression).unwrap())
            .await
            .unwrap()
            .wait()
            .await
            .unwrap();
    });

    let mut decode = worker("decode", "decode_image", &p, &url, logs, None);
    let port = free_port();
    let mut caption = worker("caption", "caption", &p, &url, logs, Some(port));
    let mut sink = sink("sink", &p, &url, &out, logs);
    let mut sub = submit(&p, &url, &input, logs);
    assert!(
        wait_rows(&out, n + 1, 60),
        "{} rows\n{}",
        committed(&out).len(),
        logs_of(&[&decode, &caption, &sink, &sub])
    );
    assert!(sub.exits_ok(180));

    let batches = crate::util::read_output(&out);
    let mut poison = None;
    let mut ok = 0;
    for b in &batches {
        let ids = crate::util::strings(b, "id");
        let st = crate::util::strings(b, "status");
        let kind = crate::util::strings(b, "error_kind");
        let err = crate::util::strings(b, "error");
        for i in 0..b.num_rows() {
            if ids[i].as_deref() == Some("poison-record") {
                poison = Some((st[i].clone(), kind[i].clone(), err[i].clone()));
            } else {
                assert_eq!(st[i].as_deref(), Some("ok"));
                ok += 1;
            }
        }
    }
    assert_eq!(ok, n, "the rest of the stream completed");
    let (st, kind, err) = poison.expect("the poison record has a row");
    assert_eq!(st.as_deref(), Some("error"));
    assert_eq!(kind.as_deref(), Some("internal"));
    let err = err.unwrap();
    assert!(
        err.contains("poison-record") && err.contains("3 deliveries"),
        "{err}"
    );
    assert!(
        err.contains("dead-lettered") && err.contains("needs 48px"),
        "{err}"
    );

    // The dead-letter stream holds the original message with reason and count.
    let dlq = rt.block_on(async {
        let s = conn
            .js
            .get_stream(&conn.topology.dead_letter_stream)
            .await
            .unwrap();
        assert_eq!(s.cached_info().state.messages, 1);
        s.get_raw_message(s.cached_info().state.first_sequence)
            .await
            .unwrap()
    });
    assert_eq!(dlq.subject.as_str(), edge.dead_letter_subject);
    let h = |k: &str| dlq.headers.get(k).map(|v| v.as_str().to_string());
    assert_eq!(h(headers::DELIVERIES).as_deref(), Some("3"));
    assert!(h(headers::DEAD_REASON).unwrap().starts_with("stage_error"));
    assert_eq!(h(headers::RECORD_IDS).as_deref(), Some("poison-record"));
    assert_eq!(
        capstream::transport::codec::decode(&dlq.payload).unwrap(),
        poison_batch(),
        "the dead letter keeps the original bytes"
    );
    let metrics = http_get(port, "/metrics");
    assert!(
        metrics.contains(
            "capstream_nats_dead_lettered_total{pipeline=\"faults\",reason=\"stage_error\",stage=\"caption\"} 1"
        ),
        "{metrics}"
    );
    // Acknowledgements follow the commit and the dead letter: wait for them.
    assert!(
        wait_for(20, || rt.block_on(conn.drained()).unwrap()),
        "no message is left behind in any stream"
    );
    // The sink's consumer redelivers without limit (its writes are idempotent by id),
    // the stages' stop at max_deliver.
    let (sink_max, caption_max) = rt.block_on(async {
        let mut s = conn.consumer(2).await.unwrap();
        let mut c = conn.consumer(1).await.unwrap();
        (
            s.info().await.unwrap().config.max_deliver,
            c.info().await.unwrap().config.max_deliver,
        )
    });
    assert_eq!((sink_max, caption_max), (-1, 3));
    for p in [&mut decode, &mut caption, &mut sink] {
        assert!(p.terminate(30), "{} did not drain\n{}", p.name, p.log());
    }
}

#[test]
fn restarting_the_sink_mid_run_loses_and_duplicates_nothing() {
    let server = NatsServer::start(true);
    let url = server.url();
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path();
    let input = dir.path().join("in");
    let n = 150;
    write_images(&input, n, 24, 16);
    // No model stage: records flow fast, so the sink is killed with committed parts
    // behind it and unacknowledged rows in hand.
    let p = server.pipeline(
        dir.path(),
        r#"
name = "sinkrestart"
mode = "nats"
[batch]
max_rows = 8
max_delay_ms = 10
[nats]
ack_wait_ms = 1500
commit_interval_ms = 150
idle_wait_ms = 300
max_backlog = 40
[source]
type = "files"
[[stage]]
type = "decode_image"
image_size = 16
[sink]
type = "parquet"
max_file_rows = 25
"#,
    );
    let out = dir.path().join("out");
    let mut decode = worker("decode", "decode_image", &p, &url, logs, None);
    let mut first = sink("sink-1", &p, &url, &out, logs);
    let mut sub = submit(&p, &url, &input, logs);
    assert!(
        wait_rows(&out, 30, 60),
        "{}",
        logs_of(&[&decode, &first, &sub])
    );
    first.kill();
    let partial = committed(&out).len();
    assert!(
        partial < n,
        "the sink was killed before the end ({partial} rows)"
    );
    let mut second = sink("sink-2", &p, &url, &out, logs);
    assert!(
        wait_rows(&out, n, 60),
        "{} of {n}\n{}",
        committed(&out).len(),
        logs_of(&[&decode, &first, &second, &sub])
    );
    assert!(sub.exits_ok(180));
    std::thread::sleep(Duration::from_millis(800));
    let c = counts(&committed(&out));
    assert_eq!(c.len(), n);
    assert!(c.values().all(|&k| k == 1), "an id twice");
    assert!(
        wait_for(5, || !out.read_dir().unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".tmp"))),
        "no temp file left"
    );
    for p in [&mut decode, &mut second] {
        assert!(p.terminate(30), "{} did not drain\n{}", p.name, p.log());
    }
}

/// A `decoded` batch at the model's size (48 px): the caption stage would accept it.
fn decoded_batch(id: &str) -> RecordBatch {
    let b = poison_batch();
    let schema = b.schema();
    let cols: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .zip(b.columns())
        .map(|(f, c)| -> ArrayRef {
            match f.name().as_str() {
                "id" => Arc::new(StringArray::from(vec![id])),
                "width" | "height" | "pixels_width" | "pixels_height" => {
                    Arc::new(UInt32Array::from(vec![48u32]))
                }
                "pixels" => Arc::new(BinaryArray::from(vec![&[90u8; 48 * 48 * 3][..]])),
                _ => c.clone(),
            }
        })
        .collect();
    RecordBatch::try_new(schema, cols).unwrap()
}

#[test]
fn deliveries_that_run_out_without_an_outcome_are_dead_lettered() {
    use futures_util::StreamExt;
    let server = NatsServer::start(true);
    let url = server.url();
    let dir = tempfile::tempdir().unwrap();
    let p = server.pipeline(dir.path(), &pipeline_with(500, 2, 6, ""));
    let cfg = PipelineConfig::load(&p).unwrap();
    let rt = runtime();
    let conn = rt.block_on(Connection::open(&url, "test", &cfg)).unwrap();
    let edge = conn.topology.edges[1].clone();
    rt.block_on(async {
        let o = Outgoing {
            subject: &edge.subject,
            stage: "decode_image",
            edge: &edge.label(),
            message_id: "stuck",
            extra: vec![],
        };
        let b = decoded_batch("stuck-record");
        conn.send(&o, 1, encode(&b, conn.nats.compression).unwrap())
            .await
            .unwrap()
            .wait()
            .await
            .unwrap();
        // Two workers take it and die without a word: no ack, no nak.
        let consumer = conn.consumer(1).await.unwrap();
        for _ in 0..2 {
            let mut got = 0;
            let mut batch = consumer
                .batch()
                .max_messages(1)
                .expires(Duration::from_secs(3))
                .messages()
                .await
                .unwrap();
            while let Some(m) = batch.next().await {
                m.unwrap();
                got += 1;
            }
            assert_eq!(got, 1);
            tokio::time::sleep(Duration::from_millis(700)).await;
        }
    });
    // The next worker's pull makes the server give up on it and publish the advisory,
    // which the worker's dead-letter loop handles.
    let mut caption = worker("caption", "caption", &p, &url, dir.path(), None);
    let dlq_name = conn.topology.dead_letter_stream.clone();
    let got = wait_for(30, || {
        rt.block_on(async {
            let s = conn.js.get_stream(&dlq_name).await.unwrap();
            s.cached_info().state.messages == 1
        })
    });
    assert!(got, "no dead letter\n{}", caption.log());
    rt.block_on(async {
        let s = conn.js.get_stream(&dlq_name).await.unwrap();
        let m = s
            .get_raw_message(s.cached_info().state.first_sequence)
            .await
            .unwrap();
        let reason = m
            .headers
            .get(headers::DEAD_REASON)
            .unwrap()
            .as_str()
            .to_string();
        assert!(reason.starts_with("max_deliver"), "{reason}");
        assert_eq!(m.headers.get(headers::DELIVERIES).unwrap().as_str(), "2");
        // Its record went on as an error row (no sink runs: it waits in the sink's
        // stream); rows are published before the dead letter.
        let sink_edge = conn.topology.edges[2].clone();
        let s = conn.js.get_stream(&sink_edge.stream).await.unwrap();
        assert_eq!(s.cached_info().state.messages, 1);
        let row = s
            .get_raw_message(s.cached_info().state.first_sequence)
            .await
            .unwrap();
        let b = capstream::transport::codec::decode(&row.payload).unwrap();
        assert_eq!(
            crate::util::strings(&b, "id"),
            vec![Some("stuck-record".to_string())]
        );
        assert_eq!(
            crate::util::strings(&b, "status"),
            vec![Some("error".to_string())]
        );
        let err = crate::util::strings(&b, "error")[0].clone().unwrap();
        assert!(err.contains("2 deliveries"), "{err}");
    });
    // The exhausted message is removed after its dead letter is stored: wait for it.
    assert!(
        wait_for(20, || rt.block_on(async {
            let s = conn.js.get_stream(&edge.stream).await.unwrap();
            s.cached_info().state.messages == 0
        })),
        "the exhausted message left the caption stream"
    );
    assert!(caption.terminate(30), "{}", caption.log());
}

/// Publishes `batch` (as `id`) straight onto edge `edge` of `conn`'s pipeline, as a
/// broken or hostile upstream would.
fn inject(
    rt: &tokio::runtime::Runtime,
    conn: &Connection,
    edge: usize,
    id: &str,
    payload: bytes::Bytes,
) {
    let e = conn.topology.edges[edge].clone();
    rt.block_on(async {
        let o = Outgoing {
            subject: &e.subject,
            stage: "decode_image",
            edge: &e.label(),
            message_id: id,
            extra: vec![],
        };
        conn.send(&o, 1, payload)
            .await
            .unwrap()
            .wait()
            .await
            .unwrap();
    });
}

/// Every message of the dead-letter stream.
fn dead_letters(
    rt: &tokio::runtime::Runtime,
    conn: &Connection,
) -> Vec<async_nats::jetstream::message::StreamMessage> {
    rt.block_on(async {
        let s = conn
            .js
            .get_stream(&conn.topology.dead_letter_stream)
            .await
            .unwrap();
        let st = s.cached_info().state.clone();
        let mut out = Vec::new();
        for seq in st.first_sequence..=st.last_sequence {
            if let Ok(m) = s.get_raw_message(seq).await {
                out.push(m);
            }
        }
        out
    })
}

#[test]
fn an_id_with_a_line_break_and_a_10_kb_error_are_escaped_not_fatal() {
    let server = NatsServer::start(true);
    let url = server.url();
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path();
    let input = dir.path().join("in");
    let n = 4;
    write_images(&input, n, 40, 30);
    let p = server.pipeline(dir.path(), &pipeline_with(2000, 2, 6, ""));
    let out = dir.path().join("out");
    let cfg = PipelineConfig::load(&p).unwrap();
    let rt = runtime();
    let conn = rt.block_on(Connection::open(&url, "test", &cfg)).unwrap();
    // The caption stage's error names the record, so the id makes it >10 kB and
    // multi-line; before escaping, inserting it into a header panicked the loop.
    let id = format!("evil\r\nCapstream-Stage: forged\n{}", "x".repeat(10_000));
    inject(
        &rt,
        &conn,
        1,
        "crafted",
        encode(&poison_with_id(&id), conn.nats.compression).unwrap(),
    );

    let mut decode = worker("decode", "decode_image", &p, &url, logs, None);
    let mut caption = worker("caption", "caption", &p, &url, logs, None);
    let mut sink = sink("sink", &p, &url, &out, logs);
    let mut sub = submit(&p, &url, &input, logs);
    assert!(
        wait_rows(&out, n + 1, 60),
        "{} rows\n{}",
        committed(&out).len(),
        logs_of(&[&decode, &caption, &sink, &sub])
    );
    assert!(sub.exits_ok(180));
    // The record keeps its real id in the output, with the whole error.
    let batches = crate::util::read_output(&out);
    let mut found = false;
    for b in &batches {
        let ids = crate::util::strings(b, "id");
        let kind = crate::util::strings(b, "error_kind");
        let err = crate::util::strings(b, "error");
        for i in 0..b.num_rows() {
            if ids[i].as_deref() == Some(id.as_str()) {
                found = true;
                assert_eq!(kind[i].as_deref(), Some("internal"));
                let e = err[i].clone().unwrap();
                assert!(
                    e.len() > 10_000 && e.contains("needs 48px"),
                    "{}",
                    &e[..200]
                );
            }
        }
    }
    assert!(found, "the crafted record has a row");
    // Its dead letter's headers are escaped and capped; nothing was forged.
    let dl = dead_letters(&rt, &conn);
    assert_eq!(dl.len(), 1);
    let h = &dl[0].headers;
    let reason = h.get(headers::DEAD_REASON).unwrap().as_str();
    assert!(reason.len() <= headers::MAX_VALUE_BYTES, "{}", reason.len());
    assert!(
        reason.contains("evil\\r\\nCapstream-Stage: forged\\n") && reason.contains("...[+"),
        "{}",
        &reason[..200]
    );
    let ids = h.get(headers::RECORD_IDS).unwrap().as_str();
    assert!(ids.starts_with("evil\\r\\n") && !ids.contains('\n'));
    assert_eq!(h.get(headers::STAGE).unwrap().as_str(), "caption");
    assert!(!caption.log().contains("panicked"), "{}", caption.log());
    for p in [&mut decode, &mut caption, &mut sink] {
        assert!(p.terminate(30), "{} did not drain\n{}", p.name, p.log());
    }
}

#[test]
fn a_zstd_bomb_and_an_oversized_claim_are_dead_lettered_as_too_large() {
    let server = NatsServer::start(true);
    let url = server.url();
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path();
    // 4 MiB of decoded data at most per message; the bomb declares 64 MiB.
    let p = server.pipeline(
        dir.path(),
        &pipeline_with(2000, 3, 6, "max_message_bytes = 4194304"),
    );
    let out = dir.path().join("out");
    let cfg = PipelineConfig::load(&p).unwrap();
    let rt = runtime();
    let conn = rt.block_on(Connection::open(&url, "test", &cfg)).unwrap();
    let bomb = {
        let b = decoded_batch("bomb-record");
        let schema = b.schema();
        let cols: Vec<ArrayRef> = schema
            .fields()
            .iter()
            .zip(b.columns())
            .map(|(f, c)| -> ArrayRef {
                if f.name() == "pixels" {
                    Arc::new(BinaryArray::from(vec![&vec![0u8; 64 << 20][..]]))
                } else {
                    c.clone()
                }
            })
            .collect();
        RecordBatch::try_new(schema, cols).unwrap()
    };
    let payload = encode(&bomb, capstream::config::NatsCompression::Zstd).unwrap();
    assert!(
        payload.len() < 100_000,
        "a bomb: {} bytes on the wire",
        payload.len()
    );
    inject(&rt, &conn, 1, "bomb", payload);
    // 5 MB that do not compress: above max_payload, so it travels as a claim check,
    // and the object is over max_message_bytes.
    let noise: Vec<u8> = (0..5_000_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    inject(&rt, &conn, 1, "big-claim", bytes::Bytes::from(noise));

    let mut caption = worker("caption", "caption", &p, &url, logs, None);
    let mut sink = sink("sink", &p, &url, &out, logs);
    assert!(wait_rows(&out, 1, 60), "{}", logs_of(&[&caption, &sink]));
    let b = crate::util::read_output(&out);
    assert_eq!(
        crate::util::strings(&b[0], "id"),
        vec![Some("bomb-record".to_string())]
    );
    assert_eq!(
        crate::util::strings(&b[0], "error_kind"),
        vec![Some("too_large".to_string())]
    );
    let err = crate::util::strings(&b[0], "error")[0].clone().unwrap();
    assert!(
        err.contains("max_message_bytes = 4194304") && err.contains("dead-lettered"),
        "{err}"
    );
    assert!(
        wait_for(20, || dead_letters(&rt, &conn).len() == 2),
        "{}",
        logs_of(&[&caption, &sink])
    );
    for m in dead_letters(&rt, &conn) {
        let r = m
            .headers
            .get(headers::DEAD_REASON)
            .unwrap()
            .as_str()
            .to_string();
        assert!(r.starts_with("too_large:"), "{r}");
    }
    // The originals are ended after their dead letters are stored: wait for that.
    assert!(
        wait_for(20, || rt.block_on(conn.drained()).unwrap()),
        "nothing left in any stream"
    );
    for p in [&mut caption, &mut sink] {
        assert!(p.terminate(30), "{} did not drain\n{}", p.name, p.log());
    }
}

#[test]
fn a_batch_past_its_deadline_is_redelivered_then_becomes_timeout_rows() {
    use std::os::unix::fs::PermissionsExt;
    let server = NatsServer::start(true);
    let url = server.url();
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path();
    // An espeak-ng that never finishes (its own deadline is set far away, so the
    // batch deadline is what fires).
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let fake = bin.join("espeak-ng");
    std::fs::write(&fake, "#!/bin/sh\nexec sleep 20\n").unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let input = dir.path().join("in");
    write_images(&input, 2, 40, 30);
    let text = pipeline_with(2000, 2, 4, "batch_timeout_ms = 1500").replace(
        "[sink]",
        "[[stage]]\ntype = \"speak\"\ntimeout_ms = 60000\n[sink]",
    );
    let p = server.pipeline(dir.path(), &text);
    let out = dir.path().join("out");
    let port = free_port();
    let mut decode = worker("decode", "decode_image", &p, &url, logs, None);
    let mut caption = worker("caption", "caption", &p, &url, logs, None);
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut speak = Proc::spawn_env(
        "speak",
        &[
            "worker",
            "--stage",
            "speak",
            "--pipeline",
            p.to_str().unwrap(),
            "--nats",
            &url,
            "--metrics-addr",
            &format!("127.0.0.1:{port}"),
        ],
        logs,
        "info",
        &[("PATH", path)],
    );
    let mut sink = sink("sink", &p, &url, &out, logs);
    let mut sub = submit(&p, &url, &input, logs);
    assert!(
        wait_rows(&out, 2, 90),
        "{} rows\n{}",
        committed(&out).len(),
        logs_of(&[&decode, &caption, &speak, &sink, &sub])
    );
    assert!(sub.exits_ok(180));
    for b in crate::util::read_output(&out) {
        for (k, e) in crate::util::strings(&b, "error_kind")
            .into_iter()
            .zip(crate::util::strings(&b, "error"))
        {
            assert_eq!(k.as_deref(), Some("timeout"));
            let e = e.unwrap();
            assert!(
                e.contains("batch_timeout_ms = 1500") && e.contains("2 deliveries"),
                "{e}"
            );
        }
    }
    let metrics = http_get(port, "/metrics");
    assert!(
        metric(&metrics, "capstream_nats_batch_timeouts_total") >= 2.0,
        "{metrics}"
    );
    assert!(
        metrics.contains("capstream_nats_dead_lettered_total{pipeline=\"faults\",reason=\"timeout\",stage=\"speak\"}"),
        "{metrics}"
    );
    assert!(
        speak.log().contains("abandoning its stage thread"),
        "{}",
        speak.log()
    );
    for p in [&mut decode, &mut caption, &mut speak, &mut sink] {
        assert!(p.terminate(30), "{} did not drain\n{}", p.name, p.log());
    }
}

#[test]
fn a_consumer_whose_pulls_go_unanswered_is_found_stalled_and_recovers() {
    // The worker's user may not send pull requests at first: the server drops them,
    // so pulls return nothing while the consumer reports pending messages, the shape
    // of a pull lost in a leader change. A reload then lifts the ban.
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path();
    let conf = dir.path().join("server.conf");
    let store = dir.path().join("store");
    let users = |deny: bool| {
        let perms = if deny {
            r#", permissions: { publish: { deny: ["$JS.API.CONSUMER.MSG.NEXT.*.decode_image"] } }"#
        } else {
            ""
        };
        format!(
            "authorization {{ users: [ {{user: admin, password: pw}}, {{user: worker, password: pw{perms}}} ] }}\njetstream {{ store_dir: \"{}\", max_memory_store: 256MB, max_file_store: 100GB }}\n",
            store.display()
        )
    };
    std::fs::write(&conf, users(true)).unwrap();
    let log = dir.path().join("server.log");
    let server = NatsServer::start_full(&["-c", conf.to_str().unwrap()], &[], Some(&log), false);
    let url = server.url();
    std::fs::write(dir.path().join("pw"), "pw").unwrap();
    let text = |user: &str| {
        format!(
            r#"
name = "stall"
mode = "nats"
[batch]
max_rows = 4
max_delay_ms = 10
[nats]
user = "{user}"
password_file = "pw"
idle_wait_ms = 300
commit_interval_ms = 200
stall_after_ms = 1500
[source]
type = "files"
[[stage]]
type = "decode_image"
image_size = 16
[sink]
type = "parquet"
"#
        )
    };
    let admin = dir.path().join("admin");
    std::fs::create_dir_all(&admin).unwrap();
    std::fs::copy(dir.path().join("pw"), admin.join("pw")).unwrap();
    let pa = crate::util::pipeline(&admin, &text("admin"));
    let pw = crate::util::pipeline(dir.path(), &text("worker"));
    let input = dir.path().join("in");
    let n = 6;
    write_images(&input, n, 24, 16);
    let out = dir.path().join("out");
    let port = free_port();
    let mut decode = worker("decode", "decode_image", &pw, &url, logs, Some(port));
    let mut sink = sink("sink", &pa, &url, &out, logs);
    let mut sub = submit(&pa, &url, &input, logs);
    assert!(sub.exits_ok(180), "{}", sub.log());
    assert!(
        wait_for(30, || decode.log().contains(
            "Consumer reports pending messages but pulls return nothing"
        )),
        "no stall found\n{}",
        logs_of(&[&decode, &sink])
    );
    let m = http_get(port, "/metrics");
    assert!(metric(&m, "capstream_nats_pull_stalls_total") >= 1.0, "{m}");
    assert!(
        metric(&m, "capstream_nats_pull_timeouts_total") >= 1.0,
        "{m}"
    );
    assert!(committed(&out).is_empty(), "nothing got through the ban");
    // Lift the ban; the worker's next pulls are answered.
    std::fs::write(&conf, users(false)).unwrap();
    let _ = std::process::Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status();
    assert!(
        wait_rows(&out, n, 60),
        "{} of {n} rows after the reload\n{}\n--- server ---\n{}",
        committed(&out).len(),
        logs_of(&[&decode, &sink]),
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let c = counts(&committed(&out));
    assert!(c.len() == n && c.values().all(|&k| k == 1), "{c:?}");
    for p in [&mut decode, &mut sink] {
        assert!(p.terminate(30), "{} did not drain\n{}", p.name, p.log());
    }
}

#[test]
fn dead_letters_and_claims_are_kept_as_long_and_as_much_as_configured() {
    let server = NatsServer::start(true);
    let dir = tempfile::tempdir().unwrap();
    let text = |age: u64| {
        pipeline_with(
            2000,
            3,
            6,
            &format!(
                "dead_letter_max_age_s = 3600\ndead_letter_max_bytes = 1048576\nclaims_max_age_s = {age}\nclaims_max_bytes = 2097152"
            ),
        )
    };
    let p = server.pipeline(dir.path(), &text(600));
    let rt = runtime();
    let limits = |p: &std::path::Path| {
        let cfg = PipelineConfig::load(p).unwrap();
        rt.block_on(async {
            let conn = Connection::open(&server.url(), "test", &cfg).await.unwrap();
            let mut dlq = conn
                .js
                .get_stream(&conn.topology.dead_letter_stream)
                .await
                .unwrap();
            let d = dlq.info().await.unwrap().config.clone();
            let mut claims = conn
                .js
                .get_stream(format!("OBJ_{}", conn.topology.claims_bucket))
                .await
                .unwrap();
            let c = claims.info().await.unwrap().config.clone();
            (d.max_age, d.max_bytes, c.max_age, c.max_bytes)
        })
    };
    assert_eq!(
        limits(&p),
        (
            Duration::from_secs(3600),
            1 << 20,
            Duration::from_secs(600),
            2 << 20
        )
    );
    // A changed file brings an existing bucket to its limits.
    let d2 = dir.path().join("again");
    std::fs::create_dir_all(&d2).unwrap();
    let p2 = server.pipeline(&d2, &text(1200));
    assert_eq!(limits(&p2).2, Duration::from_secs(1200));
}
