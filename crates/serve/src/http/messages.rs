//! The message endpoints: submit one or a batch, look one up, cancel one.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::json;
use smsroute_carrier::Carrier;
use smsroute_engine::Rejection;
use smsroute_types::{InvalidMessage, Message, MessageId};

use super::{HttpError, client, field_of_json_error};
use crate::{Client, DURABLE_WAIT, Hub};

/// The most messages one batch may hold.
pub const MAX_BATCH: usize = 1_000;

/// `POST /v1/messages`'s body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewMessage {
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

/// `POST /v1/messages`: `202 {"id": N}` once the message is durable.
pub(super) async fn submit<C: Carrier>(
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
    let taken = match take(&hub, &client, &new) {
        Ok(id) => durable(&hub, &client, id).await.map(|()| id),
        Err(e) => Err(e),
    };
    hub.metrics.http(answered(&taken));
    let id = taken?;
    Ok((StatusCode::ACCEPTED, Json(json!({"id": id.0}))))
}

/// `POST /v1/messages/batch`: `{"messages": [...]}`, up to [`MAX_BATCH`] messages of the
/// single endpoint's shape, each taken or refused on its own; `200 {"results": [...]}` once
/// every taken one is durable, a result per message in order: `{"id": N}`, or the error
/// the single endpoint would have answered with its `status`.
pub(super) async fn batch<C: Carrier>(
    State(hub): State<Hub<C>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<serde_json::Value>, HttpError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Batch {
        messages: Vec<serde_json::Value>,
    }
    let client = client(&hub, &headers)?;
    let batch: Batch = serde_json::from_slice(&body)
        .map_err(|e| HttpError::new(StatusCode::BAD_REQUEST, Some("messages"), e.to_string()))?;
    if batch.messages.is_empty() || batch.messages.len() > MAX_BATCH {
        return Err(HttpError::new(
            StatusCode::BAD_REQUEST,
            Some("messages"),
            format!(
                "a batch holds 1 to {MAX_BATCH} messages, got {}",
                batch.messages.len()
            ),
        ));
    }
    let taken: Vec<Result<MessageId, HttpError>> = batch
        .messages
        .into_iter()
        .map(|value| {
            let new: NewMessage = serde_json::from_value(value).map_err(|e| {
                HttpError::new(
                    StatusCode::BAD_REQUEST,
                    field_of_json_error(&e),
                    e.to_string(),
                )
            })?;
            take(&hub, &client, &new)
        })
        .collect();
    let results = futures::future::join_all(taken.into_iter().map(|t| {
        let (hub, client) = (&hub, &client);
        async move {
            let outcome = match t {
                Ok(id) => durable(hub, client, id).await.map(|()| id),
                Err(e) => Err(e),
            };
            hub.metrics.http(answered(&outcome));
            match outcome {
                Ok(id) => json!({"id": id.0}),
                Err(e) => e.to_json(),
            }
        }
    }))
    .await;
    Ok(Json(json!({ "results": results })))
}

/// What an answer counts as.
fn answered(outcome: &Result<MessageId, HttpError>) -> crate::front_metrics::Answered {
    use crate::front_metrics::Answered;
    match outcome {
        Ok(_) => Answered::Accepted,
        Err(e) if e.status == StatusCode::SERVICE_UNAVAILABLE => Answered::Unavailable,
        Err(_) => Answered::Refused,
    }
}

/// Validates `new` for `client` and hands it to the router; its id.
fn take<C: Carrier>(
    hub: &Hub<C>,
    client: &Client,
    new: &NewMessage,
) -> Result<MessageId, HttpError> {
    let message = build(new, client)?;
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
    hub.router
        .try_submit(message)
        .map_err(|r| refused(r.reason))
}

/// Waits until message `id`'s acceptance is durable (503 after [`DURABLE_WAIT`]).
async fn durable<C: Carrier>(
    hub: &Hub<C>,
    client: &Client,
    id: MessageId,
) -> Result<(), HttpError> {
    match tokio::time::timeout(DURABLE_WAIT, hub.waiters.wait(id)).await {
        Ok(Ok(())) => Ok(()),
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
pub(super) async fn show<C: Carrier>(
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
pub(super) async fn cancel<C: Carrier>(
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
        InvalidMessage::Annotations { .. }
        | InvalidMessage::Tag { .. }
        | InvalidMessage::MaxPrice { .. } => "tags",
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
        | Rejection::QuietHours
        | Rejection::OverMaxPrice => StatusCode::UNPROCESSABLE_ENTITY,
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
