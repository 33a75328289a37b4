//! SageMaker `Search` over the `FeatureGroup` and `FeatureMetadata` resources (and the
//! experiments' `Experiment`, `ExperimentTrial`, `ExperimentTrialComponent`): filters on
//! property paths (`OnlineStoreConfig.EnableOnlineStore`, `Parameters.owner`), nested filters
//! over lists (`FeatureDefinitions`), sub-expressions joined by And / Or, sort and pagination.
//!
//! Each resource is rendered exactly as the response shows it, and the expression is evaluated
//! against that JSON, so a filter can name any property a result carries.

use std::cmp::Ordering;

use serde::Deserialize;
use serde_json::Value;

use super::shapes::{feature_group_json, feature_metadata_json};
use super::wire::to_json;
use quiver_core::FeatureStore;
use quiver_types::error::{Error, Result};

const DEFAULT_MAX_RESULTS: usize = 10;
const MAX_MAX_RESULTS: usize = 100;
/// Most filters, nested filters or sub-expressions in one expression, as in SageMaker.
const MAX_ITEMS: usize = 20;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SearchRequest {
    resource: String,
    search_expression: Option<SearchExpression>,
    sort_by: Option<String>,
    sort_order: Option<String>,
    next_token: Option<String>,
    max_results: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SearchExpression {
    #[serde(default)]
    filters: Vec<Filter>,
    #[serde(default)]
    nested_filters: Vec<NestedFilters>,
    #[serde(default)]
    sub_expressions: Vec<SearchExpression>,
    operator: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Filter {
    name: String,
    operator: Option<String>,
    value: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct NestedFilters {
    nested_property_name: String,
    filters: Vec<Filter>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Equals,
    NotEquals,
    GreaterThan,
    GreaterThanOrEqualTo,
    LessThan,
    LessThanOrEqualTo,
    Contains,
    Exists,
    NotExists,
    In,
}

impl Op {
    fn parse(field: &str, name: Option<&str>) -> Result<Op> {
        Ok(match name.unwrap_or("Equals") {
            "Equals" => Op::Equals,
            "NotEquals" => Op::NotEquals,
            "GreaterThan" => Op::GreaterThan,
            "GreaterThanOrEqualTo" => Op::GreaterThanOrEqualTo,
            "LessThan" => Op::LessThan,
            "LessThanOrEqualTo" => Op::LessThanOrEqualTo,
            "Contains" => Op::Contains,
            "Exists" => Op::Exists,
            "NotExists" => Op::NotExists,
            "In" => Op::In,
            other => {
                return Err(Error::validation(format!(
                    "{field}.Operator '{other}' is not one of Equals, NotEquals, GreaterThan, GreaterThanOrEqualTo, LessThan, LessThanOrEqualTo, Contains, Exists, NotExists, In"
                )));
            }
        })
    }
}

/// A validated filter: the property path and what its value must satisfy.
#[derive(Debug)]
struct Condition {
    path: Vec<String>,
    op: Op,
    value: Option<String>,
}

#[derive(Debug)]
struct Expression {
    any: bool,
    conditions: Vec<Condition>,
    nested: Vec<(Vec<String>, Vec<Condition>)>,
    subexpressions: Vec<Expression>,
}

fn path(name: &str) -> Vec<String> {
    name.split('.').map(str::to_string).collect()
}

fn condition(field: &str, filter: &Filter, contains: &mut usize) -> Result<Condition> {
    if filter.name.is_empty() || filter.name.len() > 255 {
        return Err(Error::validation(format!(
            "{field}.Name must be 1 to 255 characters"
        )));
    }
    let op = Op::parse(field, filter.operator.as_deref())?;
    let needs_value = !matches!(op, Op::Exists | Op::NotExists);
    match (&filter.value, needs_value) {
        (None, true) => {
            return Err(Error::validation(format!(
                "{field}.Value is required with Operator {op:?}"
            )));
        }
        (Some(v), true) if v.is_empty() || v.len() > 1024 => {
            return Err(Error::validation(format!(
                "{field}.Value must be 1 to 1024 characters"
            )));
        }
        _ => {}
    }
    if op == Op::Contains {
        *contains += 1;
        if *contains > 1 {
            return Err(Error::validation(
                "a SearchExpression may use the Contains operator only once",
            ));
        }
    }
    Ok(Condition {
        path: path(&filter.name),
        op,
        value: filter.value.clone().filter(|_| needs_value),
    })
}

fn compile(field: &str, expr: &SearchExpression, contains: &mut usize) -> Result<Expression> {
    for (what, n) in [
        ("Filters", expr.filters.len()),
        ("NestedFilters", expr.nested_filters.len()),
        ("SubExpressions", expr.sub_expressions.len()),
    ] {
        if n > MAX_ITEMS {
            return Err(Error::validation(format!(
                "{field}.{what} holds {n} items; at most {MAX_ITEMS}"
            )));
        }
    }
    let any = match expr.operator.as_deref() {
        None | Some("And") => false,
        Some("Or") => true,
        Some(other) => {
            return Err(Error::validation(format!(
                "{field}.Operator '{other}' is not And or Or"
            )));
        }
    };
    let conditions = expr
        .filters
        .iter()
        .enumerate()
        .map(|(i, f)| condition(&format!("{field}.Filters[{i}]"), f, contains))
        .collect::<Result<_>>()?;
    let nested = expr
        .nested_filters
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let at = format!("{field}.NestedFilters[{i}]");
            if n.filters.is_empty() {
                return Err(Error::validation(format!(
                    "{at}.Filters must hold at least one filter"
                )));
            }
            let prefix = format!("{}.", n.nested_property_name);
            let conditions = n
                .filters
                .iter()
                .enumerate()
                .map(|(j, f)| {
                    let field = format!("{at}.Filters[{j}]");
                    let rest = f.name.strip_prefix(&prefix).ok_or_else(|| {
                        Error::validation(format!(
                            "{field}.Name '{}' must start with the NestedPropertyName '{prefix}'",
                            f.name
                        ))
                    })?;
                    let mut c = condition(&field, f, contains)?;
                    c.path = path(rest);
                    Ok(c)
                })
                .collect::<Result<_>>()?;
            Ok((path(&n.nested_property_name), conditions))
        })
        .collect::<Result<_>>()?;
    let subexpressions = expr
        .sub_expressions
        .iter()
        .enumerate()
        .map(|(i, e)| compile(&format!("{field}.SubExpressions[{i}]"), e, contains))
        .collect::<Result<_>>()?;
    Ok(Expression {
        any,
        conditions,
        nested,
        subexpressions,
    })
}

impl Expression {
    fn matches(&self, doc: &Value) -> bool {
        let results: Vec<bool> = self
            .conditions
            .iter()
            .map(|c| c.matches(doc))
            .chain(self.nested.iter().map(|(list, conditions)| {
                // Some element of the list satisfies every filter.
                lookup(doc, list).iter().any(|items| match items {
                    Value::Array(items) => items
                        .iter()
                        .any(|item| conditions.iter().all(|c| c.matches(item))),
                    item => conditions.iter().all(|c| c.matches(item)),
                })
            }))
            .chain(self.subexpressions.iter().map(|e| e.matches(doc)))
            .collect();
        // An empty Or matches everything, like an empty And.
        if self.any && !results.is_empty() {
            results.contains(&true)
        } else {
            results.iter().all(|r| *r)
        }
    }
}

impl Condition {
    fn matches(&self, doc: &Value) -> bool {
        let leaves: Vec<&Value> = lookup(doc, &self.path)
            .into_iter()
            .flat_map(|v| match v {
                Value::Array(items) => items.iter().collect::<Vec<_>>(),
                v => vec![v],
            })
            .filter(|v| !v.is_null())
            .collect();
        let value = self.value.as_deref().unwrap_or("");
        let time_like = self.path.last().is_some_and(|p| p.ends_with("Time"));
        match self.op {
            Op::Exists => !leaves.is_empty(),
            Op::NotExists => leaves.is_empty(),
            Op::NotEquals => !leaves
                .iter()
                .any(|l| compare(l, value, time_like) == Some(Ordering::Equal)),
            Op::In => value.split(',').map(str::trim).any(|v| {
                leaves
                    .iter()
                    .any(|l| compare(l, v, time_like) == Some(Ordering::Equal))
            }),
            Op::Contains => leaves.iter().any(|l| match l {
                Value::String(s) => s.contains(value),
                _ => false,
            }),
            op => leaves.iter().any(|l| {
                compare(l, value, time_like).is_some_and(|o| match op {
                    Op::Equals => o == Ordering::Equal,
                    Op::GreaterThan => o == Ordering::Greater,
                    Op::GreaterThanOrEqualTo => o != Ordering::Less,
                    Op::LessThan => o == Ordering::Less,
                    Op::LessThanOrEqualTo => o != Ordering::Greater,
                    _ => false,
                })
            }),
        }
    }
}

/// The values at `path`: objects are walked by key; a list is walked element by element, and a
/// list of `{Key, Value}` pairs (Tags, Parameters) is looked up by key.
fn lookup<'a>(doc: &'a Value, path: &[String]) -> Vec<&'a Value> {
    let Some((head, rest)) = path.split_first() else {
        return vec![doc];
    };
    match doc {
        Value::Object(map) => map.get(head).map_or_else(Vec::new, |v| lookup(v, rest)),
        Value::Array(items) => {
            let key_values = items
                .iter()
                .all(|i| i.get("Key").is_some() && i.get("Value").is_some());
            if key_values && !items.is_empty() {
                // Keys may hold dots: the rest of the path is the key.
                let key = path.join(".");
                items
                    .iter()
                    .filter(|i| i.get("Key").and_then(Value::as_str) == Some(key.as_str()))
                    .filter_map(|i| i.get("Value"))
                    .collect()
            } else {
                items.iter().flat_map(|i| lookup(i, path)).collect()
            }
        }
        _ => Vec::new(),
    }
}

/// Orders a stored value against a filter value: numbers numerically (times also from
/// ISO-8601), booleans as true/false, text as text.
fn compare(stored: &Value, filter: &str, time_like: bool) -> Option<Ordering> {
    match stored {
        Value::Number(n) => {
            let stored = n.as_f64()?;
            let wanted = filter.trim().parse::<f64>().ok().or_else(|| {
                time_like
                    .then(|| {
                        quiver_types::time::parse_any(filter)
                            .ok()
                            .map(|ms| ms as f64 / 1000.0)
                    })
                    .flatten()
            })?;
            stored.partial_cmp(&wanted)
        }
        Value::Bool(b) => {
            let wanted = filter.trim().to_ascii_lowercase().parse::<bool>().ok()?;
            Some(b.cmp(&wanted))
        }
        Value::String(s) => Some(s.as_str().cmp(filter)),
        _ => None,
    }
}

fn sort_key<'a>(doc: &'a Value, path: &[String]) -> Option<&'a Value> {
    lookup(doc, path).into_iter().find(|v| !v.is_null())
}

fn order(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Some(Value::String(x)), Some(Value::String(y))) => x.cmp(y),
        (Some(Value::Bool(x)), Some(Value::Bool(y))) => x.cmp(y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        _ => Ordering::Equal,
    }
}

pub fn search(
    store: &FeatureStore,
    lineage: Option<&quiver_lineage::Lineage>,
    req: SearchRequest,
) -> Result<Value> {
    let expression = compile(
        "SearchExpression",
        &req.search_expression.unwrap_or_default(),
        &mut 0,
    )?;
    let max = match req.max_results {
        None => DEFAULT_MAX_RESULTS,
        Some(n) if (1..=MAX_MAX_RESULTS as i64).contains(&n) => n as usize,
        Some(n) => {
            return Err(Error::validation(format!(
                "MaxResults {n} must be between 1 and {MAX_MAX_RESULTS}"
            )));
        }
    };
    let descending = match req.sort_order.as_deref() {
        None | Some("Descending") => true,
        Some("Ascending") => false,
        Some(other) => {
            return Err(Error::validation(format!(
                "SortOrder '{other}' is not Ascending or Descending"
            )));
        }
    };
    let offset = match req.next_token.as_deref().filter(|t| !t.is_empty()) {
        None => 0,
        Some(token) => token
            .strip_prefix("search:")
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| Error::validation("NextToken is not a token returned by Search"))?,
    };
    let groups = store.registry().all();
    let (wrapper, docs) = match req.resource.as_str() {
        "FeatureGroup" => (
            "FeatureGroup",
            groups
                .iter()
                .map(|g| to_json(&feature_group_json(g, store.offline())))
                .collect::<Result<Vec<_>>>()?,
        ),
        "FeatureMetadata" => (
            "FeatureMetadata",
            groups
                .iter()
                .flat_map(|g| g.features.iter().map(move |f| (g, f)))
                .map(|(g, f)| to_json(&feature_metadata_json(g, f)))
                .collect::<Result<Vec<_>>>()?,
        ),
        other => match crate::experiments::search_documents(lineage, other) {
            Some(found) => found?,
            None => {
                return Err(Error::validation(format!(
                    "Resource '{other}' is not searchable in Quiver: FeatureGroup, FeatureMetadata, \
                     Experiment, ExperimentTrial and ExperimentTrialComponent are"
                )));
            }
        },
    };
    let mut hits: Vec<Value> = docs.into_iter().filter(|d| expression.matches(d)).collect();
    let sort_path = path(req.sort_by.as_deref().unwrap_or("LastModifiedTime"));
    // Ties (and missing values) fall back to the ARN and feature name, so pages are stable.
    let arn_field = match wrapper {
        "FeatureGroup" | "FeatureMetadata" => "FeatureGroupArn".to_string(),
        kind => format!("{kind}Arn"),
    };
    let identity = |d: &Value| {
        (
            d.get(&arn_field)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            d.get("FeatureName")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        )
    };
    hits.sort_by(|a, b| {
        let by_key = order(sort_key(a, &sort_path), sort_key(b, &sort_path));
        let by_key = match (descending, sort_key(a, &sort_path), sort_key(b, &sort_path)) {
            // Missing values sort last in both orders.
            (true, Some(_), Some(_)) => by_key.reverse(),
            _ => by_key,
        };
        by_key.then_with(|| identity(a).cmp(&identity(b)))
    });
    let total = hits.len();
    let page: Vec<Value> = hits
        .into_iter()
        .skip(offset)
        .take(max)
        .map(|d| serde_json::json!({ wrapper: d }))
        .collect();
    let mut response = serde_json::json!({
        "Results": page,
        "TotalHits": { "Value": total, "Relation": "EqualTo" },
    });
    if offset + max < total {
        response["NextToken"] = format!("search:{}", offset + max).into();
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expr(json: Value) -> Expression {
        let parsed: SearchExpression = serde_json::from_value(json).unwrap();
        compile("SearchExpression", &parsed, &mut 0).unwrap()
    }

    fn group() -> Value {
        serde_json::json!({
            "FeatureGroupName": "customers",
            "CreationTime": 1_700_000_000.5,
            "OnlineStoreConfig": { "EnableOnlineStore": true },
            "FeatureDefinitions": [
                { "FeatureName": "id", "FeatureType": "String" },
                { "FeatureName": "age", "FeatureType": "Integral" },
            ],
            "Tags": [ { "Key": "team.owner", "Value": "risk" } ],
        })
    }

    #[test]
    fn filters_compare_text_numbers_times_booleans_and_tags() {
        let doc = group();
        let yes = |e: Value| assert!(expr(e.clone()).matches(&doc), "{e}");
        let no = |e: Value| assert!(!expr(e.clone()).matches(&doc), "{e}");
        yes(
            serde_json::json!({"Filters": [{"Name": "FeatureGroupName", "Operator": "Equals", "Value": "customers"}]}),
        );
        no(
            serde_json::json!({"Filters": [{"Name": "FeatureGroupName", "Operator": "NotEquals", "Value": "customers"}]}),
        );
        yes(
            serde_json::json!({"Filters": [{"Name": "FeatureGroupName", "Operator": "Contains", "Value": "stom"}]}),
        );
        yes(
            serde_json::json!({"Filters": [{"Name": "CreationTime", "Operator": "GreaterThan", "Value": "2023-01-01T00:00:00Z"}]}),
        );
        no(
            serde_json::json!({"Filters": [{"Name": "CreationTime", "Operator": "LessThan", "Value": "1600000000"}]}),
        );
        yes(
            serde_json::json!({"Filters": [{"Name": "OnlineStoreConfig.EnableOnlineStore", "Value": "True"}]}),
        );
        yes(serde_json::json!({"Filters": [{"Name": "Tags.team.owner", "Value": "risk"}]}));
        yes(
            serde_json::json!({"Filters": [{"Name": "OfflineStoreConfig", "Operator": "NotExists"}]}),
        );
        yes(
            serde_json::json!({"Filters": [{"Name": "FeatureGroupName", "Operator": "In", "Value": "orders, customers"}]}),
        );
    }

    #[test]
    fn nested_filters_need_one_element_to_match_every_filter() {
        let doc = group();
        let nested = |name: &str, kind: &str| {
            serde_json::json!({"NestedFilters": [{
                "NestedPropertyName": "FeatureDefinitions",
                "Filters": [
                    {"Name": "FeatureDefinitions.FeatureName", "Value": name},
                    {"Name": "FeatureDefinitions.FeatureType", "Value": kind},
                ]
            }]})
        };
        assert!(expr(nested("age", "Integral")).matches(&doc));
        assert!(!expr(nested("age", "String")).matches(&doc));
    }

    #[test]
    fn sub_expressions_combine_with_or() {
        let doc = group();
        let e = expr(serde_json::json!({
            "Operator": "Or",
            "SubExpressions": [
                {"Filters": [{"Name": "FeatureGroupName", "Value": "orders"}]},
                {"Filters": [{"Name": "FeatureGroupName", "Value": "customers"}]},
            ]
        }));
        assert!(e.matches(&doc));
    }

    #[test]
    fn bad_expressions_name_the_field() {
        let parse = |e: Value| {
            let parsed: SearchExpression = serde_json::from_value(e).unwrap();
            compile("SearchExpression", &parsed, &mut 0)
                .unwrap_err()
                .to_string()
        };
        assert!(
            parse(
                serde_json::json!({"Filters": [{"Name": "A", "Operator": "Like", "Value": "x"}]})
            )
            .contains("SearchExpression.Filters[0].Operator 'Like'")
        );
        assert!(
            parse(serde_json::json!({"Filters": [{"Name": "A", "Operator": "Equals"}]}))
                .contains("SearchExpression.Filters[0].Value is required")
        );
        assert!(
            parse(serde_json::json!({"Filters": [
                {"Name": "A", "Operator": "Contains", "Value": "x"},
                {"Name": "B", "Operator": "Contains", "Value": "y"}
            ]}))
            .contains("Contains operator only once")
        );
        assert!(
            parse(serde_json::json!({"NestedFilters": [{
                "NestedPropertyName": "FeatureDefinitions",
                "Filters": [{"Name": "FeatureName", "Value": "x"}]
            }]}))
            .contains("must start with the NestedPropertyName")
        );
    }
}
