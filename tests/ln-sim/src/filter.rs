//! A small but real `$filter` implementation: lexer, recursive-descent parser and evaluator for
//! the OData subset the synchronizer uses.
//!
//! Grammar (lowest precedence first):
//!
//! ```text
//! or_expr   := and_expr ("or" and_expr)*
//! and_expr  := unary ("and" unary)*
//! unary     := "not" unary | primary
//! primary   := "(" or_expr ")" | function | comparison
//! function  := ("contains" | "startswith" | "endswith") "(" path "," string ")"
//! comparison:= operand ("eq"|"ne"|"gt"|"ge"|"lt"|"le") operand   -- one side a property path
//! operand   := path | string | number | datetime | date | true | false | null
//! ```
//!
//! Properties are checked against the entity set's schema when parsing, so a typo or a quoted
//! date-time is a 400 (as on a real OData service), not an empty result.

use std::cmp::Ordering;
use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;

use crate::schema::{Field, FieldType, resolve_path};

/// Why a `$filter` was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid $filter at position {position}: {message}")]
pub struct FilterError {
    pub position: usize,
    pub message: String,
}

impl FilterError {
    fn new(position: usize, message: impl Into<String>) -> Self {
        Self {
            position,
            message: message.into(),
        }
    }
}

/// Comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

impl CmpOp {
    fn parse(word: &str) -> Option<Self> {
        Some(match word {
            "eq" => CmpOp::Eq,
            "ne" => CmpOp::Ne,
            "gt" => CmpOp::Gt,
            "ge" => CmpOp::Ge,
            "lt" => CmpOp::Lt,
            "le" => CmpOp::Le,
            _ => return None,
        })
    }

    /// The operator with its operands swapped (`5 lt x` == `x gt 5`).
    fn flipped(self) -> Self {
        match self {
            CmpOp::Gt => CmpOp::Lt,
            CmpOp::Ge => CmpOp::Le,
            CmpOp::Lt => CmpOp::Gt,
            CmpOp::Le => CmpOp::Ge,
            other => other,
        }
    }
}

/// A literal value in a filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    String(String),
    Number(f64),
    Bool(bool),
    DateTime(DateTime<Utc>),
    Date(NaiveDate),
    Null,
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::String(s) => write!(f, "'{}'", s.replace('\'', "''")),
            Literal::Number(n) => write!(f, "{n}"),
            Literal::Bool(b) => write!(f, "{b}"),
            Literal::DateTime(d) => write!(f, "{}", d.to_rfc3339()),
            Literal::Date(d) => write!(f, "{d}"),
            Literal::Null => write!(f, "null"),
        }
    }
}

/// String functions supported in `$filter`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StringFn {
    Contains,
    StartsWith,
    EndsWith,
}

/// Parsed filter expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    /// `path op literal` (comparisons written the other way round are normalised to this).
    Compare {
        path: String,
        ty: FieldType,
        op: CmpOp,
        value: Literal,
    },
    Function {
        function: StringFn,
        path: String,
        arg: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Lit(Literal),
    LParen,
    RParen,
    Comma,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    pos: usize,
}

fn lex(input: &str) -> Result<Vec<Token>, FilterError> {
    let chars: Vec<(usize, char)> = input.char_indices().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let (pos, c) = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                tokens.push(Token {
                    tok: Tok::LParen,
                    pos,
                });
                i += 1;
            }
            ')' => {
                tokens.push(Token {
                    tok: Tok::RParen,
                    pos,
                });
                i += 1;
            }
            ',' => {
                tokens.push(Token {
                    tok: Tok::Comma,
                    pos,
                });
                i += 1;
            }
            '\'' => {
                // OData escapes a quote inside a string literal by doubling it.
                let mut value = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(FilterError::new(pos, "unterminated string literal")),
                        Some((_, '\'')) if matches!(chars.get(i + 1), Some((_, '\''))) => {
                            value.push('\'');
                            i += 2;
                        }
                        Some((_, '\'')) => {
                            i += 1;
                            break;
                        }
                        Some((_, ch)) => {
                            value.push(*ch);
                            i += 1;
                        }
                    }
                }
                tokens.push(Token {
                    tok: Tok::Str(value),
                    pos,
                });
            }
            c if c.is_ascii_digit() || c == '-' => {
                // Numbers, dates and date-times all start with a digit (or a minus sign); read the
                // whole run and classify it afterwards.
                let start = i;
                while i < chars.len()
                    && (chars[i].1.is_ascii_alphanumeric()
                        || matches!(chars[i].1, ':' | '.' | '-' | '+'))
                {
                    i += 1;
                }
                let text: String = chars[start..i].iter().map(|(_, ch)| ch).collect();
                tokens.push(Token {
                    tok: Tok::Lit(classify_literal(&text, pos)?),
                    pos,
                });
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].1.is_alphanumeric() || matches!(chars[i].1, '_' | '/'))
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().map(|(_, ch)| ch).collect();
                let tok = match word.as_str() {
                    "true" => Tok::Lit(Literal::Bool(true)),
                    "false" => Tok::Lit(Literal::Bool(false)),
                    "null" => Tok::Lit(Literal::Null),
                    _ => Tok::Ident(word),
                };
                tokens.push(Token { tok, pos });
            }
            other => {
                return Err(FilterError::new(
                    pos,
                    format!("unexpected character '{other}'"),
                ));
            }
        }
    }
    Ok(tokens)
}

fn classify_literal(text: &str, pos: usize) -> Result<Literal, FilterError> {
    if text.contains('T') && text.len() >= 16 {
        return DateTime::parse_from_rfc3339(text)
            .map(|d| Literal::DateTime(d.with_timezone(&Utc)))
            .map_err(|e| {
                FilterError::new(
                    pos,
                    format!(
                        "invalid date-time literal '{text}' ({e}); expected ISO 8601 with offset, e.g. 2026-11-29T10:00:00Z \
                         (a '+' offset must be sent as %2B)"
                    ),
                )
            });
    }
    if text.len() == 10 && text.as_bytes().get(4) == Some(&b'-') {
        return NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .map(Literal::Date)
            .map_err(|e| FilterError::new(pos, format!("invalid date literal '{text}' ({e})")));
    }
    text.parse::<f64>()
        .map(Literal::Number)
        .map_err(|_| FilterError::new(pos, format!("invalid literal '{text}'")))
}

struct Parser<'a> {
    tokens: Vec<Token>,
    at: usize,
    fields: &'static [Field],
    input: &'a str,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.at).map(|t| &t.tok)
    }

    fn pos(&self) -> usize {
        self.tokens.get(self.at).map_or(self.input.len(), |t| t.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    fn is_keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Tok::Ident(w)) if w == word)
    }

    fn expect(&mut self, want: &Tok, what: &str) -> Result<(), FilterError> {
        let pos = self.pos();
        match self.next() {
            Some(t) if &t.tok == want => Ok(()),
            _ => Err(FilterError::new(pos, format!("expected {what}"))),
        }
    }

    fn or_expr(&mut self) -> Result<Expr, FilterError> {
        let mut left = self.and_expr()?;
        while self.is_keyword("or") {
            self.at += 1;
            let right = self.and_expr()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and_expr(&mut self) -> Result<Expr, FilterError> {
        let mut left = self.unary()?;
        while self.is_keyword("and") {
            self.at += 1;
            let right = self.unary()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, FilterError> {
        if self.is_keyword("not") {
            self.at += 1;
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, FilterError> {
        if self.peek() == Some(&Tok::LParen) {
            self.at += 1;
            let inner = self.or_expr()?;
            self.expect(&Tok::RParen, "')'")?;
            return Ok(inner);
        }
        if let Some(Tok::Ident(word)) = self.peek() {
            let function = match word.as_str() {
                "contains" => Some(StringFn::Contains),
                "startswith" => Some(StringFn::StartsWith),
                "endswith" => Some(StringFn::EndsWith),
                _ => None,
            };
            if let Some(function) = function
                && self.tokens.get(self.at + 1).map(|t| &t.tok) == Some(&Tok::LParen)
            {
                return self.function(function);
            }
        }
        self.comparison()
    }

    fn function(&mut self, function: StringFn) -> Result<Expr, FilterError> {
        self.at += 2; // name and '('
        let pos = self.pos();
        let path = match self.next().map(|t| t.tok) {
            Some(Tok::Ident(path)) => path,
            _ => {
                return Err(FilterError::new(
                    pos,
                    "expected a property as first argument",
                ));
            }
        };
        let ty = self.property_type(&path, pos)?;
        if !matches!(ty, FieldType::String | FieldType::Enum) {
            return Err(FilterError::new(
                pos,
                format!("property '{path}' is not a string"),
            ));
        }
        self.expect(&Tok::Comma, "','")?;
        let pos = self.pos();
        let arg = match self.next().map(|t| t.tok) {
            Some(Tok::Str(s)) => s,
            _ => {
                return Err(FilterError::new(
                    pos,
                    "expected a string literal as second argument",
                ));
            }
        };
        self.expect(&Tok::RParen, "')'")?;
        Ok(Expr::Function {
            function,
            path,
            arg,
        })
    }

    fn operand(&mut self) -> Result<(Option<String>, Option<Literal>, usize), FilterError> {
        let pos = self.pos();
        match self.next().map(|t| t.tok) {
            Some(Tok::Ident(word))
                if CmpOp::parse(&word).is_some() || word == "and" || word == "or" =>
            {
                Err(FilterError::new(
                    pos,
                    format!("expected an operand, found '{word}'"),
                ))
            }
            Some(Tok::Ident(path)) => Ok((Some(path), None, pos)),
            Some(Tok::Str(s)) => Ok((None, Some(Literal::String(s)), pos)),
            Some(Tok::Lit(lit)) => Ok((None, Some(lit), pos)),
            Some(_) => Err(FilterError::new(pos, "expected a property or a literal")),
            None => Err(FilterError::new(pos, "unexpected end of expression")),
        }
    }

    fn comparison(&mut self) -> Result<Expr, FilterError> {
        let (left_path, left_lit, left_pos) = self.operand()?;
        let op_pos = self.pos();
        let op = match self.next().map(|t| t.tok) {
            Some(Tok::Ident(word)) => CmpOp::parse(&word)
                .ok_or_else(|| FilterError::new(op_pos, format!("unknown operator '{word}'")))?,
            _ => {
                return Err(FilterError::new(
                    op_pos,
                    "expected a comparison operator (eq, ne, gt, ge, lt, le)",
                ));
            }
        };
        let (right_path, right_lit, right_pos) = self.operand()?;
        let (path, op, value, path_pos, lit_pos) =
            match (left_path, left_lit, right_path, right_lit) {
                (Some(path), None, None, Some(lit)) => (path, op, lit, left_pos, right_pos),
                (None, Some(lit), Some(path), None) => {
                    (path, op.flipped(), lit, right_pos, left_pos)
                }
                (Some(_), None, Some(_), None) => {
                    return Err(FilterError::new(
                        left_pos,
                        "comparing two properties is not supported",
                    ));
                }
                _ => {
                    return Err(FilterError::new(
                        left_pos,
                        "a comparison needs a property on one side",
                    ));
                }
            };
        let ty = self.property_type(&path, path_pos)?;
        check_compatible(&path, ty, &value, lit_pos)?;
        Ok(Expr::Compare {
            path,
            ty,
            op,
            value,
        })
    }

    fn property_type(&self, path: &str, pos: usize) -> Result<FieldType, FilterError> {
        match resolve_path(self.fields, path) {
            Some(FieldType::Complex(_)) => Err(FilterError::new(
                pos,
                format!("property '{path}' is a complex type; filter on one of its members"),
            )),
            Some(FieldType::Navigation) => Err(FilterError::new(
                pos,
                format!("navigation property '{path}' cannot be used in $filter"),
            )),
            Some(ty) => Ok(ty),
            None => Err(FilterError::new(
                pos,
                format!("property '{path}' does not exist"),
            )),
        }
    }
}

fn check_compatible(
    path: &str,
    ty: FieldType,
    value: &Literal,
    pos: usize,
) -> Result<(), FilterError> {
    let ok = matches!(
        (ty, value),
        (_, Literal::Null)
            | (FieldType::String | FieldType::Enum, Literal::String(_))
            | (FieldType::Int, Literal::Number(_))
            | (FieldType::Bool, Literal::Bool(_))
            | (FieldType::DateTime, Literal::DateTime(_))
            | (FieldType::Date, Literal::Date(_))
    );
    if ok {
        Ok(())
    } else {
        let expected = match ty {
            FieldType::String | FieldType::Enum => "a string in single quotes",
            FieldType::Int => "a number",
            FieldType::Bool => "true or false",
            FieldType::DateTime => "an unquoted date-time like 2026-11-29T10:00:00Z",
            FieldType::Date => "an unquoted date like 2026-11-29",
            FieldType::Complex(_) | FieldType::Navigation => "nothing",
        };
        Err(FilterError::new(
            pos,
            format!("incompatible literal {value} for property '{path}': expected {expected}"),
        ))
    }
}

/// Parse `input` against the properties of one entity type.
pub fn parse(input: &str, fields: &'static [Field]) -> Result<Expr, FilterError> {
    let tokens = lex(input)?;
    if tokens.is_empty() {
        return Err(FilterError::new(0, "empty expression"));
    }
    let mut parser = Parser {
        tokens,
        at: 0,
        fields,
        input,
    };
    let expr = parser.or_expr()?;
    if parser.at < parser.tokens.len() {
        return Err(FilterError::new(parser.pos(), "unexpected trailing input"));
    }
    Ok(expr)
}

/// Look up a `/`-separated path in a JSON object.
pub fn lookup<'v>(entity: &'v Value, path: &str) -> &'v Value {
    path.split('/')
        .try_fold(entity, |v, segment| v.get(segment))
        .unwrap_or(&Value::Null)
}

/// Compare a property value with a literal of a compatible type. `None` when either side is null
/// or the stored value cannot be read as that type.
fn compare_value(value: &Value, literal: &Literal) -> Option<Ordering> {
    match literal {
        Literal::String(s) => value.as_str().map(|v| v.cmp(s.as_str())),
        Literal::Number(n) => value.as_f64().and_then(|v| v.partial_cmp(n)),
        Literal::Bool(b) => value.as_bool().map(|v| v.cmp(b)),
        Literal::DateTime(d) => value
            .as_str()
            .and_then(|v| DateTime::parse_from_rfc3339(v).ok())
            .map(|v| v.with_timezone(&Utc).cmp(d)),
        Literal::Date(d) => value
            .as_str()
            .and_then(|v| NaiveDate::parse_from_str(v, "%Y-%m-%d").ok())
            .map(|v| v.cmp(d)),
        Literal::Null => None,
    }
}

impl Expr {
    /// Evaluate against one entity rendered as JSON.
    pub fn matches(&self, entity: &Value) -> bool {
        match self {
            Expr::And(a, b) => a.matches(entity) && b.matches(entity),
            Expr::Or(a, b) => a.matches(entity) || b.matches(entity),
            Expr::Not(inner) => !inner.matches(entity),
            Expr::Function {
                function,
                path,
                arg,
            } => {
                let Some(value) = lookup(entity, path).as_str() else {
                    return false;
                };
                match function {
                    StringFn::Contains => value.contains(arg.as_str()),
                    StringFn::StartsWith => value.starts_with(arg.as_str()),
                    StringFn::EndsWith => value.ends_with(arg.as_str()),
                }
            }
            Expr::Compare {
                path, op, value, ..
            } => {
                let actual = lookup(entity, path);
                // OData null semantics: null equals only null, and ordering comparisons involving
                // null are false.
                if matches!(value, Literal::Null) || actual.is_null() {
                    let both_null = actual.is_null() && matches!(value, Literal::Null);
                    return match op {
                        CmpOp::Eq => both_null,
                        CmpOp::Ne => !both_null,
                        _ => false,
                    };
                }
                let Some(ord) = compare_value(actual, value) else {
                    return false;
                };
                match op {
                    CmpOp::Eq => ord == Ordering::Equal,
                    CmpOp::Ne => ord != Ordering::Equal,
                    CmpOp::Gt => ord == Ordering::Greater,
                    CmpOp::Ge => ord != Ordering::Less,
                    CmpOp::Lt => ord == Ordering::Less,
                    CmpOp::Le => ord != Ordering::Greater,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{ACTIVITIES, CONTACTS, DELETED_OBJECTS};
    use serde_json::json;

    fn contact() -> Value {
        json!({
            "contact": "C001", "lastName": "O'Brien", "synchronize": true, "birthday": "1980-05-17",
            "lastModified": "2026-11-29T10:00:00.500Z", "address": {"country": "NL", "city": null}
        })
    }

    fn eval(filter: &str, entity: &Value) -> bool {
        match parse(filter, CONTACTS) {
            Ok(expr) => expr.matches(entity),
            Err(e) => panic!("{filter}: {e}"),
        }
    }

    #[test]
    fn comparisons_on_each_type() {
        let c = contact();
        assert!(eval("contact eq 'C001'", &c));
        assert!(eval("lastName eq 'O''Brien'", &c));
        assert!(eval("synchronize eq true", &c));
        assert!(!eval("synchronize ne true", &c));
        assert!(eval("lastModified gt 2026-11-29T10:00:00Z", &c));
        assert!(eval("lastModified le 2026-11-29T11:00:00.500+01:00", &c));
        assert!(!eval("lastModified gt 2026-11-29T10:00:00.500Z", &c));
        assert!(eval("birthday lt 1990-01-01", &c));
        assert!(eval("address/country eq 'NL'", &c));
        assert!(eval("address/city eq null", &c));
        assert!(!eval("address/city gt 'A'", &c));
        assert!(eval("'C001' eq contact", &c));
        assert!(eval("2026-11-30T00:00:00Z gt lastModified", &c));
    }

    #[test]
    fn boolean_operators_and_precedence() {
        let c = contact();
        assert!(eval(
            "contact eq 'X' or contact eq 'C001' and synchronize eq true",
            &c
        ));
        assert!(!eval(
            "(contact eq 'X' or contact eq 'C001') and synchronize eq false",
            &c
        ));
        assert!(eval("not (contact eq 'X')", &c));
        assert!(eval("not contact eq 'X' and synchronize eq true", &c));
        assert!(eval(
            "startswith(lastName,'O''B') and contains(contact, '00')",
            &c
        ));
        assert!(!eval("endswith(lastName,'x')", &c));
    }

    #[test]
    fn precedence_builds_expected_tree() {
        let expr = parse(
            "contact eq 'a' or contact eq 'b' and active eq true",
            CONTACTS,
        );
        assert!(matches!(expr, Ok(Expr::Or(_, ref rhs)) if matches!(**rhs, Expr::And(_, _))));
    }

    #[test]
    fn the_synchronizers_queries_parse() {
        let window = "(type eq 'Appointment' or type eq 'Call') and end ge 2026-11-29T00:00:00Z \
                      and start lt 2027-11-29T00:00:00Z and lastModified gt 2026-11-28T23:59:59.999Z";
        assert!(parse(window, ACTIVITIES).is_ok());
        let deleted = "deletedAt gt 2026-11-29T10:00:00Z and entity eq 'Contact'";
        let expr = parse(deleted, DELETED_OBJECTS);
        let row = json!({"entity":"Contact","key":"C1","deletedAt":"2026-11-29T10:00:01Z"});
        assert!(expr.map(|e| e.matches(&row)).unwrap_or(false));
    }

    #[test]
    fn rejects_bad_input_with_position() {
        let cases = [
            ("", 0),
            ("contact eq", 10),
            ("contact eq 'x", 11),
            ("nosuch eq 1", 0),
            ("lastModified gt '2026-11-29T10:00:00Z'", 16),
            ("synchronize eq 'yes'", 15),
            ("contact xx 'a'", 8),
            ("(contact eq 'a'", 15),
            ("contact eq 'a' 'b'", 15),
            ("lastModified gt 2026-11-29T10:00:00 01:00", 16),
            ("address eq 'x'", 0),
            ("contact eq lastName", 0),
            ("contact eq 'a' and", 18),
            ("contact # 'a'", 8),
        ];
        for (input, pos) in cases {
            match parse(input, CONTACTS) {
                Ok(e) => panic!("{input:?} parsed as {e:?}"),
                Err(e) => assert_eq!(e.position, pos, "{input:?}: {e}"),
            }
        }
    }

    #[test]
    fn navigation_properties_are_not_filterable() {
        assert!(parse("attendees eq null", ACTIVITIES).is_err());
    }
}
