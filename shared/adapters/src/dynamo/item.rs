//! How model values become DynamoDB items and back.
//!
//! Conventions (the same as the SQLite store's): timestamps are RFC 3339 strings in UTC with nine
//! fractional digits and a `Z`, so string order is time order and a condition expression can
//! compare them (`expires_at <= :now`); enums are stored by their serde names; absent optional
//! values are absent attributes, never NULL, so sparse indexes stay sparse.

use super::error::corrupt;
use super::schema::{self, BY_EXCHANGE_ID, BY_ICAL_UID, BY_SERIES, PARTITION_KEY, SORT_KEY};
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use lnsync_core::error::StoreError;
use lnsync_core::ids::*;
use lnsync_core::model::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::HashMap;

pub(super) type Item = HashMap<String, AttributeValue>;

/// The attribute naming what an item is; not needed to read the table, but it makes the
/// console of a single-table design legible and allows filtering an export by type.
pub(super) const TYPE: &str = "type";

/// Fixed-width UTC text; see the module docs.
pub(super) fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.9fZ").to_string()
}

fn parse_ts(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The serde name of a unit enum variant (what SQLite stores too).
fn name_of<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        // Only unit variants are stored this way; anything else is a programming error that
        // still stores something readable rather than failing a write.
        Ok(other) => other.to_string(),
        Err(e) => e.to_string(),
    }
}

fn from_name<T: DeserializeOwned>(s: &str) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
}

/// Builds an item attribute by attribute.
pub(super) struct ItemBuilder(Item);

impl ItemBuilder {
    pub(super) fn new(pk: String, sk: impl Into<String>, item_type: &str) -> Self {
        let mut item = Item::new();
        item.insert(PARTITION_KEY.to_owned(), AttributeValue::S(pk));
        item.insert(SORT_KEY.to_owned(), AttributeValue::S(sk.into()));
        item.insert(TYPE.to_owned(), AttributeValue::S(item_type.to_owned()));
        Self(item)
    }

    pub(super) fn s(mut self, name: &str, value: impl Into<String>) -> Self {
        self.0
            .insert(name.to_owned(), AttributeValue::S(value.into()));
        self
    }

    pub(super) fn opt_s(self, name: &str, value: Option<&str>) -> Self {
        match value {
            Some(v) => self.s(name, v),
            None => self,
        }
    }

    /// An index key attribute: absent when empty, since DynamoDB rejects empty key values and
    /// an empty value must not be findable anyway.
    fn index_key(self, name: &str, value: Option<String>) -> Self {
        match value {
            Some(v) if !v.is_empty() => self.s(name, v),
            _ => self,
        }
    }

    pub(super) fn ts(self, name: &str, value: DateTime<Utc>) -> Self {
        self.s(name, ts(value))
    }

    pub(super) fn opt_ts(self, name: &str, value: Option<DateTime<Utc>>) -> Self {
        self.opt_s(name, value.map(ts).as_deref())
    }

    pub(super) fn name<T: Serialize>(self, name: &str, value: &T) -> Self {
        self.s(name, name_of(value))
    }

    pub(super) fn n(mut self, name: &str, value: impl ToString) -> Self {
        self.0
            .insert(name.to_owned(), AttributeValue::N(value.to_string()));
        self
    }

    pub(super) fn bool(mut self, name: &str, value: bool) -> Self {
        self.0.insert(name.to_owned(), AttributeValue::Bool(value));
        self
    }

    pub(super) fn build(self) -> Item {
        self.0
    }
}

/// Reads attributes of one item, naming the item in errors.
pub(super) struct ItemReader<'a> {
    item: &'a Item,
    what: &'static str,
}

impl<'a> ItemReader<'a> {
    pub(super) fn new(item: &'a Item, what: &'static str) -> Self {
        Self { item, what }
    }

    pub(super) fn opt_s(&self, name: &str) -> Result<Option<String>, StoreError> {
        match self.item.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::S(s)) => Ok(Some(s.clone())),
            Some(other) => Err(corrupt(
                self.what,
                format_args!("{name} is not a string: {other:?}"),
            )),
        }
    }

    pub(super) fn s(&self, name: &str) -> Result<String, StoreError> {
        self.opt_s(name)?
            .ok_or_else(|| corrupt(self.what, format_args!("{name} is missing")))
    }

    pub(super) fn opt_ts(&self, name: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.opt_s(name)?
            .map(|s| {
                parse_ts(&s).ok_or_else(|| {
                    corrupt(self.what, format_args!("{name} is not a timestamp: {s:?}"))
                })
            })
            .transpose()
    }

    pub(super) fn ts(&self, name: &str) -> Result<DateTime<Utc>, StoreError> {
        self.opt_ts(name)?
            .ok_or_else(|| corrupt(self.what, format_args!("{name} is missing")))
    }

    pub(super) fn name<T: DeserializeOwned>(&self, name: &str) -> Result<T, StoreError> {
        let s = self.s(name)?;
        from_name(&s)
            .ok_or_else(|| corrupt(self.what, format_args!("{name} has unknown value {s:?}")))
    }

    pub(super) fn u64(&self, name: &str) -> Result<u64, StoreError> {
        match self.item.get(name) {
            Some(AttributeValue::N(n)) => n
                .parse()
                .map_err(|_| corrupt(self.what, format_args!("{name} is not a count: {n:?}"))),
            other => Err(corrupt(
                self.what,
                format_args!("{name} is not a number: {other:?}"),
            )),
        }
    }

    pub(super) fn u32(&self, name: &str) -> Result<u32, StoreError> {
        let n = self.u64(name)?;
        u32::try_from(n)
            .map_err(|_| corrupt(self.what, format_args!("{name} is out of range: {n}")))
    }

    pub(super) fn bool(&self, name: &str) -> Result<bool, StoreError> {
        match self.item.get(name) {
            None => Ok(false),
            Some(AttributeValue::Bool(b)) => Ok(*b),
            Some(other) => Err(corrupt(
                self.what,
                format_args!("{name} is not a boolean: {other:?}"),
            )),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Per item type
// ---------------------------------------------------------------------------------------------

pub(super) fn environment_item(state: &EnvironmentState) -> Item {
    ItemBuilder::new(
        schema::ENVIRONMENTS_PK.to_owned(),
        schema::environment_sk(&state.env),
        "environment",
    )
    .s("env", state.env.as_str())
    .bool("started", state.started)
    .ts("updated_at", state.updated_at)
    .build()
}

pub(super) fn environment_from(item: &Item) -> Result<EnvironmentState, StoreError> {
    let r = ItemReader::new(item, "environment");
    Ok(EnvironmentState {
        env: EnvironmentId::new(r.s("env")?),
        started: r.bool("started")?,
        updated_at: r.ts("updated_at")?,
    })
}

pub(super) fn user_item(s: &UserState) -> Item {
    ItemBuilder::new(schema::env_pk(&s.env), schema::user_sk(&s.user), "user")
        .s("env", s.env.as_str())
        .s("user", s.user.as_str())
        .s("mailbox", s.mailbox.as_str())
        .opt_s(
            "contact_folder",
            s.contact_folder.as_ref().map(FolderId::as_str),
        )
        .bool("release_held_deletions", s.release_held_deletions)
        .opt_ts("next_contact_run", s.next_contact_run)
        .opt_ts("next_calendar_run", s.next_calendar_run)
        .build()
}

pub(super) fn user_from(item: &Item) -> Result<UserState, StoreError> {
    let r = ItemReader::new(item, "user state");
    Ok(UserState {
        env: EnvironmentId::new(r.s("env")?),
        user: UserId::new(r.s("user")?),
        mailbox: MailboxAddress::new(r.s("mailbox")?),
        contact_folder: r.opt_s("contact_folder")?.map(FolderId::new),
        release_held_deletions: r.bool("release_held_deletions")?,
        next_contact_run: r.opt_ts("next_contact_run")?,
        next_calendar_run: r.opt_ts("next_calendar_run")?,
    })
}

/// When the link was last written.
pub(super) const LINK_UPDATED_AT: &str = "updated_at";

pub(super) fn link_item(l: &Link) -> Item {
    let event = l.event.as_ref();
    ItemBuilder::new(
        schema::user_pk(&l.env, &l.user),
        schema::link_sk(l.kind, &l.ln_key),
        "link",
    )
    .s("env", l.env.as_str())
    .s("user", l.user.as_str())
    .name("kind", &l.kind)
    .s("ln_key", l.ln_key.as_str())
    .s("exchange_id", l.exchange_id.as_str())
    .s("exchange_version", l.exchange_version.as_str())
    .opt_s("ln_version", l.ln_version.as_ref().map(LnVersion::as_str))
    .opt_ts("ln_modified", l.ln_modified)
    .s("ln_hash", l.ln_hash.0.as_str())
    .s("exchange_hash", l.exchange_hash.0.as_str())
    .opt_s("ical_uid", l.ical_uid.as_ref().map(IcalUid::as_str))
    .name("origin", &l.origin)
    .opt_s(
        "organizer",
        l.organizer.as_ref().map(MailboxAddress::as_str),
    )
    .opt_s("last_error", l.last_error.as_deref())
    .ts(LINK_UPDATED_AT, l.updated_at)
    .opt_ts("ev_original_start", event.and_then(|e| e.original_start))
    .opt_s(
        "ev_series_id",
        event
            .and_then(|e| e.series_id.as_ref())
            .map(ExchangeItemId::as_str),
    )
    .opt_ts("ev_end", event.map(|e| e.end))
    .index_key(
        BY_EXCHANGE_ID.partition_key,
        (!l.is_intent()).then(|| schema::exchange_id_key(&l.env, &l.user, l.kind, &l.exchange_id)),
    )
    .index_key(
        BY_ICAL_UID.partition_key,
        l.ical_uid
            .as_ref()
            .map(|uid| schema::ical_uid_key(&l.env, &l.user, l.kind, uid)),
    )
    .index_key(
        BY_SERIES.partition_key,
        event
            .and_then(|e| e.series_id.as_ref())
            .map(|s| schema::series_key(&l.env, &l.user, l.kind, s)),
    )
    .build()
}

pub(super) fn link_from(item: &Item) -> Result<Link, StoreError> {
    let r = ItemReader::new(item, "link");
    let event = match r.opt_ts("ev_end")? {
        Some(end) => Some(EventLink {
            original_start: r.opt_ts("ev_original_start")?,
            series_id: r.opt_s("ev_series_id")?.map(ExchangeItemId::new),
            end,
        }),
        None => None,
    };
    Ok(Link {
        env: EnvironmentId::new(r.s("env")?),
        user: UserId::new(r.s("user")?),
        kind: r.name("kind")?,
        ln_key: LnKey::new(r.s("ln_key")?),
        exchange_id: ExchangeItemId::new(r.s("exchange_id")?),
        exchange_version: ExchangeVersion::new(r.s("exchange_version")?),
        ln_version: r.opt_s("ln_version")?.map(LnVersion::new),
        ln_modified: r.opt_ts("ln_modified")?,
        ln_hash: ContentHash(r.s("ln_hash")?),
        exchange_hash: ContentHash(r.s("exchange_hash")?),
        ical_uid: r.opt_s("ical_uid")?.map(IcalUid::new),
        origin: r.name("origin")?,
        organizer: r.opt_s("organizer")?.map(MailboxAddress::new),
        last_error: r.opt_s("last_error")?,
        updated_at: r.ts(LINK_UPDATED_AT)?,
        event,
    })
}

pub(super) fn run_item(run: &RunRecord) -> Item {
    let c = run.counts;
    ItemBuilder::new(
        schema::env_pk(&run.env),
        schema::run_sk(&run.user, run.kind),
        "run",
    )
    .s("env", run.env.as_str())
    .s("user", run.user.as_str())
    .name("kind", &run.kind)
    .ts("started_at", run.started_at)
    .ts("finished_at", run.finished_at)
    .name("outcome", &run.outcome)
    .n("created", c.created)
    .n("updated", c.updated)
    .n("deleted", c.deleted)
    .n("skipped", c.skipped)
    .n("errors", c.errors)
    .n("held", c.held)
    .opt_s("error", run.error.as_deref())
    .build()
}

pub(super) fn run_from(item: &Item) -> Result<RunRecord, StoreError> {
    let r = ItemReader::new(item, "run record");
    Ok(RunRecord {
        env: EnvironmentId::new(r.s("env")?),
        user: UserId::new(r.s("user")?),
        kind: r.name("kind")?,
        started_at: r.ts("started_at")?,
        finished_at: r.ts("finished_at")?,
        outcome: r.name("outcome")?,
        counts: RunCounts {
            created: r.u32("created")?,
            updated: r.u32("updated")?,
            deleted: r.u32("deleted")?,
            skipped: r.u32("skipped")?,
            errors: r.u32("errors")?,
            held: r.u32("held")?,
        },
        error: r.opt_s("error")?,
    })
}

pub(super) fn problem_item(p: &ItemProblem) -> Item {
    ItemBuilder::new(
        schema::user_pk(&p.env, &p.user),
        schema::problem_sk(p.kind, &p.ln_key),
        "problem",
    )
    .s("env", p.env.as_str())
    .s("user", p.user.as_str())
    .name("kind", &p.kind)
    .s("ln_key", p.ln_key.as_str())
    .name("problem", &p.problem)
    .s("detail", p.detail.as_str())
    .ts("at", p.at)
    .build()
}

pub(super) fn problem_from(item: &Item) -> Result<ItemProblem, StoreError> {
    let r = ItemReader::new(item, "problem");
    Ok(ItemProblem {
        env: EnvironmentId::new(r.s("env")?),
        user: UserId::new(r.s("user")?),
        kind: r.name("kind")?,
        ln_key: LnKey::new(r.s("ln_key")?),
        problem: r.name("problem")?,
        detail: r.s("detail")?,
        at: r.ts("at")?,
    })
}

/// The token attribute of the push token item.
pub(super) const PUSH_TOKEN: &str = "token";

pub(super) fn push_token_item(env: &EnvironmentId, token: &str) -> Item {
    ItemBuilder::new(schema::env_pk(env), schema::PUSH_TOKEN_SK, "push-token")
        .s("env", env.as_str())
        .s(PUSH_TOKEN, token)
        .build()
}

pub(super) fn push_token_from(item: &Item) -> Result<String, StoreError> {
    ItemReader::new(item, "push token").s(PUSH_TOKEN)
}

// Attributes of a subscription that `touch_subscription` updates in place.
pub(super) const SUB_LAST_SEEN: &str = "last_seen";
pub(super) const SUB_WATERMARK: &str = "watermark";

pub(super) fn subscription_item(s: &PushSubscription) -> Item {
    ItemBuilder::new(
        schema::env_pk(&s.env),
        schema::subscription_sk(&s.id),
        "subscription",
    )
    .s("env", s.env.as_str())
    .s("id", s.id.as_str())
    .s("user", s.user.as_str())
    .s("mailbox", s.mailbox.as_str())
    .name("backend", &s.backend)
    .opt_s(SUB_WATERMARK, s.watermark.as_deref())
    .n("status_frequency_minutes", s.status_frequency_minutes)
    .ts("created_at", s.created_at)
    .ts(SUB_LAST_SEEN, s.last_seen)
    .opt_ts("expires_at", s.expires_at)
    .bool("active", s.active)
    .build()
}

pub(super) fn subscription_from(item: &Item) -> Result<PushSubscription, StoreError> {
    let r = ItemReader::new(item, "push subscription");
    Ok(PushSubscription {
        env: EnvironmentId::new(r.s("env")?),
        id: SubscriptionId::new(r.s("id")?),
        user: UserId::new(r.s("user")?),
        mailbox: MailboxAddress::new(r.s("mailbox")?),
        backend: r.name("backend")?,
        watermark: r.opt_s(SUB_WATERMARK)?,
        status_frequency_minutes: r.u32("status_frequency_minutes")?,
        created_at: r.ts("created_at")?,
        last_seen: r.ts(SUB_LAST_SEEN)?,
        expires_at: r.opt_ts("expires_at")?,
        active: r.bool("active")?,
    })
}

/// The key of an item (for gets and deletes).
pub(super) fn key(pk: String, sk: String) -> Item {
    HashMap::from([
        (PARTITION_KEY.to_owned(), AttributeValue::S(pk)),
        (SORT_KEY.to_owned(), AttributeValue::S(sk)),
    ])
}

/// The table key of an item read from a `KEYS_ONLY` index.
pub(super) fn table_key_of(item: &Item) -> Option<Item> {
    let pk = item.get(PARTITION_KEY)?.clone();
    let sk = item.get(SORT_KEY)?.clone();
    Some(HashMap::from([
        (PARTITION_KEY.to_owned(), pk),
        (SORT_KEY.to_owned(), sk),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn full_link() -> Link {
        let t = Utc
            .with_ymd_and_hms(2026, 11, 25, 10, 0, 0)
            .single()
            .expect("time");
        Link {
            env: EnvironmentId::new("e#1"),
            user: UserId::new("u"),
            kind: LinkKind::Event,
            ln_key: LnKey::new("A1"),
            exchange_id: ExchangeItemId::new("AAMk"),
            exchange_version: ExchangeVersion::new("CQ"),
            ln_version: Some(LnVersion::new("W/\"1\"")),
            ln_modified: Some(t),
            ln_hash: ContentHash::unknown(),
            exchange_hash: ContentHash("x".into()),
            ical_uid: Some(IcalUid::new("uid")),
            origin: Origin::Exchange,
            organizer: None,
            last_error: None,
            updated_at: t + chrono::Duration::nanoseconds(123_456_789),
            event: Some(EventLink {
                original_start: None,
                series_id: Some(ExchangeItemId::new("master")),
                end: t,
            }),
        }
    }

    #[test]
    fn a_link_round_trips_with_nanoseconds_and_index_keys() {
        let l = full_link();
        let item = link_item(&l);
        assert_eq!(link_from(&item).expect("decode"), l);
        assert!(item.contains_key(BY_EXCHANGE_ID.partition_key));
        assert!(item.contains_key(BY_ICAL_UID.partition_key));
        assert!(item.contains_key(BY_SERIES.partition_key));
    }

    #[test]
    fn an_intent_is_not_in_the_exchange_id_index() {
        let l = Link {
            exchange_id: ExchangeItemId::new(""),
            ical_uid: None,
            event: None,
            ..full_link()
        };
        let item = link_item(&l);
        assert_eq!(link_from(&item).expect("decode"), l);
        for index in schema::INDEXES {
            assert!(!item.contains_key(index.partition_key), "{}", index.name);
        }
    }

    #[test]
    fn timestamps_sort_as_text() {
        let a = Utc
            .with_ymd_and_hms(2026, 1, 2, 3, 4, 5)
            .single()
            .expect("a");
        let b = a + chrono::Duration::milliseconds(1);
        assert!(ts(a) < ts(b));
        assert_eq!(ts(a).len(), ts(b).len());
    }

    fn subscription(watermark: Option<&str>, expires: bool) -> PushSubscription {
        let t = Utc
            .with_ymd_and_hms(2026, 11, 25, 10, 0, 0)
            .single()
            .expect("time");
        PushSubscription {
            env: EnvironmentId::new("e#1"),
            user: UserId::new("u"),
            id: SubscriptionId::new("EwBqAGEAbQ=="),
            mailbox: MailboxAddress::new("U@example.com"),
            backend: ExchangeBackend::Ews,
            watermark: watermark.map(str::to_owned),
            status_frequency_minutes: 30,
            created_at: t,
            last_seen: t + chrono::Duration::nanoseconds(1),
            expires_at: expires.then_some(t + chrono::Duration::days(3)),
            active: false,
        }
    }

    #[test]
    fn a_subscription_round_trips_with_and_without_optional_fields() {
        for s in [
            subscription(Some("AQAAAA=="), true),
            subscription(None, false),
        ] {
            let item = subscription_item(&s);
            assert_eq!(subscription_from(&item).expect("decode"), s);
            assert_eq!(item.contains_key(SUB_WATERMARK), s.watermark.is_some());
            assert_eq!(item.contains_key("expires_at"), s.expires_at.is_some());
        }
    }

    #[test]
    fn a_subscription_with_an_unknown_backend_is_corrupt() {
        let mut item = subscription_item(&subscription(None, false));
        item.insert("backend".into(), AttributeValue::S("Lotus".into()));
        assert!(matches!(
            subscription_from(&item),
            Err(StoreError::Corrupt { .. })
        ));
    }

    #[test]
    fn an_unknown_enum_name_is_corrupt() {
        let mut item = link_item(&full_link());
        item.insert("origin".into(), AttributeValue::S("Mars".into()));
        assert!(matches!(link_from(&item), Err(StoreError::Corrupt { .. })));
    }
}
