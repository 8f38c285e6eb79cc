//! The seed format: the JSON accepted by `POST /_sim/seed` and by `ln-sim --seed FILE`.
//!
//! Every entity is written with the same camelCase names as the OData service. `lastModified` may
//! be given to seed history; otherwise the server stamps the current (simulated) time. Server
//! annotations such as `@odata.etag` are ignored, so the output of `GET /_sim/state` can be fed
//! back in as a seed.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::{Activity, Attendee, Contact, Employee, Settings, SyncUser};

/// Remove OData annotations (`@odata.etag`, …) at any depth, so rendered entities (e.g. from
/// `GET /_sim/state`) can be loaded as seed data.
pub fn strip_annotations(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            map.retain(|k, _| !k.starts_with('@'));
            map.values_mut().for_each(strip_annotations);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip_annotations),
        _ => {}
    }
}

/// Data for any number of LN companies.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Seed {
    #[serde(default)]
    pub companies: Vec<CompanySeed>,
}

/// One LN company (= one lnsync environment). Seeding a company replaces its data wholesale.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CompanySeed {
    pub company: String,
    #[serde(default)]
    pub settings: Settings,
    #[serde(default)]
    pub sync_users: Vec<SyncUser>,
    #[serde(default)]
    pub employees: Vec<Employee>,
    #[serde(default)]
    pub contacts: Vec<SeedContact>,
    #[serde(default)]
    pub activities: Vec<SeedActivity>,
}

impl CompanySeed {
    /// An empty company with default settings.
    pub fn new(company: impl Into<String>) -> Self {
        Self {
            company: company.into(),
            ..Self::default()
        }
    }
}

/// A contact plus an optional historic `lastModified`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeedContact {
    #[serde(flatten)]
    pub contact: Contact,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<DateTime<Utc>>,
}

impl From<Contact> for SeedContact {
    fn from(contact: Contact) -> Self {
        Self {
            contact,
            last_modified: None,
        }
    }
}

/// An activity with its attendees and an optional historic `lastModified`. An empty `activity`
/// key gets a server-assigned one; attendee lines of 0 are numbered from 1.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeedActivity {
    #[serde(flatten)]
    pub activity: Activity,
    #[serde(default)]
    pub attendees: Vec<Attendee>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<DateTime<Utc>>,
}

impl From<Activity> for SeedActivity {
    fn from(activity: Activity) -> Self {
        Self {
            activity,
            attendees: Vec::new(),
            last_modified: None,
        }
    }
}
