//! AWS clients for the serverless functions, built once per Lambda container from the SDK's
//! standard configuration (region, credentials, and `AWS_ENDPOINT_URL` for a local emulator).

use crate::compose::LiveConnector;
use crate::config::{EnvironmentConfig, Secret};
use crate::deploy::{DeployError, Deployment, SecretFetcher};
use async_trait::async_trait;
use aws_config::BehaviorVersion;
use lnsync_adapters::dynamo::DynamoStateStore;
use lnsync_adapters::sqs::SqsJobQueue;
use lnsync_core::ports::{JobQueue, StateStore};
use std::sync::Arc;
use std::time::Duration;

/// The SDK configuration from the environment (`AWS_REGION`, credentials, endpoint overrides).
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

/// Secrets from AWS Secrets Manager: the secret's string, by ARN or name.
#[derive(Debug, Clone)]
pub struct SecretsManager(pub aws_sdk_secretsmanager::Client);

impl SecretsManager {
    pub fn new(sdk: &aws_config::SdkConfig) -> Self {
        Self(aws_sdk_secretsmanager::Client::new(sdk))
    }
}

#[async_trait]
impl SecretFetcher for SecretsManager {
    async fn fetch(&self, arn: &str) -> Result<Secret, String> {
        let out = self
            .0
            .get_secret_value()
            .secret_id(arn)
            .send()
            .await
            .map_err(|e| {
                // The service's error code and message, never the request (it holds no value,
                // but keep the habit of naming only the code).
                let service = e.as_service_error().map(|s| s.to_string());
                service.unwrap_or_else(|| crate::runner::error_chain(&e))
            })?;
        out.secret_string().map(Secret::new).ok_or_else(|| {
            "the secret has no string value (binary secrets are not supported)".into()
        })
    }
}

/// What every function of a deployment shares, built once per Lambda container: validated
/// variables, the environments with their secrets, the AWS-backed store and queue, and the live
/// LN/EWS connector (which keeps clients, tokens and back-off across invocations).
pub struct Container {
    pub deployment: Deployment,
    pub environments: Vec<EnvironmentConfig>,
    pub store: Arc<dyn StateStore>,
    pub queue: Arc<dyn JobQueue>,
    pub connector: Arc<LiveConnector>,
}

impl Container {
    /// Reads and checks the variables, fetches the secrets and builds the clients. Every
    /// problem found is in the one error, so a misconfigured function fails its first cold
    /// start with the full list (R41: the list names variables and ARNs, never values).
    pub async fn from_env() -> Result<Self, DeployError> {
        let deployment = Deployment::from_env()?;
        let sdk = sdk_config().await;
        let environments = deployment.resolve(&SecretsManager::new(&sdk)).await?;
        let (store, queue) = ports(&sdk, &deployment)?;
        let mut connector = LiveConnector::default();
        connector.http_timeout = deployment.http_timeout;
        // Throttling hints longer than this go back to the queue as a visibility change.
        connector.ln_max_wait = LAMBDA_LN_MAX_WAIT;
        Ok(Self {
            deployment,
            environments,
            store,
            queue,
            connector: Arc::new(connector),
        })
    }
}

/// The longest LN `Retry-After` a function sleeps through.
pub const LAMBDA_LN_MAX_WAIT: Duration = Duration::from_secs(5);

/// A deployment's state store and job queue.
pub type Ports = (Arc<dyn StateStore>, Arc<dyn JobQueue>);

/// The DynamoDB store and the SQS queue of a deployment.
pub fn ports(sdk: &aws_config::SdkConfig, deployment: &Deployment) -> Result<Ports, DeployError> {
    let store = DynamoStateStore::new(aws_sdk_dynamodb::Client::new(sdk), &deployment.table);
    let mut queue = SqsJobQueue::new(aws_sdk_sqs::Client::new(sdk), &deployment.queue_url);
    if let Some(dlq) = &deployment.dlq_url {
        queue = queue.with_dead_letter_queue(dlq);
    }
    Ok((Arc::new(store), Arc::new(queue)))
}

/// Opens a store named by URL: `dynamodb://TABLE` (the `lnsync --store` option).
pub async fn open_store_url(url: &str) -> Result<Arc<dyn StateStore>, String> {
    let Some(table) = url.strip_prefix("dynamodb://").filter(|t| !t.is_empty()) else {
        return Err(format!("store {url:?}: expected dynamodb://TABLE"));
    };
    let sdk = sdk_config().await;
    Ok(Arc::new(DynamoStateStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        table,
    )))
}

/// Opens a queue named by URL: `sqs://https://sqs.REGION.amazonaws.com/ACCOUNT/NAME.fifo`
/// (the `lnsync --queue` option), with its dead-letter queue when known.
pub async fn open_queue_url(url: &str, dlq: Option<&str>) -> Result<Arc<dyn JobQueue>, String> {
    let Some(queue) = url.strip_prefix("sqs://").filter(|t| !t.is_empty()) else {
        return Err(format!("queue {url:?}: expected sqs://QUEUE_URL"));
    };
    let sdk = sdk_config().await;
    let mut q = SqsJobQueue::new(aws_sdk_sqs::Client::new(&sdk), queue);
    if let Some(dlq) = dlq {
        q = q.with_dead_letter_queue(dlq);
    }
    Ok(Arc::new(q))
}
