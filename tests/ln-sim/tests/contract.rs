//! Keeps the simulator honest against `docs/ln-api.openapi.yaml`: every property the simulator
//! renders for an entity set is declared in the OpenAPI schema, and every declared property is
//! rendered (and known to the query engine's schema).

use std::collections::BTreeSet;

use ln_sim::model::{Activity, ActivityType, Attendance, Attendee, AttendeeType};
use ln_sim::schema::EntitySet;
use ln_sim::seed::SeedActivity;
use ln_sim::store::{IfMatch, Store};
use ln_sim::{SimClock, demo_seed};

const OPENAPI: &str = include_str!("../../../docs/ln-api.openapi.yaml");

const KEYWORDS: &[&str] = &[
    "type",
    "required",
    "properties",
    "allOf",
    "items",
    "description",
    "enum",
    "format",
    "nullable",
    "pattern",
    "example",
    "minimum",
    "$ref",
    "additionalProperties",
];

/// Property names declared in `components.schemas.{name}` (any depth, block style).
fn declared(name: &str) -> BTreeSet<String> {
    let header = format!("    {name}:");
    let mut inside = false;
    let mut names = BTreeSet::new();
    for line in OPENAPI.lines() {
        if line == header {
            inside = true;
            continue;
        }
        if inside {
            let indent = line.len() - line.trim_start().len();
            if !line.trim().is_empty() && indent <= 4 {
                break;
            }
            let trimmed = line.trim_start().trim_start_matches("- ");
            if indent >= 8
                && let Some((key, rest)) = trimmed.split_once(':')
            {
                let key = key.trim_matches('"');
                // `type: { … }` declares a property named `type`; `type: object` is the keyword.
                let is_property_named_keyword = key == "type" && rest.trim_start().starts_with('{');
                if (is_property_named_keyword || !KEYWORDS.contains(&key))
                    && !key.starts_with('{')
                    && !key.contains(' ')
                {
                    names.insert(key.to_string());
                }
            }
        }
    }
    assert!(inside, "schema {name} not found in the OpenAPI document");
    names
}

fn declared_all(names: &[&str]) -> BTreeSet<String> {
    names.iter().flat_map(|n| declared(n)).collect()
}

fn rendered(store: &Store, set: EntitySet) -> BTreeSet<String> {
    let rows = match store.rows("100", set, true) {
        Ok(rows) => rows,
        Err(e) => panic!("{e}"),
    };
    let row = rows
        .first()
        .unwrap_or_else(|| panic!("no {} rows", set.name()));
    row.value
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

#[test]
fn simulator_matches_openapi() -> Result<(), Box<dyn std::error::Error>> {
    let store = Store::new(SimClock::system());
    let mut seed = demo_seed("100", 2, 3);
    seed.companies[0].activities.push(SeedActivity {
        activity: Activity {
            activity_type: ActivityType::Appointment,
            start: Some(chrono::Utc::now()),
            end: Some(chrono::Utc::now()),
            ..Activity::default()
        },
        attendees: vec![Attendee {
            attendance: Attendance::MeetingOrganizer,
            attendee_type: AttendeeType::Employee,
            attendee: Some("E00001".into()),
            ..Attendee::default()
        }],
        last_modified: None,
    });
    store.seed(&seed)?;
    store.delete_contact("100", "CON000003", &IfMatch::Any)?;

    let cases: &[(EntitySet, &[&str])] = &[
        (EntitySet::Settings, &["Settings", "ETagged"]),
        (EntitySet::SyncUsers, &["SyncUser", "ETagged"]),
        (EntitySet::Employees, &["Employee", "ETagged"]),
        (EntitySet::Contacts, &["ContactWrite", "Contact", "ETagged"]),
        (
            EntitySet::Activities,
            &["ActivityWrite", "Activity", "ETagged"],
        ),
        (
            EntitySet::Attendees,
            &["AttendeeWrite", "Attendee", "ETagged"],
        ),
        (EntitySet::DeletedObjects, &["DeletedObject", "ETagged"]),
    ];
    for (set, schemas) in cases {
        let declared = declared_all(schemas);
        let rendered = rendered(&store, *set);
        assert_eq!(rendered, declared, "{} rendered vs OpenAPI", set.name());
        let known: BTreeSet<String> = set
            .fields()
            .iter()
            .map(|f| f.name.to_string())
            .chain(["@odata.etag".to_string()])
            .collect();
        assert_eq!(known, declared, "{} query schema vs OpenAPI", set.name());
    }
    assert_eq!(
        declared("Address"),
        ln_sim::schema::ADDRESS
            .iter()
            .map(|f| f.name.to_string())
            .collect()
    );
    Ok(())
}
