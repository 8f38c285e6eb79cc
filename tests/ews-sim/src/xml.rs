//! A small namespace-resolved DOM over quick-xml, plus output helpers.
//!
//! SOAP requests are tiny (kilobytes), so a tree is simpler and safer than streaming: every
//! handler can look ahead, and clients may use any prefixes because each element keeps its
//! resolved namespace URI instead of its prefix.

use quick_xml::NsReader;
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;

use crate::error::XmlError;

pub const NS_SOAP: &str = "http://schemas.xmlsoap.org/soap/envelope/";
pub const NS_M: &str = "http://schemas.microsoft.com/exchange/services/2006/messages";
pub const NS_T: &str = "http://schemas.microsoft.com/exchange/services/2006/types";
pub const NS_ERRORS: &str = "http://schemas.microsoft.com/exchange/services/2006/errors";

/// One element: resolved namespace, local name, attributes by local name, children, text.
#[derive(Debug, Clone, Default)]
pub struct Element {
    pub ns: String,
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Element>,
    pub text: String,
    /// 1-based line of the start tag, for schema-style error messages.
    pub line: usize,
}

impl Element {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// Text of a direct child, if the child exists.
    pub fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.as_str())
    }

    pub fn is(&self, ns: &str, name: &str) -> bool {
        self.ns == ns && self.name == name
    }
}

/// Parses a whole document into its root element.
pub fn parse(input: &str) -> Result<Element, XmlError> {
    let mut reader = NsReader::from_str(input);
    // Text is kept verbatim (no trimming: it would eat spaces next to entity references);
    // elements with children drop their text instead, as SOAP has no mixed content.
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    // Line numbers are counted incrementally: rescanning from the start for every element made
    // parsing quadratic in the document size.
    let mut lines = LineCounter::default();
    loop {
        let pos = reader.buffer_position() as usize;
        let (ns, event) = reader
            .read_resolved_event()
            .map_err(|e| XmlError::Malformed(e.to_string()))?;
        let ns = match ns {
            ResolveResult::Bound(n) => n.as_ref().to_string(),
            ResolveResult::Unbound => String::new(),
            ResolveResult::Unknown(p) => {
                return Err(XmlError::Malformed(format!(
                    "undeclared namespace prefix '{p}'"
                )));
            }
        };
        match event {
            Event::Start(_) | Event::Empty(_) if root.is_some() && stack.is_empty() => {
                return Err(XmlError::Malformed("content after the root element".into()));
            }
            Event::Start(e) => {
                let el = start_element(&e, ns, lines.line_at(input, pos))?;
                stack.push(el);
            }
            Event::Empty(e) => {
                let el = start_element(&e, ns, lines.line_at(input, pos))?;
                attach(&mut stack, &mut root, el);
            }
            Event::End(_) => {
                let mut el = stack
                    .pop()
                    .ok_or_else(|| XmlError::Malformed("unbalanced end tag".into()))?;
                if !el.children.is_empty() {
                    el.text.clear();
                }
                attach(&mut stack, &mut root, el);
            }
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.xml10_content());
                }
            }
            Event::CData(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.xml10_content());
                }
            }
            Event::GeneralRef(r) => {
                let resolved = if let Some(ch) = r
                    .resolve_char_ref()
                    .map_err(|e| XmlError::Malformed(e.to_string()))?
                {
                    ch.to_string()
                } else {
                    let name = r.xml10_content();
                    match name.as_ref() {
                        "lt" => "<".into(),
                        "gt" => ">".into(),
                        "amp" => "&".into(),
                        "apos" => "'".into(),
                        "quot" => "\"".into(),
                        other => {
                            return Err(XmlError::Malformed(format!("unknown entity &{other};")));
                        }
                    }
                };
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&resolved);
                }
            }
            Event::Eof => break,
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
        }
    }
    if !stack.is_empty() {
        return Err(XmlError::Malformed("unexpected end of document".into()));
    }
    root.ok_or_else(|| XmlError::Malformed("no root element".into()))
}

fn attach(stack: &mut [Element], root: &mut Option<Element>, el: Element) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(el),
        None => *root = Some(el),
    }
}

fn start_element(
    e: &quick_xml::events::BytesStart<'_>,
    ns: String,
    line: usize,
) -> Result<Element, XmlError> {
    let name = e.local_name().as_ref().to_string();
    let mut attrs = Vec::new();
    for a in e.attributes() {
        let a = a.map_err(|e| XmlError::Malformed(e.to_string()))?;
        let key = a.key;
        // Namespace declarations are consumed by the resolver; they are not data.
        if key.as_ref() == "xmlns" || key.as_ref().starts_with("xmlns:") {
            continue;
        }
        let local = key.local_name().as_ref().to_string();
        let value = a
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map_err(|e| XmlError::Malformed(e.to_string()))?
            .into_owned();
        attrs.push((local, value));
    }
    Ok(Element {
        ns,
        name,
        attrs,
        children: Vec::new(),
        text: String::new(),
        line,
    })
}

/// The 1-based line of a byte position, for positions that only move forward.
#[derive(Default)]
struct LineCounter {
    pos: usize,
    newlines: usize,
}

impl LineCounter {
    fn line_at(&mut self, input: &str, pos: usize) -> usize {
        let end = pos.min(input.len());
        if end > self.pos {
            self.newlines += input.as_bytes()[self.pos..end]
                .iter()
                .filter(|b| **b == b'\n')
                .count();
            self.pos = end;
        }
        self.newlines + 1
    }
}

/// Escapes text and attribute values (quotes included, so one function serves both).
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// `<tag>text</tag>` with escaping.
pub fn text_el(out: &mut String, tag: &str, text: &str) {
    out.push('<');
    out.push_str(tag);
    out.push('>');
    out.push_str(&esc(text));
    out.push_str("</");
    out.push_str(tag);
    out.push('>');
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn resolves_namespaces_with_any_prefix() {
        let doc = r#"<a:Envelope xmlns:a="http://schemas.xmlsoap.org/soap/envelope/"><a:Body><x:GetItem xmlns:x="http://schemas.microsoft.com/exchange/services/2006/messages" k="v &amp; w">t &lt;1&gt;</x:GetItem></a:Body></a:Envelope>"#;
        let root = parse(doc).unwrap();
        assert!(root.is(NS_SOAP, "Envelope"));
        let op = &root.children[0].children[0];
        assert!(op.is(NS_M, "GetItem"));
        assert_eq!(op.attr("k"), Some("v & w"));
        assert_eq!(op.text, "t <1>");
    }

    #[test]
    fn rejects_malformed() {
        assert!(parse("<a><b></a>").is_err());
        assert!(parse("<a xmlns:q='u'><z:b/></a>").is_err());
        assert!(parse("not xml").is_err());
    }
}
