//! The HTTP API: `POST /v1/messages` (JSON, `Authorization: Bearer KEY`), answered `202`
//! with the message's id once its acceptance is durable, or `4xx`/`5xx` with a JSON error
//! naming the field and what was wrong; `GET /healthz`, `GET /readyz`, `GET /metrics`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;
use smsroute_carrier::Carrier;
use smsroute_engine::Rejection;
use smsroute_types::{InvalidMessage, Message, MessageId};

use crate::{Client, DURABLE_WAIT, Hub};

/// The largest request body, bytes.
const MAX_BODY: usize = 256 * 1024;

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
    fn new(status: StatusCode, field: Option<&'static str>, error: impl Into<String>) -> Self {
        HttpError {
            status,
            error: error.into(),
            field,
        }
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let body = match self.field {
            Some(field) => json!({"error": self.error, "field": field}),
            None => json!({"error": self.error}),
        };
        (self.status, Json(body)).into_response()
    }
}

/// `POST /v1/messages`'s body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewMessage {
    to: String,
    from: String,
    text: String,
    client_ref: Option<String>,
    /// Seconds the message may wait for delivery.
    validity: Option<u64>,
    /// The policy class (its caps and quiet hours).
    class: Option<String>,
    /// Not before this instant (RFC 3339, `2026-12-03T10:00:00Z`).
    send_at: Option<String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

type Metrics = Option<Arc<dyn Fn() -> String + Send + Sync>>;

pub(crate) fn routes<C: Carrier>(hub: Hub<C>, metrics: Metrics) -> axum::Router {
    axum::Router::new()
        .route("/v1/messages", post(submit::<C>))
        .route("/v1/messages/{id}", get(show::<C>).delete(cancel::<C>))
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
        .with_state(hub)
}

/// The client whose API key the request carries.
fn client<C: Carrier>(hub: &Hub<C>, headers: &HeaderMap) -> Result<Arc<Client>, HttpError> {
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

async fn submit<C: Carrier>(
    State(hub): State<Hub<C>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<serde_json::Value>), HttpError> {
    let client = client(&hub, &headers)?;
    let new: NewMessage = serde_json::from_slice(&body).map_err(|e| {
        HttpError::new(
            StatusCode::BAD_REQUEST,
            field_of_json_error(&e),
            e.to_string(),
        )
    })?;
    let message = build(&new, &client)?;
    if !client.may_send_as(message.from()) {
        return Err(HttpError::new(
            StatusCode::FORBIDDEN,
            Some("from"),
            format!("sender {:?} is not one of this client's senders", new.from),
        ));
    }
    if !client.admit(message.segmentation().segments, hub.router.now()) {
        return Err(HttpError::new(
            StatusCode::TOO_MANY_REQUESTS,
            None,
            "over this client's rate (tps): try again later",
        ));
    }
    let id = hub
        .router
        .try_submit(message)
        .map_err(|r| refused(r.reason))?;
    let durable = hub.waiters.wait(id);
    match tokio::time::timeout(DURABLE_WAIT, durable).await {
        Ok(Ok(())) => Ok((StatusCode::ACCEPTED, Json(json!({"id": id.0})))),
        _ => {
            hub.waiters.forget(id);
            tracing::warn!(%id, client = %client.id, "a message's acceptance did not become \
                durable in time: answered 503 (it may still be accepted)");
            Err(HttpError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                None,
                format!("message {id} was not recorded in time; it may still be accepted"),
            ))
        }
    }
}

/// `GET /v1/messages/{id}`: the client's message's state (404 when unknown, forgotten or
/// another client's).
async fn show<C: Carrier>(
    State(hub): State<Hub<C>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<crate::MessageView>, HttpError> {
    let client = client(&hub, &headers)?;
    let id = message_id(&id)?;
    crate::lookup::view(&hub, &client, id)
        .await
        .map(Json)
        .ok_or_else(|| not_found(id))
}

/// `DELETE /v1/messages/{id}`: cancels the client's message if no carrier has it yet (200
/// with its id and state `cancelled`; 409 naming its state when too late).
async fn cancel<C: Carrier>(
    State(hub): State<Hub<C>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, HttpError> {
    use crate::lookup::CancelRefused;
    let client = client(&hub, &headers)?;
    let id = message_id(&id)?;
    match crate::lookup::cancel(&hub, &client, id).await {
        Ok(()) => Ok(Json(json!({"id": id.0, "state": "cancelled"}))),
        Err(CancelRefused::Unknown) => Err(not_found(id)),
        Err(CancelRefused::TooLate(state)) => Err(HttpError::new(
            StatusCode::CONFLICT,
            None,
            format!("message {id} cannot be cancelled: it is {state}"),
        )),
        Err(CancelRefused::ShuttingDown) => Err(HttpError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            None,
            "the router is shutting down",
        )),
    }
}

fn message_id(text: &str) -> Result<MessageId, HttpError> {
    text.parse().map(MessageId).map_err(|_| {
        HttpError::new(
            StatusCode::BAD_REQUEST,
            Some("id"),
            format!("{text:?} is not a message id (a number)"),
        )
    })
}

fn not_found(id: MessageId) -> HttpError {
    HttpError::new(
        StatusCode::NOT_FOUND,
        Some("id"),
        format!("no message {id} of this client (unknown, or finished long ago)"),
    )
}

/// The message the request describes, tagged with its client and the client's account.
fn build(new: &NewMessage, client: &Client) -> Result<Message, HttpError> {
    let mut builder = Message::builder(&new.to, &new.from, &new.text);
    if let Some(r) = &new.client_ref {
        builder = builder.client_ref(r);
    }
    if let Some(seconds) = new.validity {
        builder = builder.validity(Duration::from_secs(seconds));
    }
    if let Some(at) = &new.send_at {
        let at = humantime::parse_rfc3339_weak(at).map_err(|e| {
            HttpError::new(
                StatusCode::BAD_REQUEST,
                Some("send_at"),
                format!("{at:?}: {e} (expected RFC 3339, e.g. 2026-12-03T10:00:00Z)"),
            )
        })?;
        builder = builder.not_before(at);
    }
    for (key, value) in &new.tags {
        if ["account", "class", crate::CLIENT_TAG].contains(&key.as_str())
            || key.starts_with("smpp.")
        {
            return Err(HttpError::new(
                StatusCode::BAD_REQUEST,
                Some("tags"),
                format!(
                    "tag {key:?} is set by the hub (the client, its account, the `class` \
                     field, `smpp.*`)"
                ),
            ));
        }
        builder = builder.tag(key, value);
    }
    if let Some(class) = &new.class {
        builder = builder.tag("class", class);
    }
    client.tag(builder).build().map_err(|e| invalid(&e))
}

/// A message that does not validate: 400 naming its field.
fn invalid(e: &InvalidMessage) -> HttpError {
    let field = match e {
        InvalidMessage::Destination(_) => "to",
        InvalidMessage::Sender(_) => "from",
        InvalidMessage::TooManySegments { .. } => "text",
        InvalidMessage::ZeroValidity => "validity",
        InvalidMessage::Annotations { .. } | InvalidMessage::Tag { .. } => "tags",
    };
    HttpError::new(StatusCode::BAD_REQUEST, Some(field), e.to_string())
}

/// A message the router refused (`docs/serve.md` has the table).
fn refused(reason: Rejection) -> HttpError {
    let status = match &reason {
        Rejection::Invalid(e) => return invalid(e),
        Rejection::Blocked
        | Rejection::NoRoute
        | Rejection::OptedOut
        | Rejection::FrequencyCap
        | Rejection::QuietHours => StatusCode::UNPROCESSABLE_ENTITY,
        Rejection::InsufficientFunds => StatusCode::PAYMENT_REQUIRED,
        Rejection::DuplicateId => StatusCode::CONFLICT,
        Rejection::Overloaded | Rejection::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    let field = matches!(
        reason,
        Rejection::Blocked | Rejection::NoRoute | Rejection::OptedOut | Rejection::FrequencyCap
    )
    .then_some("to");
    HttpError::new(status, field, reason.reason())
}

/// The field a JSON error is about: the first name it quotes (`missing field `to``), when
/// that is one of the API's (an unknown field is named in the message only).
fn field_of_json_error(e: &serde_json::Error) -> Option<&'static str> {
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
