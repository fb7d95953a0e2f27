//! Helpers for the distributed-mode tests: a real nats-server (Debian's) on free
//! loopback ports, killed when dropped, and capstream role processes.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{free_port, BIN};

/// Debian's nats-server.
pub const NATS_SERVER: &str = "/usr/sbin/nats-server";

/// A nats-server process with its own store folder.
pub struct NatsServer {
    child: Child,
    pub port: u16,
    _store: tempfile::TempDir,
}

impl NatsServer {
    /// Starts `nats-server -js` (or without JetStream) on a free port and waits until it
    /// accepts connections.
    pub fn start(jetstream: bool) -> NatsServer {
        let store = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut cmd = Command::new(NATS_SERVER);
        cmd.args(["-a", "127.0.0.1", "-p", &port.to_string()]);
        if jetstream {
            cmd.args(["-js", "-sd", store.path().to_str().unwrap()]);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server (apt-get install nats-server)");
        let up = crate::util::wait_for(10, || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(up, "nats-server did not listen on {port}");
        NatsServer {
            child,
            port,
            _store: store,
        }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
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
        let log = logs.join(format!("{name}.log"));
        let f = std::fs::File::create(&log).unwrap();
        let child = Command::new(BIN)
            .args(args)
            .env("RUST_LOG", "info")
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
