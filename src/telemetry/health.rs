//! Liveness and readiness, as `/healthz` and `/readyz` report them.
//!
//! Liveness: every loop that registered a [`Beat`] has beaten within its allowance (a
//! wedged pull or stage loop makes the process not live, so an orchestrator restarts
//! it). Readiness: every registered condition holds (NATS connected, the consumer
//! bound). A process with nothing registered is live and ready. This module only keeps
//! the state; the roles that own a loop or a connection register and update it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type Check = Box<dyn Fn() -> bool + Send + Sync>;

/// Shared health state of one process.
#[derive(Clone, Default)]
pub struct Health {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    checks: Mutex<Vec<(String, Check)>>,
    beats: Mutex<Vec<Arc<BeatState>>>,
}

struct BeatState {
    name: String,
    allowance: Duration,
    started: Instant,
    /// Milliseconds after `started` of the last beat.
    last_ms: AtomicU64,
    /// A finished loop is no longer expected to beat.
    done: AtomicBool,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health")
            .field("live", &self.live().is_ok())
            .field("ready", &self.ready().is_ok())
            .finish()
    }
}

/// A loop's heartbeat: [`Beat::beat`] each time round; dropped, it stops counting.
pub struct Beat(Arc<BeatState>);

impl Beat {
    /// The loop is alive now.
    pub fn beat(&self) {
        let ms = self.0.started.elapsed().as_millis() as u64;
        self.0.last_ms.store(ms, Ordering::Relaxed);
    }
}

impl Drop for Beat {
    fn drop(&mut self) {
        self.0.done.store(true, Ordering::Relaxed);
    }
}

/// A readiness condition set by its owner.
#[derive(Clone)]
pub struct Flag(Arc<AtomicBool>);

impl Flag {
    /// Sets the condition.
    pub fn set(&self, ok: bool) {
        self.0.store(ok, Ordering::Relaxed);
    }
}

impl Health {
    /// Readiness also requires `check()` to hold; `name` is reported when it does not.
    pub fn ready_when(
        &self,
        name: impl Into<String>,
        check: impl Fn() -> bool + Send + Sync + 'static,
    ) {
        if let Ok(mut c) = self.inner.checks.lock() {
            c.push((name.into(), Box::new(check)));
        }
    }

    /// A readiness condition, false until its owner sets it.
    pub fn flag(&self, name: impl Into<String>) -> Flag {
        let f = Flag(Arc::new(AtomicBool::new(false)));
        let g = f.0.clone();
        self.ready_when(name, move || g.load(Ordering::Relaxed));
        f
    }

    /// Registers a loop that must beat at least every `allowance` for the process to
    /// be live; it counts as having beaten now.
    pub fn register(&self, name: impl Into<String>, allowance: Duration) -> Beat {
        let state = Arc::new(BeatState {
            name: name.into(),
            allowance,
            started: Instant::now(),
            last_ms: AtomicU64::new(0),
            done: AtomicBool::new(false),
        });
        if let Ok(mut b) = self.inner.beats.lock() {
            b.retain(|s| !s.done.load(Ordering::Relaxed));
            b.push(state.clone());
        }
        Beat(state)
    }

    /// Ok when every running loop beat within its allowance; else the stale ones.
    pub fn live(&self) -> Result<(), String> {
        let Ok(beats) = self.inner.beats.lock() else {
            return Err("health state poisoned".into());
        };
        let stale: Vec<String> = beats
            .iter()
            .filter(|b| !b.done.load(Ordering::Relaxed))
            .filter_map(|b| {
                let last = Duration::from_millis(b.last_ms.load(Ordering::Relaxed));
                let quiet = b.started.elapsed().saturating_sub(last);
                (quiet > b.allowance).then(|| {
                    format!(
                        "{} silent for {:.1}s (allowed {:.1}s)",
                        b.name,
                        quiet.as_secs_f64(),
                        b.allowance.as_secs_f64()
                    )
                })
            })
            .collect();
        if stale.is_empty() {
            Ok(())
        } else {
            Err(stale.join("; "))
        }
    }

    /// Ok when every readiness condition holds; else the ones that do not.
    pub fn ready(&self) -> Result<(), String> {
        let Ok(checks) = self.inner.checks.lock() else {
            return Err("health state poisoned".into());
        };
        let failing: Vec<&str> = checks
            .iter()
            .filter(|(_, c)| !c())
            .map(|(n, _)| n.as_str())
            .collect();
        if failing.is_empty() {
            Ok(())
        } else {
            Err(format!("not ready: {}", failing.join(", ")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_registered_is_live_and_ready() {
        let h = Health::default();
        assert!(h.live().is_ok() && h.ready().is_ok());
    }

    #[test]
    fn a_flag_gates_readiness_until_set() {
        let h = Health::default();
        let f = h.flag("consumer caption bound");
        assert_eq!(h.ready().unwrap_err(), "not ready: consumer caption bound");
        f.set(true);
        assert!(h.ready().is_ok());
        f.set(false);
        assert!(h.ready().is_err());
    }

    #[test]
    fn a_silent_loop_is_not_live_and_a_finished_one_does_not_count() {
        let h = Health::default();
        let b = h.register("pull loop", Duration::from_millis(30));
        assert!(h.live().is_ok());
        std::thread::sleep(Duration::from_millis(60));
        let err = h.live().unwrap_err();
        assert!(err.contains("pull loop silent"), "{err}");
        b.beat();
        assert!(h.live().is_ok());
        std::thread::sleep(Duration::from_millis(60));
        drop(b);
        assert!(h.live().is_ok(), "a loop that ended is not a wedged one");
    }
}
