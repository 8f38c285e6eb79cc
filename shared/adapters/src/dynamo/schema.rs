//! The table's shape in one place: key schema, secondary indexes, the TTL attribute, and the
//! item key layout. [`create_table`] builds a table from these constants; the deployment
//! template (infra/) must declare the same, and a check compares it against them.
//!
//! See `docs/dynamodb.md` for the design and why it is so.

use super::error::{DynamoStoreError, call_error};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TableStatus, TimeToLiveSpecification,
};
use lnsync_core::error::StoreError;
use lnsync_core::ids::{EnvironmentId, ExchangeItemId, IcalUid, JobId, SubscriptionId, UserId};
use lnsync_core::model::{CursorKind, LinkKind, LnKey};
use std::time::Duration;

/// Partition key of the table (string).
pub const PARTITION_KEY: &str = "pk";
/// Sort key of the table (string).
pub const SORT_KEY: &str = "sk";

/// The attribute DynamoDB's TTL deletes by (epoch seconds): set on job-done marks and leases.
/// Deletion is lazy (typically within days), so every read and condition also checks the
/// exact `expires_at`; TTL only keeps the table from growing.
pub const TTL_ATTRIBUTE: &str = "ttl";

/// A global secondary index over links: its name and its (string) partition key attribute.
/// All three are sparse (only links with the attribute set appear) and `KEYS_ONLY`: a lookup
/// reads the table keys from the index and then the links themselves with a consistent
/// `BatchGetItem`, re-checking the attribute, so a lagging index can never return a link whose
/// attribute has since changed (see `docs/dynamodb.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexSpec {
    pub name: &'static str,
    pub partition_key: &'static str,
}

/// Links by Exchange item id: Exchange change feeds name items by id only.
pub const BY_EXCHANGE_ID: IndexSpec = IndexSpec {
    name: "by-exchange-id",
    partition_key: "xid_key",
};

/// Links by iCalendar UID: a meeting's occurrences share one UID (R24, R25).
pub const BY_ICAL_UID: IndexSpec = IndexSpec {
    name: "by-ical-uid",
    partition_key: "uid_key",
};

/// Links by recurring master id: a deleted series removes all its occurrences (R25).
pub const BY_SERIES: IndexSpec = IndexSpec {
    name: "by-series",
    partition_key: "series_key",
};

/// Every global secondary index of the table.
pub const INDEXES: [IndexSpec; 3] = [BY_EXCHANGE_ID, BY_ICAL_UID, BY_SERIES];

// ---------------------------------------------------------------------------------------------
// Key layout
// ---------------------------------------------------------------------------------------------

/// Escapes one key component so that joining components with `#` is unambiguous: an
/// environment named `a#b` must not address user `b` of environment `a`.
fn esc(part: &str) -> String {
    if !part.contains(['#', '%']) {
        return part.to_owned();
    }
    part.replace('%', "%25").replace('#', "%23")
}

/// The partition of everything per user: links, cursors, leases, problems.
pub(super) fn user_pk(env: &EnvironmentId, user: &UserId) -> String {
    format!("U#{}#{}", esc(env.as_str()), esc(user.as_str()))
}

/// The partition of everything per environment that is listed per environment: user states
/// and the latest run per (user, kind).
pub(super) fn env_pk(env: &EnvironmentId) -> String {
    format!("E#{}", esc(env.as_str()))
}

/// The one partition that lists environments (few rows, R1).
pub(super) const ENVIRONMENTS_PK: &str = "ENVS";

pub(super) fn environment_sk(env: &EnvironmentId) -> String {
    format!("E#{}", esc(env.as_str()))
}

pub(super) const USER_SK_PREFIX: &str = "USER#";

pub(super) fn user_sk(user: &UserId) -> String {
    format!("{USER_SK_PREFIX}{}", esc(user.as_str()))
}

pub(super) fn link_sk_prefix(kind: LinkKind) -> String {
    format!("L#{}#", kind.as_str())
}

pub(super) fn link_sk(kind: LinkKind, key: &LnKey) -> String {
    format!("{}{}", link_sk_prefix(kind), esc(key.as_str()))
}

pub(super) fn cursor_sk(kind: CursorKind) -> String {
    format!("C#{}", kind.as_str())
}

pub(super) fn lease_sk(kind: &str) -> String {
    format!("LEASE#{}", esc(kind))
}

pub(super) const PROBLEM_SK_PREFIX: &str = "P#";

pub(super) fn problem_sk(kind: LinkKind, key: &LnKey) -> String {
    format!("{PROBLEM_SK_PREFIX}{}#{}", kind.as_str(), esc(key.as_str()))
}

pub(super) const RUN_SK_PREFIX: &str = "RUN#";

pub(super) fn run_sk(user: &UserId, kind: LinkKind) -> String {
    format!("{RUN_SK_PREFIX}{}#{}", esc(user.as_str()), kind.as_str())
}

/// The environment's push token, in the environment's partition: one item, created once.
pub(super) const PUSH_TOKEN_SK: &str = "PUSH#TOKEN";

/// Push subscriptions live in the environment's partition: a notification names the
/// environment (its URL) and the subscription (its body), and renewal lists one environment.
pub(super) const SUBSCRIPTION_SK_PREFIX: &str = "SUB#";

pub(super) fn subscription_sk(id: &SubscriptionId) -> String {
    format!("{SUBSCRIPTION_SK_PREFIX}{}", esc(id.as_str()))
}

/// Job-done marks get a partition each: they are written once per job and never listed.
pub(super) fn job_pk(job: &JobId) -> String {
    format!("J#{}", esc(job.as_str()))
}

pub(super) const JOB_SK: &str = "DONE";

/// The scope of a link inside an index key: (env, user, kind).
fn scope(env: &EnvironmentId, user: &UserId, kind: LinkKind) -> String {
    format!(
        "{}#{}#{}",
        esc(env.as_str()),
        esc(user.as_str()),
        kind.as_str()
    )
}

pub(super) fn exchange_id_key(
    env: &EnvironmentId,
    user: &UserId,
    kind: LinkKind,
    id: &ExchangeItemId,
) -> String {
    format!("{}#{}", scope(env, user, kind), id.as_str())
}

pub(super) fn ical_uid_key(
    env: &EnvironmentId,
    user: &UserId,
    kind: LinkKind,
    uid: &IcalUid,
) -> String {
    format!("{}#{}", scope(env, user, kind), uid.as_str())
}

pub(super) fn series_key(
    env: &EnvironmentId,
    user: &UserId,
    kind: LinkKind,
    series: &ExchangeItemId,
) -> String {
    format!("{}#{}", scope(env, user, kind), series.as_str())
}

// ---------------------------------------------------------------------------------------------
// Creating the table
// ---------------------------------------------------------------------------------------------

/// How long [`create_table`] waits for a new table to become `ACTIVE` (AWS: seconds to a
/// minute; moto: at once).
const ACTIVE_TIMEOUT: Duration = Duration::from_secs(120);

fn key(name: &str, key_type: KeyType) -> Result<KeySchemaElement, StoreError> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(key_type)
        .build()
        .map_err(DynamoStoreError::build)
}

fn string_attribute(name: &str) -> Result<AttributeDefinition, StoreError> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .map_err(DynamoStoreError::build)
}

/// Creates the state table `table` (on-demand capacity, the indexes of [`INDEXES`], TTL on
/// [`TTL_ATTRIBUTE`]) and waits until it is active. An existing table is left as it is and
/// only its TTL setting is ensured, so a local `lnsync` can call this on every start.
pub async fn create_table(client: &Client, table: &str) -> Result<(), StoreError> {
    let mut definitions = vec![
        string_attribute(PARTITION_KEY)?,
        string_attribute(SORT_KEY)?,
    ];
    let mut indexes = Vec::with_capacity(INDEXES.len());
    for index in INDEXES {
        definitions.push(string_attribute(index.partition_key)?);
        indexes.push(
            GlobalSecondaryIndex::builder()
                .index_name(index.name)
                .key_schema(key(index.partition_key, KeyType::Hash)?)
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::KeysOnly)
                        .build(),
                )
                .build()
                .map_err(DynamoStoreError::build)?,
        );
    }
    let created = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .set_attribute_definitions(Some(definitions))
        .key_schema(key(PARTITION_KEY, KeyType::Hash)?)
        .key_schema(key(SORT_KEY, KeyType::Range)?)
        .set_global_secondary_indexes(Some(indexes))
        .send()
        .await;
    match created {
        Ok(_) => {}
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_in_use_exception()) => {}
        Err(e) => return Err(call_error("CreateTable", e)),
    }
    wait_active(client, table).await?;
    let ttl = TimeToLiveSpecification::builder()
        .attribute_name(TTL_ATTRIBUTE)
        .enabled(true)
        .build()
        .map_err(DynamoStoreError::build)?;
    let current = client
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await
        .map_err(|e| call_error("DescribeTimeToLive", e))?;
    let enabled = current
        .time_to_live_description()
        .and_then(|d| d.attribute_name())
        == Some(TTL_ATTRIBUTE);
    if !enabled {
        client
            .update_time_to_live()
            .table_name(table)
            .time_to_live_specification(ttl)
            .send()
            .await
            .map_err(|e| call_error("UpdateTimeToLive", e))?;
    }
    Ok(())
}

async fn wait_active(client: &Client, table: &str) -> Result<(), StoreError> {
    let deadline = tokio::time::Instant::now() + ACTIVE_TIMEOUT;
    loop {
        let described = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| call_error("DescribeTable", e))?;
        let status = described.table().and_then(|t| t.table_status());
        if status == Some(&TableStatus::Active) {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(StoreError::Unavailable {
                source: Box::new(DynamoStoreError::NotActive {
                    table: table.to_owned(),
                    waited: ACTIVE_TIMEOUT,
                }),
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_keeps_keys_apart() {
        let a = user_pk(&EnvironmentId::new("a#b"), &UserId::new("c"));
        let b = user_pk(&EnvironmentId::new("a"), &UserId::new("b#c"));
        assert_ne!(a, b);
        assert_eq!(a, "U#a%23b#c");
        assert_eq!(esc("100%#"), "100%25%23");
    }

    /// The environment partition is listed by sort-key prefix (users, runs, subscriptions):
    /// no item type's keys may fall under another type's prefix.
    #[test]
    fn environment_partition_prefixes_do_not_overlap() {
        let id = SubscriptionId::new("USER#x");
        let keys = [
            (USER_SK_PREFIX, user_sk(&UserId::new("SUB#x"))),
            (
                RUN_SK_PREFIX,
                run_sk(&UserId::new("SUB#x"), LinkKind::Event),
            ),
            (SUBSCRIPTION_SK_PREFIX, subscription_sk(&id)),
            ("", PUSH_TOKEN_SK.to_owned()),
        ];
        for (own, sk) in &keys {
            for prefix in [USER_SK_PREFIX, RUN_SK_PREFIX, SUBSCRIPTION_SK_PREFIX] {
                assert_eq!(sk.starts_with(prefix), prefix == *own, "{sk} vs {prefix}");
            }
        }
    }

    #[test]
    fn index_attributes_are_distinct_from_the_table_keys() {
        for index in INDEXES {
            assert_ne!(index.partition_key, PARTITION_KEY);
            assert_ne!(index.partition_key, SORT_KEY);
        }
    }
}
