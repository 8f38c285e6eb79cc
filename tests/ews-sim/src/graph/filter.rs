//! The OData query subset Graph clients use on mailbox items: `$filter` with `eq`/`ne`,
//! `and`/`or`, parentheses and `singleValueExtendedProperties/Any(ep: …)`, and `$expand` of
//! single-value extended properties (with their own `$filter=id eq '…'`).
//!
//! Extended property ids use Graph's forms (`String {guid} Name CrmId`, `String {guid} Id
//! 0x8005`, `String 0x3a45`) and map onto the store's [`ExtendedPropertyKey`], so a stamp
//! written through EWS is the same property here. Names compare case-sensitively, values
//! case-insensitively, as Exchange does.

use crate::graph::error::GraphError;
use crate::model::{ExtendedPropertyKey, ExtendedValue, PropertyRef};

/// A Graph extended-property id as the store's key; `None` when malformed.
pub fn parse_property_id(s: &str) -> Option<ExtendedPropertyKey> {
    let s = s.trim();
    let (ty, rest) = s.split_once(char::is_whitespace)?;
    let rest = rest.trim_start();
    if let Some(tag) = rest.strip_prefix("0x").or_else(|| rest.strip_prefix("0X")) {
        let tag = u16::from_str_radix(tag.trim(), 16).ok()?;
        return Some(ExtendedPropertyKey {
            property_set: None,
            property: PropertyRef::Tag(tag),
            property_type: ty.to_string(),
        });
    }
    let (guid, rest) = rest.split_once(char::is_whitespace)?;
    let guid = guid.strip_prefix('{')?.strip_suffix('}')?;
    if guid.len() != 36 || !guid.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        return None;
    }
    let rest = rest.trim_start();
    let property = if let Some(name) = rest.strip_prefix("Name ") {
        let name = name.trim();
        if name.is_empty() {
            return None;
        }
        PropertyRef::Name(name.to_string())
    } else if let Some(id) = rest.strip_prefix("Id ") {
        let id = id.trim();
        let v = match id.strip_prefix("0x").or_else(|| id.strip_prefix("0X")) {
            Some(h) => i64::from_str_radix(h, 16).ok()? as i32,
            None => id.parse().ok()?,
        };
        PropertyRef::Id(v)
    } else {
        return None;
    };
    Some(ExtendedPropertyKey {
        property_set: Some(guid.to_ascii_lowercase()),
        property,
        property_type: ty.to_string(),
    })
}

/// The Graph id of a stored extended property (GUIDs lower-case, as Graph echoes them).
pub fn render_property_id(k: &ExtendedPropertyKey) -> String {
    let ty = &k.property_type;
    match (&k.property_set, &k.property) {
        (None, PropertyRef::Tag(t)) => format!("{ty} 0x{t:x}"),
        (Some(set), PropertyRef::Name(n)) => format!("{ty} {{{set}}} Name {n}"),
        (Some(set), PropertyRef::Id(i)) => format!("{ty} {{{set}}} Id 0x{i:x}"),
        (Some(set), PropertyRef::Tag(t)) => format!("{ty} {{{set}}} Id 0x{t:x}"),
        (None, PropertyRef::Name(n)) => format!("{ty} Name {n}"),
        (None, PropertyRef::Id(i)) => format!("{ty} 0x{i:x}"),
    }
}

/// Single-value extended properties of an item as Graph lists them (array types excluded).
pub fn single_values<'a>(
    props: &'a std::collections::BTreeMap<ExtendedPropertyKey, ExtendedValue>,
) -> impl Iterator<Item = (&'a ExtendedPropertyKey, &'a str)> + 'a {
    props
        .iter()
        .filter(|(k, _)| !k.is_array())
        .filter_map(|(k, v)| v.as_single().map(|s| (k, s)))
}

// ---------------------------------------------------------------- $filter

#[derive(Clone, Debug, PartialEq)]
pub enum Filter {
    Or(Vec<Filter>),
    And(Vec<Filter>),
    Not(Box<Filter>),
    /// `path op 'literal'` (path segments split on `/`).
    Cmp {
        path: Vec<String>,
        op: CmpOp,
        value: Literal,
    },
    /// `collection/any(var: body)`.
    Any {
        collection: String,
        var: String,
        body: Box<Filter>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Literal {
    Str(String),
    Bool(bool),
    Null,
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    LParen,
    RParen,
    Colon,
    Comma,
}

fn bad(m: impl Into<String>) -> GraphError {
    GraphError::invalid(format!("Invalid filter clause: {}", m.into()))
}

fn tokenize(s: &str) -> Result<Vec<Tok>, GraphError> {
    let mut out = Vec::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push(Tok::LParen);
                i += 1;
            }
            ')' => {
                out.push(Tok::RParen);
                i += 1;
            }
            ':' => {
                out.push(Tok::Colon);
                i += 1;
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1;
            }
            '\'' => {
                // OData doubles a quote inside a string literal.
                let mut v = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(bad("unterminated string literal")),
                        Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                            v.push('\'');
                            i += 2;
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(ch) => {
                            v.push(*ch);
                            i += 1;
                        }
                    }
                }
                out.push(Tok::Str(v));
            }
            _ => {
                let start = i;
                while i < chars.len()
                    && !chars[i].is_whitespace()
                    && !matches!(chars[i], '(' | ')' | ':' | ',' | '\'')
                {
                    i += 1;
                }
                out.push(Tok::Ident(chars[start..i].iter().collect()));
            }
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn keyword(&self, kw: &str) -> bool {
        matches!(self.peek(), Some(Tok::Ident(s)) if s.eq_ignore_ascii_case(kw))
    }

    fn expect(&mut self, t: Tok) -> Result<(), GraphError> {
        match self.next() {
            Some(x) if x == t => Ok(()),
            other => Err(bad(format!("expected {t:?}, found {other:?}"))),
        }
    }

    fn or(&mut self) -> Result<Filter, GraphError> {
        let mut parts = vec![self.and()?];
        while self.keyword("or") {
            self.pos += 1;
            parts.push(self.and()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Filter::Or(parts)
        })
    }

    fn and(&mut self) -> Result<Filter, GraphError> {
        let mut parts = vec![self.unary()?];
        while self.keyword("and") {
            self.pos += 1;
            parts.push(self.unary()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Filter::And(parts)
        })
    }

    fn unary(&mut self) -> Result<Filter, GraphError> {
        if self.keyword("not") {
            self.pos += 1;
            return Ok(Filter::Not(Box::new(self.unary()?)));
        }
        if self.peek() == Some(&Tok::LParen) {
            self.pos += 1;
            let f = self.or()?;
            self.expect(Tok::RParen)?;
            return Ok(f);
        }
        let Some(Tok::Ident(path)) = self.next() else {
            return Err(bad("expected a property path"));
        };
        let segments: Vec<String> = path.split('/').map(str::to_string).collect();
        // `collection/any(v: …)`: the last segment is the lambda operator.
        if let Some(last) = segments.last()
            && last.eq_ignore_ascii_case("any")
            && segments.len() >= 2
        {
            self.expect(Tok::LParen)?;
            let Some(Tok::Ident(var)) = self.next() else {
                return Err(bad("expected a lambda variable"));
            };
            self.expect(Tok::Colon)?;
            let body = self.or()?;
            self.expect(Tok::RParen)?;
            return Ok(Filter::Any {
                collection: segments[..segments.len() - 1].join("/"),
                var,
                body: Box::new(body),
            });
        }
        let op = match self.next() {
            Some(Tok::Ident(o)) if o.eq_ignore_ascii_case("eq") => CmpOp::Eq,
            Some(Tok::Ident(o)) if o.eq_ignore_ascii_case("ne") => CmpOp::Ne,
            other => {
                return Err(bad(format!(
                    "unsupported operator {other:?} (the simulator knows eq and ne)"
                )));
            }
        };
        let value = match self.next() {
            Some(Tok::Str(s)) => Literal::Str(s),
            Some(Tok::Ident(v)) if v == "true" => Literal::Bool(true),
            Some(Tok::Ident(v)) if v == "false" => Literal::Bool(false),
            Some(Tok::Ident(v)) if v == "null" => Literal::Null,
            other => return Err(bad(format!("expected a literal, found {other:?}"))),
        };
        Ok(Filter::Cmp {
            path: segments,
            op,
            value,
        })
    }
}

pub fn parse_filter(s: &str) -> Result<Filter, GraphError> {
    let mut p = Parser {
        toks: tokenize(s)?,
        pos: 0,
    };
    let f = p.or()?;
    if p.pos != p.toks.len() {
        return Err(bad(format!("unexpected {:?}", p.peek())));
    }
    Ok(f)
}

/// What a filter is evaluated against: scalar properties by name (string values) and the
/// item's single-value extended properties.
pub struct Subject<'a> {
    pub scalars: Vec<(&'static str, Option<String>)>,
    pub extended: Vec<(&'a ExtendedPropertyKey, &'a str)>,
}

/// Evaluates `f`; an unknown property or collection is a `400`, as on Graph.
pub fn matches(f: &Filter, s: &Subject<'_>) -> Result<bool, GraphError> {
    eval(f, s, None)
}

fn eval(
    f: &Filter,
    s: &Subject<'_>,
    bound: Option<(&str, (&ExtendedPropertyKey, &str))>,
) -> Result<bool, GraphError> {
    match f {
        Filter::Or(v) => {
            for x in v {
                if eval(x, s, bound)? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        Filter::And(v) => {
            for x in v {
                if !eval(x, s, bound)? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        Filter::Not(x) => Ok(!eval(x, s, bound)?),
        Filter::Any {
            collection,
            var,
            body,
        } => {
            if collection != "singleValueExtendedProperties" {
                return Err(bad(format!("any() over '{collection}' is not supported")));
            }
            for (k, v) in &s.extended {
                if eval(body, s, Some((var, (k, v))))? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        Filter::Cmp { path, op, value } => {
            let hit = match (bound, path.as_slice()) {
                (Some((var, (key, v))), [p0, p1]) if p0 == var => match (p1.as_str(), value) {
                    ("id", Literal::Str(lit)) => {
                        let want = parse_property_id(lit).ok_or_else(|| {
                            bad(format!("'{lit}' is not an extended property id"))
                        })?;
                        &want == key
                    }
                    ("value", Literal::Str(lit)) => v.to_lowercase() == lit.to_lowercase(),
                    (other, _) => return Err(bad(format!("unsupported '{var}/{other}'"))),
                },
                (_, [name]) => {
                    let Some((_, actual)) = s.scalars.iter().find(|(n, _)| n == name) else {
                        return Err(bad(format!(
                            "Could not find a property named '{name}' on the entity type."
                        )));
                    };
                    match (actual, value) {
                        (None, Literal::Null) => true,
                        (Some(a), Literal::Str(lit)) => a.to_lowercase() == lit.to_lowercase(),
                        (Some(a), Literal::Bool(b)) => a == &b.to_string(),
                        _ => false,
                    }
                }
                _ => return Err(bad(format!("unsupported path '{}'", path.join("/")))),
            };
            Ok(match op {
                CmpOp::Eq => hit,
                CmpOp::Ne => !hit,
            })
        }
    }
}

// ---------------------------------------------------------------- $expand

/// Which single-value extended properties to include (`$expand`).
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Expand {
    /// Not expanded: the property is absent from the JSON.
    #[default]
    None,
    All,
    Only(Vec<ExtendedPropertyKey>),
}

impl Expand {
    pub fn includes(&self, k: &ExtendedPropertyKey) -> bool {
        match self {
            Expand::None => false,
            Expand::All => true,
            Expand::Only(v) => v.contains(k),
        }
    }
}

/// Splits on commas outside parentheses.
fn split_top(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    let mut quoted = false;
    for (i, c) in s.char_indices() {
        match c {
            '\'' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => depth -= 1,
            ',' if !quoted && depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

/// Parses `$expand`. Only `singleValueExtendedProperties` (optionally with
/// `($filter=id eq '…' [or id eq '…'])`) is modelled; `multiValueExtendedProperties` is
/// accepted and ignored; anything else is a `400`.
pub fn parse_expand(s: &str) -> Result<Expand, GraphError> {
    let mut out = Expand::None;
    for part in split_top(s) {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let (name, args) = match part.find('(') {
            Some(i) => (
                &part[..i],
                Some(
                    part[i + 1..]
                        .strip_suffix(')')
                        .ok_or_else(|| GraphError::invalid(format!("Invalid $expand '{part}'")))?,
                ),
            ),
            None => (part, None),
        };
        match name.trim() {
            "singleValueExtendedProperties" => {}
            "multiValueExtendedProperties" => continue,
            other => {
                return Err(GraphError::invalid(format!(
                    "Parsing OData Select and Expand failed: Could not find a property named '{other}' on type 'microsoft.graph.outlookItem'."
                )));
            }
        }
        let Some(args) = args else {
            out = Expand::All;
            continue;
        };
        let filter = args
            .trim()
            .strip_prefix("$filter=")
            .ok_or_else(|| GraphError::invalid(format!("Invalid $expand options '{args}'")))?;
        let mut keys = Vec::new();
        collect_ids(&parse_filter(filter)?, &mut keys)?;
        match &mut out {
            Expand::All => {}
            Expand::Only(v) => v.extend(keys),
            Expand::None => out = Expand::Only(keys),
        }
    }
    Ok(out)
}

fn collect_ids(f: &Filter, out: &mut Vec<ExtendedPropertyKey>) -> Result<(), GraphError> {
    match f {
        Filter::Or(v) => v.iter().try_for_each(|x| collect_ids(x, out)),
        Filter::Cmp {
            path,
            op: CmpOp::Eq,
            value: Literal::Str(lit),
        } if path.len() == 1 && path[0] == "id" => {
            let k = parse_property_id(lit)
                .ok_or_else(|| bad(format!("'{lit}' is not an extended property id")))?;
            out.push(k);
            Ok(())
        }
        other => Err(bad(format!(
            "$expand of extended properties takes `id eq '…'` clauses, not {other:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CRM: &str = "String {00020329-0000-0000-C000-000000000046} Name CrmId";

    #[test]
    fn property_ids_map_to_store_keys() -> Result<(), Box<dyn std::error::Error>> {
        let k = parse_property_id(CRM).ok_or("parse")?;
        assert_eq!(k, ExtendedPropertyKey::crm_id());
        assert_eq!(
            render_property_id(&k),
            "String {00020329-0000-0000-c000-000000000046} Name CrmId"
        );
        let tag = parse_property_id("String 0x3A45").ok_or("tag")?;
        assert_eq!(tag.property, PropertyRef::Tag(0x3a45));
        let id = parse_property_id("Integer {00062008-0000-0000-C000-000000000046} Id 0x8503")
            .ok_or("id")?;
        assert_eq!(id.property, PropertyRef::Id(0x8503));
        assert!(parse_property_id("String CrmId").is_none());
        // Names are case-sensitive.
        assert_ne!(
            parse_property_id(&CRM.replace("CrmId", "crmid")),
            Some(ExtendedPropertyKey::crm_id())
        );
        Ok(())
    }

    #[test]
    fn filters_on_stamps() -> Result<(), Box<dyn std::error::Error>> {
        let key = ExtendedPropertyKey::crm_id();
        let subject = Subject {
            scalars: vec![("displayName", Some("CRM Contacts".into()))],
            extended: vec![(&key, "crm:Activity:4711")],
        };
        let one = format!(
            "singleValueExtendedProperties/Any(ep: ep/id eq '{CRM}' and ep/value eq 'crm:activity:4711')"
        );
        assert!(matches(&parse_filter(&one)?, &subject)?);
        let other = one.replace("4711", "4712");
        assert!(!matches(&parse_filter(&other)?, &subject)?);
        assert!(matches(
            &parse_filter(&format!("{other} or {one}"))?,
            &subject
        )?);
        assert!(matches(
            &parse_filter("displayName eq 'crm contacts'")?,
            &subject
        )?);
        assert!(parse_filter("displayName gt 'x'").is_err());
        assert!(matches(&parse_filter("nope eq 'x'")?, &subject).is_err());
        let quoted = parse_filter("displayName eq 'O''Neill'")?;
        assert!(matches!(quoted, Filter::Cmp { value: Literal::Str(ref s), .. } if s == "O'Neill"));
        Ok(())
    }

    #[test]
    fn expand_selects_properties() -> Result<(), Box<dyn std::error::Error>> {
        assert_eq!(parse_expand("singleValueExtendedProperties")?, Expand::All);
        let e = parse_expand(&format!(
            "singleValueExtendedProperties($filter=id eq '{CRM}')"
        ))?;
        assert!(e.includes(&ExtendedPropertyKey::crm_id()));
        assert!(!e.includes(&ExtendedPropertyKey::public_string("Other", "String")));
        assert!(parse_expand("attachments").is_err());
        Ok(())
    }
}
