//! `infra/template.yaml` against the code it deploys: one source of truth for the names both
//! use (issue 6). The template is translated with aws-sam-translator and deployed into moto's
//! CloudFormation (`lnsync_tests::iac`); then
//! - the table CloudFormation created has the keys, indexes and settings of
//!   `dynamo::schema`, and the whole `StateStore` contract passes on tables it created;
//! - the queues have the attributes of `sqs::setup`, and the worker's event source and timeout
//!   fit them;
//! - every function's variables are names `runtime::vars` knows, and each function gets what
//!   its code requires (the scheduler and worker parse them with `Deployment::from_lookup`);
//! - each function has its own role, reading only its secrets;
//! - a copy of the template with names changed is reported, change by change, so the checks
//!   are known to fail on drift (the real template is never edited).
//!
//! Needs `.venv/sam` (the translator) and `.venv/moto` from `make tools`; nothing is skipped
//! without them.

use lnsync_adapters::dynamo::DynamoStateStore;
use lnsync_core::ports::StateStore;
use lnsync_core::service::SyncOptions;
use lnsync_runtime::deploy::{AuthPlan, Deployment};
use lnsync_tests::contract::store::{CASES, run_all};
use lnsync_tests::iac::{
    Deployed, QueueShape, Stack, StackSpec, TEMPLATE, checkov_skip_problems, deploy,
    event_source_drift, queue_drift, role_drift, root, table_drift, table_settings_drift,
    translate, variable_drift,
};
use lnsync_tests::moto::{moto, unique_name};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SECRET_PREFIX: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:lnsync/prod/";

fn secret(name: &str) -> String {
    format!("{SECRET_PREFIX}{name}-AbCdEf")
}

/// Parameter values an administrator would give, for `auth` = `basic` or `bearer` (EWS) or
/// `graph` (Exchange Online only: no EWS secret). The time zone is not the default, to see a
/// parameter travel into the functions' configuration.
fn parameters(auth: &str) -> BTreeMap<String, String> {
    let mut p: BTreeMap<String, String> = [
        ("EnvironmentId", "prod".to_owned()),
        ("LnCompany", "100".to_owned()),
        ("IonApiSecretArn", secret("ionapi")),
        ("LnWebhookSecretArn", secret("webhook")),
        ("TimeZone", "Europe/Amsterdam".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    if auth == "graph" {
        p.insert("GraphTenant".into(), "corp.onmicrosoft.com".into());
        p.insert("GraphClientSecretArn".into(), secret("graph"));
        p.insert("PushGraphLifetimeMinutes".into(), "4230".into());
        return p;
    }
    p.insert("ExchangeAuth".into(), auth.to_owned());
    p.insert("ExchangeSecretArn".into(), secret("exchange"));
    if auth == "basic" {
        p.insert("ExchangeUsername".into(), "svc-lnsync@corp.example".into());
    }
    p
}

fn stack_spec(auth: &str) -> StackSpec {
    StackSpec {
        name: unique_name("lnsync"),
        parameters: parameters(auth),
    }
}

/// Translates `template` and creates `stacks` from it in this process's moto server.
fn translate_and_deploy(template: &Path, dir: &Path, stacks: &[StackSpec]) -> (Value, Deployed) {
    let translated = dir.join("template.json");
    let cloudformation = translate(template, &translated).unwrap_or_else(|e| panic!("{e}"));
    let deployed = deploy(moto().endpoint(), &translated, stacks).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(deployed.stacks.len(), stacks.len());
    for stack in &deployed.stacks {
        assert_eq!(
            stack.status, "CREATE_COMPLETE",
            "stack {}: {:?}",
            stack.name, stack.reason
        );
    }
    (cloudformation, deployed)
}

/// A queue of a stack by its URL's name, as moto's SQS describes it.
async fn queue_shape(url: &str) -> QueueShape {
    let sqs = moto().sqs();
    let name = url.rsplit('/').next().unwrap_or_default().to_owned();
    let url = sqs
        .get_queue_url()
        .queue_name(&name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("queue {name}: {e:?}"))
        .queue_url
        .unwrap_or_default();
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
        .send()
        .await
        .unwrap_or_else(|e| panic!("queue {name}: {e:?}"))
        .attributes
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k.as_str().to_owned(), v))
        .collect();
    QueueShape { name, attributes }
}

fn environments(stack: &Stack) -> BTreeMap<String, BTreeMap<String, String>> {
    stack
        .functions
        .iter()
        .map(|(id, f)| (id.clone(), f.environment.clone()))
        .collect()
}

/// The worker's variables, parsed as its code does.
fn worker_deployment(stack: &Stack) -> Result<Deployment, String> {
    let env = stack
        .functions
        .get("WorkerFunction")
        .map(|f| f.environment.clone())
        .unwrap_or_default();
    Deployment::from_lookup(|k| env.get(k).cloned()).map_err(|e| e.to_string())
}

/// Every difference between a deployed stack (and the translated template) and the code.
async fn drift(stack: &Stack, cloudformation: &Value) -> Vec<String> {
    let mut drift = Vec::new();
    let table = moto()
        .dynamodb()
        .describe_table()
        .table_name(
            stack
                .physical("StateTable")
                .unwrap_or_else(|e| panic!("{e}")),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("describe table: {e:?}"))
        .table
        .unwrap_or_else(|| panic!("no table description"));
    drift.extend(table_drift(&table));
    drift.extend(table_settings_drift(cloudformation, "StateTable"));

    let queue = queue_shape(stack.physical("JobQueue").unwrap_or_else(|e| panic!("{e}"))).await;
    let dead_letter = queue_shape(
        stack
            .physical("JobDeadLetterQueue")
            .unwrap_or_else(|e| panic!("{e}")),
    )
    .await;
    let worker = stack
        .functions
        .get("WorkerFunction")
        .unwrap_or_else(|| panic!("no worker in {}", stack.name));
    // The worker's own lease setting when it parses, else the default it would run with.
    let lease = worker_deployment(stack)
        .map(|d| d.sync.lease_ttl)
        .unwrap_or(SyncOptions::default().lease_ttl);
    let timeout = Duration::from_secs(worker.timeout.unwrap_or_default());
    drift.extend(queue_drift(&queue, &dead_letter, timeout, lease));
    let queue_arn = queue
        .attributes
        .get("QueueArn")
        .cloned()
        .unwrap_or_default();
    drift.extend(event_source_drift(worker, &queue_arn));

    drift.extend(variable_drift(&environments(stack)));
    drift.extend(role_drift(cloudformation));
    drift
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_template_deploys_what_the_code_expects_and_the_store_contract_passes_on_its_table() {
    let dir = tempfile::tempdir().expect("tempdir");
    // One stack per auth choice for the checks, then a fresh stack per contract case (each
    // case wants an empty table; creating a stack in moto takes about 0.3 s).
    let mut specs = vec![
        stack_spec("basic"),
        stack_spec("bearer"),
        stack_spec("graph"),
    ];
    specs.extend(CASES.iter().map(|_| stack_spec("basic")));
    let (cloudformation, deployed) =
        translate_and_deploy(&root().join(TEMPLATE), dir.path(), &specs);
    let basic = &deployed.stacks[0];
    let bearer = &deployed.stacks[1];
    let graph = &deployed.stacks[2];

    for stack in [basic, bearer, graph] {
        let drift = drift(stack, &cloudformation).await;
        assert!(
            drift.is_empty(),
            "stack {} drifted from the code:\n  {}",
            stack.name,
            drift.join("\n  ")
        );
    }

    // The variables point at this stack's own resources.
    let table = basic.physical("StateTable").expect("table");
    let queue = basic.physical("JobQueue").expect("queue");
    let dead_letter = basic.physical("JobDeadLetterQueue").expect("dlq");
    for (id, f) in &basic.functions {
        assert_eq!(
            f.environment.get("LNSYNC_TABLE").map(String::as_str),
            Some(table),
            "{id}"
        );
        assert_eq!(
            f.environment.get("LNSYNC_QUEUE_URL").map(String::as_str),
            Some(queue),
            "{id}"
        );
    }
    let outputs: Vec<(&str, &str)> = basic
        .outputs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    for (key, value) in [
        ("TableName", table),
        ("QueueUrl", queue),
        ("DeadLetterQueueUrl", dead_letter),
        ("PushUrl", deployed.placeholder_url.as_str()),
    ] {
        assert!(outputs.contains(&(key, value)), "output {key}: {outputs:?}");
    }
    assert_eq!(
        basic.outputs.get("LnWebhookUrl"),
        Some(&format!("{}ln/prod", deployed.placeholder_url))
    );

    // The worker's configuration is the one the parameters describe.
    let d = worker_deployment(basic).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(d.table, table);
    assert_eq!(
        d.push.public_url.as_ref().map(|u| u.as_str()),
        Some(deployed.placeholder_url.as_str()),
        "LNSYNC_PUSH_URL is the push function's URL"
    );
    assert_eq!(d.sync.calendar.time_zone, "Europe/Amsterdam");
    let [env] = d.environments.as_slice() else {
        panic!("one environment per stack: {:?}", d.environments);
    };
    assert_eq!(env.id.as_str(), "prod");
    assert_eq!(env.company, "100");
    assert_eq!(env.ionapi_arn, secret("ionapi"));
    assert_eq!(
        env.auth,
        Some(AuthPlan::Basic {
            username: "svc-lnsync@corp.example".into(),
            password_arn: secret("exchange"),
        })
    );
    let d = worker_deployment(bearer).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        d.environments[0].auth,
        Some(AuthPlan::Bearer {
            token_arn: secret("exchange")
        })
    );

    let d = worker_deployment(graph).unwrap_or_else(|e| panic!("{e}"));
    let env = &d.environments[0];
    assert_eq!(env.auth, None, "no EWS secret given: EWS is not configured");
    let plan = env.graph.as_ref().expect("Graph is configured");
    assert_eq!(plan.client_secret_arn, secret("graph"));
    assert_eq!(plan.tenant.as_deref(), Some("corp.onmicrosoft.com"));
    assert_eq!(plan.client_id, None, "empty: LN's clientId setting");
    assert_eq!(d.push.graph_lifetime_minutes, 4230);
    assert!(
        worker_deployment(basic)
            .unwrap_or_else(|e| panic!("{e}"))
            .environments[0]
            .graph
            .is_none(),
        "no Graph secret given: Graph is not configured"
    );

    // The whole store contract on tables CloudFormation created.
    let tables = Arc::new(Mutex::new(
        deployed.stacks[3..]
            .iter()
            .map(|s| s.physical("StateTable").expect("table").to_owned())
            .collect::<Vec<_>>(),
    ));
    run_all(|| {
        let tables = tables.clone();
        async move {
            let table = tables
                .lock()
                .expect("tables")
                .pop()
                .expect("one stack per contract case");
            Arc::new(DynamoStateStore::new(moto().dynamodb(), table)) as Arc<dyn StateStore>
        }
    })
    .await;
}

/// Replaces `from` by `to` in `text`, exactly `times` times: a mutation that no longer matches
/// the template must fail here, not make the drift test vacuous.
fn mutate(text: &str, from: &str, to: &str, times: usize) -> String {
    assert_eq!(
        text.matches(from).count(),
        times,
        "the mutation {from:?} no longer matches {TEMPLATE}; update this test"
    );
    text.replace(from, to)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_changed_in_a_copy_of_the_template_are_reported_as_drift() {
    let original = std::fs::read_to_string(root().join(TEMPLATE)).expect("template");
    // Each change is one a careless edit of the template could make, with the line the drift
    // report must then contain.
    let changes: [(&str, &str, usize, &str); 11] = [
        (
            "{ AttributeName: sk, KeyType: RANGE }",
            "{ AttributeName: sort, KeyType: RANGE }",
            1,
            "table key schema is [(\"pk\", \"HASH\"), (\"sort\", \"RANGE\")]",
        ),
        (
            "{ AttributeName: sk, AttributeType: S }",
            "{ AttributeName: sort, AttributeType: S }",
            1,
            "table attribute sk is not defined",
        ),
        (
            "IndexName: by-series",
            "IndexName: by-series-v2",
            1,
            "index by-series (key series_key) is missing",
        ),
        (
            "AttributeName: ttl",
            "AttributeName: expires_at",
            1,
            "table TTL is",
        ),
        (
            "LNSYNC_QUEUE_URL: !Ref JobQueue",
            "LNSYNC_JOB_QUEUE_URL: !Ref JobQueue",
            1,
            "SchedulerFunction: variable LNSYNC_JOB_QUEUE_URL is not known to the code",
        ),
        (
            "\"COMPANY\": \"${LnCompany}\"",
            "\"LN_COMPANY\": \"${LnCompany}\"",
            2,
            "WorkerFunction: LNSYNC_ENVIRONMENT_SETTINGS[prod].LN_COMPANY: unknown key",
        ),
        (
            "\"GRAPH_CLIENT_SECRET_ARN\": \"${GraphClientSecretArn}\"",
            "\"GRAPH_SECRET_ARN\": \"${GraphClientSecretArn}\"",
            2,
            "WorkerFunction: LNSYNC_ENVIRONMENT_SETTINGS[prod].GRAPH_SECRET_ARN: unknown key",
        ),
        (
            "MessageRetentionPeriod: 1209600",
            "MessageRetentionPeriod: 345600",
            1,
            "keeps messages Some(\"345600\") s, sqs::setup says 1209600",
        ),
        (
            "VisibilityTimeout: 1800",
            "VisibilityTimeout: 600",
            1,
            "visibility timeout Some(600s) is shorter than the worker's timeout",
        ),
        (
            "FunctionResponseTypes: [ReportBatchItemFailures]",
            "FunctionResponseTypes: []",
            1,
            "lacks FunctionResponseTypes ReportBatchItemFailures",
        ),
        (
            "Resource: !Ref LnWebhookSecretArn",
            "Resource: [!Ref LnWebhookSecretArn, !Ref IonApiSecretArn]",
            1,
            "PushFunction: role PushRole reads secrets",
        ),
    ];
    let mut text = original.clone();
    for (from, to, times, _) in &changes {
        text = mutate(&text, from, to, *times);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    // In infra/'s place, so that relative paths in it mean the same.
    let copy = dir.path().join("template.yaml");
    std::fs::write(&copy, text).expect("write the changed copy");
    let (cloudformation, deployed) =
        translate_and_deploy(&copy, dir.path(), &[stack_spec("basic")]);
    let drift = drift(&deployed.stacks[0], &cloudformation).await;
    let report = drift.join("\n  ");
    for (_, _, _, expected) in &changes {
        assert!(
            drift.iter().any(|d| d.contains(expected)),
            "{expected:?} not reported; the drift was:\n  {report}"
        );
    }
    // The renamed variable also leaves the functions without the one the code needs.
    for function in ["SchedulerFunction", "WorkerFunction", "PushFunction"] {
        let missing = format!("{function}: LNSYNC_QUEUE_URL: missing");
        assert!(
            drift.iter().any(|d| d.starts_with(&missing)),
            "{missing:?} not reported:\n  {report}"
        );
    }
}

#[test]
fn every_skipped_checkov_check_is_listed_with_its_reason() {
    let text = std::fs::read_to_string(root().join("infra/checkov-skips.txt")).expect("skip list");
    let problems = checkov_skip_problems(&text);
    assert!(problems.is_empty(), "{problems:#?}");
    assert!(
        text.lines().any(|l| l.starts_with("CKV_AWS_117:")),
        "the list is read as written"
    );

    let bad = "CKV_AWS_1: because\nCKV_AWS_2\nCKV_AWS_117: a reason long enough to explain itself, really.\nCKV_AWS_117: the same check again, with a reason long enough.\n";
    let problems = checkov_skip_problems(bad);
    assert_eq!(problems.len(), 3, "{problems:#?}");
}
