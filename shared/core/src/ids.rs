//! Identifier newtypes. Ids never cross a port as bare strings, so a contact code can't be
//! passed where an Exchange item id is expected.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                Self(value.to_owned())
            }
        }
    };
}

string_id!(
    /// An lnsync environment: one LN environment/company (R1).
    EnvironmentId
);
string_id!(
    /// An LN user code (ttaad2141m000).
    UserId
);
string_id!(
    /// An LN employee code (tccom0101m000).
    EmployeeCode
);
string_id!(
    /// An LN contact code (tccom1640m000).
    ContactCode
);
string_id!(
    /// An LN activity key (tccom6100m000).
    ActivityKey
);
string_id!(
    /// An SMTP address of a mailbox. Compared case-sensitively where LN requires it (R5).
    MailboxAddress
);
string_id!(
    /// An Exchange item id (EWS ItemId or Graph immutable id).
    ExchangeItemId
);
string_id!(
    /// An Exchange item version (EWS ChangeKey or Graph etag).
    ExchangeVersion
);
string_id!(
    /// An Exchange folder id.
    FolderId
);
string_id!(
    /// An LN entity version (`@odata.etag`).
    LnVersion
);
string_id!(
    /// A queued job's id; also its de-duplication id.
    JobId
);
string_id!(
    /// An iCalendar UID.
    IcalUid
);
string_id!(
    /// An Exchange push subscription (EWS SubscriptionId, Graph subscription id).
    SubscriptionId
);

impl UserId {
    /// The user of a job whose user is not known yet: an LN webhook names an activity, and the
    /// worker finds its owner (the meeting's organizer among the sync users) before running.
    pub const ANY: &'static str = "*";

    pub fn is_any(&self) -> bool {
        self.0 == Self::ANY
    }
}

/// The hidden stamp on every Exchange item lnsync creates (R10): `ln:<env>:contact:<code>`.
/// It makes creates idempotent: after a crash the item is found and adopted.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CrmStamp(String);

impl CrmStamp {
    pub fn contact(env: &EnvironmentId, code: &ContactCode) -> Self {
        Self(format!("ln:{env}:contact:{code}"))
    }
    pub fn activity(env: &EnvironmentId, key: &ActivityKey) -> Self {
        Self(format!("ln:{env}:activity:{key}"))
    }
    /// Wraps a value read back from Exchange.
    pub fn from_raw(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The contact code, when this is a contact stamp of `env`.
    pub fn contact_code(&self, env: &EnvironmentId) -> Option<ContactCode> {
        let rest = self.0.strip_prefix("ln:")?;
        let rest = rest.strip_prefix(env.as_str())?;
        rest.strip_prefix(":contact:").map(ContactCode::new)
    }
}

impl fmt::Display for CrmStamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contact_stamp_round_trips() {
        let env = EnvironmentId::new("prod-100");
        let stamp = CrmStamp::contact(&env, &ContactCode::new("C0042"));
        assert_eq!(stamp.as_str(), "ln:prod-100:contact:C0042");
        assert_eq!(stamp.contact_code(&env), Some(ContactCode::new("C0042")));
        assert_eq!(stamp.contact_code(&EnvironmentId::new("prod")), None);
    }
}
