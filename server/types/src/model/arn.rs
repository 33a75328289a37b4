//! Feature-group ARNs: how the server names a group, and how a request may name one (a name or
//! an ARN).

/// Where the server's ARNs point: `arn:aws:sagemaker:<region>:<account>:feature-group/<name>`.
#[derive(Debug, Clone)]
pub struct ArnContext {
    pub region: String,
    pub account_id: String,
}

impl ArnContext {
    pub fn feature_group_arn(&self, name: &str) -> String {
        format!(
            "arn:aws:sagemaker:{}:{}:feature-group/{}",
            self.region,
            self.account_id,
            name.to_ascii_lowercase()
        )
    }
}

/// Accepts a plain name or an ARN `arn:...:feature-group/<name>`.
pub fn resolve_name(name_or_arn: &str) -> &str {
    match name_or_arn.strip_prefix("arn:") {
        Some(rest) => rest
            .split_once(":feature-group/")
            .map_or(name_or_arn, |(_, name)| name),
        None => name_or_arn,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_arns_resolve_to_the_name() {
        let arns = ArnContext {
            region: "us-east-1".into(),
            account_id: "000000000000".into(),
        };
        let arn = arns.feature_group_arn("Customers");
        assert_eq!(
            arn,
            "arn:aws:sagemaker:us-east-1:000000000000:feature-group/customers"
        );
        assert_eq!(resolve_name(&arn), "customers");
        assert_eq!(resolve_name("Customers"), "Customers");
    }
}
