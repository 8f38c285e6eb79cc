//! Delta queries (`calendarView/delta`, `contactFolders/{id}/contacts/delta`): server-side
//! snapshots of what a client has seen, behind opaque `$deltatoken`s, and the pages of a
//! round behind `$skiptoken`s.

use std::collections::{HashMap, VecDeque};

use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::graph::endpoint::{Ctx, Reply};
use crate::graph::error::GraphError;
use crate::graph::events::{context, render, view_items, window};
use crate::graph::filter::Expand;
use crate::graph::ids::graph_item_id;
use crate::graph::json::{contact_json, select};
use crate::model::FolderId;
use crate::state::SimState;
use crate::store::Store;

/// What a delta round covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeltaScope {
    /// `calendarView/delta` of the default calendar over `[start, end)`.
    Calendar {
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    },
    /// `contactFolders/{id}/contacts/delta`.
    Contacts { folder: FolderId },
}

/// What the client has seen at one delta token: Graph id → changeKey.
#[derive(Clone, Debug)]
pub struct DeltaSnapshot {
    /// Lower-cased mailbox.
    pub mailbox: String,
    pub scope: DeltaScope,
    pub known: HashMap<String, String>,
    /// The store's change sequence when the token was issued.
    pub position: u64,
}

/// The rest of a round being paged out.
#[derive(Clone, Debug)]
pub struct PageSession {
    pub mailbox: String,
    pub scope: DeltaScope,
    pub remaining: VecDeque<serde_json::Value>,
    /// The snapshot the round's deltaLink will stand for.
    pub next: DeltaSnapshot,
}

#[derive(Debug, Default)]
pub struct DeltaStore {
    pub tokens: HashMap<String, DeltaSnapshot>,
    pub pages: HashMap<String, PageSession>,
    /// Issue order per mailbox, for eviction.
    pub per_mailbox: HashMap<String, VecDeque<String>>,
}

impl DeltaStore {
    /// Forgets the tokens and page sessions of one mailbox (or all); returns how many tokens
    /// were dropped.
    pub fn invalidate(&mut self, mailbox: Option<&str>) -> usize {
        let before = self.tokens.len();
        match mailbox {
            None => {
                self.tokens.clear();
                self.pages.clear();
                self.per_mailbox.clear();
            }
            Some(m) => {
                let key = crate::store::Store::key(m);
                self.tokens.retain(|_, s| s.mailbox != key);
                self.pages.retain(|_, s| s.mailbox != key);
                self.per_mailbox.remove(&key);
            }
        }
        before - self.tokens.len()
    }
}

// ---------------------------------------------------------------- handlers

/// A fresh opaque token (base64url: the store position and randomness).
fn new_token(position: u64) -> String {
    let mut bytes = position.to_be_bytes().to_vec();
    bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    B64URL.encode(bytes)
}

fn removed(id: &str, odata_type: &str) -> Value {
    json!({
        "@odata.type": odata_type,
        "id": id,
        "@removed": { "reason": "deleted" },
    })
}

/// The current members of a scope: Graph id → (changeKey, JSON).
type Current = Vec<(String, String, Value)>;

/// One delta answer: from `known` (what the client has) to `current`, paged.
fn round(
    st: &mut SimState,
    ctx: &Ctx<'_>,
    scope: DeltaScope,
    known: &HashMap<String, String>,
    current: Current,
    odata_type: &str,
    context_name: &str,
) -> Result<Reply, GraphError> {
    let key = Store::key(&ctx.mailbox);
    let mut next = HashMap::new();
    let mut results: VecDeque<Value> = VecDeque::new();
    for (id, ck, v) in current {
        if known.get(&id) != Some(&ck) {
            results.push_back(v);
        }
        next.insert(id, ck);
    }
    let mut gone: Vec<&String> = known.keys().filter(|k| !next.contains_key(*k)).collect();
    gone.sort();
    for id in gone {
        results.push_back(removed(id, odata_type));
    }
    let snapshot = DeltaSnapshot {
        mailbox: key.clone(),
        scope: scope.clone(),
        known: next,
        position: st.store.seq.current(),
    };
    let session = PageSession {
        mailbox: key,
        scope,
        remaining: results,
        next: snapshot,
    };
    emit(st, ctx, session, context_name)
}

/// Sends the next page of a round: with a nextLink while more remain, else the deltaLink.
fn emit(
    st: &mut SimState,
    ctx: &Ctx<'_>,
    mut session: PageSession,
    context_name: &str,
) -> Result<Reply, GraphError> {
    let size = ctx
        .prefs
        .max_page_size
        .unwrap_or(st.config.graph.max_page_size)
        .max(1);
    let n = size.min(session.remaining.len());
    let page: Vec<Value> = session.remaining.drain(..n).collect();
    let mut body = json!({ "@odata.context": context(ctx, context_name), "value": page });
    if session.remaining.is_empty() {
        let token = new_token(session.next.position);
        let max = st.config.graph.max_delta_tokens_per_mailbox;
        let d = &mut st.graph.delta;
        let evicted = crate::graph::state::push_bounded(
            d.per_mailbox.entry(session.mailbox.clone()).or_default(),
            token.clone(),
            max,
        );
        for old in evicted {
            d.tokens.remove(&old);
        }
        d.tokens.insert(token.clone(), session.next);
        body["@odata.deltaLink"] = json!(ctx.req.link(&[("$deltatoken".into(), token)]));
    } else {
        let skip = new_token(session.next.position);
        st.graph.delta.pages.insert(skip.clone(), session);
        body["@odata.nextLink"] = json!(ctx.req.link(&[("$skiptoken".into(), skip)]));
    }
    let mut r = Reply::ok(body);
    r.items = n;
    Ok(r)
}

/// Continues a paged round (`$skiptoken`); unknown → 410.
fn continue_round(
    st: &mut SimState,
    ctx: &Ctx<'_>,
    skip: &str,
    context_name: &str,
) -> Result<Reply, GraphError> {
    let key = Store::key(&ctx.mailbox);
    let session = match st.graph.delta.pages.remove(skip) {
        Some(s) if s.mailbox == key => s,
        Some(s) => {
            // Someone else's round: leave it alone.
            st.graph.delta.pages.insert(skip.to_string(), s);
            return Err(GraphError::sync_state_not_found());
        }
        None => return Err(GraphError::sync_state_not_found()),
    };
    emit(st, ctx, session, context_name)
}

/// The snapshot behind a `$deltatoken`, if it belongs to this mailbox and scope kind.
fn snapshot_for(
    st: &SimState,
    ctx: &Ctx<'_>,
    token: &str,
    calendar: bool,
) -> Result<DeltaSnapshot, GraphError> {
    let key = Store::key(&ctx.mailbox);
    match st.graph.delta.tokens.get(token) {
        Some(s)
            if s.mailbox == key && matches!(s.scope, DeltaScope::Calendar { .. }) == calendar =>
        {
            Ok(s.clone())
        }
        _ => Err(GraphError::sync_state_not_found()),
    }
}

/// `GET /users/{u}/calendarView/delta`: every instance in the window first, then only what
/// changed, with `@removed` for instances deleted or moved out of the window.
pub fn calendar_delta(st: &mut SimState, ctx: &Ctx<'_>) -> Result<Reply, GraphError> {
    let unsupported: Vec<&str> = ["$select", "$filter", "$orderby", "$expand", "$search"]
        .into_iter()
        .filter(|p| ctx.req.q(p).is_some())
        .collect();
    if !unsupported.is_empty() {
        return Err(GraphError::bad_request(
            "ErrorInvalidUrlQuery",
            format!(
                "The following parameters are not supported with change tracking over the 'CalendarView' resource: '{}'.",
                unsupported.join(", ")
            ),
        ));
    }
    if let Some(skip) = ctx.req.q("$skiptoken") {
        return continue_round(st, ctx, skip, "calendarView");
    }
    let (scope, known) = match ctx.req.q("$deltatoken") {
        Some(t) => {
            let snap = snapshot_for(st, ctx, t, true)?;
            // A window given with the token must be the token's own.
            if ctx.req.q("startDateTime").is_some() {
                let (s, e) = window(ctx)?;
                if snap.scope != (DeltaScope::Calendar { start: s, end: e }) {
                    return Err(GraphError::sync_state_not_found());
                }
            }
            (snap.scope, snap.known)
        }
        None => {
            let (start, end) = window(ctx)?;
            (DeltaScope::Calendar { start, end }, HashMap::new())
        }
    };
    let DeltaScope::Calendar { start, end } = scope.clone() else {
        return Err(GraphError::sync_state_not_found());
    };
    let mb = st
        .store
        .mailbox(&ctx.mailbox)
        .map_err(|e| GraphError::new(StatusCode::NOT_FOUND, "ErrorInvalidUser", e.to_string()))?;
    let current: Current = view_items(mb, start, end)?
        .iter()
        .map(|item| {
            (
                graph_item_id(&item.id),
                item.change_key.to_string(),
                render(st, ctx, item, &Expand::None),
            )
        })
        .collect();
    round(
        st,
        ctx,
        scope,
        &known,
        current,
        "#microsoft.graph.event",
        "calendarView",
    )
}

/// `GET /users/{u}/contactFolders/{id}/contacts/delta` (`$select` allowed).
pub fn contacts_delta(st: &mut SimState, ctx: &Ctx<'_>, gid: &str) -> Result<Reply, GraphError> {
    let unsupported: Vec<&str> = ["$filter", "$orderby", "$expand", "$search"]
        .into_iter()
        .filter(|p| ctx.req.q(p).is_some())
        .collect();
    if !unsupported.is_empty() {
        return Err(GraphError::bad_request(
            "ErrorInvalidUrlQuery",
            format!(
                "The following parameters are not supported with change tracking over the 'Contacts' resource: '{}'.",
                unsupported.join(", ")
            ),
        ));
    }
    let mb = st
        .store
        .mailbox(&ctx.mailbox)
        .map_err(|e| GraphError::new(StatusCode::NOT_FOUND, "ErrorInvalidUser", e.to_string()))?;
    let folder = crate::graph::contacts::contact_folder(mb, gid)?.id.clone();
    if let Some(skip) = ctx.req.q("$skiptoken") {
        return continue_round(st, ctx, skip, "contacts");
    }
    let scope = DeltaScope::Contacts {
        folder: folder.clone(),
    };
    let known = match ctx.req.q("$deltatoken") {
        Some(t) => {
            let snap = snapshot_for(st, ctx, t, false)?;
            if snap.scope != scope {
                return Err(GraphError::sync_state_not_found());
            }
            snap.known
        }
        None => HashMap::new(),
    };
    let fields = ctx.select();
    let current: Current = mb
        .items_in(&folder)
        .into_iter()
        .filter(|i| i.item.as_contact().is_some())
        .map(|item| {
            (
                graph_item_id(&item.id),
                item.change_key.to_string(),
                select(contact_json(item, &Expand::None), fields.as_deref()),
            )
        })
        .collect();
    round(
        st,
        ctx,
        scope,
        &known,
        current,
        "#microsoft.graph.contact",
        "contacts",
    )
}
