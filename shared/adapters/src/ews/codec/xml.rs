//! The two XML primitives the codec is built on: an escaping string builder for requests and a
//! tiny element tree for responses.
//!
//! Requests are small and fully known up front, so a `String` builder that escapes every text node
//! and attribute value is simpler than quick-xml's `Writer` (whose `io::Result` would force every
//! builder to be fallible for a `Vec<u8>` sink that cannot fail). Escaping itself is quick-xml's.
//!
//! Responses are parsed into a tree first because EWS response messages are shallow but the
//! interesting bits sit at different depths per operation; walking a tree keeps each parser a few
//! lines long. Response sizes are bounded by our own batch and page sizes (≤ 512 changes), so the
//! tree never gets big.

use quick_xml::escape::{escape, resolve_predefined_entity};
use quick_xml::events::Event;
use quick_xml::reader::Reader;

/// Builds XML text; every text node and attribute value goes through [`escape`]. Opaque outside
/// the crate: only the codec's operations write into it.
#[derive(Debug, Default)]
pub struct XmlBuilder {
    out: String,
}

impl XmlBuilder {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn finish(self) -> String {
        self.out
    }

    /// `<name a="v" …>`
    pub(crate) fn open(&mut self, name: &str, attrs: &[(&str, &str)]) {
        self.out.push('<');
        self.out.push_str(name);
        self.attrs(attrs);
        self.out.push('>');
    }

    /// `</name>`
    pub(crate) fn close(&mut self, name: &str) {
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push('>');
    }

    /// `<name a="v" …/>`
    pub(crate) fn empty(&mut self, name: &str, attrs: &[(&str, &str)]) {
        self.out.push('<');
        self.out.push_str(name);
        self.attrs(attrs);
        self.out.push_str("/>");
    }

    /// `<name a="v" …>text</name>`
    pub(crate) fn text_element(&mut self, name: &str, attrs: &[(&str, &str)], text: &str) {
        self.open(name, attrs);
        self.text(text);
        self.close(name);
    }

    /// `<name …>` + whatever `inner` writes + `</name>`
    pub(crate) fn element(
        &mut self,
        name: &str,
        attrs: &[(&str, &str)],
        inner: impl FnOnce(&mut Self),
    ) {
        self.open(name, attrs);
        inner(self);
        self.close(name);
    }

    pub(crate) fn text(&mut self, text: &str) {
        self.out.push_str(&escape(xml_safe(text).as_ref()));
    }

    fn attrs(&mut self, attrs: &[(&str, &str)]) {
        for (key, value) in attrs {
            self.out.push(' ');
            self.out.push_str(key);
            self.out.push_str("=\"");
            self.out.push_str(&escape(xml_safe(value).as_ref()));
            self.out.push('"');
        }
    }
}

/// Drops characters XML 1.0 cannot carry at all (C0 controls other than tab/CR/LF, U+FFFE/FFFF).
/// CRM free text occasionally contains them (pasted from other tools); escaping cannot help there
/// and Exchange would reject the whole batch with ErrorSchemaValidation, so they are removed.
fn xml_safe(text: &str) -> std::borrow::Cow<'_, str> {
    let allowed = |c: char| {
        matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{FFFE}' && c != '\u{FFFF}')
    };
    if text.chars().all(allowed) {
        std::borrow::Cow::Borrowed(text)
    } else {
        std::borrow::Cow::Owned(text.chars().filter(|c| allowed(*c)).collect())
    }
}

/// Why a response could not be read as XML.
#[derive(Debug, thiserror::Error)]
pub enum XmlError {
    #[error("response is not UTF-8")]
    NotUtf8(#[source] std::str::Utf8Error),
    #[error("response is not well-formed XML")]
    Syntax(#[source] quick_xml::Error),
    #[error("response XML has an unknown entity reference &{0};")]
    UnknownEntity(String),
    #[error("response XML is truncated or has unbalanced tags")]
    Unbalanced,
    #[error("response XML has no root element")]
    Empty,
}

/// One element of a parsed response. Names are *local* names: EWS responses use fixed namespaces
/// (s:, m:, t:, e:) whose prefixes vary between servers and proxies, and no two elements we read
/// share a local name in a position where the namespace would disambiguate them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Element {
    pub(crate) name: String,
    pub(crate) attrs: Vec<(String, String)>,
    pub(crate) children: Vec<Element>,
    /// Concatenated character data directly inside this element.
    pub(crate) text: String,
}

impl Element {
    pub(crate) fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    pub(crate) fn children_named<'a>(
        &'a self,
        name: &'a str,
    ) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// Text of a direct child, trimmed; `None` when the child is absent.
    pub(crate) fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.trim())
    }

    /// Depth-first search for the first descendant (or self) with this local name.
    pub(crate) fn find(&self, name: &str) -> Option<&Element> {
        if self.name == name {
            return Some(self);
        }
        self.children.iter().find_map(|c| c.find(name))
    }
}

fn local(qname: &str) -> String {
    qname
        .rsplit_once(':')
        .map_or(qname, |(_, local)| local)
        .to_owned()
}

fn start_element(start: &quick_xml::events::BytesStart<'_>) -> Result<Element, XmlError> {
    let mut attrs = Vec::new();
    for attr in start.attributes() {
        let attr = attr.map_err(|e| XmlError::Syntax(e.into()))?;
        let key = attr.key.as_ref();
        // Namespace declarations are not data.
        if key == "xmlns" || key.starts_with("xmlns:") {
            continue;
        }
        let value = attr
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map_err(XmlError::Syntax)?;
        attrs.push((local(key), value.into_owned()));
    }
    Ok(Element {
        name: local(start.name().as_ref()),
        attrs,
        ..Element::default()
    })
}

/// Parses a whole document into its root element.
pub(crate) fn parse(xml: &[u8]) -> Result<Element, XmlError> {
    let text = std::str::from_utf8(xml).map_err(XmlError::NotUtf8)?;
    let mut reader = Reader::from_str(text);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;

    let push_text = |stack: &mut Vec<Element>, s: &str| {
        if let Some(top) = stack.last_mut() {
            top.text.push_str(s);
        }
    };

    loop {
        match reader.read_event().map_err(XmlError::Syntax)? {
            Event::Start(start) => stack.push(start_element(&start)?),
            Event::Empty(start) => {
                let el = start_element(&start)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::End(_) => {
                let el = stack.pop().ok_or(XmlError::Unbalanced)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::Text(t) => push_text(&mut stack, &t.xml10_content()),
            Event::CData(c) => push_text(&mut stack, &c.xml10_content()),
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref().map_err(XmlError::Syntax)? {
                    Some(ch) => ch.to_string(),
                    None => {
                        let name = r.into_inner();
                        resolve_predefined_entity(&name)
                            .ok_or_else(|| XmlError::UnknownEntity(name.to_string()))?
                            .to_owned()
                    }
                };
                push_text(&mut stack, &resolved);
            }
            Event::Eof => break,
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) | Event::DocType(_) => {}
        }
    }
    if !stack.is_empty() {
        return Err(XmlError::Unbalanced);
    }
    root.ok_or(XmlError::Empty)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_escapes_text_and_attributes_and_drops_forbidden_chars() {
        let mut b = XmlBuilder::new();
        b.text_element("t:A", &[("V", "a\"<&>")], "x<y & \u{1}z");
        assert_eq!(
            b.finish(),
            r#"<t:A V="a&quot;&lt;&amp;&gt;">x&lt;y &amp; z</t:A>"#
        );
    }

    #[test]
    fn parse_resolves_entities_and_local_names() {
        let root = parse(br#"<?xml version="1.0"?><s:E xmlns:s="u" s:a="1&amp;2"><t:X>a &amp; b&#x21;</t:X><t:Y/></s:E>"#).expect("well-formed");
        assert_eq!(root.name, "E");
        assert_eq!(root.attr("a"), Some("1&2"));
        assert_eq!(root.child_text("X"), Some("a & b!"));
        assert!(root.child("Y").is_some());
    }

    #[test]
    fn parse_rejects_truncated_documents() {
        assert!(matches!(parse(b"<a><b></b>"), Err(XmlError::Unbalanced)));
        assert!(parse(b"<a><b></a>").is_err());
    }
}
