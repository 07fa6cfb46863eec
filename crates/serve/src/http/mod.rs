//! The HTTP API: `POST /v1/messages` (JSON, `Authorization: Bearer KEY`), answered `202`
//! with the message's id once its acceptance is durable, or `4xx`/`5xx` with a JSON error
//! naming the field and what was wrong; the batch, `GET` and `DELETE` of `messages`;
//! `GET /healthz`, `GET /readyz`, `GET /metrics`. This file has the routes, the errors and
//! the API keys; `messages` the message endpoints.

mod messages;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use smsroute_carrier::Carrier;

use crate::{Client, Hub};

/// The largest request body, bytes.
const MAX_BODY: usize = 256 * 1024;

/// The largest batch request body, bytes.
const MAX_BATCH_BODY: usize = 4 * 1024 * 1024;

/// A refused request: its status and the JSON body `{"error": …, "field": …}`.
#[derive(Debug, PartialEq, Eq)]
pub struct HttpError {
    /// The HTTP status.
    pub status: StatusCode,
    /// What was wrong, for a person.
    pub error: String,
    /// The request field at fault, if one is (`to`, `from`, `text`, …, or `authorization`).
    pub field: Option<&'static str>,
}

impl HttpError {
    pub(super) fn new(
        status: StatusCode,
        field: Option<&'static str>,
        error: impl Into<String>,
    ) -> Self {
        HttpError {
            status,
            error: error.into(),
            field,
        }
    }
}

impl HttpError {
    /// The JSON body (`{"error", "field"}`), with `status` too when `with_status`.
    fn body(&self, with_status: bool) -> serde_json::Value {
        let mut body = json!({"error": self.error});
        if let Some(field) = self.field {
            body["field"] = field.into();
        }
        if with_status {
            body["status"] = self.status.as_u16().into();
        }
        body
    }

    /// The error as one result of a batch: its body with its `status`.
    pub(super) fn to_json(&self) -> serde_json::Value {
        self.body(true)
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let body = self.body(false);
        (self.status, Json(body)).into_response()
    }
}

type Metrics = Option<Arc<dyn Fn() -> String + Send + Sync>>;

pub(crate) fn routes<C: Carrier>(hub: Hub<C>, metrics: Metrics) -> axum::Router {
    axum::Router::new()
        .route("/v1/messages", post(messages::submit::<C>))
        .route(
            "/v1/messages/batch",
            post(messages::batch::<C>).layer(axum::extract::DefaultBodyLimit::max(MAX_BATCH_BODY)),
        )
        .route(
            "/v1/messages/{id}",
            get(messages::show::<C>).delete(messages::cancel::<C>),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready::<C>))
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move {
                    match metrics {
                        Some(render) => (StatusCode::OK, render()).into_response(),
                        None => StatusCode::NOT_FOUND.into_response(),
                    }
                }
            }),
        )
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn_with_state(
            hub.penalties.clone(),
            slow_down_bad_keys,
        ))
        .with_state(hub)
}

/// A request refused for its API key (401) is answered later the more such refusals came
/// from its address (`penalty`); the address is the connection's when the server was
/// started with `into_make_service_with_connect_info::<PeerAddr>()`, else one for all.
async fn slow_down_bad_keys(
    State(penalties): State<Arc<crate::penalty::Penalties>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<axum::extract::ConnectInfo<crate::PeerAddr>>()
        .map_or(std::net::IpAddr::from([0, 0, 0, 0]), |c| c.0.0.ip());
    let response = next.run(request).await;
    if response.status() == StatusCode::UNAUTHORIZED {
        let wait = penalties.failed(peer, tokio::time::Instant::now());
        tracing::warn!(%peer, answered_after_ms = wait.as_millis() as u64, "API key refused");
        tokio::time::sleep(wait).await;
    }
    response
}

/// The client whose API key the request carries.
pub(super) fn client<C: Carrier>(
    hub: &Hub<C>,
    headers: &HeaderMap,
) -> Result<Arc<Client>, HttpError> {
    let unauthorized =
        |why: &str| HttpError::new(StatusCode::UNAUTHORIZED, Some("authorization"), why);
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| unauthorized("missing: expected `Authorization: Bearer KEY`"))?;
    let key = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| unauthorized("expected `Bearer KEY`"))?;
    hub.clients
        .load()
        .by_key
        .get(key.trim())
        .cloned()
        .ok_or_else(|| unauthorized("unknown API key"))
}

/// The field a JSON error is about: the first name it quotes (`missing field `to``), when
/// that is one of the API's (an unknown field is named in the message only).
pub(super) fn field_of_json_error(e: &serde_json::Error) -> Option<&'static str> {
    const FIELDS: [&str; 8] = [
        "to",
        "from",
        "text",
        "client_ref",
        "validity",
        "class",
        "send_at",
        "tags",
    ];
    let text = e.to_string();
    let quoted = text.split('`').nth(1)?;
    FIELDS.into_iter().find(|f| *f == quoted)
}

/// `GET /readyz`: 200 once every carrier with a connection is bound, else 503 naming those
/// that are not and why.
async fn ready<C: Carrier>(State(hub): State<Hub<C>>) -> Response {
    match hub.router.ready(Duration::ZERO).await {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(not_ready) => {
            let down: BTreeMap<String, String> = not_ready.down.into_iter().collect();
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"error": "carriers not bound", "carriers": down})),
            )
                .into_response()
        }
    }
}
