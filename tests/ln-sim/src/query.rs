//! OData system query options (`$filter`, `$orderby`, `$top`, `$skip`, `$select`, `$expand`,
//! `$count`, `$skiptoken`) and server-driven paging.
//!
//! Paging uses a *keyset* skip token: it records the sort values of the last row served, and the
//! next page starts strictly after them. Unlike an offset, this neither skips nor repeats rows when
//! rows change between pages: a row modified mid-walk moves behind the cursor (later
//! `lastModified`) and is served again at the end, which is exactly what a change feed needs.

use std::cmp::Ordering;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::filter::{self, Expr, FilterError, lookup};
use crate::schema::{EntitySet, FieldType, resolve_path};

/// Why the query options were rejected (mapped to 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error(transparent)]
    Filter(#[from] FilterError),
    #[error("invalid {option}: {message}")]
    Invalid {
        option: &'static str,
        message: String,
    },
}

fn invalid(option: &'static str, message: impl Into<String>) -> QueryError {
    QueryError::Invalid {
        option,
        message: message.into(),
    }
}

/// Sort direction of one `$orderby` item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Asc,
    Desc,
}

/// Parsed query options for a collection request.
#[derive(Debug, Clone, Default)]
pub struct QueryOptions {
    pub filter: Option<Expr>,
    pub order_by: Vec<(String, Direction)>,
    pub top: Option<usize>,
    pub skip: usize,
    pub select: Option<Vec<String>>,
    pub expand_attendees: bool,
    pub count: bool,
    pub skip_token: Option<SkipToken>,
}

/// Opaque paging cursor, base64url(JSON) on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SkipToken {
    /// Sort key of the last row served.
    #[serde(rename = "a")]
    pub after: Vec<Value>,
    /// Rows still allowed by the client's `$top`, if any.
    #[serde(rename = "r", default, skip_serializing_if = "Option::is_none")]
    pub remaining: Option<usize>,
}

impl SkipToken {
    pub fn encode(&self) -> String {
        // Serialising a Vec<Value> cannot fail; fall back to an empty token defensively.
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    pub fn decode(token: &str) -> Result<Self, QueryError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| invalid("$skiptoken", "not a token issued by this service"))?;
        serde_json::from_slice(&bytes)
            .map_err(|_| invalid("$skiptoken", "not a token issued by this service"))
    }
}

impl QueryOptions {
    /// Parse the decoded `(name, value)` pairs of a query string for `set`.
    pub fn parse(set: EntitySet, pairs: &[(String, String)]) -> Result<Self, QueryError> {
        let mut options = QueryOptions::default();
        for (name, value) in pairs {
            match name.as_str() {
                "$filter" => options.filter = Some(filter::parse(value, set.fields())?),
                "$orderby" => options.order_by = parse_order_by(set, value)?,
                "$top" => {
                    options.top = Some(value.trim().parse().map_err(|_| {
                        invalid("$top", format!("'{value}' is not a non-negative integer"))
                    })?);
                }
                "$skip" => {
                    options.skip = value.trim().parse().map_err(|_| {
                        invalid("$skip", format!("'{value}' is not a non-negative integer"))
                    })?;
                }
                "$select" => options.select = Some(parse_select(set, value)?),
                "$expand" => {
                    let items: Vec<&str> = value.split(',').map(str::trim).collect();
                    for item in items {
                        if set == EntitySet::Activities && item == "attendees" {
                            options.expand_attendees = true;
                        } else {
                            return Err(invalid(
                                "$expand",
                                format!(
                                    "'{item}' is not a navigation property of {}",
                                    set.type_name()
                                ),
                            ));
                        }
                    }
                }
                "$count" => {
                    options.count = match value.as_str() {
                        "true" => true,
                        "false" => false,
                        _ => return Err(invalid("$count", "expected true or false")),
                    };
                }
                "$skiptoken" => options.skip_token = Some(SkipToken::decode(value)?),
                "$format" if value == "json" || value.starts_with("application/json") => {}
                other if other.starts_with('$') => {
                    return Err(invalid(
                        "query option",
                        format!("'{other}' is not supported"),
                    ));
                }
                // Custom (non-$) parameters are allowed by OData and ignored here.
                _ => {}
            }
        }
        Ok(options)
    }
}

fn parse_order_by(set: EntitySet, value: &str) -> Result<Vec<(String, Direction)>, QueryError> {
    let mut items = Vec::new();
    for item in value.split(',') {
        let mut words = item.split_whitespace();
        let Some(path) = words.next() else {
            return Err(invalid("$orderby", "empty item"));
        };
        let direction = match words.next() {
            None | Some("asc") => Direction::Asc,
            Some("desc") => Direction::Desc,
            Some(other) => return Err(invalid("$orderby", format!("unknown direction '{other}'"))),
        };
        if words.next().is_some() {
            return Err(invalid(
                "$orderby",
                format!("unexpected input in '{}'", item.trim()),
            ));
        }
        match resolve_path(set.fields(), path) {
            Some(FieldType::Complex(_) | FieldType::Navigation) | None => {
                return Err(invalid(
                    "$orderby",
                    format!("'{path}' is not a sortable property of {}", set.type_name()),
                ));
            }
            Some(_) => items.push((path.to_string(), direction)),
        }
    }
    Ok(items)
}

fn parse_select(set: EntitySet, value: &str) -> Result<Vec<String>, QueryError> {
    value
        .split(',')
        .map(str::trim)
        .map(|name| {
            if set.fields().iter().any(|f| f.name == name) {
                Ok(name.to_string())
            } else {
                Err(invalid(
                    "$select",
                    format!("'{name}' is not a property of {}", set.type_name()),
                ))
            }
        })
        .collect()
}

/// One candidate row: its JSON and the values that make its position unique (the entity key,
/// or an insertion sequence number where the key is not unique).
#[derive(Debug, Clone)]
pub struct Row {
    pub value: Value,
    pub tiebreak: Vec<Value>,
}

/// One page of results.
#[derive(Debug, Clone)]
pub struct Page {
    pub rows: Vec<Value>,
    /// Total matching rows (before `$top`/paging), for `$count=true`.
    pub total: usize,
    /// Present when more rows follow.
    pub next: Option<SkipToken>,
}

/// Total order on JSON values of one property: null first, then by type.
fn compare_json(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Less,
        (_, Value::Null) => Ordering::Greater,
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Value::String(x), Value::String(y)) => {
            // Date-times with different offsets or precisions must compare as instants.
            match (
                chrono::DateTime::parse_from_rfc3339(x),
                chrono::DateTime::parse_from_rfc3339(y),
            ) {
                (Ok(dx), Ok(dy)) => dx.cmp(&dy),
                _ => x.cmp(y),
            }
        }
        _ => a.to_string().cmp(&b.to_string()),
    }
}

fn sort_key(row: &Row, order_by: &[(String, Direction)]) -> Vec<Value> {
    order_by
        .iter()
        .map(|(path, _)| lookup(&row.value, path).clone())
        .chain(row.tiebreak.iter().cloned())
        .collect()
}

fn compare_keys(a: &[Value], b: &[Value], order_by: &[(String, Direction)]) -> Ordering {
    for (i, (x, y)) in a.iter().zip(b.iter()).enumerate() {
        let ord = compare_json(x, y);
        // Tiebreak columns (beyond the $orderby items) are always ascending.
        let ord = match order_by.get(i) {
            Some((_, Direction::Desc)) => ord.reverse(),
            _ => ord,
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    a.len().cmp(&b.len())
}

/// Filter, sort and cut one page out of `rows`.
pub fn run(rows: Vec<Row>, options: &QueryOptions, page_size: usize) -> Page {
    let mut keyed: Vec<(Vec<Value>, Row)> = rows
        .into_iter()
        .filter(|row| {
            options
                .filter
                .as_ref()
                .is_none_or(|f| f.matches(&row.value))
        })
        .map(|row| (sort_key(&row, &options.order_by), row))
        .collect();
    keyed.sort_by(|(a, _), (b, _)| compare_keys(a, b, &options.order_by));
    let total = keyed.len();

    let (start, limit) = match &options.skip_token {
        Some(token) => {
            let start = keyed.partition_point(|(key, _)| {
                compare_keys(key, &token.after, &options.order_by) != Ordering::Greater
            });
            (start, token.remaining)
        }
        None => (options.skip.min(keyed.len()), options.top),
    };
    let available = keyed.len() - start;
    let wanted = limit.map_or(available, |l| l.min(available));
    let take = wanted.min(page_size.max(1));
    let page: Vec<(Vec<Value>, Row)> = keyed.into_iter().skip(start).take(take).collect();
    let next = if take < wanted {
        page.last().map(|(key, _)| SkipToken {
            after: key.clone(),
            remaining: limit.map(|l| l - take),
        })
    } else {
        None
    };
    Page {
        rows: page.into_iter().map(|(_, row)| row.value).collect(),
        total,
        next,
    }
}

/// Apply `$select`, keeping the annotations a client needs (`@odata.etag`) and, for activities,
/// the expanded attendees.
pub fn project(value: Value, select: Option<&[String]>) -> Value {
    let (Some(select), Value::Object(map)) = (select, &value) else {
        return value;
    };
    let kept = map
        .iter()
        .filter(|(k, _)| {
            k.starts_with('@') || k.as_str() == "attendees" || select.iter().any(|s| s == *k)
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Value::Object(kept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rows(n: usize, same_time: bool) -> Vec<Row> {
        (0..n)
            .map(|i| {
                let ts = if same_time {
                    "2026-11-29T10:00:00Z".to_string()
                } else {
                    format!("2026-11-29T10:00:{:02}Z", i % 60)
                };
                Row {
                    value: json!({"contact": format!("C{i:03}"), "lastModified": ts}),
                    tiebreak: vec![json!(format!("C{i:03}"))],
                }
            })
            .collect()
    }

    fn pairs(q: &[(&str, &str)]) -> Vec<(String, String)> {
        q.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn keyset_paging_walks_ties_without_loss() {
        let options = QueryOptions::parse(
            EntitySet::Contacts,
            &pairs(&[("$orderby", "lastModified,contact")]),
        );
        let mut options = match options {
            Ok(o) => o,
            Err(e) => panic!("{e}"),
        };
        let mut seen = Vec::new();
        loop {
            let page = run(rows(25, true), &options, 10);
            seen.extend(page.rows.iter().map(|r| r["contact"].clone()));
            match page.next {
                Some(token) => {
                    let decoded = SkipToken::decode(&token.encode());
                    options.skip_token = decoded.ok();
                }
                None => break,
            }
        }
        assert_eq!(seen.len(), 25);
        assert_eq!(seen[0], json!("C000"));
        assert_eq!(seen[24], json!("C024"));
    }

    #[test]
    fn top_limits_across_pages_and_desc_order() {
        let options = QueryOptions::parse(
            EntitySet::Contacts,
            &pairs(&[("$orderby", "lastModified desc"), ("$top", "15")]),
        );
        let mut options = match options {
            Ok(o) => o,
            Err(e) => panic!("{e}"),
        };
        let first = run(rows(30, false), &options, 10);
        assert_eq!(first.rows.len(), 10);
        assert_eq!(first.rows[0]["contact"], json!("C029"));
        options.skip_token = first.next;
        let second = run(rows(30, false), &options, 10);
        assert_eq!(second.rows.len(), 5);
        assert!(second.next.is_none());
        assert_eq!(second.rows[4]["contact"], json!("C015"));
    }

    #[test]
    fn rejects_unknown_options_and_properties() {
        for q in [
            ("$orderby", "nosuch"),
            ("$orderby", "contact sideways"),
            ("$top", "-1"),
            ("$expand", "attendees"),
            ("$select", "nosuch"),
            ("$search", "x"),
            ("$skiptoken", "!!"),
        ] {
            assert!(
                QueryOptions::parse(EntitySet::Contacts, &pairs(&[q])).is_err(),
                "{q:?}"
            );
        }
        assert!(
            QueryOptions::parse(EntitySet::Activities, &pairs(&[("$expand", "attendees")])).is_ok()
        );
    }
}
