//! IAM-style policy documents and their condition keys (`server/auth/src/policy.rs`,
//! `condition.rs`, `pattern.rs`): any document parses into a policy or an error naming the
//! field; a parsed policy evaluates any request without panicking, and a deny is never outvoted.
//! Input: `policy JSON` NUL `action` NUL `resource ARN` NUL `key=value` NUL `key=value` ...

#![no_main]
use libfuzzer_sys::fuzz_target;
use quiver_auth::{Context, Outcome, Policy, Request, evaluate};
use quiver_fuzz::{parts, text};

fuzz_target!(|data: &[u8]| {
    let p = parts(data, 16);
    let document = text(p.first());
    let policy = match Policy::parse(&document) {
        Ok(policy) => policy,
        Err(message) => {
            assert!(!message.is_empty());
            return;
        }
    };
    let mut action = text(p.get(1));
    if action.is_empty() {
        action = "sagemaker:GetRecord".into();
    }
    let mut resource = text(p.get(2));
    if resource.is_empty() {
        resource = "arn:aws:sagemaker:us-east-1:000000000000:feature-group/g".into();
    }
    let mut context = Context::default();
    for entry in p.iter().skip(3) {
        let entry = String::from_utf8_lossy(entry);
        let (key, value) = entry.split_once('=').unwrap_or((&entry, ""));
        match value.split_once('|') {
            Some(_) => {
                context.set_all(key, value.split('|'));
            }
            None => {
                context.set(key, value);
            }
        }
    }
    let _ = policy.needs_context();
    let _ = policy.tests_key("aws:sourceip");
    let request = Request {
        action: &action,
        resource: &resource,
        context: &context,
    };
    let alone = evaluate([("p", &policy)], &request);
    // A policy that denies wins over any allow beside it: evaluation order does not matter.
    let allow_all = Policy::parse(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
    )
    .expect("allow-all parses");
    let both = evaluate([("all", &allow_all), ("p", &policy)], &request);
    if alone.outcome == Outcome::ExplicitDeny {
        assert_eq!(both.outcome, Outcome::ExplicitDeny);
    } else {
        assert!(
            both.outcome.allowed(),
            "allow-all beside a non-denying policy allows"
        );
    }
});
