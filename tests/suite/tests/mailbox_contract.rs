//! The `Mailbox` contract against both Exchange backends: `EwsMailbox` and `GraphMailbox`, each
//! on fresh Exchange simulators (one store behind both protocols). See
//! `lnsync_tests::contract::mailbox` for the cases.

use lnsync_tests::contract::mailbox::run_all;
use lnsync_tests::harness::Backend;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ews_mailbox() {
    run_all(Backend::Ews).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_mailbox() {
    run_all(Backend::Graph).await;
}
