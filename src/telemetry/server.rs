//! The monitoring endpoints: `GET /metrics` (Prometheus text format 0.0.4), `GET
//! /healthz` (liveness) and `GET /readyz` (readiness), on [`crate::http`]'s server with
//! its monitoring limits. Anything else is 404.

use std::net::SocketAddr;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use super::{Health, Metrics};
use crate::error::Result;
use crate::http::{Limits, Server};

/// The content type of the Prometheus text format.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Clone)]
struct Monitoring {
    metrics: Metrics,
    health: Health,
}

async fn metrics(State(m): State<Monitoring>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, PROMETHEUS_TEXT)],
        m.metrics.render(),
    )
}

async fn healthz(State(m): State<Monitoring>) -> impl IntoResponse {
    match m.health.live() {
        Ok(()) => (StatusCode::OK, "ok\n".to_string()),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
    }
}

async fn readyz(State(m): State<Monitoring>) -> impl IntoResponse {
    match m.health.ready() {
        Ok(()) => (StatusCode::OK, "ready\n".to_string()),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
    }
}

/// The monitoring routes, for a server of their own or beside others on one listener.
pub fn routes(metrics: Metrics, health: Health) -> Router {
    Router::new()
        .route("/metrics", get(self::metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
        .with_state(Monitoring { metrics, health })
}

/// Binds `addr` and serves the monitoring routes until the server is shut down or the
/// runtime ends.
pub async fn serve(addr: SocketAddr, metrics: Metrics, health: Health) -> Result<Server> {
    Server::start(addr, routes(metrics, health), Limits::monitoring()).await
}
