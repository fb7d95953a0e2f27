//! The HTTP face of `capstream serve`: `POST /v1/caption`, `POST /v1/describe`, and the
//! monitoring routes on the same listener.
//!
//! This module owns what is particular to HTTP: the bearer token, the body's type, size
//! and read deadline (a declared length over the limit is refused before a byte of the
//! body is read), multipart uploads, `Accept: audio/wav`, and turning a [`Reply`] into a
//! response. Admission and waiting are the [`Front`]'s; codes and bodies are
//! [`reply`](super::reply)'s. Connection limits are [`crate::http`]'s accept loop.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use super::front::Front;
use super::reply::{kinds, options_of, reply_of, Endpoint, Reply};
use crate::schema::ErrorKind;
use crate::telemetry::{self, Health, Metrics};

/// The label of requests that came by HTTP.
pub const PROTOCOL: &str = "http";

#[derive(Clone)]
struct App {
    front: Arc<Front>,
    token: Option<Arc<str>>,
    describe: bool,
}

/// The routes: both endpoints, and `/metrics`, `/healthz`, `/readyz` (which need no
/// token: probes and scrapers carry none).
pub fn routes(
    front: Arc<Front>,
    token: Option<String>,
    describe: bool,
    metrics: Metrics,
    health: Health,
) -> Router {
    let app = App {
        front,
        token: token.map(Arc::from),
        describe,
    };
    Router::new()
        .route(
            Endpoint::Caption.path(),
            post(|State(app): State<App>, req: Request| async move {
                handle(app, Endpoint::Caption, req).await
            }),
        )
        .route(
            Endpoint::Describe.path(),
            post(|State(app): State<App>, req: Request| async move {
                handle(app, Endpoint::Describe, req).await
            }),
        )
        .with_state(app)
        .merge(telemetry::routes(metrics, health))
}

async fn handle(app: App, endpoint: Endpoint, req: Request) -> Response {
    let started = Instant::now();
    let wants_wav = accepts_wav(req.headers());
    let request_id = req.headers().get("x-request-id").cloned();
    let (reply, read) = answer(&app, endpoint, req, started).await;
    let total = started.elapsed();
    app.front
        .metrics()
        .answered(endpoint.name(), PROTOCOL, reply.code, total.as_secs_f64());
    let mut response = respond(reply, wants_wav && endpoint.speaks(), &app);
    if let Some(v) = request_id {
        response.headers_mut().insert("x-request-id", v);
    }
    tracing::debug!(
        endpoint = endpoint.name(),
        code = response.status().as_u16(),
        read_ms = read.as_millis() as u64,
        total_ms = total.as_millis() as u64,
        "Answered a request."
    );
    response
}

/// The reply to one request, and how long its body took to arrive.
async fn answer(
    app: &App,
    endpoint: Endpoint,
    req: Request,
    started: Instant,
) -> (Reply, Duration) {
    let cfg = app.front.config();
    if let Some(token) = &app.token {
        if !authorized(req.headers(), token) {
            return (
                Reply::error(
                    401,
                    kinds::UNAUTHORIZED,
                    "a valid `Authorization: Bearer` token is required",
                ),
                Duration::ZERO,
            );
        }
    }
    if endpoint == Endpoint::Describe && !app.describe {
        return (
            Reply::error(
                404,
                kinds::NOT_FOUND,
                "this server's pipeline has no speak stage, so /v1/describe is off",
            ),
            Duration::ZERO,
        );
    }
    let query = req.uri().query().unwrap_or("").to_string();
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let options = match options_of(
        endpoint,
        pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        cfg,
    ) {
        Ok(o) => o,
        Err(r) => return (r, Duration::ZERO),
    };
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_string();
    let multipart = match upload_kind(&content_type) {
        Ok(m) => m,
        Err(r) => return (r, Duration::ZERO),
    };
    // A declared length over the limit is refused before the body is read.
    if let Some(n) = declared_length(req.headers()) {
        if n > cfg.max_body_bytes as u64 {
            return (too_large(n, cfg.max_body_bytes), Duration::ZERO);
        }
    }
    let body = match read_body(
        req.into_body(),
        cfg.max_body_bytes,
        cfg.body_read_timeout_ms,
    )
    .await
    {
        Ok(b) => b,
        Err(r) => return (r, started.elapsed()),
    };
    let image = if multipart {
        match image_part(&content_type, body).await {
            Ok(b) => b,
            Err(r) => return (r, started.elapsed()),
        }
    } else {
        body
    };
    let read = started.elapsed();
    let outcome = app
        .front
        .submit(&format!("POST {}", endpoint.path()), image, options)
        .await;
    (
        reply_of(
            endpoint,
            outcome,
            read,
            started.elapsed(),
            cfg.retry_after_s,
        ),
        read,
    )
}

/// Constant-time comparison of the bearer token, so that response timing does not
/// reveal how much of a guess was right.
fn authorized(headers: &HeaderMap, token: &str) -> bool {
    // The scheme name is case-insensitive (RFC 9110 §11.1); the token is not.
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token)
    else {
        return false;
    };
    let (a, b) = (given.trim().as_bytes(), token.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn accepts_wav(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.split(';').next().unwrap_or("").trim())
        .any(|t| t.eq_ignore_ascii_case("audio/wav") || t.eq_ignore_ascii_case("audio/x-wav"))
}

/// Whether the body is a multipart form (else the image itself); other types are 415.
fn upload_kind(content_type: &str) -> Result<bool, Reply> {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence == "multipart/form-data" {
        Ok(true)
    } else if essence.starts_with("image/") || essence == "application/octet-stream" {
        Ok(false)
    } else {
        Err(Reply::error(
            415,
            kinds::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "Content-Type {content_type:?}: send the image bytes as image/* or \
                 application/octet-stream, or a multipart/form-data upload"
            ),
        ))
    }
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

fn too_large(n: u64, max: usize) -> Reply {
    Reply::error(
        413,
        ErrorKind::TooLarge.as_str(),
        format!("the body is {n} bytes or more; max_body_bytes is {max}"),
    )
}

async fn read_body(body: Body, max: usize, timeout_ms: u64) -> Result<Bytes, Reply> {
    let limited = Limited::new(body, max);
    match tokio::time::timeout(Duration::from_millis(timeout_ms), limited.collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(too_large(max as u64 + 1, max))
        }
        Ok(Err(e)) => Err(Reply::error(
            400,
            kinds::BAD_REQUEST,
            format!("the body could not be read: {e}"),
        )),
        Err(_) => Err(Reply::error(
            408,
            ErrorKind::Timeout.as_str(),
            format!("the body did not arrive within body_read_timeout_ms = {timeout_ms}"),
        )),
    }
}

/// The image of a multipart form: the part named `image`, else the first file part.
async fn image_part(content_type: &str, body: Bytes) -> Result<Bytes, Reply> {
    let bad = |m: String| Reply::error(400, kinds::BAD_REQUEST, m);
    let boundary = multer::parse_boundary(content_type).map_err(|e| {
        bad(format!(
            "multipart/form-data without a usable boundary: {e}"
        ))
    })?;
    let stream = futures_util::stream::once(async move { Ok::<Bytes, std::io::Error>(body) });
    let mut form = multer::Multipart::new(stream, boundary);
    let mut first_file = None;
    loop {
        match form.next_field().await {
            Ok(Some(field)) => {
                let named_image = field.name() == Some("image");
                let is_file = field.file_name().is_some();
                if named_image || (is_file && first_file.is_none()) {
                    let bytes = field
                        .bytes()
                        .await
                        .map_err(|e| bad(format!("multipart field: {e}")))?;
                    if named_image {
                        return Ok(bytes);
                    }
                    first_file = Some(bytes);
                }
            }
            Ok(None) => break,
            Err(e) => return Err(bad(format!("multipart/form-data: {e}"))),
        }
    }
    first_file.ok_or_else(|| bad("the multipart form has no `image` field and no file".into()))
}

fn respond(reply: Reply, as_wav: bool, app: &App) -> Response {
    let status = StatusCode::from_u16(reply.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = match (&reply.wav, as_wav && reply.code == 200) {
        (Some(wav), true) => {
            let mut r =
                (status, [(header::CONTENT_TYPE, "audio/wav")], wav.clone()).into_response();
            let h = r.headers_mut();
            for (name, key) in [
                ("x-capstream-id", "id"),
                ("x-capstream-caption", "caption"),
                ("x-capstream-model", "model"),
            ] {
                // A caption that is not a valid header value (non-ASCII text) is left
                // out; the JSON response always has it.
                if let Some(v) = reply.body[key]
                    .as_str()
                    .and_then(|s| HeaderValue::from_str(s).ok())
                {
                    h.insert(name, v);
                }
            }
            r
        }
        _ => (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::to_vec(&reply.body).unwrap_or_default(),
        )
            .into_response(),
    };
    match reply.code {
        429 | 503 => {
            let after = app.front.config().retry_after_s.to_string();
            if let Ok(v) = HeaderValue::from_str(&after) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        401 => {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        _ => {}
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_compare_whole() {
        let mut h = HeaderMap::new();
        assert!(!authorized(&h, "s3cret"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer s3cret"),
        );
        assert!(authorized(&h, "s3cret"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer s3cret"),
        );
        assert!(authorized(&h, "s3cret"));
        assert!(!authorized(&h, "s3cre"));
        assert!(!authorized(&h, "s3cret2"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic s3cret"),
        );
        assert!(!authorized(&h, "s3cret"));
    }

    #[test]
    fn upload_types() {
        assert!(!upload_kind("image/jpeg").unwrap());
        assert!(!upload_kind("Image/PNG; q=1").unwrap());
        assert!(!upload_kind("application/octet-stream").unwrap());
        assert!(upload_kind("multipart/form-data; boundary=x").unwrap());
        let r = upload_kind("application/x-www-form-urlencoded").unwrap_err();
        assert_eq!(r.code, 415);
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/json, audio/wav;q=0.9"),
        );
        assert!(accepts_wav(&h));
    }

    #[tokio::test]
    async fn a_multipart_form_gives_its_image_part() {
        let body = "--b\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n\
                    --b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.png\"\r\n\
                    Content-Type: image/png\r\n\r\nPNGBYTES\r\n--b--\r\n";
        let got = image_part("multipart/form-data; boundary=b", Bytes::from(body))
            .await
            .unwrap();
        assert_eq!(&got[..], b"PNGBYTES");
        let empty =
            "--b\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n--b--\r\n";
        let r = image_part("multipart/form-data; boundary=b", Bytes::from(empty))
            .await
            .unwrap_err();
        assert_eq!(r.code, 400);
    }
}
