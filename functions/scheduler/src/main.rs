//! The scheduler Lambda: wiring only. Clients and configuration are built once per container;
//! each EventBridge tick runs [`lnsync_scheduler::handle`].

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use lnsync_core::ports::SystemClock;
use lnsync_runtime::aws::Container;
use lnsync_runtime::telemetry;
use lnsync_scheduler::Scheduler;
use serde_json::Value;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_lambda();
    let c = Container::from_env().await.inspect_err(|e| {
        tracing::error!(error = %e, "cold start failed");
    })?;
    let scheduler = Scheduler {
        environments: c.environments,
        store: c.store,
        queue: c.queue,
        connector: c.connector,
        clock: Arc::new(SystemClock),
        push: c.deployment.push.clone(),
    };
    let scheduler = &scheduler;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<EventBridgeEvent<Value>>| async move {
            lnsync_scheduler::handle(scheduler, event.payload)
                .await
                .map_err(Error::from)
        },
    ))
    .await
}
