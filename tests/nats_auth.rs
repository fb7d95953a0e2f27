//! Distributed mode against secured servers: each authentication method with a
//! nats-server configured for it, end to end; wrong credentials and certificates fail
//! fast, naming the server and the method; secrets never reach a log.
//!
//! Methods: user/password over mutual TLS (the shipped `single.conf`, via
//! make-secrets.sh), a token, nkey users, and decentralized JWT auth with a `.creds`
//! file against an operator-mode server whose operator, account and user JWTs the test
//! mints offline (memory resolver).

use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine;
use sha2::Digest;

use crate::nats_util::{NatsServer, Secrets};
use crate::util::{capstream, write_images};

/// A decode-only pipeline; `keys` go into its `[nats]` table.
fn pipeline_text(keys: &str) -> String {
    format!(
        r#"
name = "auth"
mode = "nats"
[batch]
max_rows = 4
max_delay_ms = 10
[nats]
{keys}
commit_interval_ms = 200
idle_wait_ms = 300
[source]
type = "files"
[[stage]]
type = "decode_image"
image_size = 16
[sink]
type = "parquet"
"#
    )
}

/// `capstream run` of 4 images through `p` against `url`: every id committed.
fn runs_end_to_end(p: &Path, url: &str, dir: &Path) {
    let input = dir.join("in");
    write_images(&input, 4, 20, 12);
    let out = dir.join("out");
    let r = capstream(&[
        "run",
        "--pipeline",
        p.to_str().unwrap(),
        "--nats",
        url,
        "--input",
        input.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--no-progress",
    ]);
    let stdout = String::from_utf8_lossy(&r.stdout);
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(r.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("4 records submitted, 4 ids committed"),
        "{stdout}\n{stderr}"
    );
}

/// `capstream worker` once against `url`: it must fail; returns its stderr and how
/// long it took.
fn worker_fails(p: &Path, url: &str) -> (String, Duration) {
    let t = Instant::now();
    let r = capstream(&[
        "worker",
        "--stage",
        "decode_image",
        "--pipeline",
        p.to_str().unwrap(),
        "--nats",
        url,
    ]);
    let took = t.elapsed();
    let err = String::from_utf8_lossy(&r.stderr).to_string();
    assert!(!r.status.success(), "the worker connected\n{err}");
    (err, took)
}

#[test]
fn user_password_over_mutual_tls_with_the_shipped_config_runs_end_to_end() {
    let server = NatsServer::start(true);
    let dir = tempfile::tempdir().unwrap();
    let p = server.pipeline(dir.path(), &pipeline_text(""));
    runs_end_to_end(&p, &server.url(), dir.path());
}

#[test]
fn a_token_server_runs_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let token = "t0ken-for-the-test-only";
    let conf = dir.path().join("token.conf");
    std::fs::write(
        &conf,
        format!("authorization {{ token: \"{token}\" }}\njetstream {{ max_memory_store: 256MB, max_file_store: 100GB }}\n"),
    )
    .unwrap();
    let server = NatsServer::start_with(&["-c", conf.to_str().unwrap()], &[], None);
    std::fs::write(dir.path().join("token"), format!("{token}\n")).unwrap();
    let p = crate::util::pipeline(
        dir.path(),
        &pipeline_text(&format!(
            "token_file = \"{}\"",
            dir.path().join("token").display()
        )),
    );
    runs_end_to_end(&p, &server.url(), dir.path());

    // A wrong token fails fast and says which method.
    std::fs::write(dir.path().join("token"), "wrong").unwrap();
    let (err, took) = worker_fails(&p, &server.url());
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert!(
        err.contains("token") && err.contains(&server.url()),
        "{err}"
    );
    assert!(!err.contains(token), "the token leaked: {err}");
}

#[test]
fn nkey_users_run_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let user = nkeys::KeyPair::new_user();
    let conf = dir.path().join("nkey.conf");
    std::fs::write(
        &conf,
        format!(
            "authorization {{ users: [ {{ nkey: {} }} ] }}\njetstream {{ max_memory_store: 256MB, max_file_store: 100GB }}\n",
            user.public_key()
        ),
    )
    .unwrap();
    let server = NatsServer::start_with(&["-c", conf.to_str().unwrap()], &[], None);
    let seed = dir.path().join("user.nk");
    std::fs::write(&seed, user.seed().unwrap()).unwrap();
    let p = crate::util::pipeline(
        dir.path(),
        &pipeline_text(&format!("nkey_file = \"{}\"", seed.display())),
    );
    runs_end_to_end(&p, &server.url(), dir.path());

    // Another user's seed is refused.
    std::fs::write(&seed, nkeys::KeyPair::new_user().seed().unwrap()).unwrap();
    let (err, took) = worker_fails(&p, &server.url());
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert!(err.contains("nkey") && err.contains("refused"), "{err}");
}

/// A JWT as nats-server reads it: header, claims, Ed25519 signature by `issuer`.
fn jwt(mut claims: serde_json::Value, issuer: &nkeys::KeyPair) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    claims["iat"] = serde_json::json!(1_700_000_000u64);
    claims["iss"] = serde_json::json!(issuer.public_key());
    let digest = sha2::Sha256::digest(serde_json::to_vec(&claims).unwrap());
    claims["jti"] = serde_json::json!(hex::encode_upper(&digest[..20]));
    let head = b64.encode(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let body = b64.encode(serde_json::to_vec(&claims).unwrap());
    let signed = format!("{head}.{body}");
    let sig = issuer.sign(signed.as_bytes()).unwrap();
    format!("{signed}.{}", b64.encode(sig))
}

#[test]
fn a_creds_file_against_an_operator_mode_server_runs_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let operator = nkeys::KeyPair::new_operator();
    let system = nkeys::KeyPair::new_account();
    let account = nkeys::KeyPair::new_account();
    let user = nkeys::KeyPair::new_user();
    let unlimited = serde_json::json!({
        "subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
        "wildcards": true, "conn": -1, "leaf": -1,
        "mem_storage": -1, "disk_storage": -1, "streams": -1, "consumer": -1
    });
    let op_jwt = jwt(
        serde_json::json!({
            "sub": operator.public_key(), "name": "capstream-test",
            "nats": {"type": "operator", "version": 2, "system_account": system.public_key()}
        }),
        &operator,
    );
    let sys_jwt = jwt(
        serde_json::json!({
            "sub": system.public_key(), "name": "SYS",
            "nats": {"type": "account", "version": 2, "limits": {
                "subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
                "wildcards": true, "conn": -1, "leaf": -1}}
        }),
        &operator,
    );
    let acc_jwt = jwt(
        serde_json::json!({
            "sub": account.public_key(), "name": "CAPSTREAM",
            "nats": {"type": "account", "version": 2, "limits": unlimited}
        }),
        &operator,
    );
    let user_jwt = jwt(
        serde_json::json!({
            "sub": user.public_key(), "name": "capstream",
            "nats": {"type": "user", "version": 2, "pub": {}, "sub": {},
                     "subs": -1, "data": -1, "payload": -1}
        }),
        &account,
    );
    let conf = dir.path().join("operator.conf");
    std::fs::write(
        &conf,
        format!(
            "operator: {op_jwt}\nsystem_account: {sys}\nresolver: MEMORY\nresolver_preload: {{\n  {sys}: {sys_jwt}\n  {acc}: {acc_jwt}\n}}\njetstream {{ max_memory_store: 256MB, max_file_store: 100GB }}\n",
            sys = system.public_key(),
            acc = account.public_key(),
        ),
    )
    .unwrap();
    let log = dir.path().join("server.log");
    let server = NatsServer::start_with(&["-c", conf.to_str().unwrap()], &[], Some(&log));
    let creds = dir.path().join("capstream.creds");
    std::fs::write(
        &creds,
        format!(
            "-----BEGIN NATS USER JWT-----\n{user_jwt}\n------END NATS USER JWT------\n\n\
             ************************* IMPORTANT *************************\n\
             NKEY Seed printed below can be used to sign and prove identity.\n\n\
             -----BEGIN USER NKEY SEED-----\n{}\n------END USER NKEY SEED------\n",
            user.seed().unwrap()
        ),
    )
    .unwrap();
    let p = crate::util::pipeline(
        dir.path(),
        &pipeline_text(&format!("credentials_file = \"{}\"", creds.display())),
    );
    let url = server.url();
    let ok = std::panic::catch_unwind(|| runs_end_to_end(&p, &url, dir.path()));
    assert!(
        ok.is_ok(),
        "server log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

/// A pipeline for the shipped secured server with one client key replaced.
fn with_replaced(secrets: &Secrets, dir: &Path, key: &str, value: &Path) -> std::path::PathBuf {
    let keys: String = secrets
        .client_keys()
        .lines()
        .map(|l| {
            if l.starts_with(&format!("{key} ")) {
                format!("{key} = \"{}\"\n", value.display())
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    crate::util::pipeline(dir, &pipeline_text(&keys))
}

#[test]
fn a_wrong_password_a_foreign_certificate_and_an_untrusted_ca_fail_within_ten_seconds() {
    let server = NatsServer::start(true);
    let secrets = server.secrets.as_ref().unwrap();
    let other = Secrets::make();
    let dir = tempfile::tempdir().unwrap();
    let url = server.url();

    // Wrong password.
    let wrong = dir.path().join("wrong-password");
    std::fs::write(&wrong, "not-the-password").unwrap();
    let p = with_replaced(secrets, dir.path(), "password_file", &wrong);
    let (err, took) = worker_fails(&p, &url);
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert!(
        err.contains(&url)
            && err.contains("user/password (user \"capstream\")")
            && err.contains("refused"),
        "{err}"
    );
    assert!(
        !err.contains("not-the-password"),
        "the password leaked: {err}"
    );

    // A client certificate from another CA: the server refuses the handshake.
    let d2 = dir.path().join("cert");
    std::fs::create_dir_all(&d2).unwrap();
    let keys = secrets
        .client_keys()
        .replace(
            secrets.path("client.crt").to_str().unwrap(),
            other.path("client.crt").to_str().unwrap(),
        )
        .replace(
            secrets.path("client.key").to_str().unwrap(),
            other.path("client.key").to_str().unwrap(),
        );
    let p = crate::util::pipeline(&d2, &pipeline_text(&keys));
    let (err, took) = worker_fails(&p, &url);
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert!(
        err.contains(&url)
            && err.contains("refused the TLS handshake")
            && err.contains(other.path("client.crt").to_str().unwrap()),
        "{err}"
    );

    // A CA that did not sign the server's certificate: the client refuses the server.
    let d3 = dir.path().join("ca");
    std::fs::create_dir_all(&d3).unwrap();
    let p = with_replaced(secrets, &d3, "tls_ca_file", &other.path("ca.crt"));
    let (err, took) = worker_fails(&p, &url);
    assert!(took < Duration::from_secs(10), "{took:?}");
    // (webpki says UnknownIssuer, or BadSignature when the other CA has the same name.)
    assert!(
        err.contains(&url) && err.contains("not trusted by the CA given"),
        "{err}"
    );

    // No client certificate at all, against verify: true.
    let d4 = dir.path().join("nocert");
    std::fs::create_dir_all(&d4).unwrap();
    let keys: String = secrets
        .client_keys()
        .lines()
        .filter(|l| !l.starts_with("tls_cert_file") && !l.starts_with("tls_key_file"))
        .map(|l| format!("{l}\n"))
        .collect();
    let p = crate::util::pipeline(&d4, &pipeline_text(&keys));
    let (err, took) = worker_fails(&p, &url);
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert!(
        err.contains(&url) && err.contains("refused the TLS handshake"),
        "{err}"
    );
}

#[test]
fn secrets_stay_out_of_pipeline_files_and_logs() {
    // A password written into a pipeline file is refused, with where it belongs.
    let dir = tempfile::tempdir().unwrap();
    let p = crate::util::pipeline(dir.path(), &pipeline_text("password = \"hunter2\""));
    let r = capstream(&["validate", p.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success());
    assert!(
        err.contains("password_file") && err.contains("CAPSTREAM_NATS_PASSWORD"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");

    // A worker at debug level, connected with the password, never logs it.
    let server = NatsServer::start(true);
    let secrets = server.secrets.as_ref().unwrap();
    let password = std::fs::read_to_string(secrets.path("password")).unwrap();
    let p = server.pipeline(dir.path(), &pipeline_text(""));
    let mut w = crate::nats_util::Proc::spawn_logging(
        "worker",
        &[
            "worker",
            "--stage",
            "decode_image",
            "--pipeline",
            p.to_str().unwrap(),
            "--nats",
            &server.url(),
        ],
        dir.path(),
        "debug",
    );
    assert!(
        crate::util::wait_for(20, || w.log().contains("Worker ready.")),
        "{}",
        w.log()
    );
    assert!(w.terminate(20), "{}", w.log());
    let log = w.log();
    assert!(!log.contains(password.trim()), "the password is in the log");
}

/// A bcrypt hash of `password`, as deploy/nats/make-secrets.sh makes one.
fn bcrypt(password: &str) -> String {
    let out = std::process::Command::new("htpasswd")
        .args(["-bnBC", "10", "", password])
        .output()
        .expect("htpasswd (Debian: apache2-utils)");
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .trim_start_matches(':')
        .to_string()
}

#[test]
fn a_password_rotates_through_a_second_user_and_a_reload() {
    // deploy/README.md, Rotation: add the new user, reload, move the clients, remove
    // the old user, reload. The shipped config must allow the reloads.
    let server = NatsServer::start(true);
    let secrets = server.secrets.as_ref().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let old = std::fs::read_to_string(secrets.path("auth.conf")).unwrap();
    let old_hash = old.split('"').nth(1).unwrap().to_string();
    let new_pw = dir.path().join("new-password");
    std::fs::write(&new_pw, "the-new-password").unwrap();
    let users = |entries: &[(&str, &str)]| {
        let list: String = entries
            .iter()
            .map(|(u, h)| format!("    {{user: {u}, password: \"{h}\"}}\n"))
            .collect();
        format!("authorization {{\n  users: [\n{list}  ]\n}}\n")
    };
    let reload = |text: String| {
        std::fs::write(secrets.path("auth.conf"), text).unwrap();
        let s = std::process::Command::new("kill")
            .args(["-HUP", &server.pid().to_string()])
            .status()
            .unwrap();
        assert!(s.success());
        std::thread::sleep(Duration::from_millis(500));
    };
    let new_hash = bcrypt("the-new-password");
    reload(users(&[
        ("capstream", &old_hash),
        ("capstream2", &new_hash),
    ]));
    let keys_new = |d: &Path| {
        let keys = secrets
            .client_keys()
            .replace("user = \"capstream\"", "user = \"capstream2\"")
            .replace(
                secrets.path("password").to_str().unwrap(),
                new_pw.to_str().unwrap(),
            );
        std::fs::create_dir_all(d).unwrap();
        crate::util::pipeline(d, &pipeline_text(&keys))
    };
    let both = dir.path().join("both");
    runs_end_to_end(&keys_new(&both), &server.url(), &both);
    let old_p = server.pipeline(dir.path(), &pipeline_text(""));
    let d2 = dir.path().join("old-still");
    std::fs::create_dir_all(&d2).unwrap();
    runs_end_to_end(&old_p, &server.url(), &d2);
    // The old user goes.
    reload(users(&[("capstream2", &new_hash)]));
    let (err, _) = worker_fails(&old_p, &server.url());
    assert!(err.contains("refused"), "{err}");
    let after = dir.path().join("after");
    runs_end_to_end(&keys_new(&after), &server.url(), &after);
}
