//! The serde models against Microsoft's Graph v1.0 metadata (the CSDL extract in
//! `shared/schemas/graph/graph-v1.0-subset.csdl.xml`, exchange.md §3.9).
//!
//! Two checks: every property name a model (de)serializes, read from serde's own field list,
//! must exist on the CSDL type the model stands for (base types included: event → outlookItem →
//! entity); and a full sample of every top-level model must serialize to JSON whose every value
//! fits the CSDL property type (string, boolean, number, instant, enum member, complex type,
//! collection), recursively. A misspelt property name or a wrong shape fails here instead of
//! being silently ignored by Graph.

use std::collections::{HashMap, HashSet};
use std::error::Error;
use std::path::PathBuf;

use serde::Serialize;
use serde::de::{self, DeserializeOwned, Visitor};
use serde_json::{Value, json};

use super::model::*;
use crate::ews::codec::xml;

type TestResult = Result<(), Box<dyn Error>>;

/// The CSDL extract: `$LNSYNC_GRAPH_CSDL`, else `shared/schemas/graph/…` beside the workspace.
fn csdl_path() -> PathBuf {
    std::env::var_os("LNSYNC_GRAPH_CSDL").map_or_else(
        || {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../../shared/schemas/graph/graph-v1.0-subset.csdl.xml")
        },
        PathBuf::from,
    )
}

#[derive(Debug, Default)]
struct TypeDef {
    base: Option<String>,
    properties: HashMap<String, String>,
}

#[derive(Debug, Default)]
struct Csdl {
    types: HashMap<String, TypeDef>,
    enums: HashMap<String, HashSet<String>>,
}

/// `graph.event` / `microsoft.graph.event` → `event`.
fn local(type_name: &str) -> &str {
    type_name
        .strip_prefix("microsoft.graph.")
        .or_else(|| type_name.strip_prefix("graph."))
        .unwrap_or(type_name)
}

impl Csdl {
    fn load() -> Result<Self, Box<dyn Error>> {
        let path = csdl_path();
        let bytes = std::fs::read(&path)
            .map_err(|e| format!("cannot read the Graph CSDL at {}: {e}", path.display()))?;
        let root = xml::parse(&bytes)?;
        let schema = root.find("Schema").ok_or("no Schema in the CSDL")?;
        let mut csdl = Csdl::default();
        for node in &schema.children {
            let Some(name) = node.attr("Name") else {
                continue;
            };
            match node.name.as_str() {
                "EntityType" | "ComplexType" => {
                    let properties = node
                        .children
                        .iter()
                        .filter(|p| p.name == "Property" || p.name == "NavigationProperty")
                        .filter_map(|p| {
                            Some((p.attr("Name")?.to_owned(), p.attr("Type")?.to_owned()))
                        })
                        .collect();
                    csdl.types.insert(
                        name.to_owned(),
                        TypeDef {
                            base: node.attr("BaseType").map(|b| local(b).to_owned()),
                            properties,
                        },
                    );
                }
                "EnumType" => {
                    let members = node
                        .children_named("Member")
                        .filter_map(|m| m.attr("Name").map(str::to_owned))
                        .collect();
                    csdl.enums.insert(name.to_owned(), members);
                }
                _ => {}
            }
        }
        Ok(csdl)
    }

    /// The type of `property` on `type_name` or one of its base types.
    fn property_type(&self, type_name: &str, property: &str) -> Option<&str> {
        let mut current = Some(type_name);
        while let Some(name) = current {
            let def = self.types.get(name)?;
            if let Some(t) = def.properties.get(property) {
                return Some(t);
            }
            current = def.base.as_deref();
        }
        None
    }

    /// Checks `value` against CSDL type `type_ref`, collecting problems under `path`.
    fn check(&self, type_ref: &str, value: &Value, path: &str, errors: &mut Vec<String>) {
        if let Some(inner) = type_ref
            .strip_prefix("Collection(")
            .and_then(|t| t.strip_suffix(')'))
        {
            match value.as_array() {
                Some(items) => {
                    for (i, item) in items.iter().enumerate() {
                        self.check(inner, item, &format!("{path}[{i}]"), errors);
                    }
                }
                None => errors.push(format!("{path}: {type_ref} expects an array, got {value}")),
            }
            return;
        }
        if value.is_null() {
            errors.push(format!(
                "{path}: the sample leaves it null; fill every field"
            ));
            return;
        }
        let fits = match type_ref {
            "Edm.String" | "Edm.Guid" => value.is_string(),
            "Edm.Boolean" => value.is_boolean(),
            "Edm.Int32" | "Edm.Int64" => value.is_i64(),
            "Edm.Double" => value.is_number(),
            "Edm.DateTimeOffset" => value
                .as_str()
                .is_some_and(|s| chrono::DateTime::parse_from_rfc3339(s).is_ok()),
            "Edm.Date" => value
                .as_str()
                .is_some_and(|s| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok()),
            other => {
                let name = local(other);
                if let Some(members) = self.enums.get(name) {
                    value.as_str().is_some_and(|s| members.contains(s))
                } else if self.types.contains_key(name) {
                    match value.as_object() {
                        Some(object) => {
                            for (key, v) in object {
                                // OData annotations (@odata.etag, @removed) are not properties.
                                if key.starts_with('@') {
                                    continue;
                                }
                                match self.property_type(name, key) {
                                    Some(t) => self.check(t, v, &format!("{path}.{key}"), errors),
                                    None => errors.push(format!(
                                        "{path}.{key}: no property {key:?} on {name} (or its base types)"
                                    )),
                                }
                            }
                            true
                        }
                        None => false,
                    }
                } else {
                    errors.push(format!("{path}: type {other} is not in the CSDL extract"));
                    return;
                }
            }
        };
        if !fits {
            errors.push(format!("{path}: {value} does not fit {type_ref}"));
        }
    }

    fn check_sample<T: Serialize>(&self, type_name: &str, sample: &T) -> Vec<String> {
        let mut errors = Vec::new();
        match serde_json::to_value(sample) {
            Ok(value) => self.check(
                &format!("graph.{type_name}"),
                &value,
                type_name,
                &mut errors,
            ),
            Err(e) => errors.push(format!("{type_name}: does not serialize: {e}")),
        }
        errors
    }
}

/// A deserializer that only records the field names serde asks for (renames applied).
struct FieldNames<'a>(&'a mut &'static [&'static str]);

impl<'de> de::Deserializer<'de> for FieldNames<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("not a struct"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = fields;
        Err(de::Error::custom("field names recorded"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

fn field_names<T: DeserializeOwned>() -> &'static [&'static str] {
    let mut names: &'static [&'static str] = &[];
    // The error is the point: deserialization stops once the names are recorded.
    let _ = T::deserialize(FieldNames(&mut names));
    names
}

fn unknown_fields<T: DeserializeOwned>(csdl: &Csdl, type_name: &str) -> Vec<String> {
    let names = field_names::<T>();
    if names.is_empty() {
        return vec![format!("{type_name}: no field names recorded")];
    }
    names
        .iter()
        .filter(|n| !n.starts_with('@'))
        .filter(|n| csdl.property_type(type_name, n).is_none())
        .map(|n| {
            format!(
                "{}: no property {n:?} on {type_name}",
                std::any::type_name::<T>()
            )
        })
        .collect()
}

fn at(s: &str) -> chrono::DateTime<chrono::Utc> {
    s.parse().unwrap_or_default()
}

fn dtz() -> DateTimeTimeZone {
    DateTimeTimeZone {
        date_time: "2026-02-10T08:00:00.0000000".into(),
        time_zone: Some("UTC".into()),
    }
}

fn email() -> EmailAddress {
    EmailAddress {
        address: Some("bob@contoso.com".into()),
        name: Some("Bob".into()),
    }
}

fn stamp() -> Vec<ExtendedProperty> {
    vec![ExtendedProperty::new(
        CRM_ID_PROPERTY,
        "ln:prod:activity:A1",
    )]
}

fn attendee() -> Attendee {
    Attendee {
        attendee_type: Some(AttendeeType::Required),
        status: Some(ResponseStatus {
            response: Some(ResponseType::TentativelyAccepted),
            time: Some(at("2026-02-01T10:00:00Z")),
        }),
        email_address: Some(email()),
    }
}

fn event() -> Event {
    Event {
        id: "AAkALgA".into(),
        etag: Some("W/\"CQAAABYA\"".into()),
        change_key: Some("CQAAABYA".into()),
        ical_uid: Some("040000008200E00074C5B7101A82E008".into()),
        event_type: Some(EventType::Occurrence),
        series_master_id: Some("AAkALgM".into()),
        subject: Some("Review".into()),
        body: Some(ItemBody {
            content_type: Some(BodyType::Text),
            content: Some("Agenda".into()),
        }),
        start: Some(dtz()),
        end: Some(dtz()),
        original_start: Some(at("2026-02-10T08:00:00Z")),
        original_start_time_zone: Some("W. Europe Standard Time".into()),
        original_end_time_zone: Some("W. Europe Standard Time".into()),
        is_all_day: Some(false),
        is_reminder_on: Some(true),
        reminder_minutes_before_start: Some(15),
        show_as: Some(FreeBusyStatus::Oof),
        sensitivity: Some(Sensitivity::Private),
        categories: Some(vec!["Call".into()]),
        location: Some(Location {
            display_name: Some("Room 1".into()),
        }),
        organizer: Some(Recipient {
            email_address: Some(email()),
        }),
        attendees: Some(vec![attendee()]),
        is_organizer: Some(true),
        is_cancelled: Some(false),
        response_status: Some(ResponseStatus {
            response: Some(ResponseType::Organizer),
            time: Some(at("2026-02-01T10:00:00Z")),
        }),
        last_modified_date_time: Some(at("2026-02-01T10:00:00Z")),
        transaction_id: Some("lnsync-0123".into()),
        single_value_extended_properties: Some(stamp()),
        removed: Some(Removed {
            reason: Some("deleted".into()),
        }),
    }
}

fn event_write() -> EventWrite {
    EventWrite {
        subject: "Review".into(),
        body: ItemBody {
            content_type: Some(BodyType::Text),
            content: Some("Agenda".into()),
        },
        start: dtz(),
        end: dtz(),
        is_all_day: false,
        show_as: FreeBusyStatus::Busy,
        location: Location {
            display_name: Some("Room 1".into()),
        },
        is_reminder_on: true,
        reminder_minutes_before_start: Some(15),
        categories: vec!["Call".into()],
        attendees: Some(vec![attendee()]),
        transaction_id: Some("lnsync-0123".into()),
        single_value_extended_properties: Some(stamp()),
    }
}

fn contact() -> Contact {
    Contact {
        id: "AAkALgC".into(),
        etag: Some("W/\"CQ\"".into()),
        change_key: Some("CQ".into()),
        parent_folder_id: Some("AAkALgF".into()),
        single_value_extended_properties: Some(stamp()),
        removed: None,
    }
}

fn contact_write() -> ContactWrite {
    let text = |s: &str| Some(s.to_owned());
    ContactWrite {
        display_name: text("Dr. Jane Doe"),
        file_as: text("Doe, Jane"),
        given_name: text("Jane"),
        middle_name: text("Q"),
        surname: text("Doe"),
        title: text("Dr."),
        generation: text("Jr."),
        initials: text("J.Q.D."),
        job_title: text("CTO"),
        department: text("R&D"),
        company_name: text("Acme"),
        assistant_name: text("Sam"),
        birthday: text("1980-05-17T12:00:00Z"),
        email_addresses: vec![email()],
        business_phones: vec!["+49 30 1".into()],
        mobile_phone: text("+49 170 1"),
        business_address: PhysicalAddress {
            street: text("Main St 1"),
            city: text("Berlin"),
            state: text("BE"),
            country_or_region: text("DE"),
            postal_code: text("10115"),
        },
        single_value_extended_properties: stamp(),
    }
}

fn subscription() -> Subscription {
    Subscription {
        id: Some("7f105c7d-2dc5-4530-97cd-4e7ae6534c07".into()),
        change_type: Some("created,updated,deleted".into()),
        notification_url: Some("https://push.example/graph/prod".into()),
        lifecycle_notification_url: Some("https://push.example/graph/prod/lifecycle".into()),
        resource: Some("/users/alice@contoso.com/events".into()),
        expiration_date_time: Some(at("2026-02-08T10:00:00Z")),
        client_state: Some("secret".into()),
        latest_supported_tls_version: Some("v1_2".into()),
    }
}

#[test]
fn every_model_property_exists_in_the_csdl() -> TestResult {
    let csdl = Csdl::load()?;
    let mut errors = Vec::new();
    errors.extend(unknown_fields::<Event>(&csdl, "event"));
    errors.extend(unknown_fields::<EventWrite>(&csdl, "event"));
    errors.extend(unknown_fields::<Contact>(&csdl, "contact"));
    errors.extend(unknown_fields::<ContactWrite>(&csdl, "contact"));
    errors.extend(unknown_fields::<ContactFolder>(&csdl, "contactFolder"));
    errors.extend(unknown_fields::<Subscription>(&csdl, "subscription"));
    errors.extend(unknown_fields::<ExtendedProperty>(
        &csdl,
        "singleValueLegacyExtendedProperty",
    ));
    errors.extend(unknown_fields::<DateTimeTimeZone>(
        &csdl,
        "dateTimeTimeZone",
    ));
    errors.extend(unknown_fields::<EmailAddress>(&csdl, "emailAddress"));
    errors.extend(unknown_fields::<Recipient>(&csdl, "recipient"));
    errors.extend(unknown_fields::<Attendee>(&csdl, "attendee"));
    errors.extend(unknown_fields::<ResponseStatus>(&csdl, "responseStatus"));
    errors.extend(unknown_fields::<ItemBody>(&csdl, "itemBody"));
    errors.extend(unknown_fields::<Location>(&csdl, "location"));
    errors.extend(unknown_fields::<PhysicalAddress>(&csdl, "physicalAddress"));
    assert!(
        errors.is_empty(),
        "models disagree with the CSDL:\n{}",
        errors.join("\n")
    );
    Ok(())
}

#[test]
fn full_samples_fit_the_csdl_types() -> TestResult {
    let csdl = Csdl::load()?;
    let mut errors = Vec::new();
    errors.extend(csdl.check_sample("event", &event()));
    errors.extend(csdl.check_sample("event", &event_write()));
    errors.extend(csdl.check_sample("contact", &contact()));
    errors.extend(csdl.check_sample("contact", &contact_write()));
    errors.extend(csdl.check_sample(
        "contactFolder",
        &ContactFolder {
            id: "AAkALgF".into(),
            display_name: Some("CRM Contacts".into()),
            parent_folder_id: Some("AAkALgP".into()),
        },
    ));
    errors.extend(csdl.check_sample("subscription", &subscription()));
    assert!(
        errors.is_empty(),
        "samples disagree with the CSDL:\n{}",
        errors.join("\n")
    );
    // The samples round-trip, so reads accept what writes produce.
    let back: Event = serde_json::from_value(serde_json::to_value(event())?)?;
    assert_eq!(back, event());
    Ok(())
}

#[test]
fn every_enum_value_we_use_is_a_csdl_member() -> TestResult {
    let csdl = Csdl::load()?;
    let mut errors = Vec::new();
    let mut check = |csdl_enum: &str, values: Vec<Value>| {
        for v in values {
            let mut found = Vec::new();
            csdl.check(&format!("graph.{csdl_enum}"), &v, csdl_enum, &mut found);
            errors.extend(found);
        }
    };
    check("responseType", values(&ResponseType::KNOWN));
    check("freeBusyStatus", values(&FreeBusyStatus::KNOWN));
    check("sensitivity", values(&Sensitivity::KNOWN));
    check("attendeeType", values(&AttendeeType::KNOWN));
    check("eventType", values(&EventType::KNOWN));
    check("bodyType", values(&[BodyType::Text, BodyType::Html]));
    assert!(
        errors.is_empty(),
        "enum values disagree with the CSDL:\n{}",
        errors.join("\n")
    );
    Ok(())
}

fn values<T: Serialize>(all: &[T]) -> Vec<Value> {
    all.iter()
        .map(|v| serde_json::to_value(v).unwrap_or_default())
        .collect()
}

#[test]
fn the_check_catches_a_misspelt_property_and_a_wrong_shape() -> TestResult {
    let csdl = Csdl::load()?;
    let mut errors = Vec::new();
    csdl.check(
        "graph.event",
        &json!({"icalUid": "x"}),
        "event",
        &mut errors,
    );
    csdl.check(
        "graph.event",
        &json!({"attendees": {"type": "required"}}),
        "event",
        &mut errors,
    );
    csdl.check(
        "graph.event",
        &json!({"showAs": "outOfOffice"}),
        "event",
        &mut errors,
    );
    csdl.check(
        "graph.event",
        &json!({"start": "2026-02-10T08:00:00Z"}),
        "event",
        &mut errors,
    );
    assert_eq!(errors.len(), 4, "{errors:#?}");
    // Base types count: changeKey is on outlookItem, id on entity.
    assert_eq!(csdl.property_type("event", "changeKey"), Some("Edm.String"));
    assert_eq!(csdl.property_type("event", "id"), Some("Edm.String"));
    Ok(())
}
