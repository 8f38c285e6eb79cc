//! Contact folders and contacts: find a folder by `displayName`, create/get/delete folders,
//! list (paged, `$filter`, `$expand` of the stamp), create, get, update (`If-Match`) and
//! delete contacts, on the same `Contact` fields EWS uses.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::graph::endpoint::{Ctx, Reply};
use crate::graph::error::GraphError;
use crate::graph::events::{check_if_match, context, page};
use crate::graph::filter::{Subject, matches, parse_filter, single_values};
use crate::graph::ids::{parse_graph_folder_id, parse_graph_item_id};
use crate::graph::json::{apply_contact, contact_json, folder_json, select};
use crate::model::{Contact, DistinguishedFolder, Folder, FolderId, Item, StoredItem};
use crate::state::SimState;
use crate::store::{DeleteType, Mailbox};

fn store_err(e: crate::error::SimError) -> GraphError {
    GraphError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "ErrorInternalServerError",
        e.to_string(),
    )
}

fn contacts_root(mb: &Mailbox) -> Result<FolderId, GraphError> {
    mb.folder_id(DistinguishedFolder::Contacts)
        .cloned()
        .ok_or_else(GraphError::item_not_found)
}

/// A contact folder by Graph id: malformed → 400, unknown (or not a contact folder) → 404.
pub(crate) fn contact_folder<'m>(mb: &'m Mailbox, gid: &str) -> Result<&'m Folder, GraphError> {
    let fid = parse_graph_folder_id(gid)?;
    mb.folders
        .get(&fid)
        .filter(|f| f.folder_class.starts_with("IPF.Contact"))
        .ok_or_else(GraphError::item_not_found)
}

fn find_contact<'m>(mb: &'m Mailbox, gid: &str) -> Result<&'m StoredItem, GraphError> {
    let id = parse_graph_item_id(gid)?;
    mb.items
        .get(&id)
        .filter(|st| st.item.as_contact().is_some())
        .ok_or_else(GraphError::item_not_found)
}

fn contact_subject(st: &StoredItem) -> Subject<'_> {
    let c = st.item.as_contact();
    let get = |n: &str| c.and_then(|c| c.get(n)).map(str::to_string);
    Subject {
        scalars: vec![
            ("displayName", get("DisplayName")),
            ("givenName", get("GivenName")),
            ("surname", get("Surname")),
            ("companyName", get("CompanyName")),
            ("fileAs", get("FileAs")),
        ],
        extended: single_values(&st.item.extended_properties).collect(),
    }
}

/// `GET /users/{u}/contactFolders` (the folders below the default Contacts folder).
pub fn folders_list(st: &mut SimState, ctx: &Ctx<'_>) -> Result<Reply, GraphError> {
    let filter = ctx.req.q("$filter").map(parse_filter).transpose()?;
    let mb = st.store.mailbox(&ctx.mailbox).map_err(store_err)?;
    let root = contacts_root(mb)?;
    let mut values = Vec::new();
    for f in mb.child_folders(&root) {
        if let Some(flt) = &filter {
            let s = Subject {
                scalars: vec![("displayName", Some(f.display_name.clone()))],
                extended: Vec::new(),
            };
            if !matches(flt, &s)? {
                continue;
            }
        }
        values.push(select(folder_json(f), ctx.select().as_deref()));
    }
    page(st, ctx, values, context(ctx, "contactFolders"), false)
}

/// `POST /users/{u}/contactFolders` `{"displayName": …}`.
pub fn folder_create(st: &mut SimState, ctx: &Ctx<'_>) -> Result<Reply, GraphError> {
    let body = ctx.req.json_body()?;
    let name = body
        .get("displayName")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            GraphError::bad_request("ErrorInvalidRequest", "The folder needs a displayName.")
        })?
        .to_string();
    let (mb, seq) = st.store.mailbox_mut(&ctx.mailbox).map_err(store_err)?;
    let parent = match body.get("parentFolderId").and_then(Value::as_str) {
        Some(p) => contact_folder(mb, p)?.id.clone(),
        None => contacts_root(mb)?,
    };
    let id = mb
        .create_folder(seq, &parent, &name, "IPF.Contact")
        .map_err(|e| match e {
            crate::error::SimError::FolderExists(_) => GraphError::new(
                StatusCode::CONFLICT,
                "ErrorFolderExists",
                "A folder with the specified name already exists.",
            ),
            other => store_err(other),
        })?;
    let f = mb.folders.get(&id).ok_or_else(GraphError::item_not_found)?;
    let mut v = folder_json(f);
    v["@odata.context"] = json!(context(ctx, "contactFolders/$entity"));
    Ok(Reply::json(StatusCode::CREATED, v))
}

/// `GET /users/{u}/contactFolders/{id}`.
pub fn folder_get(st: &mut SimState, ctx: &Ctx<'_>, gid: &str) -> Result<Reply, GraphError> {
    let mb = st.store.mailbox(&ctx.mailbox).map_err(store_err)?;
    let mut v = select(
        folder_json(contact_folder(mb, gid)?),
        ctx.select().as_deref(),
    );
    v["@odata.context"] = json!(context(ctx, "contactFolders/$entity"));
    Ok(Reply::ok(v))
}

/// `DELETE /users/{u}/contactFolders/{id}`.
pub fn folder_delete(st: &mut SimState, ctx: &Ctx<'_>, gid: &str) -> Result<Reply, GraphError> {
    let (mb, seq) = st.store.mailbox_mut(&ctx.mailbox).map_err(store_err)?;
    let f = contact_folder(mb, gid)?;
    if f.distinguished.is_some() {
        return Err(GraphError::bad_request(
            "ErrorDeleteDistinguishedFolder",
            "Distinguished folders cannot be deleted.",
        ));
    }
    let id = f.id.clone();
    mb.delete_folder(seq, &id).map_err(store_err)?;
    Ok(Reply::no_content())
}

fn folder_for(mb: &Mailbox, gid: Option<&str>) -> Result<FolderId, GraphError> {
    match gid {
        Some(g) => Ok(contact_folder(mb, g)?.id.clone()),
        None => contacts_root(mb),
    }
}

/// `GET /users/{u}/contactFolders/{id}/contacts` (or `/contacts`, the default folder).
pub fn list(st: &mut SimState, ctx: &Ctx<'_>, gid: Option<&str>) -> Result<Reply, GraphError> {
    let expand = ctx.expand()?;
    let filter = ctx.req.q("$filter").map(parse_filter).transpose()?;
    let mb = st.store.mailbox(&ctx.mailbox).map_err(store_err)?;
    let folder = folder_for(mb, gid)?;
    let mut values = Vec::new();
    for item in mb.items_in(&folder) {
        if item.item.as_contact().is_none() {
            continue;
        }
        if let Some(f) = &filter
            && !matches(f, &contact_subject(item))?
        {
            continue;
        }
        values.push(select(contact_json(item, &expand), ctx.select().as_deref()));
    }
    page(st, ctx, values, context(ctx, "contacts"), false)
}

/// `POST /users/{u}/contactFolders/{id}/contacts` (or `/contacts`).
pub fn create(st: &mut SimState, ctx: &Ctx<'_>, gid: Option<&str>) -> Result<Reply, GraphError> {
    let body = ctx.req.json_body()?;
    let mut item = Item::contact(Contact::default());
    apply_contact(&mut item, &body, true)?;
    let (mb, seq) = st.store.mailbox_mut(&ctx.mailbox).map_err(store_err)?;
    let folder = folder_for(mb, gid)?;
    let (id, _) = mb.create_item(seq, &folder, item);
    let stored = mb.items.get(&id).ok_or_else(GraphError::item_not_found)?;
    let mut v = contact_json(stored, &ctx.expand()?);
    v["@odata.context"] = json!(context(ctx, "contacts/$entity"));
    Ok(Reply::json(StatusCode::CREATED, v))
}

/// `GET /users/{u}/contacts/{id}`.
pub fn get(st: &mut SimState, ctx: &Ctx<'_>, gid: &str) -> Result<Reply, GraphError> {
    let expand = ctx.expand()?;
    let mb = st.store.mailbox(&ctx.mailbox).map_err(store_err)?;
    let item = find_contact(mb, gid)?;
    let mut v = select(contact_json(item, &expand), ctx.select().as_deref());
    v["@odata.context"] = json!(context(ctx, "contacts/$entity"));
    Ok(Reply::ok(v))
}

/// `PATCH /users/{u}/contacts/{id}`.
pub fn update(st: &mut SimState, ctx: &Ctx<'_>, gid: &str) -> Result<Reply, GraphError> {
    let body = ctx.req.json_body()?;
    let expand = ctx.expand()?;
    let (mb, seq) = st.store.mailbox_mut(&ctx.mailbox).map_err(store_err)?;
    let current = find_contact(mb, gid)?;
    check_if_match(ctx, current.change_key.as_str())?;
    let id = current.id.clone();
    let mut item = current.item.clone();
    apply_contact(&mut item, &body, false)?;
    mb.commit_update(seq, &id, item)
        .ok_or_else(GraphError::item_not_found)?;
    let stored = mb.items.get(&id).ok_or_else(GraphError::item_not_found)?;
    let mut v = contact_json(stored, &expand);
    v["@odata.context"] = json!(context(ctx, "contacts/$entity"));
    Ok(Reply::ok(v))
}

/// `DELETE /users/{u}/contacts/{id}` (to Deleted Items, as Graph does).
pub fn delete(st: &mut SimState, ctx: &Ctx<'_>, gid: &str) -> Result<Reply, GraphError> {
    let (mb, seq) = st.store.mailbox_mut(&ctx.mailbox).map_err(store_err)?;
    let current = find_contact(mb, gid)?;
    check_if_match(ctx, current.change_key.as_str())?;
    let id = current.id.clone();
    mb.delete_item(seq, &id, DeleteType::MoveToDeletedItems)
        .map_err(|_| GraphError::item_not_found())?;
    Ok(Reply::no_content())
}
