//! The policy-evaluation table: each case gives policies, a request and the expected decision
//! with its deciding statement. It covers deny precedence, wildcards, NotAction / NotResource,
//! policy variables, every condition operator family, missing keys, IfExists and the set
//! qualifiers; and the parse errors a policy author meets.

use super::context::Context;
use super::policy::{Outcome, Policy, Request, evaluate};

const FG: &str = "arn:aws:sagemaker:us-east-1:000000000000:feature-group/";

struct Case {
    name: &'static str,
    policies: &'static [&'static str],
    action: &'static str,
    /// A feature group name (under `FG`), or a whole ARN.
    resource: &'static str,
    context: &'static [(&'static str, &'static [&'static str])],
    want: Outcome,
    /// The deciding statement's Sid.
    sid: Option<&'static str>,
}

use Outcome::{Allowed, ExplicitDeny, ImplicitDeny};

const ALLOW_GET: &str = r#"{"Version":"2012-10-17","Statement":{"Sid":"Get","Effect":"Allow","Action":"sagemaker:GetRecord","Resource":"*"}}"#;
const ALLOW_ALL: &str = r#"{"Version":"2012-10-17","Statement":{"Sid":"All","Effect":"Allow","Action":"*","Resource":"*"}}"#;

/// A policy allowing everything when the condition block holds.
macro_rules! allow_if {
    ($cond:literal) => {
        concat!(
            r#"{"Version":"2012-10-17","Statement":{"Sid":"If","Effect":"Allow","Action":"*","Resource":"*","Condition":"#,
            $cond,
            "}}"
        )
    };
}

#[rustfmt::skip]
const CASES: &[Case] = &[
    // Deny precedence and the implicit deny.
    Case { name: "an exact allow", policies: &[ALLOW_GET], action: "sagemaker:GetRecord", resource: "customers", context: &[], want: Allowed, sid: Some("Get") },
    Case { name: "nothing allows: implicit deny", policies: &[ALLOW_GET], action: "sagemaker:PutRecord", resource: "customers", context: &[], want: ImplicitDeny, sid: None },
    Case { name: "no policies at all", policies: &[], action: "sagemaker:GetRecord", resource: "customers", context: &[], want: ImplicitDeny, sid: None },
    Case { name: "deny beats allow in one policy", policies: &[ r#"{"Version":"2012-10-17","Statement":[{"Sid":"A","Effect":"Allow","Action":"*","Resource":"*"},{"Sid":"D","Effect":"Deny","Action":"sagemaker:DeleteRecord","Resource":"*"}]}"#, ], action: "sagemaker:DeleteRecord", resource: "customers", context: &[], want: ExplicitDeny, sid: Some("D") },
    Case { name: "deny in a group's policy beats the principal's allow", policies: &[ ALLOW_ALL, r#"{"Version":"2012-10-17","Statement":{"Sid":"NoPii","Effect":"Deny","Action":"*","Resource":"arn:aws:sagemaker:*:*:feature-group/pii-*"}}"#, ], action: "sagemaker:GetRecord", resource: "pii-profiles", context: &[], want: ExplicitDeny, sid: Some("NoPii") },
    Case { name: "a deny elsewhere that does not match leaves the allow", policies: &[ ALLOW_ALL, r#"{"Version":"2012-10-17","Statement":{"Sid":"NoPii","Effect":"Deny","Action":"*","Resource":"arn:aws:sagemaker:*:*:feature-group/pii-*"}}"#, ], action: "sagemaker:GetRecord", resource: "orders", context: &[], want: Allowed, sid: Some("All") },
    Case { name: "the first allowing statement decides", policies: &[ r#"{"Version":"2012-10-17","Statement":[{"Sid":"First","Effect":"Allow","Action":"sagemaker:*","Resource":"*"},{"Sid":"Second","Effect":"Allow","Action":"*","Resource":"*"}]}"#, ], action: "sagemaker:GetRecord", resource: "orders", context: &[], want: Allowed, sid: Some("First") },
    // Actions: case-insensitive, wildcards, NotAction.
    Case { name: "actions ignore case", policies: &[ r#"{"Version":"2012-10-17","Statement":{"Sid":"S","Effect":"Allow","Action":"SageMaker:getrecord","Resource":"*"}}"#, ], action: "sagemaker:GetRecord", resource: "orders", context: &[], want: Allowed, sid: Some("S") },
    Case { name: "action * wildcard", policies: &[ r#"{"Version":"2012-10-17","Statement":{"Sid":"S","Effect":"Allow","Action":"sagemaker:Get*","Resource":"*"}}"#, ], action: "sagemaker:GetRecord", resource: "orders", context: &[], want: Allowed, sid: Some("S") },
    Case { name: "action * wildcard does not match another prefix", policies: &[ r#"{"Version":"2012-10-17","Statement":{"Sid":"S","Effect":"Allow","Action":"sagemaker:Get*","Resource":"*"}}"#, ], action: "sagemaker:PutRecord", resource: "orders", context: &[], want: ImplicitDeny, sid: None },
    Case { name: "action ? wildcard", policies: &[ r#"{"Version":"2012-10-17","Statement":{"Sid":"S","Effect":"Allow","Action":"sagemaker:?etRecord","Resource":"*"}}"#, ], action: "sagemaker:GetRecord", resource: "orders", context: &[], want: Allowed, sid: Some("S") },
    Case { name: "action list", policies: &[ r#"{"Version":"2012-10-17","Statement":{"Sid":"S","Effect":"Allow","Action":["sagemaker:PutRecord","sagemaker:GetRecord"],"Resource":"*"}}"#, ], action: "sagemaker:GetRecord", resource: "orders", context: &[], want: Allowed, sid: Some("S") },
    Case { name: "another service's action does not match", policies: &[ r#"{"Version":"2012-10-17","Statement":{"Sid":"S","Effect":"Allow","Action":"s3:*","Resource":"*"}}"#, ], action: "sagemaker:GetRecord", resource: "orders", context: &[], want: ImplicitDeny, sid: None },
    Case { name: "NotAction allows what it does not name", policies: &[ r#"{"Version":"2012-10-17","Statement":{"Sid":"S","Effect":"Allow","NotAction":"sagemaker:Delete*","Resource":"*"}}"#, ], action: "sagemaker:GetRecord", resource: "orders", context: &[], want: Allowed, sid: Some("S") },
    Case { name: "NotAction does not allow what it names", policies: &[ r#"{"Version":"2012-10-17","Statement":{"Sid":"S","Effect":"Allow","NotAction":"sagemaker:Delete*","Resource":"*"}}"#, ], action: "sagemaker:DeleteRecord", resource: "orders", context: &[], want: ImplicitDeny, sid: None },
    Case { name: "Deny with NotAction denies everything else", policies: &[ ALLOW_ALL, r#"{"Version":"2012-10-17","Statement":{"Sid":"ReadOnly","Effect":"Deny","NotAction":["sagemaker:Get*","sagemaker:BatchGet*"],"Resource":"*"}}"#, ], action: "sagemaker:PutRecord", resource: "orders", context: &[], want: ExplicitDeny, sid: Some("ReadOnly") },
    // Resources: ARN components, wildcards, case, NotResource, variables.
    Case { name: "resource wildcard in the name", policies: &[ r#"{"Version":"2012-10-17","Statement":{"Sid":"S","Effect":"Allow","Action":"*","Resource":"arn:aws:sagemaker:us-east-1:000000000000:feature-group/cust*"}}"#, ], action: "sagemaker:GetRecord", resource: "customers", context: &[], want: Allowed, sid: Some("S") },
    Case { name: "resource wildcard does not match another name", policies: &[ r#"{"Version":"2012-10-17","Statement":{"Sid":"S","Effect":"Allow","Action":"*","Resource":"arn:aws:sagemaker:us-east-1:000000000000:feature-group/cust*"}}"#, ], action: "sagemaker:GetRecord", resource: "orders", context: &[], want: ImplicitDeny, sid: None },
    Case { name: "resources are case-sensitive", policies: &[ r#"{"Version":"2012-10-17","Statement":{"Sid":"S","Effect":"Allow","Action":"*","Resource":"arn:aws:sagemaker:us-east-1:000000000000:feature-group/Customers"}}"#, ], action: "sagemaker:GetRecord", resource: "customers", context: &[], want: ImplicitDeny, sid: None },
    Case { name: "region and account wildcards", policies: &[ r#"{"Version":"2012-10-17","Statement":{"Sid":"S","Effect":"Allow","Action":"*","Resource":"arn:aws:sagemaker:*:*:feature-group/*"}}"#, ], action: "sagemaker:GetRecord", resource: "orders", context: &[], want: Allowed, sid: Some("S") },
    Case { name: "another account does not match", policies: &[ r#"{"Version":"2012-10-17","Statement":{"Sid":"S","Effect":"Allow","Action":"*","Resource":"arn:aws:sagemaker:*:111111111111:feature-group/*"}}"#, ], action: "sagemaker:GetRecord", resource: "orders", context: &[], want: ImplicitDeny, sid: None },
    Case { name: "NotResource allows other groups", policies: &[ r#"{"Version":"2012-10-17","Statement":{"Sid":"S","Effect":"Allow","Action":"*","NotResource":"arn:aws:sagemaker:*:*:feature-group/pii-*"}}"#, ], action: "sagemaker:GetRecord", resource: "orders", context: &[], want: Allowed, sid: Some("S") },
    Case { name: "NotResource does not allow the named groups", policies: &[ r#"{"Version":"2012-10-17","Statement":{"Sid":"S","Effect":"Allow","Action":"*","NotResource":"arn:aws:sagemaker:*:*:feature-group/pii-*"}}"#, ], action: "sagemaker:GetRecord", resource: "pii-profiles", context: &[], want: ImplicitDeny, sid: None },
    Case { name: "a policy variable in the resource", policies: &[ r#"{"Version":"2012-10-17","Statement":{"Sid":"Own","Effect":"Allow","Action":"*","Resource":"arn:aws:sagemaker:*:*:feature-group/${aws:username}-*"}}"#, ], action: "sagemaker:PutRecord", resource: "alice-scratch", context: &[("aws:username", &["alice"])], want: Allowed, sid: Some("Own") },
    Case { name: "a policy variable with another user's resource", policies: &[ r#"{"Version":"2012-10-17","Statement":{"Sid":"Own","Effect":"Allow","Action":"*","Resource":"arn:aws:sagemaker:*:*:feature-group/${aws:username}-*"}}"#, ], action: "sagemaker:PutRecord", resource: "bob-scratch", context: &[("aws:username", &["alice"])], want: ImplicitDeny, sid: None },
    Case { name: "version 2008 has no policy variables", policies: &[ r#"{"Version":"2008-10-17","Statement":{"Sid":"Own","Effect":"Allow","Action":"*","Resource":"arn:aws:sagemaker:*:*:feature-group/${aws:username}-*"}}"#, ], action: "sagemaker:PutRecord", resource: "alice-scratch", context: &[("aws:username", &["alice"])], want: ImplicitDeny, sid: None },
    // String operators.
    Case { name: "StringEquals matches", policies: &[allow_if!(r#"{"StringEquals":{"aws:username":"alice"}}"#)], action: "sagemaker:GetRecord", resource: "orders", context: &[("aws:username", &["alice"])], want: Allowed, sid: Some("If") },
    Case { name: "StringEquals is case-sensitive", policies: &[allow_if!(r#"{"StringEquals":{"aws:username":"Alice"}}"#)], action: "sagemaker:GetRecord", resource: "orders", context: &[("aws:username", &["alice"])], want: ImplicitDeny, sid: None },
    Case { name: "StringEquals: several values are OR", policies: &[allow_if!( r#"{"StringEquals":{"aws:username":["bob","alice"]}}"# )], action: "sagemaker:GetRecord", resource: "orders", context: &[("aws:username", &["alice"])], want: Allowed, sid: Some("If") },
    Case { name: "StringEquals: a missing key is false", policies: &[allow_if!(r#"{"StringEquals":{"aws:username":"alice"}}"#)], action: "sagemaker:GetRecord", resource: "orders", context: &[], want: ImplicitDeny, sid: None },
    Case { name: "StringNotEquals: several values are NOR", policies: &[allow_if!( r#"{"StringNotEquals":{"aws:username":["bob","alice"]}}"# )], action: "sagemaker:GetRecord", resource: "orders", context: &[("aws:username", &["alice"])], want: ImplicitDeny, sid: None },
    Case { name: "StringNotEquals: a missing key is true", policies: &[ ALLOW_ALL, r#"{"Version":"2012-10-17","Statement":{"Sid":"OnlyOrg","Effect":"Deny","Action":"*","Resource":"*","Condition":{"StringNotEquals":{"aws:PrincipalTag/team":"ml"}}}}"#, ], action: "sagemaker:GetRecord", resource: "orders", context: &[], want: ExplicitDeny, sid: Some("OnlyOrg") },
    Case { name: "StringEqualsIgnoreCase", policies: &[allow_if!( r#"{"StringEqualsIgnoreCase":{"aws:username":"ALICE"}}"# )], action: "sagemaker:GetRecord", resource: "orders", context: &[("aws:username", &["alice"])], want: Allowed, sid: Some("If") },
    Case { name: "StringNotEqualsIgnoreCase", policies: &[allow_if!( r#"{"StringNotEqualsIgnoreCase":{"aws:username":"ALICE"}}"# )], action: "sagemaker:GetRecord", resource: "orders", context: &[("aws:username", &["alice"])], want: ImplicitDeny, sid: None },
    Case { name: "StringLike with wildcards", policies: &[allow_if!(r#"{"StringLike":{"aws:username":"data-*"}}"#)], action: "sagemaker:GetRecord", resource: "orders", context: &[("aws:username", &["data-eng"])], want: Allowed, sid: Some("If") },
    Case { name: "StringNotLike", policies: &[allow_if!(r#"{"StringNotLike":{"aws:username":"data-*"}}"#)], action: "sagemaker:GetRecord", resource: "orders", context: &[("aws:username", &["data-eng"])], want: ImplicitDeny, sid: None },
    Case { name: "StringEquals treats * literally", policies: &[allow_if!(r#"{"StringEquals":{"aws:username":"data-*"}}"#)], action: "sagemaker:GetRecord", resource: "orders", context: &[("aws:username", &["data-eng"])], want: ImplicitDeny, sid: None },
    Case { name: "a policy variable in a condition value", policies: &[allow_if!( r#"{"StringEquals":{"quiver:Owner":"${aws:username}"}}"# )], action: "sagemaker:GetRecord", resource: "orders", context: &[("aws:username", &["alice"]), ("quiver:Owner", &["alice"])], want: Allowed, sid: Some("If") },
    Case { name: "condition key names ignore case", policies: &[allow_if!(r#"{"StringEquals":{"AWS:UserName":"alice"}}"#)], action: "sagemaker:GetRecord", resource: "orders", context: &[("aws:username", &["alice"])], want: Allowed, sid: Some("If") },
    // IfExists.
    Case { name: "StringEqualsIfExists: a missing key is true", policies: &[allow_if!( r#"{"StringEqualsIfExists":{"aws:username":"alice"}}"# )], action: "sagemaker:GetRecord", resource: "orders", context: &[], want: Allowed, sid: Some("If") },
    Case { name: "StringEqualsIfExists: a present key must match", policies: &[allow_if!( r#"{"StringEqualsIfExists":{"aws:username":"alice"}}"# )], action: "sagemaker:GetRecord", resource: "orders", context: &[("aws:username", &["bob"])], want: ImplicitDeny, sid: None },
    Case { name: "NumericLessThanIfExists: a missing key is true", policies: &[allow_if!( r#"{"NumericLessThanIfExists":{"quiver:RecordCount":"100"}}"# )], action: "sagemaker:BatchGetRecord", resource: "orders", context: &[], want: Allowed, sid: Some("If") },
    // Numeric operators.
    Case { name: "NumericLessThan", policies: &[allow_if!( r#"{"NumericLessThan":{"quiver:RecordCount":100}}"# )], action: "sagemaker:BatchGetRecord", resource: "orders", context: &[("quiver:RecordCount", &["99"])], want: Allowed, sid: Some("If") },
    Case { name: "NumericLessThan at the bound is false", policies: &[allow_if!( r#"{"NumericLessThan":{"quiver:RecordCount":100}}"# )], action: "sagemaker:BatchGetRecord", resource: "orders", context: &[("quiver:RecordCount", &["100"])], want: ImplicitDeny, sid: None },
    Case { name: "NumericGreaterThanEquals at the bound", policies: &[allow_if!( r#"{"NumericGreaterThanEquals":{"quiver:RecordCount":"100"}}"# )], action: "sagemaker:BatchGetRecord", resource: "orders", context: &[("quiver:RecordCount", &["100"])], want: Allowed, sid: Some("If") },
    Case { name: "NumericEquals with a non-number request value", policies: &[allow_if!(r#"{"NumericEquals":{"quiver:RecordCount":"1"}}"#)], action: "sagemaker:BatchGetRecord", resource: "orders", context: &[("quiver:RecordCount", &["one"])], want: ImplicitDeny, sid: None },
    Case { name: "NumericNotEquals", policies: &[allow_if!( r#"{"NumericNotEquals":{"quiver:RecordCount":["1","2"]}}"# )], action: "sagemaker:BatchGetRecord", resource: "orders", context: &[("quiver:RecordCount", &["3"])], want: Allowed, sid: Some("If") },
    Case { name: "NumericLessThanEquals with decimals", policies: &[allow_if!( r#"{"NumericLessThanEquals":{"quiver:RecordCount":"2.5"}}"# )], action: "sagemaker:BatchGetRecord", resource: "orders", context: &[("quiver:RecordCount", &["2"])], want: Allowed, sid: Some("If") },
    // Date operators.
    Case { name: "DateLessThan with aws:CurrentTime", policies: &[allow_if!( r#"{"DateLessThan":{"aws:CurrentTime":"2030-01-01T00:00:00Z"}}"# )], action: "sagemaker:GetRecord", resource: "orders", context: &[("aws:CurrentTime", &["2026-11-29T10:00:00Z"])], want: Allowed, sid: Some("If") },
    Case { name: "DateGreaterThan in the past is false", policies: &[allow_if!( r#"{"DateGreaterThan":{"aws:CurrentTime":"2030-01-01"}}"# )], action: "sagemaker:GetRecord", resource: "orders", context: &[("aws:CurrentTime", &["2026-11-29T10:00:00Z"])], want: ImplicitDeny, sid: None },
    Case { name: "DateEquals across epoch seconds and ISO 8601", policies: &[allow_if!( r#"{"DateEquals":{"aws:EpochTime":"2026-11-29T00:00:00Z"}}"# )], action: "sagemaker:GetRecord", resource: "orders", context: &[("aws:EpochTime", &["1795910400"])], want: Allowed, sid: Some("If") },
    Case { name: "DateNotEquals", policies: &[allow_if!( r#"{"DateNotEquals":{"aws:CurrentTime":"2026-11-29T10:00:00Z"}}"# )], action: "sagemaker:GetRecord", resource: "orders", context: &[("aws:CurrentTime", &["2026-11-29T10:00:00+00:00"])], want: ImplicitDeny, sid: None },
    Case { name: "DateGreaterThanEquals with an offset", policies: &[allow_if!( r#"{"DateGreaterThanEquals":{"aws:CurrentTime":"2026-11-29T11:00:00+01:00"}}"# )], action: "sagemaker:GetRecord", resource: "orders", context: &[("aws:CurrentTime", &["2026-11-29T10:00:00Z"])], want: Allowed, sid: Some("If") },
    // Bool.
    Case { name: "Bool: deny without TLS", policies: &[ ALLOW_ALL, r#"{"Version":"2012-10-17","Statement":{"Sid":"Tls","Effect":"Deny","Action":"*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"false"}}}}"#, ], action: "sagemaker:GetRecord", resource: "orders", context: &[("aws:SecureTransport", &["false"])], want: ExplicitDeny, sid: Some("Tls") },
    Case { name: "Bool: TLS passes the deny", policies: &[ ALLOW_ALL, r#"{"Version":"2012-10-17","Statement":{"Sid":"Tls","Effect":"Deny","Action":"*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":false}}}}"#, ], action: "sagemaker:GetRecord", resource: "orders", context: &[("aws:SecureTransport", &["true"])], want: Allowed, sid: Some("All") },
    Case { name: "BoolIfExists: a missing key is true", policies: &[allow_if!( r#"{"BoolIfExists":{"aws:MultiFactorAuthPresent":"true"}}"# )], action: "sagemaker:GetRecord", resource: "orders", context: &[], want: Allowed, sid: Some("If") },
    // IP addresses.
    Case { name: "IpAddress in a CIDR block", policies: &[allow_if!( r#"{"IpAddress":{"aws:SourceIp":["10.0.0.0/8","192.168.1.7"]}}"# )], action: "sagemaker:GetRecord", resource: "orders", context: &[("aws:SourceIp", &["10.1.2.3"])], want: Allowed, sid: Some("If") },
    Case { name: "IpAddress outside every block", policies: &[allow_if!( r#"{"IpAddress":{"aws:SourceIp":["10.0.0.0/8","192.168.1.7"]}}"# )], action: "sagemaker:GetRecord", resource: "orders", context: &[("aws:SourceIp", &["192.168.1.8"])], want: ImplicitDeny, sid: None },
    Case { name: "NotIpAddress: deny from outside", policies: &[ ALLOW_ALL, r#"{"Version":"2012-10-17","Statement":{"Sid":"Office","Effect":"Deny","Action":"*","Resource":"*","Condition":{"NotIpAddress":{"aws:SourceIp":"203.0.113.0/24"}}}}"#, ], action: "sagemaker:GetRecord", resource: "orders", context: &[("aws:SourceIp", &["198.51.100.1"])], want: ExplicitDeny, sid: Some("Office") },
    Case { name: "IPv6 CIDR", policies: &[allow_if!( r#"{"IpAddress":{"aws:SourceIp":"2001:db8::/32"}}"# )], action: "sagemaker:GetRecord", resource: "orders", context: &[("aws:SourceIp", &["2001:db8::1"])], want: Allowed, sid: Some("If") },
    // ARN operators.
    Case { name: "ArnLike", policies: &[allow_if!( r#"{"ArnLike":{"aws:SourceArn":"arn:aws:sagemaker:*:*:feature-group/cust*"}}"# )], action: "sagemaker:GetRecord", resource: "orders", context: &[( "aws:SourceArn", &["arn:aws:sagemaker:us-east-1:000000000000:feature-group/customers"], )], want: Allowed, sid: Some("If") },
    Case { name: "ArnEquals takes wildcards too", policies: &[allow_if!( r#"{"ArnEquals":{"aws:SourceArn":"arn:aws:sagemaker:us-east-1:*:feature-group/customers"}}"# )], action: "sagemaker:GetRecord", resource: "orders", context: &[( "aws:SourceArn", &["arn:aws:sagemaker:us-east-1:000000000000:feature-group/customers"], )], want: Allowed, sid: Some("If") },
    Case { name: "ArnNotLike", policies: &[allow_if!( r#"{"ArnNotLike":{"aws:SourceArn":"arn:aws:sagemaker:*:*:feature-group/cust*"}}"# )], action: "sagemaker:GetRecord", resource: "orders", context: &[( "aws:SourceArn", &["arn:aws:sagemaker:us-east-1:000000000000:feature-group/customers"], )], want: ImplicitDeny, sid: None },
    Case { name: "ArnNotEquals: not an ARN matches nothing, so holds", policies: &[allow_if!( r#"{"ArnNotEquals":{"aws:SourceArn":"arn:aws:sagemaker:*:*:feature-group/x"}}"# )], action: "sagemaker:GetRecord", resource: "orders", context: &[("aws:SourceArn", &["not-an-arn"])], want: Allowed, sid: Some("If") },
    // Null.
    Case { name: "Null true: the key is missing", policies: &[allow_if!(r#"{"Null":{"quiver:FeatureNames":"true"}}"#)], action: "sagemaker:GetRecord", resource: "orders", context: &[], want: Allowed, sid: Some("If") },
    Case { name: "Null true: the key is present", policies: &[allow_if!(r#"{"Null":{"quiver:FeatureNames":"true"}}"#)], action: "sagemaker:GetRecord", resource: "orders", context: &[("quiver:FeatureNames", &["age"])], want: ImplicitDeny, sid: None },
    Case { name: "Null false: the key is present", policies: &[allow_if!(r#"{"Null":{"aws:SourceIp":false}}"#)], action: "sagemaker:GetRecord", resource: "orders", context: &[("aws:SourceIp", &["10.0.0.1"])], want: Allowed, sid: Some("If") },
    // Multi-valued keys and the set qualifiers (feature-level access).
    Case { name: "ForAnyValue: deny when any requested feature is personal", policies: &[ ALLOW_ALL, r#"{"Version":"2012-10-17","Statement":{"Sid":"NoPii","Effect":"Deny","Action":"sagemaker:GetRecord","Resource":"*","Condition":{"ForAnyValue:StringEquals":{"quiver:FeatureNames":["ssn","email"]}}}}"#, ], action: "sagemaker:GetRecord", resource: "customers", context: &[("quiver:FeatureNames", &["age", "email"])], want: ExplicitDeny, sid: Some("NoPii") },
    Case { name: "ForAnyValue: no personal feature requested", policies: &[ ALLOW_ALL, r#"{"Version":"2012-10-17","Statement":{"Sid":"NoPii","Effect":"Deny","Action":"sagemaker:GetRecord","Resource":"*","Condition":{"ForAnyValue:StringEquals":{"quiver:FeatureNames":["ssn","email"]}}}}"#, ], action: "sagemaker:GetRecord", resource: "customers", context: &[("quiver:FeatureNames", &["age", "city"])], want: Allowed, sid: Some("All") },
    Case { name: "ForAnyValue: a missing key is false", policies: &[allow_if!( r#"{"ForAnyValue:StringEquals":{"quiver:FeatureNames":"age"}}"# )], action: "sagemaker:GetRecord", resource: "customers", context: &[], want: ImplicitDeny, sid: None },
    Case { name: "ForAllValues: every requested feature allowed", policies: &[allow_if!( r#"{"ForAllValues:StringLike":{"quiver:FeatureNames":["age","city","score_*"]}}"# )], action: "sagemaker:GetRecord", resource: "customers", context: &[("quiver:FeatureNames", &["age", "score_7d"])], want: Allowed, sid: Some("If") },
    Case { name: "ForAllValues: one feature outside the set", policies: &[allow_if!( r#"{"ForAllValues:StringLike":{"quiver:FeatureNames":["age","city","score_*"]}}"# )], action: "sagemaker:GetRecord", resource: "customers", context: &[("quiver:FeatureNames", &["age", "ssn"])], want: ImplicitDeny, sid: None },
    Case { name: "ForAllValues: a missing key is true", policies: &[allow_if!( r#"{"ForAllValues:StringEquals":{"quiver:FeatureNames":"age"}}"# )], action: "sagemaker:GetRecord", resource: "customers", context: &[], want: Allowed, sid: Some("If") },
    Case { name: "ForAnyValue:StringNotEquals: some value outside the list", policies: &[allow_if!( r#"{"ForAnyValue:StringNotEquals":{"quiver:FeatureNames":["age","city"]}}"# )], action: "sagemaker:GetRecord", resource: "customers", context: &[("quiver:FeatureNames", &["age", "ssn"])], want: Allowed, sid: Some("If") },
    Case { name: "plain operator on a multi-valued key: any value", policies: &[allow_if!( r#"{"StringEquals":{"quiver:FeatureNames":"ssn"}}"# )], action: "sagemaker:GetRecord", resource: "customers", context: &[("quiver:FeatureNames", &["age", "ssn"])], want: Allowed, sid: Some("If") },
    // Several conditions: AND across operators and keys.
    Case { name: "two operators: both hold", policies: &[allow_if!( r#"{"StringEquals":{"aws:username":"alice"},"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"# )], action: "sagemaker:GetRecord", resource: "orders", context: &[ ("aws:username", &["alice"]), ("aws:SourceIp", &["10.0.0.1"]), ], want: Allowed, sid: Some("If") },
    Case { name: "two operators: one fails", policies: &[allow_if!( r#"{"StringEquals":{"aws:username":"alice"},"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"# )], action: "sagemaker:GetRecord", resource: "orders", context: &[ ("aws:username", &["alice"]), ("aws:SourceIp", &["11.0.0.1"]), ], want: ImplicitDeny, sid: None },
    Case { name: "two keys under one operator: one fails", policies: &[allow_if!( r#"{"StringEquals":{"aws:username":"alice","quiver:Owner":"ml"}}"# )], action: "sagemaker:GetRecord", resource: "orders", context: &[("aws:username", &["alice"]), ("quiver:Owner", &["ops"])], want: ImplicitDeny, sid: None },
];

#[test]
fn policy_evaluation_table() {
    assert!(CASES.len() >= 40, "{} cases", CASES.len());
    let mut failures = Vec::new();
    for case in CASES {
        let policies: Vec<(String, Policy)> = case
            .policies
            .iter()
            .enumerate()
            .map(|(i, text)| {
                let policy = Policy::parse(text)
                    .unwrap_or_else(|e| panic!("{}: policy {i}: {e}\n{text}", case.name));
                (format!("p{i}"), policy)
            })
            .collect();
        let mut context = Context::default();
        for (key, values) in case.context {
            context.set_all(key, values.iter().copied());
        }
        let resource = if case.resource.starts_with("arn:") {
            case.resource.to_string()
        } else {
            format!("{FG}{}", case.resource)
        };
        let decision = evaluate(
            policies.iter().map(|(n, p)| (n.as_str(), p)),
            &Request {
                action: case.action,
                resource: &resource,
                context: &context,
            },
        );
        let sid = decision.statement.as_ref().and_then(|s| s.sid.as_deref());
        if decision.outcome != case.want || sid != case.sid {
            failures.push(format!(
                "{}: got {:?} by {:?}, want {:?} by {:?}",
                case.name, decision.outcome, sid, case.want, case.sid
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn policy_errors_name_the_field_and_the_problem() {
    let cases: &[(&str, &str)] = &[
        ("not json", "not JSON"),
        (r#"{"Version":"2012-10-17"}"#, "Statement: missing"),
        (r#"{"Version":"2013-01-01","Statement":[]}"#, "Version:"),
        (
            r#"{"Version":"2012-10-17","Statement":[]}"#,
            "Statement: empty",
        ),
        (
            r#"{"Version":"2012-10-17","Statment":[]}"#,
            "unknown field \"Statment\"",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":{"Action":"*","Resource":"*"}}"#,
            "Statement[0].Effect: missing",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":{"Effect":"allow","Action":"*","Resource":"*"}}"#,
            "Statement[0].Effect: \"allow\" is not Allow or Deny",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Resource":"*"}}"#,
            "Statement[0].Action: missing",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","NotAction":"*","Resource":"*"}}"#,
            "not both",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"GetRecord","Resource":"*"}}"#,
            "Statement[0].Action: \"GetRecord\" is not an action",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"feature-group/x"}}"#,
            "Statement[0].Resource: \"feature-group/x\" is not an ARN",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*"}}"#,
            "Statement[0].Principal: not a statement field",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEqulas":{"k":"v"}}}}"#,
            "Statement[0].Condition.StringEqulas: not a condition operator",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"NumericLessThan":{"k":"ten"}}}}"#,
            "Condition.NumericLessThan.k: \"ten\" is not a number",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/33"}}}}"#,
            "is not an IP address",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"DateLessThan":{"aws:CurrentTime":"tomorrow"}}}}"#,
            "is not a date",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"yes"}}}}"#,
            "is not true or false",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"NullIfExists":{"k":"true"}}}}"#,
            "Null has no IfExists",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEquals":{"k":[]}}}}"#,
            "StringEquals.k: no values",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":[{"Sid":"A","Effect":"Allow","Action":"*","Resource":"*"},{"Sid":"A","Effect":"Deny","Action":"*","Resource":"*"}]}"#,
            "Statement[1].Sid: \"A\" is used twice",
        ),
    ];
    for (text, want) in cases {
        match Policy::parse(text) {
            Ok(_) => panic!("accepted: {text}"),
            Err(e) => assert!(
                e.contains(want),
                "{text}\n  error {e:?}\n  should contain {want:?}"
            ),
        }
    }
}
