//! A statement's `Condition` block: operators, their `...IfExists` forms and the
//! `ForAllValues:` / `ForAnyValue:` set qualifiers, evaluated with IAM's rules:
//!
//! - every operator in the block, and every key under an operator, must hold (AND);
//! - several policy values for one key: any may match (OR); for a negated operator
//!   (`StringNotEquals`, `NumericNotEquals`, `ArnNotLike`, `NotIpAddress`, ...) none may;
//! - a key missing from the request: a positive operator is false, a negated one true, any
//!   `...IfExists` form true, `ForAllValues:` true, `ForAnyValue:` false; `Null` tests presence;
//! - a multi-valued key without a qualifier: a positive operator holds when any request value
//!   matches, a negated one when none does;
//! - a request value of the wrong type (not a number for `Numeric*`, not a date, IP or boolean)
//!   matches no policy value.

use std::net::IpAddr;

use chrono::{DateTime, NaiveDate, Utc};
use ipnet::IpNet;
use serde_json::Value as Json;

use super::context::Context;
use super::pattern::Pattern;

#[derive(Debug, Clone)]
pub struct Condition {
    /// The operator as written (for messages and the simulator).
    pub operator: String,
    /// The key as written.
    pub key: String,
    test: Test,
    negated: bool,
    if_exists: bool,
    set: Set,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Set {
    /// No qualifier.
    Plain,
    ForAllValues,
    ForAnyValue,
}

/// The positive test, with the policy values parsed for it.
#[derive(Debug, Clone)]
enum Test {
    StringEquals(Vec<Pattern>, bool /* ignore case */),
    StringLike(Vec<Pattern>),
    Numeric(Vec<f64>, Compare),
    Date(Vec<DateTime<Utc>>, Compare),
    Bool(Vec<bool>),
    Ip(Vec<IpNet>),
    Arn(Vec<Pattern>),
    /// `Null`: `true` holds when the key is missing, `false` when present.
    Null(Vec<bool>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Compare {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Compare {
    fn holds(self, ordering: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::*;
        match self {
            Compare::Eq => ordering == Equal,
            Compare::Lt => ordering == Less,
            Compare::Le => ordering != Greater,
            Compare::Gt => ordering == Greater,
            Compare::Ge => ordering != Less,
        }
    }
}

/// Every operator name (without qualifier or `IfExists`): (name, family, negated, compare).
const OPERATORS: &[(&str, Family, bool, Compare)] = &[
    ("StringEquals", Family::String, false, Compare::Eq),
    ("StringNotEquals", Family::String, true, Compare::Eq),
    (
        "StringEqualsIgnoreCase",
        Family::StringIgnoreCase,
        false,
        Compare::Eq,
    ),
    (
        "StringNotEqualsIgnoreCase",
        Family::StringIgnoreCase,
        true,
        Compare::Eq,
    ),
    ("StringLike", Family::StringLike, false, Compare::Eq),
    ("StringNotLike", Family::StringLike, true, Compare::Eq),
    ("NumericEquals", Family::Numeric, false, Compare::Eq),
    ("NumericNotEquals", Family::Numeric, true, Compare::Eq),
    ("NumericLessThan", Family::Numeric, false, Compare::Lt),
    ("NumericLessThanEquals", Family::Numeric, false, Compare::Le),
    ("NumericGreaterThan", Family::Numeric, false, Compare::Gt),
    (
        "NumericGreaterThanEquals",
        Family::Numeric,
        false,
        Compare::Ge,
    ),
    ("DateEquals", Family::Date, false, Compare::Eq),
    ("DateNotEquals", Family::Date, true, Compare::Eq),
    ("DateLessThan", Family::Date, false, Compare::Lt),
    ("DateLessThanEquals", Family::Date, false, Compare::Le),
    ("DateGreaterThan", Family::Date, false, Compare::Gt),
    ("DateGreaterThanEquals", Family::Date, false, Compare::Ge),
    ("Bool", Family::Bool, false, Compare::Eq),
    ("IpAddress", Family::Ip, false, Compare::Eq),
    ("NotIpAddress", Family::Ip, true, Compare::Eq),
    ("ArnEquals", Family::Arn, false, Compare::Eq),
    ("ArnLike", Family::Arn, false, Compare::Eq),
    ("ArnNotEquals", Family::Arn, true, Compare::Eq),
    ("ArnNotLike", Family::Arn, true, Compare::Eq),
    ("Null", Family::Null, false, Compare::Eq),
];

#[derive(Debug, Clone, Copy, PartialEq)]
enum Family {
    String,
    StringIgnoreCase,
    StringLike,
    Numeric,
    Date,
    Bool,
    Ip,
    Arn,
    Null,
}

impl Condition {
    /// Parses one `"Operator": {"key": value-or-values}` entry for one key. `variables`: the
    /// policy's version allows `${...}`. Errors name the operator, the key and the value.
    pub fn parse(
        operator: &str,
        key: &str,
        values: &Json,
        variables: bool,
    ) -> Result<Self, String> {
        let (set, name) = if let Some(rest) = operator.strip_prefix("ForAllValues:") {
            (Set::ForAllValues, rest)
        } else if let Some(rest) = operator.strip_prefix("ForAnyValue:") {
            (Set::ForAnyValue, rest)
        } else {
            (Set::Plain, operator)
        };
        let (name, if_exists) = match name.strip_suffix("IfExists") {
            Some(base) => (base, true),
            None => (name, false),
        };
        let &(_, family, negated, compare) = OPERATORS
            .iter()
            .find(|(n, ..)| *n == name)
            .ok_or_else(|| format!("{operator}: not a condition operator"))?;
        if family == Family::Null && (if_exists || set != Set::Plain) {
            return Err(format!(
                "{operator}: Null has no IfExists or set-qualified form"
            ));
        }
        if key.is_empty() {
            return Err(format!("{operator}: a condition key is empty"));
        }
        let texts: Vec<String> = match values {
            Json::Array(items) => items.iter().map(scalar).collect::<Option<_>>(),
            v => scalar(v).map(|s| vec![s]),
        }
        .ok_or_else(|| {
            format!(
                "{operator}.{key}: a value must be a string, number or boolean, or a list of them"
            )
        })?;
        if texts.is_empty() {
            return Err(format!("{operator}.{key}: no values"));
        }
        let bad = |text: &str, what: &str| format!("{operator}.{key}: {text:?} is not {what}");
        let test = match family {
            Family::String | Family::StringIgnoreCase => Test::StringEquals(
                texts
                    .iter()
                    .map(|t| Pattern::parse(t, false, variables))
                    .collect::<Result<_, _>>()
                    .map_err(|e| format!("{operator}.{key}: {e}"))?,
                family == Family::StringIgnoreCase,
            ),
            Family::StringLike => Test::StringLike(
                texts
                    .iter()
                    .map(|t| Pattern::parse(t, true, variables))
                    .collect::<Result<_, _>>()
                    .map_err(|e| format!("{operator}.{key}: {e}"))?,
            ),
            Family::Arn => Test::Arn(
                texts
                    .iter()
                    .map(|t| Pattern::parse(t, true, variables))
                    .collect::<Result<_, _>>()
                    .map_err(|e| format!("{operator}.{key}: {e}"))?,
            ),
            Family::Numeric => Test::Numeric(
                texts
                    .iter()
                    .map(|t| parse_number(t).ok_or_else(|| bad(t, "a number")))
                    .collect::<Result<_, _>>()?,
                compare,
            ),
            Family::Date => Test::Date(
                texts
                    .iter()
                    .map(|t| {
                        parse_date(t).ok_or_else(|| {
                            bad(
                                t,
                                "a date (ISO 8601, such as 2026-01-31T00:00:00Z, or epoch seconds)",
                            )
                        })
                    })
                    .collect::<Result<_, _>>()?,
                compare,
            ),
            Family::Bool => Test::Bool(
                texts
                    .iter()
                    .map(|t| parse_bool(t).ok_or_else(|| bad(t, "true or false")))
                    .collect::<Result<_, _>>()?,
            ),
            Family::Null => Test::Null(
                texts
                    .iter()
                    .map(|t| parse_bool(t).ok_or_else(|| bad(t, "true or false")))
                    .collect::<Result<_, _>>()?,
            ),
            Family::Ip => Test::Ip(
                texts
                    .iter()
                    .map(|t| parse_ip(t).ok_or_else(|| bad(t, "an IP address or CIDR block")))
                    .collect::<Result<_, _>>()?,
            ),
        };
        Ok(Self {
            operator: operator.to_string(),
            key: key.to_string(),
            test,
            negated,
            if_exists,
            set,
        })
    }

    /// The condition key, in lower case.
    pub fn key_lower(&self) -> String {
        self.key.to_ascii_lowercase()
    }

    /// Whether the condition holds for the request.
    pub fn holds(&self, context: &Context) -> bool {
        let values = context.get(&self.key);
        if let Test::Null(expected) = &self.test {
            let missing = values.is_none_or(|v| v.is_empty());
            return expected.contains(&missing);
        }
        let Some(values) = values else {
            return match self.set {
                Set::ForAllValues => true,
                Set::ForAnyValue => self.if_exists,
                Set::Plain => self.if_exists || self.negated,
            };
        };
        // Each request value against the policy values: any match (OR), negated: none.
        let one = |v: &str| self.matches_any(v, context) != self.negated;
        match self.set {
            Set::ForAllValues => values.iter().all(|v| one(v)),
            Set::ForAnyValue => values.iter().any(|v| one(v)),
            Set::Plain => {
                let any = values.iter().any(|v| self.matches_any(v, context));
                any != self.negated
            }
        }
    }

    /// Whether the request value `v` matches any of the policy's values (the positive test).
    fn matches_any(&self, v: &str, context: &Context) -> bool {
        match &self.test {
            Test::StringEquals(patterns, ignore_case) => {
                patterns.iter().any(|p| p.matches(v, *ignore_case, context))
            }
            Test::StringLike(patterns) => patterns.iter().any(|p| p.matches(v, false, context)),
            Test::Arn(patterns) => patterns.iter().any(|p| p.matches_arn(v, context)),
            Test::Numeric(numbers, compare) => parse_number(v).is_some_and(|v| {
                numbers
                    .iter()
                    .any(|n| v.partial_cmp(n).is_some_and(|o| compare.holds(o)))
            }),
            Test::Date(dates, compare) => {
                parse_date(v).is_some_and(|v| dates.iter().any(|d| compare.holds(v.cmp(d))))
            }
            Test::Bool(bools) => parse_bool(v).is_some_and(|v| bools.contains(&v)),
            Test::Ip(nets) => v
                .parse::<IpAddr>()
                .is_ok_and(|ip| nets.iter().any(|n| n.contains(&ip))),
            Test::Null(_) => false,
        }
    }
}

/// Policy values may be written as JSON strings, numbers or booleans.
fn scalar(v: &Json) -> Option<String> {
    match v {
        Json::String(s) => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        Json::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn parse_number(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok().filter(|n| n.is_finite())
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// ISO 8601 / RFC 3339 times, plain dates (midnight UTC), or epoch seconds.
fn parse_date(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Some(d.and_hms_opt(0, 0, 0)?.and_utc());
    }
    if let Ok(t) = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S") {
        return Some(t.and_utc());
    }
    let seconds: i64 = text.parse().ok()?;
    DateTime::from_timestamp(seconds, 0)
}

/// `203.0.113.0/24`, `2001:db8::/32`, or one address (a /32 or /128).
fn parse_ip(text: &str) -> Option<IpNet> {
    let text = text.trim();
    text.parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<IpAddr>().ok().map(IpNet::from))
}
