//! The serverless [`StateStore`]: one DynamoDB table (single-table design) for every Lambda.
//!
//! - [`DynamoStateStore`]: the store over an injected `aws_sdk_dynamodb::Client` and a table
//!   name; the client is built once in a function's `main` (or by the tests against moto).
//! - `schema`: key schema, indexes and TTL as constants, the key layout per item type, and
//!   [`create_table`] (tests and a local `lnsync`); the IaC template is checked against them.
//! - `item`: model values ⇄ items (timestamps as fixed-width UTC text, enums by serde name).
//! - [`DynamoStoreError`]: the adapter's failures, kept as the source of the port's error.
//!
//! The design, item sizes and the consistency trade-offs are in `docs/dynamodb.md`. In short:
//! per-user data lives in one partition (`U#env#user`) and is read with consistent reads; the
//! three link lookups other than by LN key go through sparse `KEYS_ONLY` indexes and then a
//! consistent `BatchGetItem`; every write that decides something (cursor, lease, job mark, push
//! token, a subscription's `last_seen`) is conditional, so two Lambdas racing lose cleanly
//! instead of overwriting. Push tokens and subscriptions live in the environment's partition.

mod error;
mod item;
mod schema;

pub use error::DynamoStoreError;
pub use schema::{
    BY_EXCHANGE_ID, BY_ICAL_UID, BY_SERIES, INDEXES, IndexSpec, PARTITION_KEY, SORT_KEY,
    TTL_ATTRIBUTE, create_table,
};

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{
    AttributeValue, DeleteRequest, KeysAndAttributes, PutRequest, ReturnValue, Select, WriteRequest,
};
use chrono::{DateTime, Utc};
use error::{call_error, unavailable};
use futures::{StreamExt, TryStreamExt};
use item::{Item, ItemBuilder, ItemReader};
use lnsync_core::error::StoreError;
use lnsync_core::ids::*;
use lnsync_core::model::*;
use lnsync_core::ports::StateStore;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// Keys per `BatchGetItem` (the service limit).
const BATCH_GET_MAX: usize = 100;
/// Requests per `BatchWriteItem` (the service limit).
const BATCH_WRITE_MAX: usize = 25;
/// `BatchGetItem` calls in flight at once for one large `links` call: enough to hide latency,
/// few enough not to throttle one user's partition.
const READ_CONCURRENCY: usize = 4;
/// Attempts for unprocessed batch entries. The SDK already retries
/// throttled *calls*; these are partial results of successful calls, which it does not retry.
const BATCH_ATTEMPTS: u32 = 8;

/// The DynamoDB implementation of [`StateStore`]. Cheap to clone (the SDK client is an `Arc`).
#[derive(Debug, Clone)]
pub struct DynamoStateStore {
    client: Client,
    table: Arc<str>,
}

impl DynamoStateStore {
    /// A store over `table`, which must exist with the shape of [`create_table`].
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: Arc::from(table.into()),
        }
    }

    /// The table this store reads and writes.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// An unconditional PutItem: for items only one writer decides (environment and user
    /// states, run records, problems).
    async fn put(&self, item: Item) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(self.table())
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| call_error("PutItem", e))?;
        Ok(())
    }

    async fn get(&self, pk: String, sk: String) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(self.table())
            .set_key(Some(item::key(pk, sk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| call_error("GetItem", e))?;
        Ok(out.item)
    }

    /// Every item of partition `pk` whose sort key starts with `prefix`, all pages, consistent.
    async fn query_prefix(&self, pk: String, prefix: String) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(self.table())
                .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                .expression_attribute_names("#pk", PARTITION_KEY)
                .expression_attribute_names("#sk", SORT_KEY)
                .expression_attribute_values(":pk", AttributeValue::S(pk.clone()))
                .expression_attribute_values(":prefix", AttributeValue::S(prefix.clone()))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| call_error("Query", e))?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(items),
            }
        }
    }

    /// The table keys of every item whose `index` key is `value` (all pages). Index reads
    /// are eventually consistent: callers re-read the items and re-check the attribute.
    async fn index_keys(&self, index: IndexSpec, value: String) -> Result<Vec<Item>, StoreError> {
        let mut keys = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(self.table())
                .index_name(index.name)
                .key_condition_expression("#k = :k")
                .expression_attribute_names("#k", index.partition_key)
                .expression_attribute_values(":k", AttributeValue::S(value.clone()))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| call_error("Query", e))?;
            keys.extend(
                out.items
                    .unwrap_or_default()
                    .iter()
                    .filter_map(item::table_key_of),
            );
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(keys),
            }
        }
    }

    /// Reads items by key with consistent reads, `BATCH_GET_MAX` per call, a few calls at once,
    /// retrying unprocessed keys. Duplicate keys are read once (the service rejects them).
    async fn batch_get(&self, keys: Vec<Item>) -> Result<Vec<Item>, StoreError> {
        let keys = dedup_keys(keys);
        let chunks: Vec<Vec<Item>> = keys.chunks(BATCH_GET_MAX).map(<[Item]>::to_vec).collect();
        let found: Vec<Vec<Item>> = futures::stream::iter(chunks)
            .map(|chunk| self.batch_get_chunk(chunk))
            .buffer_unordered(READ_CONCURRENCY)
            .try_collect()
            .await?;
        Ok(found.into_iter().flatten().collect())
    }

    async fn batch_get_chunk(&self, keys: Vec<Item>) -> Result<Vec<Item>, StoreError> {
        let mut found = Vec::with_capacity(keys.len());
        let mut pending = keys;
        for attempt in 0..BATCH_ATTEMPTS {
            if pending.is_empty() {
                return Ok(found);
            }
            if attempt > 0 {
                tokio::time::sleep(backoff(attempt)).await;
            }
            let request = KeysAndAttributes::builder()
                .set_keys(Some(std::mem::take(&mut pending)))
                .consistent_read(true)
                .build()
                .map_err(DynamoStoreError::build)?;
            let out = self
                .client
                .batch_get_item()
                .request_items(self.table(), request)
                .send()
                .await
                .map_err(|e| call_error("BatchGetItem", e))?;
            if let Some(mut responses) = out.responses {
                found.extend(responses.remove(self.table()).unwrap_or_default());
            }
            if let Some(mut unprocessed) = out.unprocessed_keys {
                pending = unprocessed
                    .remove(self.table())
                    .map(|k| k.keys)
                    .unwrap_or_default();
            }
        }
        if pending.is_empty() {
            Ok(found)
        } else {
            Err(unavailable(DynamoStoreError::Unprocessed {
                op: "BatchGetItem",
                left: pending.len(),
                attempts: BATCH_ATTEMPTS,
            }))
        }
    }

    /// Deletes items by key, `BATCH_WRITE_MAX` per call, retrying unprocessed entries.
    async fn batch_delete(&self, keys: Vec<Item>) -> Result<(), StoreError> {
        for chunk in dedup_keys(keys).chunks(BATCH_WRITE_MAX) {
            let mut pending = Vec::with_capacity(chunk.len());
            for key in chunk {
                let delete = DeleteRequest::builder()
                    .set_key(Some(key.clone()))
                    .build()
                    .map_err(DynamoStoreError::build)?;
                pending.push(WriteRequest::builder().delete_request(delete).build());
            }
            self.batch_write(pending).await?;
        }
        Ok(())
    }

    async fn batch_write(&self, requests: Vec<WriteRequest>) -> Result<(), StoreError> {
        let mut pending = requests;
        for attempt in 0..BATCH_ATTEMPTS {
            if pending.is_empty() {
                return Ok(());
            }
            if attempt > 0 {
                tokio::time::sleep(backoff(attempt)).await;
            }
            let out = self
                .client
                .batch_write_item()
                .request_items(self.table(), std::mem::take(&mut pending))
                .send()
                .await
                .map_err(|e| call_error("BatchWriteItem", e))?;
            if let Some(mut unprocessed) = out.unprocessed_items {
                pending = unprocessed.remove(self.table()).unwrap_or_default();
            }
        }
        if pending.is_empty() {
            Ok(())
        } else {
            Err(unavailable(DynamoStoreError::Unprocessed {
                op: "BatchWriteItem",
                left: pending.len(),
                attempts: BATCH_ATTEMPTS,
            }))
        }
    }

    /// Reads the links named by index keys, keeping those `still` matches: the index may lag
    /// behind a replaced link, the consistent read of the link itself does not.
    async fn links_via_index(
        &self,
        index: IndexSpec,
        value: String,
        still: impl Fn(&Link) -> bool,
    ) -> Result<Vec<Link>, StoreError> {
        let keys = self.index_keys(index, value).await?;
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut links = Vec::with_capacity(keys.len());
        for item in self.batch_get(keys).await? {
            let link = item::link_from(&item)?;
            if still(&link) {
                links.push(link);
            }
        }
        links.sort_by(|a, b| a.ln_key.cmp(&b.ln_key));
        Ok(links)
    }
}

/// Exponential backoff for partial batch results: 50 ms, 100 ms, … capped at 2 s.
fn backoff(attempt: u32) -> Duration {
    let ms = 50u64.saturating_mul(1 << attempt.min(6));
    Duration::from_millis(ms.min(2_000))
}

/// Keys in first-seen order without repeats (batch calls reject duplicate keys).
fn dedup_keys(keys: Vec<Item>) -> Vec<Item> {
    let mut seen = HashSet::new();
    keys.into_iter()
        .filter(|k| {
            let id = (
                k.get(PARTITION_KEY).and_then(|v| v.as_s().ok()).cloned(),
                k.get(SORT_KEY).and_then(|v| v.as_s().ok()).cloned(),
            );
            seen.insert(id)
        })
        .collect()
}

/// `now + ttl`, saturating at the end of year 9999 (the last instant the fixed-width text
/// timestamps can express) instead of overflowing.
fn expiry(now: DateTime<Utc>, ttl: Duration) -> DateTime<Utc> {
    let end = DateTime::<Utc>::from_timestamp(253_402_300_799, 0).unwrap_or(now);
    chrono::Duration::from_std(ttl)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .map_or(end, |t| t.min(end))
}

/// The DynamoDB TTL value for an expiry: epoch seconds, rounded up so TTL never deletes an
/// item before it has expired by the exact comparison.
fn ttl_seconds(expires: DateTime<Utc>) -> i64 {
    let secs = expires.timestamp();
    if expires.timestamp_subsec_nanos() > 0 {
        secs + 1
    } else {
        secs
    }
}

fn conditional_failed<E, R>(e: &SdkError<E, R>) -> bool
where
    E: ConditionalError,
{
    e.as_service_error()
        .is_some_and(ConditionalError::is_conditional_check_failed)
}

/// The per-operation SDK errors that can report a lost condition.
trait ConditionalError {
    fn is_conditional_check_failed(&self) -> bool;
}

impl ConditionalError for aws_sdk_dynamodb::operation::put_item::PutItemError {
    fn is_conditional_check_failed(&self) -> bool {
        self.is_conditional_check_failed_exception()
    }
}

impl ConditionalError for aws_sdk_dynamodb::operation::update_item::UpdateItemError {
    fn is_conditional_check_failed(&self) -> bool {
        self.is_conditional_check_failed_exception()
    }
}

impl ConditionalError for aws_sdk_dynamodb::operation::delete_item::DeleteItemError {
    fn is_conditional_check_failed(&self) -> bool {
        self.is_conditional_check_failed_exception()
    }
}

fn cursor_conflict(cursor: &Cursor) -> StoreError {
    StoreError::Conflict {
        what: format!(
            "cursor {} of {}/{}",
            cursor.kind.as_str(),
            cursor.env,
            cursor.user
        ),
    }
}

// Attribute names of cursors, leases and job marks, used in expressions.
const CURSOR_VALUE: &str = "value";
const CURSOR_REVISION: &str = "revision";
/// Set on a deleted cursor: the item stays as a tombstone so its revision never restarts.
const CURSOR_DELETED: &str = "deleted";
const HOLDER: &str = "holder";
const EXPIRES_AT: &str = "expires_at";

// ---------------------------------------------------------------------------------------------
// The port
// ---------------------------------------------------------------------------------------------

#[async_trait]
impl StateStore for DynamoStateStore {
    async fn environment(
        &self,
        env: &EnvironmentId,
    ) -> Result<Option<EnvironmentState>, StoreError> {
        self.get(
            schema::ENVIRONMENTS_PK.to_owned(),
            schema::environment_sk(env),
        )
        .await?
        .as_ref()
        .map(item::environment_from)
        .transpose()
    }

    async fn environments(&self) -> Result<Vec<EnvironmentState>, StoreError> {
        let items = self
            .query_prefix(schema::ENVIRONMENTS_PK.to_owned(), "E#".to_owned())
            .await?;
        items.iter().map(item::environment_from).collect()
    }

    async fn put_environment(&self, state: &EnvironmentState) -> Result<(), StoreError> {
        self.put(item::environment_item(state)).await
    }

    async fn user_state(
        &self,
        env: &EnvironmentId,
        user: &UserId,
    ) -> Result<Option<UserState>, StoreError> {
        self.get(schema::env_pk(env), schema::user_sk(user))
            .await?
            .as_ref()
            .map(item::user_from)
            .transpose()
    }

    async fn user_states(&self, env: &EnvironmentId) -> Result<Vec<UserState>, StoreError> {
        let items = self
            .query_prefix(schema::env_pk(env), schema::USER_SK_PREFIX.to_owned())
            .await?;
        items.iter().map(item::user_from).collect()
    }

    async fn put_user_state(&self, state: &UserState) -> Result<(), StoreError> {
        self.put(item::user_item(state)).await
    }

    async fn links(
        &self,
        env: &EnvironmentId,
        user: &UserId,
        kind: LinkKind,
        keys: &[LnKey],
    ) -> Result<Vec<Link>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let pk = schema::user_pk(env, user);
        let table_keys = keys
            .iter()
            .map(|k| item::key(pk.clone(), schema::link_sk(kind, k)))
            .collect();
        let mut links: Vec<Link> = self
            .batch_get(table_keys)
            .await?
            .iter()
            .map(item::link_from)
            .collect::<Result<_, _>>()?;
        links.sort_by(|a, b| a.ln_key.cmp(&b.ln_key));
        Ok(links)
    }

    async fn link_by_exchange_id(
        &self,
        env: &EnvironmentId,
        user: &UserId,
        kind: LinkKind,
        id: &ExchangeItemId,
    ) -> Result<Option<Link>, StoreError> {
        if id.as_str().is_empty() {
            // Intents have an empty id and are not in the index; nothing to find.
            return Ok(None);
        }
        let links = self
            .links_via_index(
                BY_EXCHANGE_ID,
                schema::exchange_id_key(env, user, kind, id),
                |l| &l.exchange_id == id,
            )
            .await?;
        Ok(links.into_iter().next())
    }

    async fn all_links(
        &self,
        env: &EnvironmentId,
        user: &UserId,
        kind: LinkKind,
    ) -> Result<Vec<Link>, StoreError> {
        let items = self
            .query_prefix(schema::user_pk(env, user), schema::link_sk_prefix(kind))
            .await?;
        items.iter().map(item::link_from).collect()
    }

    async fn links_by_ical_uid(
        &self,
        env: &EnvironmentId,
        user: &UserId,
        kind: LinkKind,
        uid: &IcalUid,
    ) -> Result<Vec<Link>, StoreError> {
        if uid.as_str().is_empty() {
            return Ok(Vec::new());
        }
        self.links_via_index(
            BY_ICAL_UID,
            schema::ical_uid_key(env, user, kind, uid),
            |l| l.ical_uid.as_ref() == Some(uid),
        )
        .await
    }

    async fn links_by_series(
        &self,
        env: &EnvironmentId,
        user: &UserId,
        kind: LinkKind,
        series: &ExchangeItemId,
    ) -> Result<Vec<Link>, StoreError> {
        if series.as_str().is_empty() {
            return Ok(Vec::new());
        }
        self.links_via_index(
            BY_SERIES,
            schema::series_key(env, user, kind, series),
            |l| l.event.as_ref().and_then(|e| e.series_id.as_ref()) == Some(series),
        )
        .await
    }

    async fn link_count(
        &self,
        env: &EnvironmentId,
        user: &UserId,
        kind: LinkKind,
    ) -> Result<u64, StoreError> {
        // A COUNT query still reads (and pays for) every link of the scope, but returns none
        // of them; it serves the mass-deletion guard once per run, not the hot path.
        let (pk, prefix) = (schema::user_pk(env, user), schema::link_sk_prefix(kind));
        let mut total: u64 = 0;
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(self.table())
                .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                .expression_attribute_names("#pk", PARTITION_KEY)
                .expression_attribute_names("#sk", SORT_KEY)
                .expression_attribute_values(":pk", AttributeValue::S(pk.clone()))
                .expression_attribute_values(":prefix", AttributeValue::S(prefix.clone()))
                .select(Select::Count)
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| call_error("Query", e))?;
            total += u64::try_from(out.count).unwrap_or(0);
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(total),
            }
        }
    }

    /// `BatchWriteItem`, 25 links per call, unprocessed entries retried. "Insert or replace"
    /// like every store: the per-user lease (R36) is what keeps two runs from writing one
    /// user's links, and a time-based condition would trust clocks of different Lambdas.
    ///
    /// Not all-or-nothing: on a failure, links already written stay written, as after a crash
    /// between two executor steps (R34), which the services are built to survive.
    async fn put_links(&self, links: &[Link]) -> Result<(), StoreError> {
        // The last link of a key wins, as sequential upserts would; one batch must not name an
        // item twice.
        let mut seen = HashSet::new();
        let mut unique: Vec<&Link> = links
            .iter()
            .rev()
            .filter(|l| seen.insert((&l.env, &l.user, l.kind, &l.ln_key)))
            .collect();
        unique.reverse();
        for chunk in unique.chunks(BATCH_WRITE_MAX) {
            let mut pending = Vec::with_capacity(chunk.len());
            for link in chunk {
                let put = PutRequest::builder()
                    .set_item(Some(item::link_item(link)))
                    .build()
                    .map_err(DynamoStoreError::build)?;
                pending.push(WriteRequest::builder().put_request(put).build());
            }
            self.batch_write(pending).await?;
        }
        Ok(())
    }

    async fn delete_links(
        &self,
        env: &EnvironmentId,
        user: &UserId,
        kind: LinkKind,
        keys: &[LnKey],
    ) -> Result<(), StoreError> {
        let pk = schema::user_pk(env, user);
        let table_keys = keys
            .iter()
            .map(|k| item::key(pk.clone(), schema::link_sk(kind, k)))
            .collect();
        self.batch_delete(table_keys).await
    }

    async fn cursor(
        &self,
        env: &EnvironmentId,
        user: &UserId,
        kind: CursorKind,
    ) -> Result<Option<Cursor>, StoreError> {
        let Some(found) = self
            .get(schema::user_pk(env, user), schema::cursor_sk(kind))
            .await?
        else {
            return Ok(None);
        };
        let r = ItemReader::new(&found, "cursor");
        if r.bool(CURSOR_DELETED)? {
            return Ok(None);
        }
        Ok(Some(Cursor {
            env: env.clone(),
            user: user.clone(),
            kind,
            value: r.s(CURSOR_VALUE)?,
            revision: r.u64(CURSOR_REVISION)?,
        }))
    }

    /// Compare-and-set by revision, in one conditional `UpdateItem`. A deleted cursor is a
    /// tombstone that keeps its revision: re-creating it (revision 0) continues the count, so a
    /// writer still holding a revision from before the delete can never match again (no ABA).
    async fn put_cursor(&self, cursor: &Cursor) -> Result<u64, StoreError> {
        let key = item::key(
            schema::user_pk(&cursor.env, &cursor.user),
            schema::cursor_sk(cursor.kind),
        );
        let request = self
            .client
            .update_item()
            .table_name(self.table())
            .set_key(Some(key))
            .expression_attribute_names("#value", CURSOR_VALUE)
            .expression_attribute_names("#rev", CURSOR_REVISION)
            .expression_attribute_names("#deleted", CURSOR_DELETED)
            .expression_attribute_values(":value", AttributeValue::S(cursor.value.clone()))
            .expression_attribute_values(":one", AttributeValue::N("1".to_owned()))
            .return_values(ReturnValue::UpdatedNew);
        let request = if cursor.revision == 0 {
            request
                .update_expression(
                    "SET #type = :type, #env = :env, #user = :user, #kind = :kind, \
                     #value = :value, #rev = if_not_exists(#rev, :zero) + :one REMOVE #deleted",
                )
                .condition_expression("attribute_not_exists(#pk) OR #deleted = :true")
                .expression_attribute_names("#pk", PARTITION_KEY)
                .expression_attribute_names("#type", item::TYPE)
                .expression_attribute_names("#env", "env")
                .expression_attribute_names("#user", "user")
                .expression_attribute_names("#kind", "kind")
                .expression_attribute_values(":type", AttributeValue::S("cursor".to_owned()))
                .expression_attribute_values(
                    ":env",
                    AttributeValue::S(cursor.env.as_str().to_owned()),
                )
                .expression_attribute_values(
                    ":user",
                    AttributeValue::S(cursor.user.as_str().to_owned()),
                )
                .expression_attribute_values(
                    ":kind",
                    AttributeValue::S(cursor.kind.as_str().to_owned()),
                )
                .expression_attribute_values(":zero", AttributeValue::N("0".to_owned()))
                .expression_attribute_values(":true", AttributeValue::Bool(true))
        } else {
            request
                .update_expression("SET #value = :value, #rev = #rev + :one")
                .condition_expression("#rev = :expected AND attribute_not_exists(#deleted)")
                .expression_attribute_values(
                    ":expected",
                    AttributeValue::N(cursor.revision.to_string()),
                )
        };
        let out = match request.send().await {
            Ok(out) => out,
            Err(e) if conditional_failed(&e) => return Err(cursor_conflict(cursor)),
            Err(e) => return Err(call_error("UpdateItem", e)),
        };
        let attributes = out.attributes.unwrap_or_default();
        ItemReader::new(&attributes, "cursor").u64(CURSOR_REVISION)
    }

    async fn delete_cursor(
        &self,
        env: &EnvironmentId,
        user: &UserId,
        kind: CursorKind,
    ) -> Result<(), StoreError> {
        let deleted = self
            .client
            .update_item()
            .table_name(self.table())
            .set_key(Some(item::key(
                schema::user_pk(env, user),
                schema::cursor_sk(kind),
            )))
            .update_expression("SET #deleted = :true REMOVE #value")
            // Only an existing cursor becomes a tombstone; deleting nothing writes nothing.
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", PARTITION_KEY)
            .expression_attribute_names("#deleted", CURSOR_DELETED)
            .expression_attribute_names("#value", CURSOR_VALUE)
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .send()
            .await;
        match deleted {
            Ok(_) => Ok(()),
            Err(e) if conditional_failed(&e) => Ok(()),
            Err(e) => Err(call_error("UpdateItem", e)),
        }
    }

    async fn acquire_lease(
        &self,
        env: &EnvironmentId,
        user: &UserId,
        kind: &str,
        holder: &str,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let expires = expiry(now, ttl);
        let lease = ItemBuilder::new(schema::user_pk(env, user), schema::lease_sk(kind), "lease")
            .s("env", env.as_str())
            .s("user", user.as_str())
            .s("kind", kind)
            .s(HOLDER, holder)
            .ts(EXPIRES_AT, expires)
            .n(TTL_ATTRIBUTE, ttl_seconds(expires))
            .build();
        // One conditional put decides: free, expired, or already ours (which extends it).
        let put = self
            .client
            .put_item()
            .table_name(self.table())
            .set_item(Some(lease))
            .condition_expression(
                "attribute_not_exists(#pk) OR #holder = :holder OR #expires <= :now",
            )
            .expression_attribute_names("#pk", PARTITION_KEY)
            .expression_attribute_names("#holder", HOLDER)
            .expression_attribute_names("#expires", EXPIRES_AT)
            .expression_attribute_values(":holder", AttributeValue::S(holder.to_owned()))
            .expression_attribute_values(":now", AttributeValue::S(item::ts(now)))
            .send()
            .await;
        match put {
            Ok(_) => Ok(true),
            Err(e) if conditional_failed(&e) => Ok(false),
            Err(e) => Err(call_error("PutItem", e)),
        }
    }

    async fn release_lease(
        &self,
        env: &EnvironmentId,
        user: &UserId,
        kind: &str,
        holder: &str,
    ) -> Result<(), StoreError> {
        let deleted = self
            .client
            .delete_item()
            .table_name(self.table())
            .set_key(Some(item::key(
                schema::user_pk(env, user),
                schema::lease_sk(kind),
            )))
            .condition_expression("#holder = :holder")
            .expression_attribute_names("#holder", HOLDER)
            .expression_attribute_values(":holder", AttributeValue::S(holder.to_owned()))
            .send()
            .await;
        match deleted {
            // Not ours (or not there): releasing is a no-op, as the port says.
            Ok(_) => Ok(()),
            Err(e) if conditional_failed(&e) => Ok(()),
            Err(e) => Err(call_error("DeleteItem", e)),
        }
    }

    async fn mark_job_done(
        &self,
        job: &JobId,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let expires = expiry(now, ttl);
        let mark = ItemBuilder::new(schema::job_pk(job), schema::JOB_SK, "job")
            .s("job", job.as_str())
            .ts(EXPIRES_AT, expires)
            .n(TTL_ATTRIBUTE, ttl_seconds(expires))
            .build();
        // TTL deletes lazily, so an expired mark may still be there: it counts as absent.
        let put = self
            .client
            .put_item()
            .table_name(self.table())
            .set_item(Some(mark))
            .condition_expression("attribute_not_exists(#pk) OR #expires <= :now")
            .expression_attribute_names("#pk", PARTITION_KEY)
            .expression_attribute_names("#expires", EXPIRES_AT)
            .expression_attribute_values(":now", AttributeValue::S(item::ts(now)))
            .send()
            .await;
        match put {
            Ok(_) => Ok(true),
            Err(e) if conditional_failed(&e) => Ok(false),
            Err(e) => Err(call_error("PutItem", e)),
        }
    }

    /// Keeps the latest run per (user, kind) only, in the environment's partition, so the
    /// console's `last_runs` is one query; a run history would be a second item type.
    async fn record_run(&self, run: &RunRecord) -> Result<(), StoreError> {
        self.put(item::run_item(run)).await
    }

    async fn last_runs(&self, env: &EnvironmentId) -> Result<Vec<RunRecord>, StoreError> {
        let items = self
            .query_prefix(schema::env_pk(env), schema::RUN_SK_PREFIX.to_owned())
            .await?;
        items.iter().map(item::run_from).collect()
    }

    async fn put_problem(&self, problem: &ItemProblem) -> Result<(), StoreError> {
        self.put(item::problem_item(problem)).await
    }

    async fn clear_problems(
        &self,
        env: &EnvironmentId,
        user: &UserId,
        kind: LinkKind,
        keys: &[LnKey],
    ) -> Result<(), StoreError> {
        let pk = schema::user_pk(env, user);
        let table_keys = keys
            .iter()
            .map(|k| item::key(pk.clone(), schema::problem_sk(kind, k)))
            .collect();
        self.batch_delete(table_keys).await
    }

    async fn problems(
        &self,
        env: &EnvironmentId,
        user: &UserId,
    ) -> Result<Vec<ItemProblem>, StoreError> {
        let items = self
            .query_prefix(
                schema::user_pk(env, user),
                schema::PROBLEM_SK_PREFIX.to_owned(),
            )
            .await?;
        items.iter().map(item::problem_from).collect()
    }

    /// A conditional PutItem (`attribute_not_exists`) decides who creates the token; a loser
    /// reads the winner's with a consistent read. The token item is never replaced or
    /// deleted, so that read always finds it.
    async fn ensure_push_token(
        &self,
        env: &EnvironmentId,
        candidate: &str,
    ) -> Result<String, StoreError> {
        let put = self
            .client
            .put_item()
            .table_name(self.table())
            .set_item(Some(item::push_token_item(env, candidate)))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PARTITION_KEY)
            .send()
            .await;
        match put {
            Ok(_) => return Ok(candidate.to_owned()),
            Err(e) if conditional_failed(&e) => {}
            Err(e) => return Err(call_error("PutItem", e)),
        }
        match self.push_token(env).await? {
            Some(token) => Ok(token),
            // Only possible if someone deleted the item between the two calls, outside lnsync:
            // a caller's retry creates it again.
            None => Err(StoreError::Conflict {
                what: format!("push token of {env}"),
            }),
        }
    }

    async fn push_token(&self, env: &EnvironmentId) -> Result<Option<String>, StoreError> {
        self.get(schema::env_pk(env), schema::PUSH_TOKEN_SK.to_owned())
            .await?
            .as_ref()
            .map(item::push_token_from)
            .transpose()
    }

    async fn put_subscription(&self, sub: &PushSubscription) -> Result<(), StoreError> {
        self.put(item::subscription_item(sub)).await
    }

    async fn subscription(
        &self,
        env: &EnvironmentId,
        id: &SubscriptionId,
    ) -> Result<Option<PushSubscription>, StoreError> {
        self.get(schema::env_pk(env), schema::subscription_sk(id))
            .await?
            .as_ref()
            .map(item::subscription_from)
            .transpose()
    }

    async fn subscriptions(
        &self,
        env: &EnvironmentId,
    ) -> Result<Vec<PushSubscription>, StoreError> {
        let items = self
            .query_prefix(
                schema::env_pk(env),
                schema::SUBSCRIPTION_SK_PREFIX.to_owned(),
            )
            .await?;
        items.iter().map(item::subscription_from).collect()
    }

    /// One conditional UpdateItem: the item must exist (an update would otherwise create a
    /// bare item) and its `last_seen` must not be later than `seen`, which fixed-width UTC
    /// text lets the condition compare as a string.
    async fn touch_subscription(
        &self,
        env: &EnvironmentId,
        id: &SubscriptionId,
        seen: DateTime<Utc>,
        watermark: Option<&str>,
    ) -> Result<bool, StoreError> {
        let request = self
            .client
            .update_item()
            .table_name(self.table())
            .set_key(Some(item::key(
                schema::env_pk(env),
                schema::subscription_sk(id),
            )))
            .condition_expression("attribute_exists(#pk) AND #seen <= :seen")
            .expression_attribute_names("#pk", PARTITION_KEY)
            .expression_attribute_names("#seen", item::SUB_LAST_SEEN)
            .expression_attribute_values(":seen", AttributeValue::S(item::ts(seen)));
        let request = match watermark {
            Some(w) => request
                .update_expression("SET #seen = :seen, #wm = :wm")
                .expression_attribute_names("#wm", item::SUB_WATERMARK)
                .expression_attribute_values(":wm", AttributeValue::S(w.to_owned())),
            None => request.update_expression("SET #seen = :seen"),
        };
        match request.send().await {
            Ok(_) => Ok(true),
            Err(e) if conditional_failed(&e) => Ok(false),
            Err(e) => Err(call_error("UpdateItem", e)),
        }
    }

    async fn delete_subscription(
        &self,
        env: &EnvironmentId,
        id: &SubscriptionId,
    ) -> Result<(), StoreError> {
        // Deleting an absent item succeeds in DynamoDB: no condition needed.
        self.client
            .delete_item()
            .table_name(self.table())
            .set_key(Some(item::key(
                schema::env_pk(env),
                schema::subscription_sk(id),
            )))
            .send()
            .await
            .map_err(|e| call_error("DeleteItem", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn ttl_rounds_up_and_expiry_saturates() {
        let t = Utc
            .with_ymd_and_hms(2026, 11, 25, 10, 0, 0)
            .single()
            .expect("time");
        assert_eq!(ttl_seconds(t), t.timestamp());
        let later = t + chrono::Duration::milliseconds(1);
        assert_eq!(ttl_seconds(later), t.timestamp() + 1);
        let far = expiry(t, Duration::from_secs(u64::MAX));
        assert_eq!(item::ts(far).len(), item::ts(t).len());
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_millis(100));
        assert!(backoff(3) > backoff(2));
        assert_eq!(backoff(30), Duration::from_secs(2));
    }

    #[test]
    fn duplicate_keys_are_read_once() {
        let k = |s: &str| item::key("p".into(), s.into());
        assert_eq!(
            dedup_keys(vec![k("a"), k("b"), k("a")]),
            vec![k("a"), k("b")]
        );
    }
}
