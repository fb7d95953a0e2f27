//! `capstream serve`: every endpoint and error code over HTTP, batches shared by
//! concurrent clients, overload, a slow client, SIGTERM draining, and the NATS micro
//! service on a secured server. The server runs the shipped default model, so that
//! the captions can be checked against `capstream caption`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine;

use crate::nats_util::{NatsServer, Proc};
use crate::util::{capstream, free_port, repo, wait_for};

/// A served pipeline: pipelines/serve.toml with the default model by absolute path,
/// the caption stage's batch delay and the `[serve]` keys given.
fn pipeline(dir: &Path, caption_delay_ms: u64, serve: &str) -> String {
    let shipped = std::fs::read_to_string(repo().join("pipelines/serve.toml")).unwrap();
    let model = repo().join("models/default").canonicalize().unwrap();
    let mut text = shipped
        .replace(
            "model = \"../models/default\"",
            &format!("model = \"{}\"", model.display()),
        )
        .replace(
            "[stage.batch]\nmax_rows = 16\nmax_delay_ms = 0",
            &format!("[stage.batch]\nmax_rows = 16\nmax_delay_ms = {caption_delay_ms}"),
        );
    assert!(text.contains(&format!("max_delay_ms = {caption_delay_ms}")));
    // Replace the shipped [serve] table by the test's.
    let start = text.find("[serve]").unwrap();
    let end = text.find("[nats]").unwrap();
    text.replace_range(start..end, &format!("[serve]\n{serve}\n"));
    let _ = dir;
    text
}

struct Server {
    proc: Proc,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Starts `capstream serve` on `text` (written to a temp folder) and waits until
    /// `/readyz` says ready.
    fn start(name: &str, text: &str, extra: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("serve.toml");
        std::fs::write(&p, text).unwrap();
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let mut args = vec!["serve", "--pipeline", p.to_str().unwrap(), "--http", &addr];
        args.extend_from_slice(extra);
        let mut proc = Proc::spawn(name, &args, dir.path());
        let ready = wait_for(90, || {
            if let Ok(Some(_)) = proc.child.try_wait() {
                return true;
            }
            TcpStream::connect(("127.0.0.1", port)).is_ok() && get(port, "/readyz").status == 200
        });
        assert!(
            ready && proc.child.try_wait().unwrap().is_none(),
            "serve did not become ready: {}",
            proc.log()
        );
        Server {
            proc,
            port,
            _dir: dir,
        }
    }
}

#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }
}

fn parse(raw: &[u8]) -> Response {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Response {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

/// One request on its own connection (`Connection: close`), read to the end.
fn request(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    parse(&raw)
}

/// A JPEG posted without a token.
fn post_jpeg(port: u16, path: &str, body: &[u8]) -> Response {
    request(port, "POST", path, &[("Content-Type", "image/jpeg")], body)
}

fn get(port: u16, path: &str) -> Response {
    request(port, "GET", path, &[], b"")
}

const TOKEN: &str = "t0ken-for-tests";

fn post(port: u16, path: &str, ctype: &str, body: &[u8]) -> Response {
    let auth = format!("Bearer {TOKEN}");
    request(
        port,
        "POST",
        path,
        &[("Content-Type", ctype), ("Authorization", &auth)],
        body,
    )
}

fn samples() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(repo().join("models/default/samples/images"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

/// `capstream caption --json` on `image`: the reference the server must match.
fn reference(image: &Path) -> serde_json::Value {
    let out = capstream(&[
        "caption",
        "--model",
        "models/default",
        "--json",
        image.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap()
        .to_string();
    serde_json::from_str(&line).unwrap()
}

/// A metric's value summed over every series whose labels contain all of `labels`.
fn metric(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter(|l| {
            let rest = &l[name.len()..];
            (rest.starts_with('{') || rest.starts_with(' ')) && labels.iter().all(|x| l.contains(x))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

const LIMITS: &str = "queue_capacity = 64\nmax_body_bytes = 262144\nheader_read_timeout_ms = 1000\nbody_read_timeout_ms = 2000\nrequest_timeout_ms = 60000\ndrain_timeout_ms = 10000\n";

#[test]
fn serve_answers_every_endpoint_and_error_code() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    let s = Server::start(
        "serve-endpoints",
        &pipeline(dir.path(), 0, LIMITS),
        &["--token-file", token.to_str().unwrap()],
    );
    let port = s.port;
    assert_eq!(get(port, "/healthz").status, 200);
    assert_eq!(get(port, "/nope").status, 404);

    let image_path = &samples()[0];
    let image = std::fs::read(image_path).unwrap();
    let want = reference(image_path);

    // No token, a wrong one: 401 with a challenge; probes need none.
    let r = post_jpeg(port, "/v1/caption", &image);
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    assert_eq!(r.json()["error_kind"], "unauthorized");
    let r = request(
        port,
        "POST",
        "/v1/caption",
        &[
            ("Content-Type", "image/jpeg"),
            ("Authorization", "Bearer nope"),
        ],
        &image,
    );
    assert_eq!(r.status, 401);

    // /v1/caption: the caption and ids of `capstream caption`.
    let r = post(port, "/v1/caption", "image/jpeg", &image);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let j = r.json();
    assert_eq!(j["status"], "ok");
    assert_eq!(j["caption"], want["caption"]);
    assert_eq!(j["token_ids"], want["token_ids"]);
    assert_eq!(j["model"], "default");
    assert!(j["id"].as_str().unwrap().len() > 3);
    assert!(j["timings"]["total_ms"].as_f64().unwrap() > 0.0);
    assert!(j.get("audio").is_none(), "caption does not speak");

    // application/octet-stream and a multipart upload give the same.
    let r = post(port, "/v1/caption", "application/octet-stream", &image);
    assert_eq!(r.json()["caption"], want["caption"]);
    let mut form = b"--XyZ\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n".to_vec();
    form.extend_from_slice(&image);
    form.extend_from_slice(b"\r\n--XyZ--\r\n");
    let r = post(
        port,
        "/v1/caption",
        "multipart/form-data; boundary=XyZ",
        &form,
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["caption"], want["caption"]);

    // /v1/describe: the same caption, spoken, as base64 WAV in the JSON…
    let r = post(port, "/v1/describe", "image/jpeg", &image);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let j = r.json();
    assert_eq!(j["caption"], want["caption"]);
    assert_eq!(j["audio"]["format"], "wav");
    assert_eq!(j["audio"]["sample_rate"], 16000);
    let wav = base64::engine::general_purpose::STANDARD
        .decode(j["audio"]["base64"].as_str().unwrap())
        .unwrap();
    assert_eq!(&wav[..4], b"RIFF");
    assert_eq!(&wav[8..12], b"WAVE");
    let rate = u32::from_le_bytes(wav[24..28].try_into().unwrap());
    assert_eq!(rate, 16000);
    let seconds = j["audio"]["seconds"].as_f64().unwrap();
    assert!(seconds > 0.3, "{seconds} s of speech");
    // …or as audio/wav when asked.
    let auth = format!("Bearer {TOKEN}");
    let r = request(
        port,
        "POST",
        "/v1/describe",
        &[
            ("Content-Type", "image/jpeg"),
            ("Authorization", &auth),
            ("Accept", "audio/wav"),
        ],
        &image,
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("audio/wav"));
    assert_eq!(r.body, wav, "the same WAV as in the JSON");
    assert_eq!(r.header("x-capstream-caption"), want["caption"].as_str());

    // Generation options from the query; a misspelt one is refused.
    let r = post(
        port,
        "/v1/caption?num_beams=3&max_new_tokens=4",
        "image/jpeg",
        &image,
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let ids = r.json()["token_ids"].as_array().unwrap().len();
    assert!(
        (2..=5).contains(&ids),
        "[DEC] and at most 4 new tokens: {ids}"
    );
    let r = post(
        port,
        "/v1/caption?prompt=a%20picture%20of",
        "image/jpeg",
        &image,
    );
    assert_eq!(r.status, 200);
    assert!(r.json()["caption"]
        .as_str()
        .unwrap()
        .starts_with("a picture of"));
    let r = post(port, "/v1/caption?beams=2", "image/jpeg", &image);
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error_kind"], "bad_request");
    assert!(r.json()["error"].as_str().unwrap().contains("beams"));
    // Within the server's bound but past the model's 48 positions: the row says so.
    let r = post(port, "/v1/caption?max_new_tokens=100", "image/jpeg", &image);
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["error_kind"], "invalid_options");
    assert!(r.json()["error"].as_str().unwrap().contains("positions"));

    // Bytes that are no image, and a truncated JPEG: 422 naming the record.
    for (file, kinds) in [
        ("not-an-image.png", &["unsupported_format", "decode"][..]),
        ("truncated.jpg", &["decode"][..]),
    ] {
        let bytes = std::fs::read(repo().join("tests/fixtures/images").join(file)).unwrap();
        let r = post(port, "/v1/caption", "image/png", &bytes);
        assert_eq!(
            r.status,
            422,
            "{file}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let j = r.json();
        assert_eq!(j["status"], "error");
        assert!(
            kinds.contains(&j["error_kind"].as_str().unwrap()),
            "{file}: {j}"
        );
        let id = j["id"].as_str().unwrap();
        assert!(j["error"].as_str().unwrap().contains(id), "{j}");
    }
    let r = post(port, "/v1/caption", "image/png", b"");
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["error_kind"], "empty");

    // Not an image upload at all: 415.
    let r = post(port, "/v1/caption", "text/plain", b"hello");
    assert_eq!(r.status, 415);
    assert_eq!(r.json()["error_kind"], "unsupported_media_type");

    // Over the body limit: a declared length is refused before the body is sent…
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        c,
        "POST /v1/caption HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: image/jpeg\r\nContent-Length: 10000000\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut raw = vec![0u8; 4096];
    let n = c.read(&mut raw).unwrap();
    let r = parse(&raw[..n]);
    assert_eq!(r.status, 413);
    // …and a chunked body that grows past it is cut at the limit.
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        c,
        "POST /v1/caption HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: image/jpeg\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let chunk = vec![b'a'; 65536];
    for _ in 0..5 {
        let _ = write!(c, "{:x}\r\n", chunk.len());
        let _ = c.write_all(&chunk);
        let _ = c.write_all(b"\r\n");
    }
    let _ = c.write_all(b"0\r\n\r\n");
    let mut raw = Vec::new();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = c.read_to_end(&mut raw);
    assert_eq!(parse(&raw).status, 413);

    // A slow upload: 408 after body_read_timeout_ms.
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        c,
        "POST /v1/caption HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: image/jpeg\r\nContent-Length: 1000\r\nConnection: close\r\n\r\nabc"
    )
    .unwrap();
    let mut raw = Vec::new();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = c.read_to_end(&mut raw);
    assert_eq!(parse(&raw).status, 408);

    // A client trickling its headers byte by byte is cut off (header_read_timeout_ms
    // = 1000), while the server keeps serving.
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let started = Instant::now();
    let mut cut = false;
    for b in b"POST /v1/caption HTTP/1.1\r\nHost: x\r\nX-Slow: "
        .iter()
        .cycle()
        .take(200)
    {
        if c.write_all(&[*b]).is_err() {
            cut = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        c.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 256];
        let done = match c.read(&mut buf) {
            Ok(_) => true,
            Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
        };
        c.set_nonblocking(false).unwrap();
        if done {
            cut = true;
            break;
        }
    }
    assert!(
        cut,
        "a trickling client was still connected after {:?}",
        started.elapsed()
    );
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(post(port, "/v1/caption", "image/jpeg", &image).status, 200);

    // The metrics count what happened, by endpoint, protocol and code.
    let m = String::from_utf8(get(port, "/metrics").body).unwrap();
    let requests = "capstream_serve_requests_total";
    assert!(
        metric(&m, requests, &["code=\"200\"", "endpoint=\"caption\""]) >= 5.0,
        "{m}"
    );
    assert_eq!(metric(&m, requests, &["code=\"401\""]), 2.0);
    assert_eq!(metric(&m, requests, &["code=\"422\""]), 3.0);
    assert!(metric(&m, requests, &["endpoint=\"describe\"", "code=\"200\""]) >= 2.0);
    assert!(m.contains("capstream_stage_batch_rows_bucket"));
    assert_eq!(metric(&m, "capstream_serve_requests_in_flight", &[]), 0.0);
}

#[test]
fn concurrent_clients_share_model_batches_and_get_their_own_captions() {
    let dir = tempfile::tempdir().unwrap();
    // The caption stage waits up to 300 ms for a batch to fill.
    let s = Server::start("serve-batches", &pipeline(dir.path(), 300, LIMITS), &[]);
    let images: Vec<(Vec<u8>, serde_json::Value)> = samples()
        .iter()
        .take(4)
        .map(|p| (std::fs::read(p).unwrap(), reference(p)))
        .collect();
    let images = std::sync::Arc::new(images);
    let port = s.port;
    let clients: Vec<_> = (0..64)
        .map(|i| {
            let images = images.clone();
            std::thread::spawn(move || {
                let (bytes, want) = &images[i % images.len()];
                let r = post_jpeg(port, "/v1/caption", bytes);
                (r.status, r.json(), want.clone())
            })
        })
        .collect();
    let mut ok = 0;
    for c in clients {
        let (status, got, want) = c.join().unwrap();
        assert_eq!(status, 200, "{got}");
        assert_eq!(
            got["caption"], want["caption"],
            "batched rows keep their own caption"
        );
        assert_eq!(got["token_ids"], want["token_ids"]);
        ok += 1;
    }
    assert_eq!(ok, 64);
    let m = String::from_utf8(get(port, "/metrics").body).unwrap();
    let rows = metric(&m, "capstream_stage_batch_rows_sum", &["stage=\"caption\""]);
    let batches = metric(
        &m,
        "capstream_stage_batch_rows_count",
        &["stage=\"caption\""],
    );
    assert_eq!(rows, 64.0, "{m}");
    assert!(
        batches < 64.0 && rows / batches > 1.0,
        "{batches} batches for 64 rows"
    );
    // Batches of more than one row are in the histogram's buckets too.
    let single = metric(
        &m,
        "capstream_stage_batch_rows_bucket",
        &["stage=\"caption\"", "le=\"1\""],
    );
    assert!(
        single < batches,
        "{single} of {batches} batches had one row"
    );
}

#[test]
fn a_full_house_is_429_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    // Two slots, held for 3 s each by the caption stage's batch delay.
    let limits = "queue_capacity = 2\nretry_after_s = 7\n";
    let s = Server::start("serve-overload", &pipeline(dir.path(), 3000, limits), &[]);
    let image = std::sync::Arc::new(std::fs::read(&samples()[1]).unwrap());
    let port = s.port;
    let clients: Vec<_> = (0..10)
        .map(|_| {
            let image = image.clone();
            std::thread::spawn(move || {
                let r = post_jpeg(port, "/v1/caption", &image);
                (r.status, r.header("retry-after").map(str::to_string))
            })
        })
        .collect();
    let answers: Vec<_> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    let ok = answers.iter().filter(|(s, _)| *s == 200).count();
    let refused: Vec<_> = answers.iter().filter(|(s, _)| *s == 429).collect();
    assert_eq!((ok, refused.len()), (2, 8), "{answers:?}");
    assert!(refused
        .iter()
        .all(|(_, after)| after.as_deref() == Some("7")));
}

#[test]
fn sigterm_answers_admitted_requests_then_exits() {
    let dir = tempfile::tempdir().unwrap();
    // The caption stage holds its batch for 4 s: the drain has something to wait for.
    let s = Server::start("serve-drain", &pipeline(dir.path(), 4000, LIMITS), &[]);
    let mut s = s;
    let port = s.port;
    let image = std::sync::Arc::new(std::fs::read(&samples()[2]).unwrap());
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let image = image.clone();
            std::thread::spawn(move || post_jpeg(port, "/v1/caption", &image).status)
        })
        .collect();
    // All four are admitted and held by the batch delay when the signal comes.
    assert!(wait_for(10, || {
        let m = String::from_utf8(get(port, "/metrics").body).unwrap();
        metric(&m, "capstream_serve_requests_in_flight", &[]) >= 4.0
    }));
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &s.proc.child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    // Draining: not ready, and a new request is turned away with a Retry-After.
    assert!(wait_for(5, || get(port, "/readyz").status == 503));
    let late = post_jpeg(port, "/v1/caption", &image);
    assert_eq!(late.status, 503, "{}", String::from_utf8_lossy(&late.body));
    assert_eq!(late.json()["error_kind"], "unavailable");
    assert_eq!(late.header("retry-after"), Some("1"));
    assert!(
        s.proc.exits_ok(30),
        "serve did not exit 0 after SIGTERM: {}",
        s.proc.log()
    );
    let codes: Vec<u16> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    assert_eq!(codes, [200; 4], "{}", s.proc.log());
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "still listening"
    );
}

#[test]
fn a_slow_answer_is_504_and_describe_needs_a_speak_stage() {
    let dir = tempfile::tempdir().unwrap();
    // No speak stage, and a batch delay longer than the request timeout.
    let limits = "request_timeout_ms = 500\n";
    let mut text = pipeline(dir.path(), 3000, limits);
    let start = text.find("[[stage]]\ntype = \"speak\"").unwrap();
    let end = text[start..].find("[sink]").unwrap() + start;
    text.replace_range(start..end, "");
    let s = Server::start("serve-timeout", &text, &[]);
    let image = std::fs::read(&samples()[0]).unwrap();
    let r = post_jpeg(s.port, "/v1/describe", &image);
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error_kind"], "not_found");
    let r = post_jpeg(s.port, "/v1/caption", &image);
    assert_eq!(r.status, 504, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["error_kind"], "timeout");
    // The record still ran; the server goes on and answers within the limit again.
    let m = String::from_utf8(get(s.port, "/metrics").body).unwrap();
    assert_eq!(
        metric(&m, "capstream_serve_requests_total", &["code=\"504\""]),
        1.0
    );
    assert_eq!(get(s.port, "/readyz").status, 200);
}

#[test]
fn the_nats_micro_service_answers_discovery_and_captions_over_tls() {
    let nats = NatsServer::start(true);
    let dir = tempfile::tempdir().unwrap();
    let p = nats.pipeline(dir.path(), &pipeline(dir.path(), 0, LIMITS));
    let text = std::fs::read_to_string(&p).unwrap();
    let s = Server::start("serve-nats", &text, &["--nats", &nats.url()]);
    let cfg = capstream::config::PipelineConfig::load(&p).unwrap();
    let image_path = &samples()[3];
    let image = std::fs::read(image_path).unwrap();
    let want = reference(image_path);
    let rt = crate::nats_util::runtime();
    rt.block_on(async {
        let client = capstream::transport::connect(&nats.url(), "test", &cfg)
            .await
            .unwrap();
        let ask = |subject: &'static str, payload: Vec<u8>| {
            let client = client.clone();
            async move {
                tokio::time::timeout(
                    Duration::from_secs(60),
                    client.request(subject, payload.into()),
                )
                .await
                .expect("an answer in time")
                .expect("a reply")
            }
        };
        let ping = ask("$SRV.PING.capstream", Vec::new()).await;
        let ping: serde_json::Value = serde_json::from_slice(&ping.payload).unwrap();
        assert_eq!(ping["type"], "io.nats.micro.v1.ping_response");
        assert_eq!(ping["name"], "capstream");
        let info = ask("$SRV.INFO.capstream", Vec::new()).await;
        let info: serde_json::Value = serde_json::from_slice(&info.payload).unwrap();
        let subjects: Vec<&str> = info["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["subject"].as_str().unwrap())
            .collect();
        assert_eq!(subjects.len(), 2, "{info}");
        assert!(subjects.contains(&"serve.caption") && subjects.contains(&"serve.describe"));

        let answer = ask("serve.caption", image.clone()).await;
        let j: serde_json::Value = serde_json::from_slice(&answer.payload).unwrap();
        assert_eq!(j["caption"], want["caption"]);
        assert_eq!(j["token_ids"], want["token_ids"]);

        let answer = ask("serve.describe", image.clone()).await;
        let j: serde_json::Value = serde_json::from_slice(&answer.payload).unwrap();
        assert_eq!(j["caption"], want["caption"]);
        assert!(j["audio"]["base64"].as_str().unwrap().len() > 1000);

        // Options travel as headers; a failure is the protocol's error.
        let mut h = async_nats::HeaderMap::new();
        h.insert(capstream::serve::HEADER_MAX_NEW_TOKENS, "3");
        let answer = client
            .request_with_headers("serve.caption", h, image.clone().into())
            .await
            .unwrap();
        let j: serde_json::Value = serde_json::from_slice(&answer.payload).unwrap();
        assert!(j["token_ids"].as_array().unwrap().len() <= 4, "{j}");
        let answer = ask("serve.caption", b"not an image".to_vec()).await;
        let h = answer.headers.expect("error headers");
        assert_eq!(h.get("Nats-Service-Error-Code").unwrap().as_str(), "422");
        let id = h
            .get(capstream::serve::HEADER_ID)
            .expect("the record id")
            .as_str();
        assert!(h.get("Nats-Service-Error").unwrap().as_str().contains(id));
        assert!(["unsupported_format", "decode"]
            .contains(&h.get(capstream::serve::HEADER_ERROR_KIND).unwrap().as_str()));

        let stats = ask("$SRV.STATS.capstream", Vec::new()).await;
        let stats: serde_json::Value = serde_json::from_slice(&stats.payload).unwrap();
        let caption = stats["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "caption")
            .unwrap()
            .clone();
        assert_eq!(caption["num_requests"], 3, "{stats}");
        assert_eq!(caption["num_errors"], 1, "{stats}");
    });
    // The same server answers HTTP meanwhile.
    let r = post_jpeg(s.port, "/v1/caption", &image);
    assert_eq!(r.json()["caption"], want["caption"]);

    // A second replica joins the queue group: requests are shared, each answered once,
    // and discovery finds both.
    let second = Server::start("serve-nats-2", &text, &["--nats", &nats.url()]);
    rt.block_on(async {
        let client = capstream::transport::connect(&nats.url(), "test", &cfg)
            .await
            .unwrap();
        let before = instance_requests(&client).await;
        assert_eq!(
            before.len(),
            2,
            "two instances answer $SRV.STATS: {before:?}"
        );
        let asks = (0..24).map(|_| {
            let client = client.clone();
            let image = image.clone();
            async move { client.request("serve.caption", image.into()).await.unwrap() }
        });
        for answer in futures_util::future::join_all(asks).await {
            let j: serde_json::Value = serde_json::from_slice(&answer.payload).unwrap();
            assert_eq!(j["caption"], want["caption"]);
        }
        let after = instance_requests(&client).await;
        let served: Vec<u64> = after
            .iter()
            .map(|(id, n)| n - before.get(id).copied().unwrap_or(0))
            .collect();
        assert_eq!(served.iter().sum::<u64>(), 24, "{served:?}");
        assert!(
            served.iter().all(|&n| n > 0),
            "one replica took none: {served:?}"
        );
    });
    drop(second);
}

/// Requests answered by the `caption` endpoint of every running `capstream` instance,
/// by instance id: `$SRV.STATS` is answered once per instance, so the replies are
/// gathered on an inbox for a while.
async fn instance_requests(client: &async_nats::Client) -> std::collections::HashMap<String, u64> {
    use futures_util::StreamExt;
    let inbox = client.new_inbox();
    let mut replies = client.subscribe(inbox.clone()).await.unwrap();
    client
        .publish_with_reply("$SRV.STATS.capstream", inbox, Vec::new().into())
        .await
        .unwrap();
    client.flush().await.unwrap();
    let mut out = std::collections::HashMap::new();
    while let Ok(Some(m)) = tokio::time::timeout(Duration::from_secs(2), replies.next()).await {
        let stats: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
        let n = stats["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "caption")
            .and_then(|e| e["num_requests"].as_u64())
            .unwrap_or(0);
        out.insert(stats["id"].as_str().unwrap().to_string(), n);
    }
    out
}
