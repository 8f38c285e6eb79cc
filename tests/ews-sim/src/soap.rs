//! SOAP 1.1 envelope handling: reading the request envelope and its EWS headers, writing
//! response envelopes and faults in the shapes Exchange uses (exchange.md §2.10).

use crate::xml::{Element, NS_ERRORS, NS_M, NS_SOAP, NS_T, esc};

/// Values of ExchangeVersionType (types.xsd).
pub const EXCHANGE_VERSIONS: &[&str] = &[
    "Exchange2007",
    "Exchange2007_SP1",
    "Exchange2009",
    "Exchange2010",
    "Exchange2010_SP1",
    "Exchange2010_SP2",
    "Exchange2012",
    "Exchange2013",
    "Exchange2013_SP1",
    "Exchange2015",
    "Exchange2016",
    "V2015_10_05",
    "V2016_01_06",
    "V2016_04_13",
    "V2016_07_13",
    "V2016_10_10",
    "V2017_01_07",
    "V2017_04_14",
    "V2017_07_11",
];

/// How the request names its target mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Impersonation {
    Smtp(String),
    /// `PrincipalName` (a UPN) or `SID`: the sim resolves only SMTP forms.
    Other(String),
}

/// The parts of a request envelope the dispatcher needs.
#[derive(Debug)]
pub struct Request {
    pub server_version: Option<String>,
    pub impersonation: Option<Impersonation>,
    /// `t:TimeZoneContext/t:TimeZoneDefinition/@Id`: the zone of un-offset times in the request.
    pub time_zone_context: Option<String>,
    pub operation: Element,
}

/// A fault before or instead of dispatch.
#[derive(Debug, Clone)]
pub struct Fault {
    pub code: String,
    pub message: String,
    /// `t:MessageXml/t:Value` name/value pairs, e.g. BackOffMilliseconds.
    pub values: Vec<(String, String)>,
}

impl Fault {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Fault {
            code: code.to_string(),
            message: message.into(),
            values: Vec::new(),
        }
    }

    pub fn server_busy(back_off_ms: u64) -> Self {
        Fault {
            code: "ErrorServerBusy".into(),
            message: "The server cannot service this request right now. Try again later.".into(),
            values: vec![("BackOffMilliseconds".into(), back_off_ms.to_string())],
        }
    }
}

/// Splits the envelope. Returns the operation name (if any) alongside errors so the log can
/// record it even for rejected requests.
pub fn read_request(root: Element) -> Result<Request, (Option<String>, Fault)> {
    let schema = |m: &str| {
        Fault::new(
            "ErrorSchemaValidation",
            format!("The request failed schema validation: {m}"),
        )
    };
    if !root.is(NS_SOAP, "Envelope") {
        return Err((
            None,
            Fault::new(
                "ErrorInvalidRequest",
                "The request is invalid: the root element is not a SOAP 1.1 Envelope.",
            ),
        ));
    }
    let mut header = None;
    let mut body = None;
    for c in root.children {
        match (c.ns.as_str(), c.name.as_str()) {
            (NS_SOAP, "Header") => header = Some(c),
            (NS_SOAP, "Body") => body = Some(c),
            _ => {
                return Err((
                    None,
                    schema(&format!("unexpected element '{}' in Envelope", c.name)),
                ));
            }
        }
    }
    let body = body.ok_or((None, schema("the Envelope has no Body")))?;
    let mut ops = body.children.into_iter();
    let operation = ops.next().ok_or((None, schema("the Body is empty")))?;
    let op_name = Some(operation.name.clone());
    if ops.next().is_some() {
        return Err((
            op_name,
            schema("the Body must contain exactly one operation"),
        ));
    }
    let mut server_version = None;
    let mut impersonation = None;
    let mut time_zone_context = None;
    if let Some(h) = header {
        for c in &h.children {
            if c.ns != NS_T {
                continue;
            }
            match c.name.as_str() {
                "RequestServerVersion" => server_version = c.attr("Version").map(str::to_string),
                "TimeZoneContext" => {
                    time_zone_context = c
                        .child("TimeZoneDefinition")
                        .and_then(|d| d.attr("Id"))
                        .map(str::to_string)
                }
                "ExchangeImpersonation" => {
                    let sid = c
                        .child("ConnectingSID")
                        .and_then(|s| s.children.first())
                        .ok_or((
                            op_name.clone(),
                            schema("ExchangeImpersonation requires ConnectingSID"),
                        ))?;
                    impersonation = Some(match sid.name.as_str() {
                        "PrimarySmtpAddress" | "SmtpAddress" => {
                            Impersonation::Smtp(sid.text.trim().to_string())
                        }
                        _ => Impersonation::Other(sid.text.trim().to_string()),
                    });
                }
                _ => {}
            }
        }
    }
    check_namespaces(&operation).map_err(|m| (op_name.clone(), schema(&m)))?;
    Ok(Request {
        server_version,
        impersonation,
        time_zone_context,
        operation,
    })
}

/// EWS operations live in the messages namespace, their direct children too, and everything
/// below in the types namespace (elementFormDefault="qualified" in both schemas). Checking
/// this catches the commonest client bug, a wrong prefix, as Exchange's validator would.
fn check_namespaces(op: &Element) -> Result<(), String> {
    if op.ns != NS_M {
        return Err(format!(
            "the operation '{}' must be in namespace {NS_M}",
            op.name
        ));
    }
    for c in &op.children {
        if c.ns != NS_M {
            return Err(format!(
                "'{}' in {} must be in namespace {NS_M}",
                c.name, op.name
            ));
        }
        for g in &c.children {
            check_types_ns(g)?;
        }
    }
    Ok(())
}

fn check_types_ns(el: &Element) -> Result<(), String> {
    if el.ns != NS_T {
        return Err(format!(
            "line {}: '{}' must be in namespace {NS_T}",
            el.line, el.name
        ));
    }
    el.children.iter().try_for_each(check_types_ns)
}

const SERVER_VERSION_INFO: &str = "<t:ServerVersionInfo MajorVersion=\"15\" MinorVersion=\"1\" MajorBuildNumber=\"2507\" MinorBuildNumber=\"6\" Version=\"V2017_07_11\"/>";

/// Wraps an operation response in an envelope with ServerVersionInfo, as Exchange 2016 does.
pub fn envelope(body: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><soap:Envelope xmlns:soap=\"{NS_SOAP}\" xmlns:m=\"{NS_M}\" xmlns:t=\"{NS_T}\"><soap:Header>{SERVER_VERSION_INFO}</soap:Header><soap:Body>{body}</soap:Body></soap:Envelope>"
    )
}

/// A SOAP fault shaped like Exchange's: `a:`-prefixed faultcode, `e:ResponseCode` in the
/// errors namespace, and `t:MessageXml` values in the types namespace.
pub fn fault_envelope(f: &Fault) -> String {
    let mut detail = format!(
        "<e:ResponseCode xmlns:e=\"{NS_ERRORS}\">{code}</e:ResponseCode><e:Message xmlns:e=\"{NS_ERRORS}\">{msg}</e:Message>",
        code = esc(&f.code),
        msg = esc(&f.message)
    );
    if !f.values.is_empty() {
        detail.push_str(&format!("<t:MessageXml xmlns:t=\"{NS_T}\">"));
        for (name, value) in &f.values {
            detail.push_str(&format!(
                "<t:Value Name=\"{}\">{}</t:Value>",
                esc(name),
                esc(value)
            ));
        }
        detail.push_str("</t:MessageXml>");
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><s:Envelope xmlns:s=\"{NS_SOAP}\"><s:Body><s:Fault><faultcode xmlns:a=\"{NS_T}\">a:{code}</faultcode><faultstring xml:lang=\"en-US\">{msg}</faultstring><detail>{detail}</detail></s:Fault></s:Body></s:Envelope>",
        code = esc(&f.code),
        msg = esc(&f.message)
    )
}
