//! What a caller is told, whichever way it came: the endpoints, the request options
//! they take, the status code of every outcome and the JSON body. HTTP and NATS both
//! answer through here, so that the same request gets the same answer on either.

use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};

use super::front::{Refusal, Served};
use crate::config::ServeConfig;
use crate::schema::{ErrorKind, RecordOptions, Status};

/// A served endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /v1/caption`, NATS `<prefix>.caption`: the caption.
    Caption,
    /// `POST /v1/describe`, NATS `<prefix>.describe`: the caption and its spoken WAV.
    Describe,
}

impl Endpoint {
    /// Both, in order.
    pub const ALL: [Endpoint; 2] = [Endpoint::Caption, Endpoint::Describe];

    /// Its name: the metric label, the NATS endpoint name and the last path segment.
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Caption => "caption",
            Endpoint::Describe => "describe",
        }
    }

    /// The HTTP path.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Caption => "/v1/caption",
            Endpoint::Describe => "/v1/describe",
        }
    }

    /// Whether its rows are spoken.
    pub fn speaks(self) -> bool {
        self == Endpoint::Describe
    }
}

/// `error_kind`s of requests that never became rows (beside the row kinds of
/// [`ErrorKind`]).
pub mod kinds {
    /// The request itself is malformed: a bad option, an empty multipart form (400).
    pub const BAD_REQUEST: &str = "bad_request";
    /// A body type that is not an image upload (415).
    pub const UNSUPPORTED_MEDIA_TYPE: &str = "unsupported_media_type";
    /// No bearer token, or the wrong one (401).
    pub const UNAUTHORIZED: &str = "unauthorized";
    /// Every slot is taken (429).
    pub const OVERLOADED: &str = "overloaded";
    /// The server is closing or its pipeline stopped (503).
    pub const UNAVAILABLE: &str = "unavailable";
    /// No such endpoint here (404).
    pub const NOT_FOUND: &str = "not_found";
}

/// An answer: the status code and the JSON body, plus the WAV a describe row has.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status code; NATS errors carry it as `Nats-Service-Error-Code`.
    pub code: u16,
    /// The JSON body.
    pub body: Value,
    /// The spoken caption (describe rows that are ok).
    pub wav: Option<Vec<u8>>,
}

impl Reply {
    /// A request that never became a row.
    pub fn error(code: u16, kind: &str, message: impl Into<String>) -> Reply {
        Reply {
            code,
            body: json!({
                "status": Status::Error.as_str(),
                "error_kind": kind,
                "error": message.into(),
            }),
            wav: None,
        }
    }

    /// The message of an error reply.
    pub fn message(&self) -> &str {
        self.body["error"].as_str().unwrap_or("")
    }

    /// The `error_kind` of an error reply.
    pub fn kind(&self) -> Option<&str> {
        self.body["error_kind"].as_str()
    }
}

/// The status code of a row that failed with `kind`: the image's fault is 422, the
/// request's options 400, a stage's deadline 504, anything else the server's (500).
pub fn code_of_kind(kind: &str) -> u16 {
    let is = |k: ErrorKind| kind == k.as_str();
    if [
        ErrorKind::Empty,
        ErrorKind::MissingImage,
        ErrorKind::TooLarge,
        ErrorKind::UnsupportedFormat,
        ErrorKind::Decode,
    ]
    .into_iter()
    .any(is)
    {
        422
    } else if is(ErrorKind::InvalidOptions) {
        400
    } else if is(ErrorKind::Timeout) {
        504
    } else {
        500
    }
}

/// The options a request's parameters ask for (HTTP query parameters, NATS headers):
/// `prompt`, `num_beams` and `max_new_tokens`, each within `cfg`'s bounds. Anything
/// else is refused by name, so that a misspelt option is not silently ignored.
pub fn options_of<'a>(
    endpoint: Endpoint,
    params: impl IntoIterator<Item = (&'a str, &'a str)>,
    cfg: &ServeConfig,
) -> Result<RecordOptions, Reply> {
    let bad = |m: String| Reply::error(400, kinds::BAD_REQUEST, m);
    let number = |k: &str, v: &str, max: usize| -> Result<usize, Reply> {
        match v.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(bad(format!(
                "{k} = {v:?}: expected a whole number from 1 to {max}"
            ))),
        }
    };
    let mut o = RecordOptions {
        speak: Some(endpoint.speaks()),
        ..Default::default()
    };
    for (k, v) in params {
        match k {
            "prompt" => {
                let n = v.chars().count();
                if n > cfg.max_prompt_chars {
                    return Err(bad(format!(
                        "prompt is {n} characters; at most max_prompt_chars = {}",
                        cfg.max_prompt_chars
                    )));
                }
                o.prompt = Some(v.to_string());
            }
            "num_beams" => o.num_beams = Some(number(k, v, cfg.max_num_beams)?),
            "max_new_tokens" => o.max_new_tokens = Some(number(k, v, cfg.max_new_tokens)?),
            other => {
                return Err(bad(format!(
                    "unknown option {other:?}; the options are prompt, num_beams and max_new_tokens"
                )))
            }
        }
    }
    Ok(o)
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// The reply to a request that went in: its row, or why it has none. `read` is how long
/// the request took to arrive and `total` its time so far.
pub fn reply_of(
    endpoint: Endpoint,
    outcome: Result<Served, Refusal>,
    read: Duration,
    total: Duration,
    retry_after_s: u64,
) -> Reply {
    let served = match outcome {
        Ok(s) => s,
        Err(Refusal::Overloaded) => {
            return Reply::error(
                429,
                kinds::OVERLOADED,
                format!("every slot is taken; retry after {retry_after_s} s"),
            )
        }
        Err(Refusal::Unavailable) => {
            return Reply::error(
                503,
                kinds::UNAVAILABLE,
                "the server is closing or its pipeline has stopped",
            )
        }
        Err(Refusal::TimedOut) => {
            return Reply::error(
                504,
                ErrorKind::Timeout.as_str(),
                "no answer within request_timeout_ms",
            )
        }
    };
    let a = served.answer;
    let timings = json!({
        "read_ms": ms(read),
        "pipeline_ms": ms(served.pipeline),
        "total_ms": ms(total),
    });
    if a.status != Status::Ok.as_str() {
        let kind = a.error_kind.clone().unwrap_or_else(|| "internal".into());
        return Reply {
            code: code_of_kind(&kind),
            body: json!({
                "id": a.id,
                "status": a.status,
                "error_kind": kind,
                "error": a.error.unwrap_or_default(),
                "model": a.model,
                "timings": timings,
            }),
            wav: None,
        };
    }
    let mut body = json!({
        "id": a.id,
        "status": a.status,
        "caption": a.caption,
        "token_ids": a.token_ids,
        "model": a.model,
        "timings": timings,
    });
    let mut wav = None;
    if endpoint.speaks() {
        match a.speech_wav {
            Some(w) => {
                body["audio"] = json!({
                    "format": "wav",
                    "sample_rate": a.speech_sample_rate,
                    "seconds": a.speech_seconds,
                    "base64": base64::engine::general_purpose::STANDARD.encode(&w),
                });
                wav = Some(w);
            }
            None => body["audio"] = Value::Null,
        }
    }
    Reply {
        code: 200,
        body,
        wav,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sinks::Answer;

    #[test]
    fn row_kinds_map_to_codes() {
        assert_eq!(code_of_kind("decode"), 422);
        assert_eq!(code_of_kind("unsupported_format"), 422);
        assert_eq!(code_of_kind("too_large"), 422);
        assert_eq!(code_of_kind("invalid_options"), 400);
        assert_eq!(code_of_kind("timeout"), 504);
        assert_eq!(code_of_kind("speech"), 500);
    }

    #[test]
    fn options_are_bounded_and_unknown_ones_refused() {
        let cfg = ServeConfig::default();
        let o = options_of(
            Endpoint::Caption,
            [("prompt", "a photo of"), ("num_beams", "3")],
            &cfg,
        )
        .unwrap();
        assert_eq!(o.prompt.as_deref(), Some("a photo of"));
        assert_eq!((o.num_beams, o.speak), (Some(3), Some(false)));
        assert_eq!(
            options_of(Endpoint::Describe, [], &cfg).unwrap().speak,
            Some(true)
        );
        for (k, v, want) in [
            ("beams", "2", "unknown option \"beams\""),
            ("num_beams", "0", "from 1 to 8"),
            ("num_beams", "x", "from 1 to 8"),
            ("max_new_tokens", "1000", "from 1 to 128"),
        ] {
            let r = options_of(Endpoint::Caption, [(k, v)], &cfg).unwrap_err();
            assert_eq!(r.code, 400);
            assert!(r.message().contains(want), "{k}={v}: {}", r.message());
        }
        let long = "a".repeat(201);
        let r = options_of(Endpoint::Caption, [("prompt", long.as_str())], &cfg).unwrap_err();
        assert!(r.message().contains("max_prompt_chars"), "{}", r.message());
    }

    #[test]
    fn rows_become_replies() {
        let ok = Served {
            answer: Answer {
                id: "x-1".into(),
                status: "ok".into(),
                caption: Some("a red circle".into()),
                token_ids: Some(vec![30522, 1037, 2417, 4418, 102]),
                model: Some("default".into()),
                speech_wav: Some(b"RIFF".to_vec()),
                speech_sample_rate: Some(16000),
                speech_seconds: Some(1.5),
                ..Default::default()
            },
            pipeline: Duration::from_millis(12),
        };
        let d = Duration::from_millis(1);
        let r = reply_of(Endpoint::Describe, Ok(ok.clone()), d, d, 1);
        assert_eq!(r.code, 200);
        assert_eq!(r.body["caption"], "a red circle");
        assert_eq!(r.body["token_ids"][4], 102);
        assert_eq!(r.body["audio"]["base64"], "UklGRg==");
        assert_eq!(r.body["timings"]["pipeline_ms"], 12.0);
        assert_eq!(r.wav.as_deref(), Some(&b"RIFF"[..]));
        let r = reply_of(Endpoint::Caption, Ok(ok), d, d, 1);
        assert!(r.body.get("audio").is_none() && r.wav.is_none());
        let bad = Served {
            answer: Answer {
                id: "x-2".into(),
                status: "error".into(),
                error_kind: Some("decode".into()),
                error: Some("record x-2: not an image".into()),
                ..Default::default()
            },
            pipeline: d,
        };
        let r = reply_of(Endpoint::Caption, Ok(bad), d, d, 1);
        assert_eq!((r.code, r.kind()), (422, Some("decode")));
        assert_eq!(r.body["id"], "x-2");
        for (refusal, code) in [
            (Refusal::Overloaded, 429),
            (Refusal::Unavailable, 503),
            (Refusal::TimedOut, 504),
        ] {
            assert_eq!(
                reply_of(Endpoint::Caption, Err(refusal), d, d, 1).code,
                code
            );
        }
    }
}
