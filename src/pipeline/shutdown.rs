//! Stop and abort requests, shared by the runtime and whoever listens for signals.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

const RUNNING: u8 = 0;
const STOPPING: u8 = 1;
const ABORTED: u8 = 2;

/// A cloneable handle: `stop` lets in-flight work drain, `abort` gives up at once.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    state: Arc<AtomicU8>,
    notify: Arc<tokio::sync::Notify>,
}

impl Shutdown {
    /// A handle in the running state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the source to stop reading; everything already read is finished and
    /// committed.
    pub fn stop(&self) {
        let _ = self
            .state
            .compare_exchange(RUNNING, STOPPING, Ordering::SeqCst, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    /// Abandons the run: the runtime returns `Error::Aborted` without draining.
    pub fn abort(&self) {
        self.state.store(ABORTED, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    /// True once `stop` or `abort` was called.
    pub fn is_stopping(&self) -> bool {
        self.state.load(Ordering::SeqCst) != RUNNING
    }

    /// True once `abort` was called.
    pub fn is_aborted(&self) -> bool {
        self.state.load(Ordering::SeqCst) == ABORTED
    }

    /// Resolves when `stop` or `abort` is called.
    pub async fn stopping(&self) {
        loop {
            let notified = self.notify.notified();
            if self.is_stopping() {
                return;
            }
            notified.await;
        }
    }

    /// Resolves when `abort` is called.
    pub async fn aborted(&self) {
        loop {
            let notified = self.notify.notified();
            if self.is_aborted() {
                return;
            }
            notified.await;
        }
    }

    /// Installs SIGINT/SIGTERM handling: the first signal stops, the second aborts.
    pub fn listen_for_signals(&self) {
        let this = self.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut int), Ok(mut term)) = (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) else {
                tracing::warn!("Cannot install signal handlers; Ctrl-C ends the process.");
                return;
            };
            for n in 0..2 {
                tokio::select! {
                    _ = int.recv() => {},
                    _ = term.recv() => {},
                }
                // The state changes before the log says so: whoever acts on the log
                // line (a supervisor, a test closing the input) must find it changed.
                if n == 0 {
                    this.stop();
                    tracing::warn!("Signal received: stopping the source and draining; a second signal aborts.");
                } else {
                    this.abort();
                    tracing::error!("Second signal received: aborting.");
                }
            }
        });
    }
}
