//! `m:Restriction` search expressions, parsed into a tree and evaluated over any value source
//! (items for FindItem, folders for FindFolder).

use crate::render::FieldPath;
use crate::xml::Element;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Operand {
    Constant(String),
    Path(FieldPath),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Restriction {
    And(Vec<Restriction>),
    Or(Vec<Restriction>),
    Not(Box<Restriction>),
    Exists(FieldPath),
    Compare(Cmp, FieldPath, Operand),
    Contains {
        path: FieldPath,
        constant: String,
        mode: String,
        ignore_case: bool,
    },
}

impl Restriction {
    /// Parses the single search expression inside `m:Restriction`.
    pub fn parse_container(el: &Element) -> Result<Restriction, String> {
        let mut exprs = el.children.iter();
        match (exprs.next(), exprs.next()) {
            (Some(e), None) => Restriction::parse(e),
            _ => Err("Restriction must contain exactly one search expression".into()),
        }
    }

    pub fn parse(el: &Element) -> Result<Restriction, String> {
        let path = || -> Result<FieldPath, String> {
            FieldPath::first_in(el)?.ok_or_else(|| format!("{} needs a property path", el.name))
        };
        Ok(match el.name.as_str() {
            "And" | "Or" => {
                let parts = el
                    .children
                    .iter()
                    .map(Restriction::parse)
                    .collect::<Result<Vec<_>, _>>()?;
                if el.name == "And" {
                    Restriction::And(parts)
                } else {
                    Restriction::Or(parts)
                }
            }
            "Not" => Restriction::Not(Box::new(Restriction::parse_container(el)?)),
            "Exists" => Restriction::Exists(path()?),
            "IsEqualTo"
            | "IsNotEqualTo"
            | "IsGreaterThan"
            | "IsGreaterThanOrEqualTo"
            | "IsLessThan"
            | "IsLessThanOrEqualTo" => {
                let cmp = match el.name.as_str() {
                    "IsEqualTo" => Cmp::Eq,
                    "IsNotEqualTo" => Cmp::Ne,
                    "IsGreaterThan" => Cmp::Gt,
                    "IsGreaterThanOrEqualTo" => Cmp::Ge,
                    "IsLessThan" => Cmp::Lt,
                    _ => Cmp::Le,
                };
                let foc = el
                    .child("FieldURIOrConstant")
                    .ok_or_else(|| format!("{} needs FieldURIOrConstant", el.name))?;
                let operand = if let Some(c) = foc.child("Constant") {
                    Operand::Constant(
                        c.attr("Value")
                            .ok_or("Constant needs a Value attribute")?
                            .to_string(),
                    )
                } else {
                    Operand::Path(FieldPath::first_in(foc)?.ok_or("FieldURIOrConstant is empty")?)
                };
                Restriction::Compare(cmp, path()?, operand)
            }
            "Contains" => {
                let constant = el
                    .child("Constant")
                    .and_then(|c| c.attr("Value"))
                    .ok_or("Contains needs Constant/@Value")?
                    .to_string();
                let comparison = el.attr("ContainmentComparison").unwrap_or("Exact");
                Restriction::Contains {
                    path: path()?,
                    constant,
                    mode: el
                        .attr("ContainmentMode")
                        .unwrap_or("FullString")
                        .to_string(),
                    ignore_case: comparison != "Exact",
                }
            }
            other => return Err(format!("unsupported search expression '{other}'")),
        })
    }

    /// Evaluates against a value source (`values(path)` = the property's values, empty if unset).
    pub fn eval(&self, values: &dyn Fn(&FieldPath) -> Vec<String>) -> bool {
        match self {
            Restriction::And(v) => v.iter().all(|r| r.eval(values)),
            Restriction::Or(v) => v.iter().any(|r| r.eval(values)),
            Restriction::Not(r) => !r.eval(values),
            Restriction::Exists(p) => !values(p).is_empty(),
            Restriction::Compare(cmp, p, operand) => {
                let left = values(p);
                let right = match operand {
                    Operand::Constant(c) => vec![c.clone()],
                    Operand::Path(q) => values(q),
                };
                // An absent property never satisfies a comparison (MAPI semantics), and
                // string comparisons are case-insensitive as in Exchange.
                left.iter().any(|l| {
                    right.iter().any(|r| {
                        let ord = l.to_lowercase().cmp(&r.to_lowercase());
                        match cmp {
                            Cmp::Eq => ord.is_eq(),
                            Cmp::Ne => ord.is_ne(),
                            Cmp::Gt => ord.is_gt(),
                            Cmp::Ge => ord.is_ge(),
                            Cmp::Lt => ord.is_lt(),
                            Cmp::Le => ord.is_le(),
                        }
                    })
                })
            }
            Restriction::Contains {
                path,
                constant,
                mode,
                ignore_case,
            } => values(path).iter().any(|v| {
                let (v, c) = if *ignore_case {
                    (v.to_lowercase(), constant.to_lowercase())
                } else {
                    (v.clone(), constant.clone())
                };
                match mode.as_str() {
                    "FullString" => v == c,
                    "Prefixed" => v.starts_with(&c),
                    "PrefixOnWords" => v.split_whitespace().any(|w| w.starts_with(&c)),
                    // Substring and ExactPhrase
                    _ => v.contains(&c),
                }
            }),
        }
    }
}
