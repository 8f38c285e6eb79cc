//! The push Lambda: wiring only. The router is built once per container; each function-URL
//! request runs [`lnsync_push::handle`].

use lambda_http::{Error, Request, service_fn};
use lnsync_runtime::telemetry;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_lambda();
    let router = lnsync_push::router_from_env().await.inspect_err(|e| {
        tracing::error!(error = %e, "cold start failed");
    })?;
    let router = &router;
    lambda_http::run(service_fn(move |request: Request| async move {
        Ok::<_, Error>(lnsync_push::handle(router, request).await)
    }))
    .await
}
