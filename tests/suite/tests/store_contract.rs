//! The `StateStore` contract against the SQLite store (in memory and on disk), the core's
//! `MemoryStore`, which the service's own tests rely on, and the DynamoDB store on a moto server
//! (`lnsync_tests::moto`: `MOTO_ENDPOINT`, or `.venv/moto` from `make tools`; never skipped).

use lnsync_adapters::dynamo::{
    DynamoStateStore, INDEXES, PARTITION_KEY, SORT_KEY, TTL_ATTRIBUTE, create_table,
};
use lnsync_adapters::sqlite::SqliteStateStore;
use lnsync_core::ports::StateStore;
use lnsync_core::testing::{CrashingStore, MemoryStore};
use lnsync_tests::contract::store::run_all;
use lnsync_tests::moto::{moto, unique_name};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_in_memory() {
    run_all(|| async {
        Arc::new(SqliteStateStore::open_in_memory().expect("open in memory")) as Arc<dyn StateStore>
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let next = AtomicUsize::new(0);
    run_all(|| {
        let path = dir.path().join(format!("state-{}.db", next.fetch_add(1, Ordering::Relaxed)));
        async move { Arc::new(SqliteStateStore::open(path).expect("open file")) as Arc<dyn StateStore> }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn core_memory_store() {
    run_all(|| async { Arc::new(MemoryStore::default()) as Arc<dyn StateStore> }).await;
}

/// `CrashingStore` unarmed must be a transparent wrapper: every method reaches the inner store.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn core_crashing_store_unarmed() {
    run_all(|| async {
        Arc::new(CrashingStore::new(MemoryStore::default())) as Arc<dyn StateStore>
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// DynamoDB on moto: the contract, plus what only the DynamoDB store promises.
// ---------------------------------------------------------------------------------------------

/// A fresh table on this process's moto server.
async fn dynamo_store() -> DynamoStateStore {
    let client = moto().dynamodb();
    let table = unique_name("lnsync-state");
    create_table(&client, &table).await.expect("create table");
    DynamoStateStore::new(client, table)
}

/// The whole contract against DynamoDB on moto.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dynamodb_on_moto() {
    run_all(|| async { Arc::new(dynamo_store().await) as Arc<dyn StateStore> }).await;
}

/// The table matches the constants an IaC template is checked against, and creating it again
/// is harmless (a local `lnsync` calls `create_table` on every start).
#[tokio::test]
async fn dynamodb_table_shape_comes_from_the_schema_constants() {
    let store = dynamo_store().await;
    let client = moto().dynamodb();
    create_table(&client, store.table())
        .await
        .expect("create again");
    let table = client
        .describe_table()
        .table_name(store.table())
        .send()
        .await
        .expect("describe")
        .table
        .expect("table");
    let keys: Vec<(String, String)> = table
        .key_schema()
        .iter()
        .map(|k| {
            (
                k.attribute_name().to_owned(),
                k.key_type().as_str().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        keys,
        [
            (PARTITION_KEY.to_owned(), "HASH".to_owned()),
            (SORT_KEY.to_owned(), "RANGE".to_owned())
        ]
    );
    let mut indexes: Vec<(String, String)> = table
        .global_secondary_indexes()
        .iter()
        .map(|g| {
            (
                g.index_name().unwrap_or_default().to_owned(),
                g.key_schema()
                    .first()
                    .map(|k| k.attribute_name().to_owned())
                    .unwrap_or_default(),
            )
        })
        .collect();
    indexes.sort();
    let mut expected: Vec<(String, String)> = INDEXES
        .iter()
        .map(|i| (i.name.to_owned(), i.partition_key.to_owned()))
        .collect();
    expected.sort();
    assert_eq!(indexes, expected);
    let ttl = client
        .describe_time_to_live()
        .table_name(store.table())
        .send()
        .await
        .expect("describe ttl");
    assert_eq!(
        ttl.time_to_live_description()
            .and_then(|d| d.attribute_name()),
        Some(TTL_ATTRIBUTE)
    );
}
