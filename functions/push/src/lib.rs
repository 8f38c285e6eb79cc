//! The push function: a Lambda function URL in front of `lnsync_runtime::push::PushRouter`.
//!
//! - [`handle`]: one function-URL request → the router → the HTTP response (tests call it
//!   directly; `cargo lambda watch` and AWS call it through `main.rs`).
//! - [`router_from_env`]: the container's router: its own small configuration
//!   (`lnsync_runtime::push::function`), the DynamoDB store and the SQS queue.
//!
//! The router answers from the store and the queue only, so a request costs a few milliseconds
//! plus those round trips, well inside EWS's, Graph's and LN's patience (R33); Graph's
//! `validationToken` handshake needs not even those.

use lambda_http::{Body, Request, Response};
use lnsync_core::ports::SystemClock;
use lnsync_runtime::deploy::DeployError;
use lnsync_runtime::push::function::PushFunctionConfig;
use lnsync_runtime::push::{HttpRequest, PushRouter};
use std::sync::Arc;

/// Handles one request. Infallible: every problem is an HTTP status.
pub async fn handle(router: &PushRouter, request: Request) -> Response<Body> {
    let headers = request.headers().clone();
    let header = move |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let body: &[u8] = request.body().as_ref();
    let reply = router
        .handle(&HttpRequest {
            method: request.method().as_str(),
            path: request.uri().path(),
            // Graph's handshake is `POST {url}?validationToken=…`; a function URL keeps the raw
            // query string in the URI lambda_http builds.
            query: request.uri().query(),
            body,
            header: &header,
        })
        .await;
    Response::builder()
        .status(reply.status)
        .header("content-type", reply.content_type)
        .body(Body::Text(reply.body))
        .unwrap_or_else(|_| {
            // Only an invalid status or header could fail; neither comes from input.
            let mut r = Response::new(Body::Empty);
            *r.status_mut() = lambda_http::http::StatusCode::INTERNAL_SERVER_ERROR;
            r
        })
}

/// The router of this container, from the function's variables and secrets.
pub async fn router_from_env() -> Result<PushRouter, DeployError> {
    let config = PushFunctionConfig::from_env()?;
    let sdk = lnsync_runtime::aws::sdk_config().await;
    let environments = config
        .resolve(&lnsync_runtime::aws::SecretsManager::new(&sdk))
        .await?;
    let store = lnsync_adapters::dynamo::DynamoStateStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        &config.table,
    );
    let queue =
        lnsync_adapters::sqs::SqsJobQueue::new(aws_sdk_sqs::Client::new(&sdk), &config.queue_url);
    Ok(PushRouter {
        store: Arc::new(store),
        queue: Arc::new(queue),
        clock: Arc::new(SystemClock),
        environments,
    })
}
