//! Graph ids: the store's item and folder ids in the shape Microsoft Graph shows them.
//!
//! Exchange Online serves the same item under two ids: the EWS id (`AAMk…`, standard base64)
//! and the Graph REST id (URL-safe, here `AAkALg…`). They are deliberately different strings,
//! so a client that switches from EWS to Graph cannot reuse stored EWS ids by accident: an
//! EWS id given to Graph is `400 ErrorInvalidIdMalformed`, as on the real service. The
//! conversion is lossless (the same bytes, re-encoded behind a prefix), so ids are stable
//! and occurrence ids stay parseable (master + original start).

use base64::Engine;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};

use crate::graph::error::GraphError;
use crate::model::{
    FolderId, ItemId, KIND_FOLDER, KIND_ITEM, is_well_formed_id, parse_occurrence_id,
};

/// Prefix of every Graph id the simulator issues.
pub const GRAPH_ID_PREFIX: &str = "AAkALg";

fn to_graph(ews: &str) -> String {
    match B64.decode(ews) {
        Ok(bytes) => format!("{GRAPH_ID_PREFIX}{}", B64URL.encode(bytes)),
        // Not one of ours (cannot happen for stored ids): keep it recognisable but URL-safe.
        Err(_) => format!("{GRAPH_ID_PREFIX}{}", B64URL.encode(ews.as_bytes())),
    }
}

fn malformed() -> GraphError {
    GraphError::bad_request("ErrorInvalidIdMalformed", "Id is malformed.")
}

/// The EWS-side id string behind a Graph id (no kind check).
fn from_graph(s: &str) -> Result<String, GraphError> {
    let rest = s
        .trim()
        .strip_prefix(GRAPH_ID_PREFIX)
        .ok_or_else(malformed)?;
    // Clients sometimes pad or percent-decode differently; accept trailing '='.
    let bytes = B64URL
        .decode(rest.trim_end_matches('='))
        .map_err(|_| malformed())?;
    Ok(B64.encode(bytes))
}

/// Graph id of an item (single, master, or occurrence id).
pub fn graph_item_id(id: &ItemId) -> String {
    to_graph(id.as_str())
}

/// The store id behind a Graph item id: a plain item id or an occurrence id
/// ([`crate::model::parse_occurrence_id`] splits the latter). Anything else, EWS ids
/// included, is `400 ErrorInvalidIdMalformed`.
pub fn parse_graph_item_id(s: &str) -> Result<ItemId, GraphError> {
    let ews = from_graph(s)?;
    if is_well_formed_id(&ews, KIND_ITEM) || parse_occurrence_id(&ews).is_some() {
        Ok(ItemId(ews))
    } else {
        Err(malformed())
    }
}

/// Graph id of a folder.
pub fn graph_folder_id(id: &FolderId) -> String {
    to_graph(id.as_str())
}

/// The store id behind a Graph folder id; `400 ErrorInvalidIdMalformed` otherwise.
pub fn parse_graph_folder_id(s: &str) -> Result<FolderId, GraphError> {
    let ews = from_graph(s)?;
    if is_well_formed_id(&ews, KIND_FOLDER) {
        Ok(FolderId(ews))
    } else {
        Err(malformed())
    }
}

/// True when `s` is an occurrence's Graph id.
pub fn is_occurrence_id(s: &str) -> bool {
    from_graph(s).is_ok_and(|e| parse_occurrence_id(&e).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{make_id, make_occurrence_id};

    #[test]
    fn ids_round_trip_and_reject_ews_ids() -> Result<(), Box<dyn std::error::Error>> {
        let item = ItemId(make_id(KIND_ITEM, 42));
        let g = graph_item_id(&item);
        assert!(g.starts_with(GRAPH_ID_PREFIX));
        assert!(!g.contains(['/', '+', '=']), "URL-path-safe: {g}");
        assert_ne!(g, item.0);
        assert_eq!(parse_graph_item_id(&g)?, item);
        // The EWS id itself is malformed for Graph.
        let err = parse_graph_item_id(&item.0).err().map(|e| e.code);
        assert_eq!(err.as_deref(), Some("ErrorInvalidIdMalformed"));
        // Folder ids are not item ids and vice versa.
        let folder = FolderId(make_id(KIND_FOLDER, 7));
        let gf = graph_folder_id(&folder);
        assert_eq!(parse_graph_folder_id(&gf)?, folder);
        assert!(parse_graph_item_id(&gf).is_err());
        assert!(parse_graph_folder_id(&g).is_err());
        // Occurrence ids survive the round trip and still parse as occurrences.
        let start = chrono::DateTime::from_timestamp(1_800_000_000, 0).ok_or("time")?;
        let occ = make_occurrence_id(&item, start);
        let go = graph_item_id(&occ);
        assert!(is_occurrence_id(&go));
        assert!(!is_occurrence_id(&g));
        let back = parse_graph_item_id(&go)?;
        assert_eq!(parse_occurrence_id(back.as_str()), Some((item, start)));
        assert!(parse_graph_item_id("AAkALg!!").is_err());
        Ok(())
    }
}
