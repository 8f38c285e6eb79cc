//! Static description of the entity sets: field names and types.
//!
//! The query engine uses it to reject unknown properties and type-mismatched literals with the
//! errors a real OData service gives (instead of silently matching nothing), and the write path
//! uses it to name the offending field when a payload carries an unknown property.

/// Type of a property, as far as `$filter`/`$orderby` care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    String,
    /// A string restricted to named members; compared as a string.
    Enum,
    Int,
    Bool,
    DateTime,
    Date,
    /// A nested object with its own fields.
    Complex(&'static [Field]),
    /// A navigation property (not filterable).
    Navigation,
}

/// One property of an entity type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub name: &'static str,
    pub ty: FieldType,
}

const fn f(name: &'static str, ty: FieldType) -> Field {
    Field { name, ty }
}

use FieldType::{Bool, Complex, Date, DateTime, Enum, Int, Navigation, String as Str};

const INTERVAL: &[Field] = &[f("value", Int), f("unit", Enum)];

pub const SETTINGS: &[Field] = &[
    f("exchangeBackend", Enum),
    f("exchangeUrl", Str),
    f("azureTenant", Str),
    f("clientId", Str),
    f("contactPullInterval", Complex(INTERVAL)),
    f("calendarPullInterval", Complex(INTERVAL)),
    f("pushEnabled", Bool),
    f("synchronizeContacts", Bool),
    f("synchronizeActivities", Bool),
];

pub const SYNC_USERS: &[Field] = &[
    f("user", Str),
    f("name", Str),
    f("active", Bool),
    f("email", Str),
];

pub const EMPLOYEES: &[Field] = &[
    f("employee", Str),
    f("name", Str),
    f("user", Str),
    f("email", Str),
];

pub const ADDRESS: &[Field] = &[
    f("line1", Str),
    f("line2", Str),
    f("line3", Str),
    f("city", Str),
    f("zip", Str),
    f("state", Str),
    f("country", Str),
];

pub const CONTACTS: &[Field] = &[
    f("contact", Str),
    f("firstName", Str),
    f("middleName", Str),
    f("lastName", Str),
    f("fullName", Str),
    f("title", Str),
    f("suffix", Str),
    f("initials", Str),
    f("jobTitle", Str),
    f("department", Str),
    f("assistant", Str),
    f("birthday", Date),
    f("businessPartner", Str),
    f("businessPartnerName", Str),
    f("email", Str),
    f("primaryPhone", Str),
    f("mobilePhone", Str),
    f("fax", Str),
    f("address", Complex(ADDRESS)),
    f("language", Str),
    f("synchronize", Bool),
    f("active", Bool),
    f("optedOut", Bool),
    f("lastModified", DateTime),
];

pub const ACTIVITIES: &[Field] = &[
    f("activity", Str),
    f("type", Enum),
    f("subject", Str),
    f("location", Str),
    f("information", Str),
    f("allDay", Bool),
    f("start", DateTime),
    f("end", DateTime),
    f("reminderSet", Bool),
    f("reminderValue", Int),
    f("reminderUnit", Enum),
    f("showTimeAs", Enum),
    f("status", Enum),
    f("synchronize", Bool),
    f("contact", Str),
    f("businessPartner", Str),
    f("externalReference", Str),
    f("origin", Enum),
    f("lastModified", DateTime),
    f("attendees", Navigation),
];

pub const ATTENDEES: &[Field] = &[
    f("activity", Str),
    f("line", Int),
    f("attendance", Enum),
    f("attendeeType", Enum),
    f("attendee", Str),
    f("fullName", Str),
    f("email", Str),
    f("attendanceStatus", Enum),
    f("invite", Bool),
    f("sentToSynchronizer", Bool),
    f("synchronized", Bool),
];

pub const DELETED_OBJECTS: &[Field] = &[f("entity", Enum), f("key", Str), f("deletedAt", DateTime)];

/// The entity sets of the service, in service-document order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntitySet {
    Settings,
    SyncUsers,
    Employees,
    Contacts,
    Activities,
    Attendees,
    DeletedObjects,
}

impl EntitySet {
    pub const ALL: [EntitySet; 7] = [
        EntitySet::Settings,
        EntitySet::SyncUsers,
        EntitySet::Employees,
        EntitySet::Contacts,
        EntitySet::Activities,
        EntitySet::Attendees,
        EntitySet::DeletedObjects,
    ];

    /// Name as it appears in URLs.
    pub fn name(self) -> &'static str {
        match self {
            EntitySet::Settings => "Settings",
            EntitySet::SyncUsers => "SyncUsers",
            EntitySet::Employees => "Employees",
            EntitySet::Contacts => "Contacts",
            EntitySet::Activities => "Activities",
            EntitySet::Attendees => "Attendees",
            EntitySet::DeletedObjects => "DeletedObjects",
        }
    }

    /// Parse a URL segment name (case-sensitive, like OData).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    pub fn fields(self) -> &'static [Field] {
        match self {
            EntitySet::Settings => SETTINGS,
            EntitySet::SyncUsers => SYNC_USERS,
            EntitySet::Employees => EMPLOYEES,
            EntitySet::Contacts => CONTACTS,
            EntitySet::Activities => ACTIVITIES,
            EntitySet::Attendees => ATTENDEES,
            EntitySet::DeletedObjects => DELETED_OBJECTS,
        }
    }

    /// Entity type name used in error messages.
    pub fn type_name(self) -> &'static str {
        match self {
            EntitySet::Settings => "Setting",
            EntitySet::SyncUsers => "SyncUser",
            EntitySet::Employees => "Employee",
            EntitySet::Contacts => "Contact",
            EntitySet::Activities => "Activity",
            EntitySet::Attendees => "Attendee",
            EntitySet::DeletedObjects => "DeletedObject",
        }
    }
}

/// Resolve a `/`-separated property path (e.g. `address/country`) to its type.
pub fn resolve_path(fields: &'static [Field], path: &str) -> Option<FieldType> {
    let mut current = fields;
    let mut segments = path.split('/').peekable();
    while let Some(segment) = segments.next() {
        let field = current.iter().find(|f| f.name == segment)?;
        if segments.peek().is_none() {
            return Some(field.ty);
        }
        match field.ty {
            FieldType::Complex(inner) => current = inner,
            _ => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_nested_paths() {
        assert_eq!(resolve_path(CONTACTS, "address/country"), Some(Str));
        assert_eq!(resolve_path(CONTACTS, "lastModified"), Some(DateTime));
        assert_eq!(resolve_path(CONTACTS, "address/planet"), None);
        assert_eq!(resolve_path(CONTACTS, "email/x"), None);
        assert_eq!(EntitySet::parse("Activities"), Some(EntitySet::Activities));
        assert_eq!(EntitySet::parse("activities"), None);
    }
}
