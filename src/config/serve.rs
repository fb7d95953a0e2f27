//! `[serve]`: the limits of `capstream serve`, one key per limit an operator sizes.
//!
//! Plain data and its checks; the server reads it, nothing here runs.

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::limits::MAX_RECORD_BYTES;

/// `[serve]` of a pipeline file with `[source] type = "request"`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServeConfig {
    /// Requests admitted and not yet answered, across HTTP and NATS. One more is
    /// refused at once with 429 and `Retry-After`, so that overload costs no memory.
    pub queue_capacity: usize,
    /// Largest request body (the encoded image). A declared `Content-Length` above it is
    /// answered 413 before the body is read; a body that grows past it is cut at the
    /// limit, also 413.
    pub max_body_bytes: usize,
    /// Connections served at once; more wait in the kernel's backlog.
    pub max_connections: usize,
    /// The longest wait for a request's head (request line and headers). hyper starts
    /// this timer whenever a connection waits for a head, so it is also how long an idle
    /// keep-alive connection is kept (uvicorn's `timeout_keep_alive` is 5 s).
    pub header_read_timeout_ms: u64,
    /// The longest a request's body may take to arrive; a slower upload is answered 408.
    pub body_read_timeout_ms: u64,
    /// The longest a caller waits for its answer once admitted; then 504 (the record
    /// still runs, and its late row is discarded). Also how long a connection closed
    /// for its age may take to finish the request it is serving.
    pub request_timeout_ms: u64,
    /// A connection older than this is closed after its current response.
    pub max_connection_age_ms: u64,
    /// On SIGTERM: one budget for answering the admitted requests and closing open
    /// connections; then the process exits anyway.
    pub drain_timeout_ms: u64,
    /// The `Retry-After` of a 429 (overload) or 503 (draining), in seconds.
    pub retry_after_s: u64,
    /// Longest prompt a request may set, in characters.
    pub max_prompt_chars: usize,
    /// Widest beam search a request may ask for.
    pub max_num_beams: usize,
    /// Largest `max_new_tokens` a request may ask for (the model's positions bound it
    /// further, per record).
    pub max_new_tokens: usize,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            queue_capacity: 256,
            max_body_bytes: 20 << 20,
            max_connections: 256,
            header_read_timeout_ms: 10_000,
            body_read_timeout_ms: 30_000,
            request_timeout_ms: 60_000,
            max_connection_age_ms: 600_000,
            drain_timeout_ms: 30_000,
            retry_after_s: 1,
            max_prompt_chars: 200,
            max_num_beams: 8,
            max_new_tokens: 128,
        }
    }
}

impl ServeConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::Config(format!("[serve] {m}")));
        if self.queue_capacity == 0 || self.max_connections == 0 {
            return bad("queue_capacity and max_connections must be at least 1");
        }
        if self.max_body_bytes == 0 || self.max_body_bytes as u64 > MAX_RECORD_BYTES {
            return bad(&format!(
                "max_body_bytes must be 1 to {MAX_RECORD_BYTES} (512 MiB)"
            ));
        }
        if [
            self.header_read_timeout_ms,
            self.body_read_timeout_ms,
            self.request_timeout_ms,
            self.max_connection_age_ms,
            self.drain_timeout_ms,
        ]
        .contains(&0)
        {
            return bad("every *_timeout_ms and max_connection_age_ms must be at least 1");
        }
        if self.max_num_beams == 0 || self.max_new_tokens == 0 {
            return bad("max_num_beams and max_new_tokens must be at least 1");
        }
        Ok(())
    }
}
