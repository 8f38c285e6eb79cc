//! The worker Lambda: wiring only. Clients and configuration are built once per container;
//! each invocation runs [`lnsync_worker::handle`].

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use lnsync_core::ports::SystemClock;
use lnsync_runtime::aws::Container;
use lnsync_runtime::jobs::Worker;
use lnsync_runtime::telemetry;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_lambda();
    let c = Container::from_env().await.inspect_err(|e| {
        tracing::error!(error = %e, "cold start failed");
    })?;
    let worker = Worker::new(
        c.environments,
        c.deployment.sync.clone(),
        c.store,
        c.queue,
        c.connector,
        Arc::new(SystemClock),
    )
    .with_push(c.deployment.push.clone());
    let worker = &worker;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<SqsBatchResponse, Error>(lnsync_worker::handle(worker, event.payload).await)
    }))
    .await
}
