//! IAM JSON policy documents, and their evaluation as IAM evaluates identity policies: an
//! explicit `Deny` in any statement beats any `Allow`, an `Allow` beats the implicit deny, and
//! a request nothing allows is denied.
//!
//! A statement applies to a request when its `Action` (or `NotAction`), `Resource` (or
//! `NotResource`) and every entry of its `Condition` block match. Actions match without regard
//! to case; resources are ARNs matched component by component; both take `*` and `?`.

use serde_json::Value as Json;

use super::condition::Condition;
use super::context::Context;
use super::pattern::Pattern;

/// A parsed, validated policy document.
#[derive(Debug, Clone)]
pub struct Policy {
    pub version: String,
    pub statements: Vec<Statement>,
}

#[derive(Debug, Clone)]
pub struct Statement {
    pub sid: Option<String>,
    pub effect: Effect,
    action: Matcher,
    resource: Matcher,
    conditions: Vec<Condition>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Effect {
    Allow,
    Deny,
}

/// `Action` (the patterns) or `NotAction` (anything but them); the same for resources.
#[derive(Debug, Clone)]
struct Matcher {
    patterns: Vec<Pattern>,
    not: bool,
}

/// What is asked: an action (`sagemaker:GetRecord`) on a resource (an ARN), with the
/// request's condition keys.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub action: &'a str,
    pub resource: &'a str,
    pub context: &'a Context,
}

/// The outcome of an evaluation, and the statement that decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub outcome: Outcome,
    /// The deciding statement: the first matching `Deny` for an explicit deny, the first
    /// matching `Allow` for an allow, none for the implicit deny.
    pub statement: Option<StatementRef>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Outcome {
    Allowed,
    ExplicitDeny,
    ImplicitDeny,
}

impl Outcome {
    pub fn allowed(self) -> bool {
        self == Outcome::Allowed
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::ExplicitDeny => "explicitDeny",
            Outcome::ImplicitDeny => "implicitDeny",
        }
    }
}

/// A statement named by its policy, its position and its `Sid`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementRef {
    pub policy: String,
    pub index: usize,
    pub sid: Option<String>,
}

impl std::fmt::Display for StatementRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} Statement[{}]", self.policy, self.index)?;
        if let Some(sid) = &self.sid {
            write!(f, " (Sid {sid:?})")?;
        }
        Ok(())
    }
}

impl Policy {
    /// Whether evaluating this policy reads the request's condition keys (it has conditions, or
    /// variables in its resources).
    pub fn needs_context(&self) -> bool {
        self.statements.iter().any(|s| {
            !s.conditions.is_empty() || s.resource.patterns.iter().any(Pattern::has_variables)
        })
    }

    /// Whether a condition of this policy tests `key` (lower case).
    pub fn tests_key(&self, key: &str) -> bool {
        self.statements
            .iter()
            .any(|s| s.conditions.iter().any(|c| c.key_lower() == key))
    }

    /// Parses and validates a policy document; the error names the field and the problem.
    pub fn parse(text: &str) -> Result<Self, String> {
        let doc: Json =
            serde_json::from_str(text).map_err(|e| format!("policy document: not JSON: {e}"))?;
        let Json::Object(doc) = doc else {
            return Err("policy document: must be a JSON object".into());
        };
        for key in doc.keys() {
            if !matches!(key.as_str(), "Version" | "Id" | "Statement") {
                return Err(format!(
                    "policy document: unknown field {key:?} (expected Version, Id, Statement)"
                ));
            }
        }
        // As in IAM: no Version means the 2008 language, without policy variables.
        let version = match doc.get("Version") {
            None => "2008-10-17".to_string(),
            Some(Json::String(v)) if v == "2012-10-17" || v == "2008-10-17" => v.clone(),
            Some(v) => {
                return Err(format!(
                    "Version: {v} is not a policy language version (2012-10-17 or 2008-10-17)"
                ));
            }
        };
        let variables = version == "2012-10-17";
        let statements = match doc.get("Statement") {
            Some(Json::Array(items)) => items.iter().collect::<Vec<_>>(),
            Some(item @ Json::Object(_)) => vec![item],
            Some(_) => return Err("Statement: must be an object or a list of objects".into()),
            None => return Err("Statement: missing".into()),
        };
        if statements.is_empty() {
            return Err("Statement: empty".into());
        }
        let statements = statements
            .into_iter()
            .enumerate()
            .map(|(i, s)| Statement::parse(s, variables).map_err(|e| format!("Statement[{i}].{e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let mut sids = std::collections::HashSet::new();
        for (i, s) in statements.iter().enumerate() {
            if let Some(sid) = &s.sid
                && !sids.insert(sid)
            {
                return Err(format!("Statement[{i}].Sid: {sid:?} is used twice"));
            }
        }
        Ok(Self {
            version,
            statements,
        })
    }
}

impl Statement {
    fn parse(value: &Json, variables: bool) -> Result<Self, String> {
        let Json::Object(s) = value else {
            return Err(" must be an object".into());
        };
        for key in s.keys() {
            if !matches!(
                key.as_str(),
                "Sid"
                    | "Effect"
                    | "Action"
                    | "NotAction"
                    | "Resource"
                    | "NotResource"
                    | "Condition"
            ) {
                let hint = if key == "Principal" || key == "NotPrincipal" {
                    " (identity policies name no principal: attach the policy to it instead)"
                } else {
                    ""
                };
                return Err(format!("{key}: not a statement field{hint}"));
            }
        }
        let sid = match s.get("Sid") {
            None => None,
            Some(Json::String(sid)) if sid.chars().all(|c| c.is_ascii_alphanumeric()) => {
                Some(sid.clone())
            }
            Some(v) => return Err(format!("Sid: {v} must be a string of letters and digits")),
        };
        let effect = match s.get("Effect").and_then(Json::as_str) {
            Some("Allow") => Effect::Allow,
            Some("Deny") => Effect::Deny,
            Some(other) => return Err(format!("Effect: {other:?} is not Allow or Deny")),
            None => return Err("Effect: missing (Allow or Deny)".into()),
        };
        let action = Matcher::parse(s, "Action", "NotAction", |text| {
            if text != "*" && !text.contains(':') {
                return Err(format!(
                    "{text:?} is not an action (service:name, such as sagemaker:GetRecord, or *)"
                ));
            }
            Pattern::parse(text, true, false)
        })?;
        let resource = Matcher::parse(s, "Resource", "NotResource", |text| {
            if text != "*" && !text.starts_with("arn:") {
                return Err(format!(
                    "{text:?} is not an ARN (arn:aws:sagemaker:REGION:ACCOUNT:feature-group/NAME) or *"
                ));
            }
            Pattern::parse(text, true, variables)
        })?;
        let mut conditions = Vec::new();
        match s.get("Condition") {
            None => {}
            Some(Json::Object(block)) => {
                for (operator, keys) in block {
                    let Json::Object(keys) = keys else {
                        return Err(format!(
                            "Condition.{operator}: must be an object of condition keys"
                        ));
                    };
                    if keys.is_empty() {
                        return Err(format!("Condition.{operator}: no condition keys"));
                    }
                    for (key, values) in keys {
                        conditions.push(
                            Condition::parse(operator, key, values, variables)
                                .map_err(|e| format!("Condition.{e}"))?,
                        );
                    }
                }
            }
            Some(_) => return Err("Condition: must be an object".into()),
        }
        Ok(Self {
            sid,
            effect,
            action,
            resource,
            conditions,
        })
    }

    /// Whether this statement applies to the request.
    pub fn applies(&self, request: &Request) -> bool {
        self.action
            .matches(|p| p.matches(request.action, true, request.context))
            && self
                .resource
                .matches(|p| p.matches_arn(request.resource, request.context))
            && self.conditions.iter().all(|c| c.holds(request.context))
    }
}

impl Matcher {
    fn parse(
        s: &serde_json::Map<String, Json>,
        field: &str,
        not_field: &str,
        parse: impl Fn(&str) -> Result<Pattern, String>,
    ) -> Result<Self, String> {
        let (name, value, not) = match (s.get(field), s.get(not_field)) {
            (Some(v), None) => (field, v, false),
            (None, Some(v)) => (not_field, v, true),
            (Some(_), Some(_)) => {
                return Err(format!("{field}: give {field} or {not_field}, not both"));
            }
            (None, None) => return Err(format!("{field}: missing ({field} or {not_field})")),
        };
        let texts: Vec<&str> = match value {
            Json::String(s) => vec![s.as_str()],
            Json::Array(items) => items
                .iter()
                .map(Json::as_str)
                .collect::<Option<_>>()
                .ok_or_else(|| format!("{name}: must be a string or a list of strings"))?,
            _ => return Err(format!("{name}: must be a string or a list of strings")),
        };
        if texts.is_empty() {
            return Err(format!("{name}: empty"));
        }
        let patterns = texts
            .into_iter()
            .map(|t| parse(t).map_err(|e| format!("{name}: {e}")))
            .collect::<Result<_, _>>()?;
        Ok(Self { patterns, not })
    }

    fn matches(&self, one: impl Fn(&Pattern) -> bool) -> bool {
        self.patterns.iter().any(one) != self.not
    }
}

/// Evaluates `request` against named policies (a principal's own and its groups'): an explicit
/// deny beats an allow, which beats the implicit deny.
pub fn evaluate<'p>(
    policies: impl IntoIterator<Item = (&'p str, &'p Policy)>,
    request: &Request,
) -> Decision {
    let mut allow: Option<StatementRef> = None;
    for (name, policy) in policies {
        for (index, statement) in policy.statements.iter().enumerate() {
            if !statement.applies(request) {
                continue;
            }
            let at = || StatementRef {
                policy: name.to_string(),
                index,
                sid: statement.sid.clone(),
            };
            match statement.effect {
                Effect::Deny => {
                    return Decision {
                        outcome: Outcome::ExplicitDeny,
                        statement: Some(at()),
                    };
                }
                Effect::Allow if allow.is_none() => allow = Some(at()),
                Effect::Allow => {}
            }
        }
    }
    match allow {
        Some(statement) => Decision {
            outcome: Outcome::Allowed,
            statement: Some(statement),
        },
        None => Decision {
            outcome: Outcome::ImplicitDeny,
            statement: None,
        },
    }
}
