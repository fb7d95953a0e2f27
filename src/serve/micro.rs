//! The NATS face of `capstream serve`: a micro service (the NATS service protocol,
//! ADR-32) named `capstream`, discoverable with `$SRV.PING|INFO|STATS`, whose
//! endpoints `caption` and `describe` listen on `<prefix>.caption` and
//! `<prefix>.describe` in the protocol's queue group, so that replicas on several
//! machines share the requests.
//!
//! A request's payload is the image; the options travel as headers
//! (`Capstream-Prompt`, `Capstream-Num-Beams`, `Capstream-Max-New-Tokens`). A success
//! is the same JSON as over HTTP. A failure is the protocol's error, with an empty
//! payload: the message in `Nats-Service-Error`, the HTTP status code in
//! `Nats-Service-Error-Code`, the `error_kind` in `Capstream-Error-Kind` and, for a
//! record that entered the pipeline, its id in `Capstream-Id`; `STATS` counts it.

use std::sync::Arc;
use std::time::Instant;

use async_nats::service::{Service, ServiceExt};
use futures_util::StreamExt;

use super::front::Front;
use super::reply::{options_of, reply_of, Endpoint, Reply};
use crate::error::{Error, Result};
use crate::schema::ErrorKind;

/// The service's name in `$SRV` discovery.
pub const SERVICE: &str = "capstream";
/// The label of requests that came by NATS.
pub const PROTOCOL: &str = "nats";
/// Header: the prompt option.
pub const HEADER_PROMPT: &str = "Capstream-Prompt";
/// Header: the `num_beams` option.
pub const HEADER_NUM_BEAMS: &str = "Capstream-Num-Beams";
/// Header: the `max_new_tokens` option.
pub const HEADER_MAX_NEW_TOKENS: &str = "Capstream-Max-New-Tokens";
/// Header of an error reply: its `error_kind`.
pub const HEADER_ERROR_KIND: &str = "Capstream-Error-Kind";
/// Header of an error reply whose record entered the pipeline: the record id.
pub const HEADER_ID: &str = "Capstream-Id";
/// The most of an error message a reply header carries.
const MAX_STATUS_CHARS: usize = 1024;

/// Starts the service on `client`: endpoints under `prefix`, each request answered
/// through `front`. Dropping or stopping the returned service stops listening.
pub async fn start(
    client: async_nats::Client,
    prefix: &str,
    front: Arc<Front>,
    describe: bool,
) -> Result<Service> {
    let service = client
        .service_builder()
        .description("capstream: BLIP captions of images, and their spoken descriptions")
        .start(SERVICE, env!("CARGO_PKG_VERSION"))
        .await
        .map_err(|e| Error::Nats(format!("cannot start the {SERVICE} micro service: {e}")))?;
    let group = service.group(prefix);
    for endpoint in Endpoint::ALL {
        if endpoint == Endpoint::Describe && !describe {
            continue;
        }
        let mut requests = group
            .endpoint_builder()
            .name(endpoint.name())
            .add(endpoint.name())
            .await
            .map_err(|e| {
                Error::Nats(format!("cannot add the {} endpoint: {e}", endpoint.name()))
            })?;
        let front = front.clone();
        let uri = format!("nats {prefix}.{}", endpoint.name());
        tokio::spawn(async move {
            while let Some(request) = requests.next().await {
                let front = front.clone();
                let uri = uri.clone();
                tokio::spawn(async move { answer(&front, endpoint, &uri, request).await });
            }
        });
    }
    Ok(service)
}

fn header<'a>(m: &'a async_nats::Message, name: &str) -> Option<&'a str> {
    m.headers.as_ref()?.get(name).map(|v| v.as_str())
}

async fn answer(
    front: &Front,
    endpoint: Endpoint,
    uri: &str,
    request: async_nats::service::Request,
) {
    let started = Instant::now();
    let cfg = front.config();
    let m = &request.message;
    let params: Vec<(&str, &str)> = [
        ("prompt", HEADER_PROMPT),
        ("num_beams", HEADER_NUM_BEAMS),
        ("max_new_tokens", HEADER_MAX_NEW_TOKENS),
    ]
    .into_iter()
    .filter_map(|(k, h)| header(m, h).map(|v| (k, v)))
    .collect();
    let reply = match options_of(endpoint, params, cfg) {
        Err(r) => r,
        Ok(_) if m.payload.len() > cfg.max_body_bytes => Reply::error(
            413,
            ErrorKind::TooLarge.as_str(),
            format!(
                "the payload is {} bytes; max_body_bytes is {}",
                m.payload.len(),
                cfg.max_body_bytes
            ),
        ),
        Ok(options) => {
            let outcome = front.submit(uri, m.payload.clone(), options).await;
            reply_of(
                endpoint,
                outcome,
                std::time::Duration::ZERO,
                started.elapsed(),
                cfg.retry_after_s,
            )
        }
    };
    front.metrics().answered(
        endpoint.name(),
        PROTOCOL,
        reply.code,
        started.elapsed().as_secs_f64(),
    );
    let sent = if reply.code == 200 {
        match serde_json::to_vec(&reply.body) {
            Ok(body) => request.respond(Ok(body.into())).await,
            Err(e) => {
                tracing::error!(error = %e, "Cannot encode a reply.");
                return;
            }
        }
    } else {
        let mut headers = async_nats::HeaderMap::new();
        if let Some(kind) = reply.kind() {
            headers.insert(HEADER_ERROR_KIND, kind);
        }
        if let Some(id) = reply.body["id"].as_str() {
            headers.insert(HEADER_ID, id);
        }
        // A header value holds one line, and a short one.
        let status: String = reply
            .message()
            .replace(['\r', '\n'], " ")
            .chars()
            .take(MAX_STATUS_CHARS)
            .collect();
        request
            .respond_with_headers(
                Err(async_nats::service::error::Error {
                    status,
                    code: reply.code as usize,
                }),
                headers,
            )
            .await
    };
    if let Err(e) = sent {
        tracing::warn!(error = %e, endpoint = endpoint.name(), "Cannot send a NATS reply.");
    }
}
