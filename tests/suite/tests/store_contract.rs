//! The `StateStore` contract against the SQLite store (in memory and on disk) and against the
//! core's `MemoryStore`, which the service's own tests rely on.

use lnsync_adapters::sqlite::SqliteStateStore;
use lnsync_core::ports::StateStore;
use lnsync_core::testing::MemoryStore;
use lnsync_tests::contract::store::run_all;
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
