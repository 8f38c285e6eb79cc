//! XSD validation of EWS requests with `xmllint` (exchange.md §2.11).
//!
//! The SOAP envelope is outside Microsoft's schemas, so each child of `soap:Header` and
//! `soap:Body` is written out as its own document, carrying the namespace declarations it
//! inherited, and all of them are validated in one `xmllint --schema` run against a wrapper
//! schema that imports xml.xsd, messages.xsd and types.xsd. One run matters: loading the
//! 600 kB of schemas costs far more than validating a request.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use quick_xml::Reader;
use quick_xml::events::Event;

use crate::error::{SchemaError, SchemaViolation};
use crate::xml::{NS_M, NS_T};

/// Locates the EWS schemas: `$LNSYNC_EWS_SCHEMAS`, else `../shared/schemas/ews` relative to
/// the workspace root.
pub fn schema_dir() -> Result<PathBuf, SchemaError> {
    if let Some(dir) = std::env::var_os("LNSYNC_EWS_SCHEMAS") {
        let p = PathBuf::from(dir);
        return if p.join("types.xsd").is_file() {
            Ok(p)
        } else {
            Err(SchemaError::SchemaDirMissing(p))
        };
    }
    // tests/ews-sim → workspace root is two levels up; shared/ sits beside the root.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("..");
    let p = root.join("..").join("shared").join("schemas").join("ews");
    if p.join("types.xsd").is_file() {
        Ok(p.canonicalize().unwrap_or(p))
    } else {
        Err(SchemaError::SchemaDirMissing(p))
    }
}

/// One standalone document cut out of an envelope.
#[derive(Debug, Clone)]
pub struct Part {
    /// Local name of the element (`RequestServerVersion`, `CreateItem`, …).
    pub element: String,
    pub xml: String,
}

/// Splits a SOAP envelope into the children of Header and Body as standalone documents.
pub fn split_envelope(envelope: &str) -> Result<Vec<Part>, String> {
    let mut reader = Reader::from_str(envelope);
    let mut depth = 0usize;
    // xmlns declarations in scope from Envelope and Header/Body.
    let mut inherited: Vec<Vec<(String, String)>> = Vec::new();
    let mut parts = Vec::new();
    let mut current: Option<(usize, String)> = None;
    let mut in_header_or_body = false;
    loop {
        let before = reader.buffer_position() as usize;
        let event = reader.read_event().map_err(|e| e.to_string())?;
        match event {
            Event::Start(e) => {
                depth += 1;
                let local = e.local_name().as_ref().to_string();
                match depth {
                    1 | 2 => {
                        inherited.push(xmlns_attrs(&e)?);
                        if depth == 2 {
                            in_header_or_body = local == "Header" || local == "Body";
                        }
                    }
                    3 if in_header_or_body => current = Some((before, local)),
                    _ => {}
                }
            }
            Event::Empty(e) if depth == 2 && in_header_or_body => {
                let local = e.local_name().as_ref().to_string();
                let end = reader.buffer_position() as usize;
                parts.push(make_part(&envelope[before..end], local, &inherited)?);
            }
            Event::End(_) => {
                if depth == 3
                    && let Some((start, local)) = current.take()
                {
                    let end = reader.buffer_position() as usize;
                    parts.push(make_part(&envelope[start..end], local, &inherited)?);
                }
                if depth <= 2 {
                    inherited.pop();
                }
                depth = depth.saturating_sub(1);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if parts.is_empty() {
        return Err("no Header or Body children found".into());
    }
    Ok(parts)
}

fn xmlns_attrs(e: &quick_xml::events::BytesStart<'_>) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for a in e.attributes() {
        let a = a.map_err(|e| e.to_string())?;
        let key = a.key.as_ref().to_string();
        if key == "xmlns" || key.starts_with("xmlns:") {
            out.push((key, a.value.to_string()));
        }
    }
    Ok(out)
}

/// Adds the inherited declarations the element does not declare itself to its start tag.
fn make_part(
    slice: &str,
    element: String,
    inherited: &[Vec<(String, String)>],
) -> Result<Part, String> {
    let tag_end = slice
        .find(|c: char| c.is_whitespace() || c == '/' || c == '>')
        .ok_or("truncated element")?;
    let start_tag_end = slice.find('>').ok_or("truncated element")?;
    let own = &slice[..start_tag_end];
    // Innermost declaration wins, as in XML scoping.
    let mut decls: BTreeMap<String, String> = BTreeMap::new();
    for level in inherited {
        for (k, v) in level {
            decls.insert(k.clone(), v.clone());
        }
    }
    let mut extra = String::new();
    for (k, v) in decls {
        if !own.contains(&format!("{k}=")) {
            extra.push_str(&format!(" {k}=\"{v}\""));
        }
    }
    Ok(Part {
        element,
        xml: format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n{}{}{}",
            &slice[..tag_end],
            extra,
            &slice[tag_end..]
        ),
    })
}

fn wrapper_xsd(schema_dir: &Path) -> String {
    let abs = |f: &str| {
        let p = schema_dir.join(f);
        p.canonicalize().unwrap_or(p).display().to_string()
    };
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:ews-sim:wrapper">
  <xs:import namespace="http://www.w3.org/XML/1998/namespace" schemaLocation="{}"/>
  <xs:import namespace="{NS_M}" schemaLocation="{}"/>
  <xs:import namespace="{NS_T}" schemaLocation="{}"/>
</xs:schema>
"#,
        abs("xml.xsd"),
        abs("messages.xsd"),
        abs("types.xsd")
    )
}

fn xmllint() -> PathBuf {
    std::env::var_os("XMLLINT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("xmllint"))
}

/// Validates every Header and Body child of every envelope in one xmllint run.
/// Works for responses too (except SOAP faults, which are outside the EWS schemas).
pub fn validate_requests(bodies: &[String], schema_dir: &Path) -> Result<(), SchemaError> {
    let dir = tempfile::tempdir()?;
    let wrapper = dir.path().join("wrapper.xsd");
    std::fs::write(&wrapper, wrapper_xsd(schema_dir))?;
    let mut files: Vec<(PathBuf, usize, String)> = Vec::new();
    for (i, body) in bodies.iter().enumerate() {
        let parts =
            split_envelope(body).map_err(|reason| SchemaError::BadEnvelope { index: i, reason })?;
        for (n, p) in parts.into_iter().enumerate() {
            let f = dir.path().join(format!("r{i:04}_{n:02}_{}.xml", p.element));
            std::fs::write(&f, p.xml)?;
            files.push((f, i, p.element));
        }
    }
    if files.is_empty() {
        return Ok(());
    }
    let output = Command::new(xmllint())
        .arg("--noout")
        .arg("--schema")
        .arg(&wrapper)
        .args(files.iter().map(|(f, _, _)| f))
        .output()
        .map_err(SchemaError::Xmllint)?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    let mut violations = Vec::new();
    for (f, index, element) in &files {
        let name = f.display().to_string();
        let lines: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with(&name) && !l.ends_with(" validates"))
            .collect();
        if !lines.is_empty() {
            violations.push(SchemaViolation {
                request_index: *index,
                element: element.clone(),
                file: f.clone(),
                message: lines.join("\n"),
            });
        }
    }
    if violations.is_empty() && !output.status.success() {
        // xmllint failed without naming a file: the schemas themselves did not load.
        violations.push(SchemaViolation {
            request_index: 0,
            element: "wrapper.xsd".into(),
            file: wrapper,
            message: stderr.into_owned(),
        });
    }
    if violations.is_empty() {
        Ok(())
    } else {
        // Keep the temp dir only long enough to report: paths are for humans.
        Err(SchemaError::Invalid(violations))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn split_carries_namespaces() {
        let env = r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:t="T"><soap:Header><t:RequestServerVersion Version="Exchange2013_SP1"/></soap:Header><soap:Body xmlns:m="M"><m:GetItem><m:ItemShape/></m:GetItem></soap:Body></soap:Envelope>"#;
        let parts = split_envelope(env).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].element, "RequestServerVersion");
        assert!(parts[0].xml.contains(r#"<t:RequestServerVersion xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:t="T" Version"#));
        assert!(parts[1].xml.contains(r#"xmlns:m="M""#));
        assert!(parts[1].xml.ends_with("</m:GetItem>"));
    }
}
