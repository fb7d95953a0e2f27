//! HTTP serving with explicit limits: axum routes on hyper connections.
//!
//! This module owns the one accept loop capstream has. `axum::serve` sets no
//! header-read timer and caps nothing, so the loop is written here on hyper directly:
//! a connection cap (a semaphore permit per connection, taken before `accept`, so
//! excess clients wait in the kernel's backlog instead of costing memory), a timeout on
//! reading each request head (a client trickling headers byte by byte is cut off), a
//! maximum connection age (an idle keep-alive client cannot hold a slot forever),
//! doubling back-off on accept errors (a full file table must not spin a core), and a
//! bounded drain on shutdown. It must not know what the routes do.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use crate::error::{Error, Result};

/// What one server allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections served at once; more wait to be accepted.
    pub max_connections: usize,
    /// Longest wait for a request's head (request line and headers).
    pub header_read_timeout: Duration,
    /// A connection older than this is closed after its current response.
    pub max_connection_age: Duration,
    /// On shutdown, how long open connections get to finish.
    pub drain_timeout: Duration,
}

impl Limits {
    /// For `/metrics`, `/healthz` and `/readyz`: scrapes are small and quick.
    pub const fn monitoring() -> Limits {
        Limits {
            max_connections: 64,
            header_read_timeout: Duration::from_secs(5),
            max_connection_age: Duration::from_secs(60),
            drain_timeout: Duration::from_secs(2),
        }
    }
}

/// A running server.
#[derive(Debug)]
pub struct Server {
    /// The bound address (useful with port 0).
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Binds `addr` and serves `app` under `limits` until [`Server::shutdown`], or
    /// until the `Server` is dropped (then open connections get the drain timeout).
    pub async fn start(addr: SocketAddr, app: Router, limits: Limits) -> Result<Server> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| Error::io(format!("HTTP address {addr}"), e))?;
        let bound = listener
            .local_addr()
            .map_err(|e| Error::io(format!("HTTP address {addr}"), e))?;
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, app, limits, stopped));
        Ok(Server {
            addr: bound,
            stop,
            task,
        })
    }

    /// Stops accepting, lets open connections finish their responses (up to the
    /// drain timeout), then returns.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }

    /// [`Server::shutdown`], returning after `within` at most: connections still open
    /// then are left to their own drain timeout.
    pub async fn shutdown_within(self, within: Duration) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(within, self.task).await;
    }
}

/// Resolves once `stop` turns true (or its sender is gone).
async fn stopped(mut stop: watch::Receiver<bool>) {
    while !*stop.borrow_and_update() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    stop: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut backoff = Duration::from_millis(10);
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = stopped(stop.clone()) => break,
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stopped(stop.clone()) => break,
        };
        let (sock, peer) = match accepted {
            Ok(x) => {
                backoff = Duration::from_millis(10);
                x
            }
            Err(e) => {
                tracing::warn!(error = %e, backoff_ms = backoff.as_millis() as u64, "HTTP accept failed; backing off.");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let svc = TowerToHyperService::new(app.clone());
        let stop = stop.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout);
            let conn = builder.serve_connection(TokioIo::new(sock), svc);
            tokio::pin!(conn);
            let ended = tokio::select! {
                r = conn.as_mut() => Some(r),
                _ = tokio::time::sleep(limits.max_connection_age) => None,
                _ = stopped(stop) => None,
            };
            let r = match ended {
                Some(r) => r,
                None => {
                    conn.as_mut().graceful_shutdown();
                    match tokio::time::timeout(limits.drain_timeout, conn.as_mut()).await {
                        Ok(r) => r,
                        Err(_) => return,
                    }
                }
            };
            if let Err(e) = r {
                tracing::debug!(peer = %peer, error = %e, "HTTP connection ended with an error.");
            }
        });
    }
    // Drain: every connection holds a permit until it ends.
    let all = limits.max_connections as u32;
    let _ = tokio::time::timeout(limits.drain_timeout, permits.acquire_many(all)).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use std::io::{Read, Write};
    use std::net::TcpStream;

    fn app() -> Router {
        Router::new().route("/", get(|| async { "hello" }))
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    }

    /// Reads what the server sends until it closes or `secs` pass.
    fn read_all(s: &mut TcpStream, secs: u64) -> String {
        s.set_read_timeout(Some(Duration::from_secs(secs))).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).to_string()
    }

    #[test]
    fn a_client_trickling_its_headers_is_cut_off() {
        let rt = runtime();
        let limits = Limits {
            header_read_timeout: Duration::from_millis(300),
            ..Limits::monitoring()
        };
        let server = rt
            .block_on(Server::start("127.0.0.1:0".parse().unwrap(), app(), limits))
            .unwrap();
        let mut s = TcpStream::connect(server.addr).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\n").unwrap();
        let started = std::time::Instant::now();
        let mut cut = false;
        for _ in 0..50 {
            std::thread::sleep(Duration::from_millis(100));
            if s.write_all(b"X").is_err() {
                cut = true;
                break;
            }
            s.set_nonblocking(true).unwrap();
            let mut b = [0u8; 64];
            match s.read(&mut b) {
                Ok(0) => {
                    cut = true;
                    break;
                }
                Ok(_) => {
                    cut = true;
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => {
                    cut = true;
                    break;
                }
            }
            s.set_nonblocking(false).unwrap();
        }
        assert!(cut, "still connected after {:?}", started.elapsed());
        // A normal client is served meanwhile.
        let mut ok = TcpStream::connect(server.addr).unwrap();
        ok.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        assert!(read_all(&mut ok, 5).ends_with("hello"));
        rt.block_on(server.shutdown());
    }

    #[test]
    fn connections_over_the_cap_wait_until_one_closes() {
        let rt = runtime();
        let limits = Limits {
            max_connections: 1,
            header_read_timeout: Duration::from_secs(30),
            ..Limits::monitoring()
        };
        let server = rt
            .block_on(Server::start("127.0.0.1:0".parse().unwrap(), app(), limits))
            .unwrap();
        let holder = TcpStream::connect(server.addr).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let mut waiting = TcpStream::connect(server.addr).unwrap();
        waiting
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        waiting
            .set_read_timeout(Some(Duration::from_millis(400)))
            .unwrap();
        let mut b = [0u8; 16];
        assert!(
            waiting.read(&mut b).is_err(),
            "answered while the one slot was taken"
        );
        drop(holder);
        assert!(read_all(&mut waiting, 5).ends_with("hello"));
        rt.block_on(server.shutdown());
    }

    #[test]
    fn shutdown_stops_accepting() {
        let rt = runtime();
        let server = rt
            .block_on(Server::start(
                "127.0.0.1:0".parse().unwrap(),
                app(),
                Limits::monitoring(),
            ))
            .unwrap();
        let addr = server.addr;
        rt.block_on(server.shutdown());
        assert!(TcpStream::connect(addr).is_err(), "still listening");
    }
}
