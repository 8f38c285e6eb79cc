//! The push function's configuration. It needs far less than the worker, and least privilege
//! says it should see no more: the table (push tokens, subscriptions), the queue, the served
//! environments and each one's LN webhook secret — never LN or Exchange credentials.

use super::router::PushEnvironment;
use crate::deploy::{DeployError, EnvironmentSettings, SecretFetcher, environment_ids};
use crate::vars;
use lnsync_core::ids::EnvironmentId;
use std::collections::{BTreeSet, HashMap};

/// The push function's validated variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushFunctionConfig {
    pub table: String,
    pub queue_url: String,
    /// Each served environment with the ARN of its LN webhook secret, if any.
    pub environments: Vec<(EnvironmentId, Option<String>)>,
}

impl PushFunctionConfig {
    pub fn from_env() -> Result<Self, DeployError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads variables through `get`; empty values count as unset. Every problem is reported.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, DeployError> {
        let get = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let mut problems = Vec::new();
        let mut required = |name: &str, what: &str| {
            let v = get(name);
            if v.is_none() {
                problems.push(format!("{name}: missing ({what})"));
            }
            v.unwrap_or_default()
        };
        let table = required(vars::TABLE, "the DynamoDB state table's name");
        let queue_url = required(vars::QUEUE_URL, "the SQS FIFO job queue's URL");
        let ids = required(
            vars::ENVIRONMENTS,
            "comma-separated ids of the environments served",
        );
        // Either form of per-environment settings: the template can only write the JSON one.
        let ids = environment_ids(&mut problems, &ids);
        let settings = EnvironmentSettings::from_lookup(&get, &ids, &mut problems);
        let environments = ids
            .iter()
            .map(|id| {
                let arn = settings.get(id, vars::env::LN_WEBHOOK_SECRET_ARN);
                (EnvironmentId::new(id), arn.map(str::to_owned))
            })
            .collect();
        if problems.is_empty() {
            Ok(Self {
                table,
                queue_url,
                environments,
            })
        } else {
            Err(DeployError { problems })
        }
    }

    /// Fetches the webhook secrets (each distinct ARN once); every failure is reported.
    pub async fn resolve(
        &self,
        secrets: &dyn SecretFetcher,
    ) -> Result<HashMap<EnvironmentId, PushEnvironment>, DeployError> {
        let arns: BTreeSet<&str> = self
            .environments
            .iter()
            .filter_map(|(_, arn)| arn.as_deref())
            .collect();
        let fetched = futures::future::join_all(
            arns.iter()
                .map(|arn| async move { (*arn, secrets.fetch(arn).await) }),
        )
        .await;
        let mut values = HashMap::new();
        let mut problems = Vec::new();
        for (arn, result) in fetched {
            match result {
                Ok(secret) => {
                    values.insert(arn, secret);
                }
                Err(e) => problems.push(format!("secret {arn} (LN webhook secret): {e}")),
            }
        }
        if !problems.is_empty() {
            return Err(DeployError { problems });
        }
        Ok(self
            .environments
            .iter()
            .map(|(id, arn)| {
                (
                    id.clone(),
                    PushEnvironment {
                        ln_webhook_secret: arn.as_deref().and_then(|a| values.get(a).cloned()),
                    },
                )
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use async_trait::async_trait;

    struct Fixed;

    #[async_trait]
    impl SecretFetcher for Fixed {
        async fn fetch(&self, arn: &str) -> Result<Secret, String> {
            match arn {
                "arn:hook" => Ok(Secret::new("k3y")),
                _ => Err("AccessDeniedException".into()),
            }
        }
    }

    fn lookup(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    #[tokio::test]
    async fn reads_only_what_the_push_function_needs() -> TestResult {
        let c = PushFunctionConfig::from_lookup(lookup(&[
            ("LNSYNC_TABLE", "t"),
            ("LNSYNC_QUEUE_URL", "http://q/jobs.fifo"),
            ("LNSYNC_ENVIRONMENTS", "prod,test"),
            ("LNSYNC_ENV_PROD_LN_WEBHOOK_SECRET_ARN", "arn:hook"),
        ]))?;
        assert_eq!(c.environments.len(), 2);
        let envs = c.resolve(&Fixed).await?;
        let prod = &envs[&EnvironmentId::new("prod")];
        assert_eq!(
            prod.ln_webhook_secret
                .as_ref()
                .map(|s| s.expose().to_owned()),
            Some("k3y".to_owned())
        );
        assert!(
            envs[&EnvironmentId::new("test")]
                .ln_webhook_secret
                .is_none()
        );
        Ok(())
    }

    #[tokio::test]
    async fn every_problem_is_reported_at_once() -> TestResult {
        let e = PushFunctionConfig::from_lookup(lookup(&[("LNSYNC_ENVIRONMENTS", "a,a")]))
            .err()
            .ok_or("accepted")?;
        let text = e.to_string();
        assert!(text.contains("LNSYNC_TABLE"), "{text}");
        assert!(text.contains("LNSYNC_QUEUE_URL"), "{text}");
        assert!(text.contains("listed twice"), "{text}");
        let c = PushFunctionConfig::from_lookup(lookup(&[
            ("LNSYNC_TABLE", "t"),
            ("LNSYNC_QUEUE_URL", "q"),
            ("LNSYNC_ENVIRONMENTS", "prod"),
            ("LNSYNC_ENV_PROD_LN_WEBHOOK_SECRET_ARN", "arn:other"),
        ]))?;
        let e = c.resolve(&Fixed).await.err().ok_or("resolved")?.to_string();
        assert!(e.contains("arn:other") && e.contains("AccessDenied"), "{e}");
        Ok(())
    }
}
