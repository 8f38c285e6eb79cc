//! The deployment template (`infra/template.yaml`) against the code it deploys.
//!
//! CloudFormation and the code share names: the table's keys, indexes and TTL attribute
//! (`lnsync_adapters::dynamo::schema`), the queues' attributes (`lnsync_adapters::sqs::setup`)
//! and the environment variables (`lnsync_runtime::vars`). The code is the source of truth;
//! the checks here compare a deployed template with it and return every difference as one line
//! (an empty list means no drift), so a test can assert both that the real template has none
//! and that a template with a renamed key does.
//!
//! How a template gets deployed without AWS ([`translate`], [`deploy`]):
//! 1. `infra/ci/sam_translate.py` runs aws-sam-translator (from `.venv/sam`, `make tools`) to
//!    turn the SAM template into plain CloudFormation, offline;
//! 2. `infra/ci/moto_deploy.py` (boto3 from `.venv/moto`) creates stacks from it in a moto
//!    server's CloudFormation and reports their resources, outputs and functions.
//!
//! moto's CloudFormation leaves out a few properties, so those are checked on the translated
//! template instead of the deployed resource: the table's TTL, point-in-time recovery and
//! encryption ([`table_settings_drift`]), and the roles ([`role_drift`]).

use aws_sdk_dynamodb::types::TableDescription;
use lnsync_adapters::dynamo::{INDEXES, PARTITION_KEY, SORT_KEY, TTL_ATTRIBUTE};
use lnsync_adapters::sqs::{
    DEAD_LETTER_RETENTION, DEAD_LETTER_SUFFIX, FIFO_SUFFIX, QUEUE_RETENTION,
};
use lnsync_runtime::deploy::{Deployment, EnvironmentSettings, environment_ids};
use lnsync_runtime::push::function::PushFunctionConfig;
use lnsync_runtime::vars;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The template, relative to the repository root.
pub const TEMPLATE: &str = "infra/template.yaml";
/// The S3 location the translated functions' code points at; [`deploy`] uploads a stub there.
const CODE_URI: &str = "s3://lnsync-iac-artifacts/fn.zip";
/// docs/serverless.md: every receive counts toward maxReceiveCount, throttled and busy retries
/// included, so fewer than this dead-letters healthy-but-unlucky jobs.
pub const MIN_MAX_RECEIVE_COUNT: u64 = 5;
/// The most messages a Lambda batch from a FIFO queue may hold.
pub const MAX_FIFO_BATCH: u64 = 10;

/// What a function's code reads from its environment, so the template must give it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Everything [`Deployment::from_lookup`] requires (the scheduler and the worker build a
    /// `Container` from it).
    Deployment,
    /// What `push::function::PushFunctionConfig::from_lookup` requires (the push function),
    /// plus each environment's LN webhook secret, which the template always gives.
    Push,
}

/// One function of the template and what it must be given.
#[derive(Debug, Clone, Copy)]
pub struct FunctionSpec {
    /// Logical id in the template.
    pub logical_id: &'static str,
    /// The workspace binary `sam build` builds for it.
    pub binary: &'static str,
    pub needs: Needs,
    /// The template parameters naming the only secrets its role may read.
    pub secrets: &'static [&'static str],
}

/// Every function the template must define, and nothing else.
pub const FUNCTIONS: [FunctionSpec; 3] = [
    FunctionSpec {
        logical_id: "SchedulerFunction",
        binary: "scheduler",
        needs: Needs::Deployment,
        secrets: &[
            "IonApiSecretArn",
            "ExchangeSecretArn",
            "GraphClientSecretArn",
        ],
    },
    FunctionSpec {
        logical_id: "WorkerFunction",
        binary: "worker",
        needs: Needs::Deployment,
        secrets: &[
            "IonApiSecretArn",
            "ExchangeSecretArn",
            "GraphClientSecretArn",
        ],
    },
    FunctionSpec {
        logical_id: "PushFunction",
        binary: "push",
        needs: Needs::Push,
        secrets: &["LnWebhookSecretArn"],
    },
];

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn venv_python(venv: &str) -> Result<PathBuf, String> {
    let python = root().join(".venv").join(venv).join("bin/python");
    if python.is_file() {
        Ok(python)
    } else {
        Err(format!(
            "{} is missing: run `make tools` (it creates .venv/{venv})",
            python.display()
        ))
    }
}

fn run(command: &mut Command, what: &str) -> Result<String, String> {
    // Neither script talks to AWS; a profile of the developer's that boto3 cannot find
    // would still stop it from starting.
    let out = command
        .env_remove("AWS_PROFILE")
        .output()
        .map_err(|e| format!("{what}: could not start: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{what} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    String::from_utf8(out.stdout).map_err(|e| format!("{what}: output is not UTF-8: {e}"))
}

/// Translates a SAM template into CloudFormation (written to `out`, also returned parsed).
pub fn translate(template: &Path, out: &Path) -> Result<Value, String> {
    let python = venv_python("sam")?;
    run(
        Command::new(python)
            .arg(root().join("infra/ci/sam_translate.py"))
            .arg(template)
            .arg(out)
            .arg(CODE_URI)
            .env("AWS_DEFAULT_REGION", "us-east-1"),
        "aws-sam-translator",
    )?;
    let text = std::fs::read_to_string(out).map_err(|e| format!("{}: {e}", out.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", out.display()))
}

/// A stack to create: its name and parameter values.
#[derive(Debug, Clone)]
pub struct StackSpec {
    pub name: String,
    pub parameters: BTreeMap<String, String>,
}

/// A resource of a created stack.
#[derive(Debug, Clone)]
pub struct Resource {
    pub kind: String,
    pub physical: Option<String>,
}

/// An event source mapping as moto's Lambda keeps it.
#[derive(Debug, Clone)]
pub struct EventSource {
    pub arn: Option<String>,
    pub batch_size: Option<u64>,
    pub function_response_types: Vec<String>,
    pub maximum_concurrency: Option<u64>,
}

/// A function as moto's Lambda keeps it.
#[derive(Debug, Clone)]
pub struct Function {
    pub name: String,
    pub timeout: Option<u64>,
    pub environment: BTreeMap<String, String>,
    pub event_sources: Vec<EventSource>,
}

/// A stack created in moto.
#[derive(Debug, Clone)]
pub struct Stack {
    pub name: String,
    pub status: String,
    pub reason: Option<String>,
    pub outputs: BTreeMap<String, String>,
    pub resources: BTreeMap<String, Resource>,
    pub functions: BTreeMap<String, Function>,
}

impl Stack {
    /// The physical id of resource `logical_id`.
    pub fn physical(&self, logical_id: &str) -> Result<&str, String> {
        self.resources
            .get(logical_id)
            .and_then(|r| r.physical.as_deref())
            .ok_or_else(|| format!("stack {}: no resource {logical_id}", self.name))
    }
}

/// What [`deploy`] reports.
#[derive(Debug, Clone)]
pub struct Deployed {
    /// The function URL moto cannot create, put where the template reads it.
    pub placeholder_url: String,
    pub stacks: Vec<Stack>,
}

fn strings(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

fn text(v: &Value) -> Option<String> {
    v.as_str().map(str::to_owned)
}

fn parse_stack(s: &Value) -> Stack {
    let resources = s["resources"]
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, r)| {
                    let resource = Resource {
                        kind: r["type"].as_str().unwrap_or_default().to_owned(),
                        physical: text(&r["physical"]),
                    };
                    (k.clone(), resource)
                })
                .collect()
        })
        .unwrap_or_default();
    let functions = s["functions"]
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, f)| {
                    let sources = f["event_sources"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .map(|m| EventSource {
                                    arn: text(&m["arn"]),
                                    batch_size: m["batch_size"].as_u64(),
                                    function_response_types: m["function_response_types"]
                                        .as_array()
                                        .map(|t| t.iter().filter_map(text).collect())
                                        .unwrap_or_default(),
                                    maximum_concurrency: m["maximum_concurrency"].as_u64(),
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    let function = Function {
                        name: f["name"].as_str().unwrap_or_default().to_owned(),
                        timeout: f["timeout"].as_u64(),
                        environment: strings(&f["environment"]),
                        event_sources: sources,
                    };
                    (k.clone(), function)
                })
                .collect()
        })
        .unwrap_or_default();
    Stack {
        name: s["name"].as_str().unwrap_or_default().to_owned(),
        status: s["status"].as_str().unwrap_or_default().to_owned(),
        reason: text(&s["reason"]),
        outputs: strings(&s["outputs"]),
        resources,
        functions,
    }
}

/// Creates `stacks` from the translated template at `translated` in the moto server at
/// `endpoint` (one Python process for all of them: about 0.3 s per stack).
pub fn deploy(endpoint: &str, translated: &Path, stacks: &[StackSpec]) -> Result<Deployed, String> {
    let python = venv_python("moto")?;
    let specs: Vec<Value> = stacks
        .iter()
        .map(|s| serde_json::json!({"name": s.name, "parameters": s.parameters}))
        .collect();
    let specs_file = translated.with_extension("stacks.json");
    std::fs::write(&specs_file, Value::Array(specs).to_string())
        .map_err(|e| format!("{}: {e}", specs_file.display()))?;
    let out = run(
        Command::new(python)
            .arg(root().join("infra/ci/moto_deploy.py"))
            .arg(endpoint)
            .arg(translated)
            .arg(&specs_file),
        "moto CloudFormation deploy",
    )?;
    let v: Value =
        serde_json::from_str(&out).map_err(|e| format!("moto_deploy.py output: {e}\n{out}"))?;
    Ok(Deployed {
        placeholder_url: v["placeholder_url"].as_str().unwrap_or_default().to_owned(),
        stacks: v["stacks"]
            .as_array()
            .map(|a| a.iter().map(parse_stack).collect())
            .unwrap_or_default(),
    })
}

// ---------------------------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------------------------

/// The deployed table against `dynamo::schema`: key schema, key attribute types, the global
/// secondary indexes (name, key, projection) and on-demand billing.
pub fn table_drift(table: &TableDescription) -> Vec<String> {
    let mut drift = Vec::new();
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
    let expected_keys = vec![
        (PARTITION_KEY.to_owned(), "HASH".to_owned()),
        (SORT_KEY.to_owned(), "RANGE".to_owned()),
    ];
    if keys != expected_keys {
        drift.push(format!(
            "table key schema is {keys:?}, the code expects {expected_keys:?} \
             (dynamo::schema PARTITION_KEY, SORT_KEY)"
        ));
    }
    let types: BTreeMap<&str, &str> = table
        .attribute_definitions()
        .iter()
        .map(|d| (d.attribute_name(), d.attribute_type().as_str()))
        .collect();
    let key_attributes = [PARTITION_KEY, SORT_KEY]
        .into_iter()
        .chain(INDEXES.iter().map(|i| i.partition_key));
    for name in key_attributes {
        match types.get(name) {
            Some(&"S") => {}
            Some(other) => drift.push(format!(
                "table attribute {name} has type {other}, the code writes strings (S)"
            )),
            None => drift.push(format!("table attribute {name} is not defined")),
        }
    }
    let indexes: BTreeMap<&str, _> = table
        .global_secondary_indexes()
        .iter()
        .map(|g| (g.index_name().unwrap_or_default(), g))
        .collect();
    for spec in INDEXES {
        let Some(index) = indexes.get(spec.name) else {
            drift.push(format!(
                "index {} (key {}) is missing; the table has {:?}",
                spec.name,
                spec.partition_key,
                indexes.keys().collect::<Vec<_>>()
            ));
            continue;
        };
        let keys: Vec<(&str, &str)> = index
            .key_schema()
            .iter()
            .map(|k| (k.attribute_name(), k.key_type().as_str()))
            .collect();
        if keys != [(spec.partition_key, "HASH")] {
            drift.push(format!(
                "index {} has keys {keys:?}, the code expects [({:?}, \"HASH\")]",
                spec.name, spec.partition_key
            ));
        }
        let projection = index
            .projection()
            .and_then(|p| p.projection_type())
            .map(|p| p.as_str().to_owned());
        if projection.as_deref() != Some("KEYS_ONLY") {
            drift.push(format!(
                "index {} projects {projection:?}, the code expects KEYS_ONLY",
                spec.name
            ));
        }
    }
    for name in indexes.keys() {
        if !INDEXES.iter().any(|i| i.name == *name) {
            drift.push(format!("index {name} is not one the code uses"));
        }
    }
    let billing = table
        .billing_mode_summary()
        .and_then(|b| b.billing_mode())
        .map(|b| b.as_str().to_owned());
    if billing.as_deref() != Some("PAY_PER_REQUEST") {
        drift.push(format!("table billing is {billing:?}, not on demand"));
    }
    drift
}

/// The table resource's properties that moto's CloudFormation does not apply (checked in the
/// translated template): TTL on `dynamo::schema::TTL_ATTRIBUTE`, point-in-time recovery,
/// encryption.
pub fn table_settings_drift(cloudformation: &Value, logical_id: &str) -> Vec<String> {
    let mut drift = Vec::new();
    let props = &cloudformation["Resources"][logical_id]["Properties"];
    let ttl = &props["TimeToLiveSpecification"];
    if ttl["AttributeName"].as_str() != Some(TTL_ATTRIBUTE) || ttl["Enabled"] != Value::Bool(true) {
        drift.push(format!(
            "table TTL is {ttl}, the code expects attribute {TTL_ATTRIBUTE:?} enabled \
             (dynamo::schema TTL_ATTRIBUTE)"
        ));
    }
    if props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] != Value::Bool(true)
    {
        drift.push("table point-in-time recovery is not enabled".to_owned());
    }
    if props["SSESpecification"]["SSEEnabled"] != Value::Bool(true) {
        drift.push("table encryption with KMS (SSESpecification) is not enabled".to_owned());
    }
    drift
}

// ---------------------------------------------------------------------------------------------
// The queues
// ---------------------------------------------------------------------------------------------

/// A queue's name and attributes (`GetQueueAttributes` with `All`).
#[derive(Debug, Clone)]
pub struct QueueShape {
    pub name: String,
    pub attributes: BTreeMap<String, String>,
}

impl QueueShape {
    fn get(&self, attribute: &str) -> Option<&str> {
        self.attributes.get(attribute).map(String::as_str)
    }
}

/// The job queue and its dead-letter queue against `sqs::setup` (`create_queues`): names, FIFO,
/// de-duplication by id, retention, the redrive policy; plus what the functions need of them:
/// encryption, `maxReceiveCount` of at least [`MIN_MAX_RECEIVE_COUNT`], and a visibility
/// timeout no shorter than the worker's timeout (AWS refuses the event source otherwise) nor
/// than the per-user lease (a redelivered job would find its killed run's lease still held).
pub fn queue_drift(
    queue: &QueueShape,
    dead_letter: &QueueShape,
    worker_timeout: Duration,
    lease: Duration,
) -> Vec<String> {
    let mut drift = Vec::new();
    match queue.name.strip_suffix(FIFO_SUFFIX) {
        None => drift.push(format!(
            "queue {} does not end with {FIFO_SUFFIX}",
            queue.name
        )),
        Some(base) => {
            let expected = format!("{base}{DEAD_LETTER_SUFFIX}{FIFO_SUFFIX}");
            if dead_letter.name != expected {
                drift.push(format!(
                    "dead-letter queue is {}, create_queues names it {expected}",
                    dead_letter.name
                ));
            }
        }
    }
    for (q, retention) in [
        (queue, QUEUE_RETENTION),
        (dead_letter, DEAD_LETTER_RETENTION),
    ] {
        if q.get("FifoQueue") != Some("true") {
            drift.push(format!("queue {} is not FIFO", q.name));
        }
        if q.get("ContentBasedDeduplication") != Some("false") {
            drift.push(format!(
                "queue {} has ContentBasedDeduplication {:?}: jobs are de-duplicated by id",
                q.name,
                q.get("ContentBasedDeduplication")
            ));
        }
        let expected = retention.as_secs().to_string();
        if q.get("MessageRetentionPeriod") != Some(expected.as_str()) {
            drift.push(format!(
                "queue {} keeps messages {:?} s, sqs::setup says {expected}",
                q.name,
                q.get("MessageRetentionPeriod")
            ));
        }
        let encrypted =
            q.get("KmsMasterKeyId").is_some() || q.get("SqsManagedSseEnabled") == Some("true");
        if !encrypted {
            drift.push(format!("queue {} is not encrypted", q.name));
        }
    }
    let redrive: Value = queue
        .get("RedrivePolicy")
        .and_then(|p| serde_json::from_str(p).ok())
        .unwrap_or(Value::Null);
    if redrive["deadLetterTargetArn"].as_str() != dead_letter.get("QueueArn") {
        drift.push(format!(
            "queue {} redrives to {}, not to its dead-letter queue {:?}",
            queue.name,
            redrive["deadLetterTargetArn"],
            dead_letter.get("QueueArn")
        ));
    }
    // moto returns the count as a number, AWS as a string.
    let receives = redrive["maxReceiveCount"]
        .as_u64()
        .or_else(|| redrive["maxReceiveCount"].as_str()?.parse().ok());
    if receives.is_none_or(|r| r < MIN_MAX_RECEIVE_COUNT) {
        drift.push(format!(
            "queue {} maxReceiveCount is {receives:?}, at least {MIN_MAX_RECEIVE_COUNT} needed",
            queue.name
        ));
    }
    let visibility = queue
        .get("VisibilityTimeout")
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_secs);
    for (what, needed) in [
        ("the worker's timeout", worker_timeout),
        ("the per-user lease", lease),
    ] {
        if visibility.is_none_or(|v| v < needed) {
            drift.push(format!(
                "queue {} visibility timeout {visibility:?} is shorter than {what} ({needed:?})",
                queue.name
            ));
        }
    }
    drift
}

/// The worker's event source: the job queue, partial batch responses, a FIFO-sized batch and a
/// bounded concurrency.
pub fn event_source_drift(worker: &Function, queue_arn: &str) -> Vec<String> {
    let mut drift = Vec::new();
    let [source] = worker.event_sources.as_slice() else {
        return vec![format!(
            "the worker has {} event sources, expected one (the job queue)",
            worker.event_sources.len()
        )];
    };
    if source.arn.as_deref() != Some(queue_arn) {
        drift.push(format!(
            "the worker reads {:?}, not the job queue {queue_arn}",
            source.arn
        ));
    }
    if !source
        .function_response_types
        .iter()
        .any(|t| t == "ReportBatchItemFailures")
    {
        drift.push(
            "the worker's event source lacks FunctionResponseTypes ReportBatchItemFailures"
                .to_owned(),
        );
    }
    if source.batch_size.is_none_or(|b| b > MAX_FIFO_BATCH) {
        drift.push(format!(
            "the worker's batch size {:?} exceeds the FIFO maximum {MAX_FIFO_BATCH}",
            source.batch_size
        ));
    }
    if source.maximum_concurrency.is_none() {
        drift.push("the worker's event source has no maximum concurrency".to_owned());
    }
    drift
}

// ---------------------------------------------------------------------------------------------
// Environment variables
// ---------------------------------------------------------------------------------------------

/// Every function's variables against `runtime::vars`: each name is known (a global of
/// `vars::ALL`, or a per-environment name of a served environment), the
/// `LNSYNC_ENVIRONMENT_SETTINGS` JSON uses only `vars::env::ALL` keys, and each function gets
/// what its code requires ([`Needs`]). `functions` maps logical ids to variables; every id of
/// [`FUNCTIONS`] must be there and nothing else.
pub fn variable_drift(functions: &BTreeMap<String, BTreeMap<String, String>>) -> Vec<String> {
    let mut drift = Vec::new();
    for id in functions.keys() {
        if !FUNCTIONS.iter().any(|f| f.logical_id == id) {
            drift.push(format!(
                "function {id} is not known to the drift check (add it to iac::FUNCTIONS)"
            ));
        }
    }
    for spec in FUNCTIONS {
        let Some(variables) = functions.get(spec.logical_id) else {
            drift.push(format!("function {} is missing", spec.logical_id));
            continue;
        };
        let fid = spec.logical_id;
        let get = |name: &str| {
            variables
                .get(name)
                .filter(|v| !v.trim().is_empty())
                .cloned()
        };
        let mut problems = Vec::new();
        let ids = environment_ids(&mut problems, &get(vars::ENVIRONMENTS).unwrap_or_default());
        for name in variables.keys() {
            let per_environment = ids
                .iter()
                .any(|id| vars::env::ALL.iter().any(|s| vars::env_var(id, s) == *name));
            if !vars::ALL.contains(&name.as_str()) && !per_environment {
                drift.push(format!(
                    "{fid}: variable {name} is not known to the code (runtime::vars)"
                ));
            }
        }
        let settings = EnvironmentSettings::from_lookup(&get, &ids, &mut problems);
        match spec.needs {
            Needs::Deployment => {
                if let Err(e) = Deployment::from_lookup(get) {
                    problems.extend(e.problems);
                }
            }
            Needs::Push => match PushFunctionConfig::from_lookup(get) {
                Err(e) => problems.extend(e.problems),
                // The template gives every environment its webhook secret (without one LN's
                // webhooks are refused): the code must read the very ARN given.
                Ok(config) => {
                    for (id, arn) in &config.environments {
                        let given = settings.get(id.as_str(), vars::env::LN_WEBHOOK_SECRET_ARN);
                        if given.is_none() || arn.as_deref() != given {
                            problems.push(format!(
                                "{} is {given:?}, but the push function's code reads {arn:?} \
                                 (push::function::PushFunctionConfig)",
                                settings.name(id.as_str(), vars::env::LN_WEBHOOK_SECRET_ARN)
                            ));
                        }
                    }
                }
            },
        }
        // from_lookup repeats what EnvironmentSettings already found: report each once.
        let mut seen = BTreeSet::new();
        for p in problems {
            if seen.insert(p.clone()) {
                drift.push(format!("{fid}: {p}"));
            }
        }
    }
    drift
}

// ---------------------------------------------------------------------------------------------
// Functions and roles (translated template)
// ---------------------------------------------------------------------------------------------

fn statements(role: &Value) -> Vec<&Value> {
    role["Properties"]["Policies"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| {
            p["PolicyDocument"]["Statement"]
                .as_array()
                .into_iter()
                .flatten()
        })
        .collect()
}

fn as_list(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(a) => a.iter().collect(),
        Value::Null => Vec::new(),
        other => vec![other],
    }
}

/// The functions in the translated template: each of [`FUNCTIONS`] is built by cargo-lambda
/// from its binary, and has a role of its own, with inline policies only, no wildcard action
/// or resource, and `secretsmanager:GetSecretValue` on exactly its secrets.
pub fn role_drift(cloudformation: &Value) -> Vec<String> {
    let mut drift = Vec::new();
    let resources = &cloudformation["Resources"];
    let mut roles_seen = BTreeSet::new();
    for spec in FUNCTIONS {
        let fid = spec.logical_id;
        let function = &resources[fid];
        if function["Type"] != "AWS::Lambda::Function" {
            drift.push(format!("{fid} is not a function of the template"));
            continue;
        }
        let metadata = &function["Metadata"];
        if metadata["BuildMethod"] != "rust-cargolambda"
            || metadata["BuildProperties"]["Binary"] != spec.binary
        {
            drift.push(format!(
                "{fid}: not built by cargo-lambda from binary {} ({metadata})",
                spec.binary
            ));
        }
        let Some(role_id) = function["Properties"]["Role"]["Fn::GetAtt"][0].as_str() else {
            drift.push(format!(
                "{fid}: its Role is not one of the template's roles"
            ));
            continue;
        };
        if !roles_seen.insert(role_id.to_owned()) {
            drift.push(format!(
                "{fid}: role {role_id} is shared with another function"
            ));
        }
        let role = &resources[role_id];
        if !role["Properties"]["ManagedPolicyArns"].is_null() {
            drift.push(format!("{fid}: role {role_id} has managed policies"));
        }
        let mut secrets = BTreeSet::new();
        for statement in statements(role) {
            let actions = as_list(&statement["Action"]);
            let resources = as_list(&statement["Resource"]);
            for action in &actions {
                if action.as_str().is_some_and(|a| a.contains('*')) {
                    drift.push(format!("{fid}: role {role_id} allows {action}"));
                }
            }
            for resource in &resources {
                if resource.as_str() == Some("*") {
                    drift.push(format!("{fid}: role {role_id} allows Resource \"*\""));
                }
            }
            if actions
                .iter()
                .any(|a| a.as_str() == Some("secretsmanager:GetSecretValue"))
            {
                for resource in resources {
                    // A secret the stack may go without is `!If [HasX, !Ref X, !Ref AWS::NoValue]`.
                    let choices: Vec<&Value> = match resource["Fn::If"].as_array() {
                        Some(branches) if branches.len() == 3 => vec![&branches[1], &branches[2]],
                        _ => vec![resource],
                    };
                    for choice in choices {
                        match choice["Ref"].as_str() {
                            Some("AWS::NoValue") => {}
                            Some(parameter) => {
                                secrets.insert(parameter.to_owned());
                            }
                            None => drift.push(format!(
                                "{fid}: role {role_id} reads secret {choice}, not a parameter"
                            )),
                        }
                    }
                }
            }
        }
        let expected: BTreeSet<String> = spec.secrets.iter().map(|s| (*s).to_owned()).collect();
        if secrets != expected {
            drift.push(format!(
                "{fid}: role {role_id} reads secrets {secrets:?}, it needs exactly {expected:?}"
            ));
        }
    }
    drift
}

/// The checkov skip list's problems: every line `CHECK_ID: reason`, with a real reason, and no
/// check twice.
pub fn checkov_skip_problems(text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((id, reason)) = line.split_once(':') else {
            problems.push(format!("{line:?}: not `CHECK_ID: reason`"));
            continue;
        };
        if !id.starts_with("CKV") || id.contains(char::is_whitespace) {
            problems.push(format!("{id:?}: not a checkov check id"));
        }
        if reason.trim().len() < 40 {
            problems.push(format!(
                "{id}: the reason is missing or too short to explain"
            ));
        }
        if !seen.insert(id.to_owned()) {
            problems.push(format!("{id}: listed twice"));
        }
    }
    problems
}
