//! Helpers for the distributed-mode tests: a real nats-server (Debian's) on free
//! loopback ports, killed when dropped, and capstream role processes.
//!
//! JetStream servers run the shipped configs (`deploy/nats/single.conf`,
//! `deploy/nats/cluster/nats-{1,2,3}.conf`) from a folder made by
//! `deploy/nats/make-secrets.sh`: mutual TLS and a bcrypt user, as in production. Test
//! pipelines get the client side (`user`, `password_file`, `tls_*`) through
//! [`Secrets::pipeline`].

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{free_port, BIN};

/// Debian's nats-server.
pub const NATS_SERVER: &str = "/usr/sbin/nats-server";

/// A folder made by `deploy/nats/make-secrets.sh`: CA, certificates, password,
/// auth.conf and copies of the shipped server configs.
pub struct Secrets {
    pub dir: tempfile::TempDir,
}

impl Secrets {
    pub fn make() -> Secrets {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("bash")
            .arg(crate::util::repo().join("deploy/nats/make-secrets.sh"))
            .arg(dir.path())
            .output()
            .expect("run make-secrets.sh");
        assert!(
            out.status.success(),
            "make-secrets.sh: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Secrets { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The server's TLS environment (what `server.env` exports).
    pub fn server_env(&self) -> Vec<(String, String)> {
        [
            ("NATS_TLS_CA_FILE", "ca.crt"),
            ("NATS_TLS_CERT_FILE", "server.crt"),
            ("NATS_TLS_KEY_FILE", "server.key"),
        ]
        .iter()
        .map(|(k, f)| (k.to_string(), self.path(f).display().to_string()))
        .collect()
    }

    /// The client's `[nats]` keys.
    pub fn client_keys(&self) -> String {
        format!(
            "user = \"capstream\"\npassword_file = \"{}\"\ntls_ca_file = \"{}\"\ntls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n",
            self.path("password").display(),
            self.path("ca.crt").display(),
            self.path("client.crt").display(),
            self.path("client.key").display()
        )
    }

    /// Writes pipeline `text` into `dir` with the client's keys in its `[nats]` table.
    pub fn pipeline(&self, dir: &Path, text: &str) -> PathBuf {
        crate::util::pipeline(dir, &with_nats_keys(text, &self.client_keys()))
    }
}

/// `text` with `keys` at the top of its `[nats]` table (a new table if it has none).
pub fn with_nats_keys(text: &str, keys: &str) -> String {
    let mut out = String::new();
    let mut done = false;
    for line in text.lines() {
        out.push_str(line);
        out.push('\n');
        if !done && line.trim() == "[nats]" {
            out.push_str(keys);
            done = true;
        }
    }
    if !done {
        out.push_str("\n[nats]\n");
        out.push_str(keys);
    }
    out
}

/// A nats-server process with its own store folder.
pub struct NatsServer {
    child: Child,
    pub port: u16,
    /// The secured server's secrets (JetStream servers); `None` for a plain one.
    pub secrets: Option<Secrets>,
    _store: tempfile::TempDir,
}

impl NatsServer {
    /// Starts a secured JetStream server from the shipped `single.conf` (or a plain
    /// server without JetStream) on free loopback ports and waits until it accepts
    /// connections.
    pub fn start(jetstream: bool) -> NatsServer {
        if !jetstream {
            return NatsServer::start_with(&[], &[], None);
        }
        let secrets = Secrets::make();
        let conf = secrets.path("single.conf");
        let store = tempfile::tempdir().unwrap();
        let mut env = secrets.server_env();
        env.push(("NATS_STORE_DIR".into(), store.path().display().to_string()));
        let mut s = NatsServer::start_full(&["-c", conf.to_str().unwrap()], &env, None, false);
        s.secrets = Some(secrets);
        s._store = store;
        s
    }

    /// Starts nats-server with `args` and `env` (plus free ports, and a store when
    /// `args` enable JetStream) and waits until it accepts connections.
    pub fn start_with(args: &[&str], env: &[(String, String)], log: Option<&Path>) -> NatsServer {
        NatsServer::start_full(args, env, log, !args.is_empty())
    }

    /// `start_with`, giving the store on the command line only when `cli_store` (a
    /// config that names its own `store_dir` can be reloaded; 2.9 refuses to reload
    /// one whose store came from `-sd`).
    pub fn start_full(
        args: &[&str],
        env: &[(String, String)],
        log: Option<&Path>,
        cli_store: bool,
    ) -> NatsServer {
        let store = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut cmd = Command::new(NATS_SERVER);
        cmd.args(args);
        if !args.is_empty() {
            // The configs' own monitoring port is fixed; parallel servers need their own.
            cmd.args(["-m", &free_port().to_string()]);
        }
        if cli_store {
            cmd.args(["-sd", store.path().to_str().unwrap()]);
        }
        cmd.args(["-a", "127.0.0.1", "-p", &port.to_string()]);
        cmd.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let stderr = match log {
            Some(p) => Stdio::from(std::fs::File::create(p).unwrap()),
            None => Stdio::null(),
        };
        let child = cmd
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start nats-server (apt-get install nats-server)");
        let up = crate::util::wait_for(10, || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(up, "nats-server did not listen on {port}");
        NatsServer {
            child,
            port,
            secrets: None,
            _store: store,
        }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The server's process id (to signal it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the server (kill -9).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Writes pipeline `text` into `dir`, with this server's client keys when it is
    /// secured.
    pub fn pipeline(&self, dir: &Path, text: &str) -> PathBuf {
        match &self.secrets {
            Some(s) => s.pipeline(dir, text),
            None => crate::util::pipeline(dir, text),
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A capstream process (worker, sink, submit) with its stderr in a log file.
pub struct Proc {
    pub child: Child,
    pub log: PathBuf,
    pub name: String,
}

impl Proc {
    pub fn spawn(name: &str, args: &[&str], logs: &Path) -> Proc {
        Proc::spawn_logging(name, args, logs, "info")
    }

    /// `spawn` with `RUST_LOG` set to `filter`.
    pub fn spawn_logging(name: &str, args: &[&str], logs: &Path, filter: &str) -> Proc {
        Proc::spawn_env(name, args, logs, filter, &[])
    }

    /// `spawn_logging` with extra environment variables.
    pub fn spawn_env(
        name: &str,
        args: &[&str],
        logs: &Path,
        filter: &str,
        env: &[(&str, String)],
    ) -> Proc {
        let log = logs.join(format!("{name}.log"));
        let f = std::fs::File::create(&log).unwrap();
        crate::util::model_side_built();
        let child = Command::new(BIN)
            .current_dir(crate::util::repo())
            .args(args)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("RUST_LOG", filter)
            .stdout(Stdio::piped())
            .stderr(f)
            .spawn()
            .expect("start capstream");
        Proc {
            child,
            log,
            name: name.to_string(),
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then waits (drain) up to `secs`; returns whether it exited with 0.
    pub fn terminate(&mut self, secs: u64) -> bool {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let end = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s.success();
            }
            if Instant::now() > end {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits up to `secs` for it to end by itself; true when it exited with 0. Past
    /// `secs` it is killed and false returned, so a stuck role fails its test instead
    /// of hanging it.
    pub fn exits_ok(&mut self, secs: u64) -> bool {
        let end = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s.success();
            }
            if Instant::now() > end {
                self.kill();
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// kill -9.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Ids (with repeats) of every committed row under `dir`, read from the Parquet.
pub fn committed(dir: &Path) -> Vec<String> {
    if !dir.exists() {
        return Vec::new();
    }
    crate::util::ids(&crate::util::read_output(dir))
}

/// Waits until `dir` holds at least `n` committed rows; false after `secs`.
pub fn wait_rows(dir: &Path, n: usize, secs: u64) -> bool {
    crate::util::wait_for(secs, || committed(dir).len() >= n)
}

/// Reads the messages of a stream with the `nats`-free way: the library's client.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// One node of a test cluster: its ports and store survive a restart.
struct Node {
    index: usize,
    port: u16,
    http: u16,
    cluster: u16,
    store: tempfile::TempDir,
    child: Option<Child>,
}

/// A 3-node JetStream cluster from `deploy/nats/cluster/nats-{1,2,3}.conf` (as copied
/// by make-secrets.sh: TLS routes, TLS clients, users), on free loopback ports (flags
/// override the configs' ports, routes and store folder).
pub struct Cluster {
    nodes: Vec<Node>,
    pub secrets: Secrets,
}

impl Cluster {
    pub fn start() -> Cluster {
        let mut nodes: Vec<Node> = (1..=3)
            .map(|index| Node {
                index,
                port: free_port(),
                http: free_port(),
                cluster: free_port(),
                store: tempfile::tempdir().unwrap(),
                child: None,
            })
            .collect();
        let routes: Vec<String> = nodes
            .iter()
            .map(|n| format!("nats-route://127.0.0.1:{}", n.cluster))
            .collect();
        let routes = routes.join(",");
        let secrets = Secrets::make();
        for n in &mut nodes {
            n.child = Some(Self::spawn(n, &routes, &secrets));
        }
        let c = Cluster { nodes, secrets };
        for n in &c.nodes {
            let port = n.port;
            assert!(
                crate::util::wait_for(15, || std::net::TcpStream::connect(("127.0.0.1", port))
                    .is_ok()),
                "node {} did not listen",
                n.index
            );
        }
        c
    }

    fn spawn(n: &Node, routes: &str, secrets: &Secrets) -> Child {
        let conf = secrets.path(&format!("nats-{}.conf", n.index));
        let mut env = secrets.server_env();
        env.push((
            "NATS_STORE_DIR".into(),
            n.store.path().display().to_string(),
        ));
        // Appended across restarts, for [`Cluster::logs`].
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(Self::log_path(n))
            .unwrap();
        Command::new(NATS_SERVER)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .args(["-c", conf.to_str().unwrap()])
            .args(["-a", "127.0.0.1", "-p", &n.port.to_string()])
            .args(["-m", &n.http.to_string()])
            .args(["--cluster", &format!("nats://127.0.0.1:{}", n.cluster)])
            .args(["--routes", routes])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start nats-server")
    }

    fn log_path(n: &Node) -> std::path::PathBuf {
        n.store.path().join(format!("nats-{}.log", n.index))
    }

    /// The last lines each node logged, for a failing assertion's message.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for n in &self.nodes {
            let text = std::fs::read_to_string(Self::log_path(n)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            out.push_str(&format!(
                "--- node {} (ports {}, {}, {})\n",
                n.index, n.port, n.http, n.cluster
            ));
            for l in &lines[lines.len().saturating_sub(40)..] {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }

    fn routes(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("nats-route://127.0.0.1:{}", n.cluster))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Every node's client URL, comma-separated (clients fail over between them).
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("nats://127.0.0.1:{}", n.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Stops node `i` (1-based) as an operator would: SIGTERM, which lets it hand over
    /// the leaderships it holds; killed if it takes longer than 10 s.
    pub fn stop(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i - 1].child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let end = Instant::now() + Duration::from_secs(10);
            while Instant::now() < end {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts node `i` again on its ports and store.
    pub fn restart(&mut self, i: usize) {
        let routes = self.routes();
        let child = Self::spawn(&self.nodes[i - 1], &routes, &self.secrets);
        self.nodes[i - 1].child = Some(child);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// An HTTP/1.0 GET on loopback (the server closes the connection, no chunking).
pub fn http10_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}

/// An HTTP/1.0 GET on loopback: the status code and the body.
pub fn http10_status(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let code = out.split_whitespace().nth(1)?.parse().ok()?;
    out.split_once("\r\n\r\n")
        .map(|(_, b)| (code, b.to_string()))
}
