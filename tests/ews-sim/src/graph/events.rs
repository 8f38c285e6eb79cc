//! Events: list (with `$filter` on extended properties), get, create (with `transactionId`
//! de-duplication), update (`If-Match`), delete, `calendarView`, `instances`, and
//! `mailboxSettings`. Writes go through the same store and meeting functions as EWS with
//! `SendToAllAndSaveCopy`: Graph always notifies attendees.

use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::calendar::{CalendarItem, Recipient, new_uid};
use crate::calendar_xml::{exception_from, finish_calendar_update};
use crate::graph::endpoint::{Ctx, Reply};
use crate::graph::error::GraphError;
use crate::graph::filter::{Expand, Subject, matches, parse_filter, single_values};
use crate::graph::ids::{graph_item_id, parse_graph_item_id};
use crate::graph::json::{EventView, apply_event, event_json, parse_query_time, select};
use crate::meetings::{
    Notify, cancel_meeting, delete_occurrence, deliver, expand_calendar, instance_item, mark_sent,
    resolve_occurrence,
};
use crate::model::{DistinguishedFolder, FolderId, Item, ItemId, StoredItem};
use crate::state::SimState;
use crate::store::{DeleteType, Mailbox, Store};

fn store_err(e: crate::error::SimError) -> GraphError {
    GraphError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "ErrorInternalServerError",
        e.to_string(),
    )
}

pub(crate) fn calendar_folder(mb: &Mailbox) -> Result<FolderId, GraphError> {
    mb.folder_id(DistinguishedFolder::Calendar)
        .cloned()
        .ok_or_else(GraphError::item_not_found)
}

/// `@odata.context` for a collection under the request path.
pub(crate) fn context(ctx: &Ctx<'_>, what: &str) -> String {
    format!(
        "{}/$metadata#users('{}')/{what}",
        ctx.req.base,
        crate::graph::endpoint::pct_encode(&ctx.user)
    )
}

/// Renders one event for this request.
pub(crate) fn render(st: &SimState, ctx: &Ctx<'_>, item: &StoredItem, expand: &Expand) -> Value {
    let key = Store::key(&ctx.mailbox);
    let tx = st.graph.transaction_of(&key, &item.id);
    let view = EventView {
        zone: &ctx.zone,
        expand,
        transaction_id: tx,
    };
    event_json(item, &view)
}

/// An event (plain, master, or occurrence) by Graph id, as stored or synthesised.
pub(crate) fn find_event(mb: &Mailbox, graph_id: &str) -> Result<StoredItem, GraphError> {
    let id = parse_graph_item_id(graph_id)?;
    if let Some(found) = resolve_occurrence(mb, id.as_str()) {
        let (master, original, index) = found.map_err(|_| GraphError::item_not_found())?;
        return instance_item(master, original, index).ok_or_else(GraphError::item_not_found);
    }
    mb.items
        .get(&id)
        .filter(|st| st.item.as_calendar().is_some())
        .cloned()
        .ok_or_else(GraphError::item_not_found)
}

/// The filter subject of an event.
fn subject<'a>(st: &'a StoredItem, tx: Option<&str>) -> Subject<'a> {
    let cal = st.item.as_calendar();
    Subject {
        scalars: vec![
            ("subject", st.item.subject.clone()),
            ("iCalUId", cal.map(|c| c.uid.clone())),
            (
                "type",
                cal.map(|c| {
                    if c.recurrence.is_some() {
                        "seriesMaster"
                    } else {
                        "singleInstance"
                    }
                    .to_string()
                }),
            ),
            ("isOrganizer", cal.map(|c| c.is_organizer.to_string())),
            ("isCancelled", cal.map(|c| c.is_cancelled.to_string())),
            ("transactionId", tx.map(str::to_string)),
        ],
        extended: single_values(&st.item.extended_properties).collect(),
    }
}

/// Pages `values` by `$skip` (lists) or an opaque `$skiptoken` (calendar views).
pub(crate) fn page(
    st: &SimState,
    ctx: &Ctx<'_>,
    values: Vec<Value>,
    context: String,
    opaque: bool,
) -> Result<Reply, GraphError> {
    let size = ctx.page_size(st)?;
    let skip = if opaque {
        match ctx.req.q("$skiptoken") {
            Some(t) => B64URL
                .decode(t)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| {
                    s.strip_prefix("skip:")
                        .and_then(|n| n.parse::<usize>().ok())
                })
                .ok_or_else(|| GraphError::invalid("Invalid $skiptoken."))?,
            None => 0,
        }
    } else {
        match ctx.req.q("$skip") {
            Some(s) => s
                .parse::<usize>()
                .map_err(|_| GraphError::invalid(format!("Invalid $skip value '{s}'.")))?,
            None => 0,
        }
    };
    let total = values.len();
    let end = (skip + size).min(total);
    let slice: Vec<Value> = values
        .into_iter()
        .skip(skip)
        .take(end.saturating_sub(skip))
        .collect();
    let n = slice.len();
    let mut body = json!({ "@odata.context": context, "value": slice });
    if end < total {
        let q = if opaque {
            ctx.req.query_with(
                &["$skiptoken"],
                &[("$skiptoken", B64URL.encode(format!("skip:{end}")))],
            )
        } else {
            ctx.req.query_with(
                &["$skip", "$top"],
                &[("$top", size.to_string()), ("$skip", end.to_string())],
            )
        };
        body["@odata.nextLink"] = json!(ctx.req.link(&q));
    }
    let mut r = Reply::ok(body);
    r.items = n;
    Ok(r)
}

/// `GET /users/{u}/events` (singles and series masters of the default calendar).
pub fn list(st: &mut SimState, ctx: &Ctx<'_>) -> Result<Reply, GraphError> {
    let expand = ctx.expand()?;
    let filter = ctx.req.q("$filter").map(parse_filter).transpose()?;
    let select_fields = ctx.select();
    let mb = st.store.mailbox(&ctx.mailbox).map_err(store_err)?;
    let folder = calendar_folder(mb)?;
    let key = Store::key(&ctx.mailbox);
    let mut values = Vec::new();
    for item in mb.items_in(&folder) {
        if item.item.as_calendar().is_none() {
            continue;
        }
        if let Some(f) = &filter {
            let tx = st.graph.transaction_of(&key, &item.id);
            if !matches(f, &subject(item, tx))? {
                continue;
            }
        }
        values.push(select(
            render(st, ctx, item, &expand),
            select_fields.as_deref(),
        ));
    }
    page(st, ctx, values, context(ctx, "events"), false)
}

/// `GET /users/{u}/events/{id}`.
pub fn get(st: &mut SimState, ctx: &Ctx<'_>, id: &str) -> Result<Reply, GraphError> {
    let expand = ctx.expand()?;
    let mb = st.store.mailbox(&ctx.mailbox).map_err(store_err)?;
    let item = find_event(mb, id)?;
    let mut v = select(render(st, ctx, &item, &expand), ctx.select().as_deref());
    v["@odata.context"] = json!(context(ctx, "events/$entity"));
    Ok(Reply::ok(v))
}

/// `POST /users/{u}/events` (or `/calendar/events`).
pub fn create(st: &mut SimState, ctx: &Ctx<'_>) -> Result<Reply, GraphError> {
    let body = ctx.req.json_body()?;
    let key = Store::key(&ctx.mailbox);
    let mut item = Item::calendar(CalendarItem::new(Utc::now(), Utc::now(), "UTC"));
    let transaction = apply_event(&mut item, &body, true)?;
    // A retried create with the same transactionId gets the event the first one made.
    if let Some(tx) = &transaction
        && let Some(existing) = st
            .graph
            .transactions
            .get(&(key.clone(), tx.clone()))
            .cloned()
    {
        let mb = st.store.mailbox(&ctx.mailbox).map_err(store_err)?;
        if let Some(found) = mb.items.get(&existing) {
            let v = render(st, ctx, found, &ctx.expand()?);
            return Ok(Reply::json(StatusCode::CREATED, v));
        }
    }
    let (mb, seq) = st.store.mailbox_mut(&ctx.mailbox).map_err(store_err)?;
    let folder = calendar_folder(mb)?;
    let smtp = mb.smtp.clone();
    let cal = item
        .as_calendar_mut()
        .ok_or_else(GraphError::item_not_found)?;
    cal.organizer = Some(Recipient {
        name: None,
        email: smtp.clone(),
    });
    cal.is_organizer = true;
    cal.my_response_type = "Organizer".into();
    cal.uid = new_uid();
    if cal.recurrence.is_some() {
        if cal.first_original().is_none() {
            return Err(GraphError::bad_request(
                "ErrorInvalidRecurrence",
                "The recurrence pattern has no occurrence.",
            ));
        }
        cal.align_to_pattern();
    }
    // Graph always sends invitations.
    if !cal.attendee_emails().is_empty() {
        mark_sent(cal, true);
    }
    let (id, _) = mb.create_item(seq, &folder, item);
    deliver(&mut st.store, &smtp, &id, &[], Notify::All);
    if let Some(tx) = transaction {
        st.graph.transactions.insert((key, tx), id.clone());
    }
    let mb = st.store.mailbox(&ctx.mailbox).map_err(store_err)?;
    let stored = mb.items.get(&id).ok_or_else(GraphError::item_not_found)?;
    let mut v = render(st, ctx, stored, &ctx.expand()?);
    v["@odata.context"] = json!(context(ctx, "events/$entity"));
    Ok(Reply::json(StatusCode::CREATED, v))
}

/// Checks `If-Match` against the item's current ChangeKey (`412` when stale).
pub(crate) fn check_if_match(ctx: &Ctx<'_>, current: &str) -> Result<(), GraphError> {
    match ctx.if_match() {
        Some(ck) if ck != current => Err(GraphError::conflict()),
        _ => Ok(()),
    }
}

/// `PATCH /users/{u}/events/{id}`: only the properties sent change; an occurrence becomes an
/// exception; the organizer's changes reach the attendees (added ones invited, removed ones
/// cancelled).
pub fn update(st: &mut SimState, ctx: &Ctx<'_>, id: &str) -> Result<Reply, GraphError> {
    let body = ctx.req.json_body()?;
    let (mb, seq) = st.store.mailbox_mut(&ctx.mailbox).map_err(store_err)?;
    let view = find_event(mb, id)?;
    check_if_match(ctx, view.change_key.as_str())?;
    let (master_id, original) = match view.item.as_calendar().and_then(|c| c.instance.as_ref()) {
        Some(i) => (i.master_id.clone(), Some(i.original_start)),
        None => (view.id.clone(), None),
    };
    let before = view
        .item
        .as_calendar()
        .cloned()
        .ok_or_else(GraphError::item_not_found)?;
    let mut item = view.item.clone();
    apply_event(&mut item, &body, false)?;
    if original.is_some() && body.get("recurrence").is_some_and(|r| !r.is_null()) {
        return Err(GraphError::bad_request(
            "ErrorInvalidRequest",
            "An occurrence cannot have its own recurrence.",
        ));
    }
    let cal = item
        .as_calendar_mut()
        .ok_or_else(GraphError::item_not_found)?;
    finish_calendar_update(&before, cal).map_err(|(code, m)| GraphError::bad_request(code, m))?;
    // Master attendees before the change (an occurrence's edit notifies the series' list).
    let master_before = mb
        .items
        .get(&master_id)
        .and_then(|s| s.item.as_calendar())
        .map(|c| c.attendee_emails())
        .unwrap_or_default();
    let mut new_item = match original {
        Some(o) => {
            let mut master = mb
                .items
                .get(&master_id)
                .ok_or_else(GraphError::item_not_found)?
                .item
                .clone();
            if let (Some(ex), Some(mc)) = (exception_from(&item, o), master.as_calendar_mut()) {
                mc.modified_occurrences.retain(|m| m.original_start != o);
                mc.modified_occurrences.push(ex);
            }
            // Properties an exception does not hold (stamps, categories) stay the series'.
            master
        }
        None => item,
    };
    let organizer_meeting = new_item.as_calendar().is_some_and(|c| {
        c.is_organizer && (!c.attendee_emails().is_empty() || !master_before.is_empty())
    });
    if organizer_meeting && let Some(c) = new_item.as_calendar_mut() {
        let first = !c.meeting_request_was_sent;
        mark_sent(c, first);
    }
    mb.commit_update(seq, &master_id, new_item)
        .ok_or_else(GraphError::item_not_found)?;
    let smtp = mb.smtp.clone();
    if organizer_meeting {
        deliver(
            &mut st.store,
            &smtp,
            &master_id,
            &master_before,
            Notify::All,
        );
    }
    let mb = st.store.mailbox(&ctx.mailbox).map_err(store_err)?;
    let after = find_event(mb, &graph_item_id(&view.id))?;
    let mut v = render(st, ctx, &after, &ctx.expand()?);
    v["@odata.context"] = json!(context(ctx, "events/$entity"));
    Ok(Reply::ok(v))
}

/// `DELETE /users/{u}/events/{id}`: to Deleted Items; the organizer's meeting is cancelled
/// for its attendees, an occurrence leaves the series (and the attendees' copies).
pub fn delete(st: &mut SimState, ctx: &Ctx<'_>, id: &str) -> Result<Reply, GraphError> {
    let mb = st.store.mailbox(&ctx.mailbox).map_err(store_err)?;
    let view = find_event(mb, id)?;
    check_if_match(ctx, view.change_key.as_str())?;
    let smtp = mb.smtp.clone();
    if let Some(inst) = view.item.as_calendar().and_then(|c| c.instance.clone()) {
        let master = mb
            .items
            .get(&inst.master_id)
            .and_then(|m| m.item.as_calendar())
            .cloned();
        delete_occurrence(&mut st.store, &smtp, &inst.master_id, inst.original_start)
            .map_err(|_| GraphError::item_not_found())?;
        if let Some(m) = master.filter(|m| m.is_organizer && !m.attendee_emails().is_empty()) {
            deliver(
                &mut st.store,
                &smtp,
                &inst.master_id,
                &m.attendee_emails(),
                Notify::All,
            );
        }
        return Ok(Reply::no_content());
    }
    cancel_meeting(&mut st.store, &smtp, &view.id, Notify::All);
    let (mb, seq) = st.store.mailbox_mut(&ctx.mailbox).map_err(store_err)?;
    mb.delete_item(seq, &view.id, DeleteType::MoveToDeletedItems)
        .map_err(|_| GraphError::item_not_found())?;
    let key = Store::key(&ctx.mailbox);
    st.graph
        .transactions
        .retain(|(m, _), v| !(m == &key && *v == view.id));
    Ok(Reply::no_content())
}

/// `startDateTime`/`endDateTime` of a view (both required).
pub(crate) fn window(ctx: &Ctx<'_>) -> Result<(DateTime<Utc>, DateTime<Utc>), GraphError> {
    let missing = || {
        GraphError::bad_request(
            "ErrorInvalidParameter",
            "This request requires a time window specified by the query string parameters StartDateTime and EndDateTime.",
        )
    };
    let parse = |name: &str| -> Result<DateTime<Utc>, GraphError> {
        let v = ctx.req.q(name).ok_or_else(missing)?;
        // An unencoded '+' of an offset arrives as a space.
        parse_query_time(v)
            .or_else(|| parse_query_time(&v.replace(' ', "+")))
            .ok_or_else(|| {
                GraphError::bad_request(
                    "ErrorInvalidParameter",
                    format!("The value '{v}' of parameter '{name}' is invalid."),
                )
            })
    };
    let (s, e) = (parse("startDateTime")?, parse("endDateTime")?);
    if e < s {
        return Err(GraphError::bad_request(
            "ErrorInvalidParameter",
            "The parameter 'EndDateTime' must be later than 'StartDateTime'.",
        ));
    }
    Ok((s, e))
}

/// The instances of the default calendar overlapping a window (singles, occurrences,
/// exceptions), ordered by start.
pub(crate) fn view_items(
    mb: &Mailbox,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<StoredItem>, GraphError> {
    let folder = calendar_folder(mb)?;
    Ok(expand_calendar(mb, &folder, from, to))
}

/// `GET /users/{u}/calendarView` (or `/calendar/calendarView`).
pub fn calendar_view(st: &mut SimState, ctx: &Ctx<'_>) -> Result<Reply, GraphError> {
    let (from, to) = window(ctx)?;
    let expand = ctx.expand()?;
    let filter = ctx.req.q("$filter").map(parse_filter).transpose()?;
    let mb = st.store.mailbox(&ctx.mailbox).map_err(store_err)?;
    let mut values = Vec::new();
    for item in view_items(mb, from, to)? {
        if let Some(f) = &filter
            && !matches(f, &subject(&item, None))?
        {
            continue;
        }
        values.push(select(
            render(st, ctx, &item, &expand),
            ctx.select().as_deref(),
        ));
    }
    page(st, ctx, values, context(ctx, "calendarView"), true)
}

/// `GET /users/{u}/events/{id}/instances?startDateTime&endDateTime`.
pub fn instances(st: &mut SimState, ctx: &Ctx<'_>, id: &str) -> Result<Reply, GraphError> {
    let (from, to) = window(ctx)?;
    let expand = ctx.expand()?;
    let mb = st.store.mailbox(&ctx.mailbox).map_err(store_err)?;
    let master = find_event(mb, id)?;
    let cal = master
        .item
        .as_calendar()
        .ok_or_else(GraphError::item_not_found)?;
    if cal.instance.is_some() || cal.recurrence.is_none() {
        // Graph answers a single (or an occurrence) with no instances.
        let mut r = Reply::ok(json!({ "@odata.context": context(ctx, "events"), "value": [] }));
        r.items = 0;
        return Ok(r);
    }
    let values: Vec<Value> = cal
        .instances(from, to)
        .into_iter()
        .filter_map(|slot| instance_item(&master, slot.original_start, slot.index))
        .map(|i| select(render(st, ctx, &i, &expand), ctx.select().as_deref()))
        .collect();
    page(st, ctx, values, context(ctx, "events"), true)
}

/// `GET /users/{u}/mailboxSettings`.
pub fn mailbox_settings(st: &mut SimState, ctx: &Ctx<'_>) -> Result<Reply, GraphError> {
    let zone = st
        .graph
        .mailbox_zones
        .get(&Store::key(&ctx.mailbox))
        .cloned()
        .unwrap_or_else(|| "UTC".into());
    Ok(Reply::ok(json!({
        "@odata.context": context(ctx, "mailboxSettings"),
        "timeZone": zone,
        "dateFormat": "yyyy-MM-dd",
        "timeFormat": "HH:mm",
    })))
}

/// Item ids of the events a `transactionId` map still points at (for tests/debugging).
pub fn transaction_ids(st: &SimState, mailbox: &str) -> Vec<(String, ItemId)> {
    let key = Store::key(mailbox);
    let mut v: Vec<(String, ItemId)> = st
        .graph
        .transactions
        .iter()
        .filter(|((m, _), _)| *m == key)
        .map(|((_, t), id)| (t.clone(), id.clone()))
        .collect();
    v.sort();
    v
}
