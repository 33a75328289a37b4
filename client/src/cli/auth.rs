//! `quiver auth ...`: principals, access keys, groups and policies on the server's `Auth`
//! service, and `quiver auth simulate`, which prints the decision the principal's policies give
//! and the statement that decided it, as IAM's policy simulator; `quiver auth rotate-key`
//! rotates a key-management key of encryption at rest.

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use quiver_client::{Client, pb};
use serde_json::{Value, json};

use super::output::{Output, cell, print_json, print_table};

#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// Principals: create, delete, list.
    #[command(subcommand)]
    Principal(PrincipalCommand),
    /// Access keys: create, rotate, revoke, activate, delete, list.
    #[command(subcommand)]
    Key(KeyCommand),
    /// IAM JSON policies: put, get, delete, list, attach, detach.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Groups of principals: create, delete, list, add, remove.
    #[command(subcommand)]
    Group(GroupCommand),
    /// The decision for PRINCIPAL doing ACTION on RESOURCE, and the statement that decided it.
    Simulate {
        #[arg(long)]
        principal: String,
        /// Such as sagemaker:GetRecord.
        #[arg(long)]
        action: String,
        /// An ARN (arn:aws:sagemaker:REGION:ACCOUNT:feature-group/NAME) or *.
        #[arg(long)]
        resource: String,
        /// A condition key's values: KEY=V1,V2 (repeatable), e.g. quiver:FeatureNames=age,ssn.
        #[arg(long = "context")]
        context: Vec<String>,
    },
    /// Rotate a key-management key: local keys get a new version; every data key and stored
    /// secret it wraps is re-wrapped (the data itself is not re-encrypted).
    RotateKey {
        /// local/<name>, or an AWS KMS key id, ARN or alias.
        #[arg(long)]
        kms_key_id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum PrincipalCommand {
    Create {
        name: String,
    },
    /// Deletes the principal and its access keys.
    Delete {
        name: String,
    },
    List,
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// A new key for PRINCIPAL; the secret is printed this once.
    Create {
        principal: String,
    },
    /// A new key for the same principal; the old one becomes inactive.
    Rotate {
        access_key_id: String,
    },
    /// Make a key inactive: it authenticates nothing.
    Revoke {
        access_key_id: String,
    },
    Activate {
        access_key_id: String,
    },
    Delete {
        access_key_id: String,
    },
    List {
        #[arg(long)]
        principal: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Create or replace policy NAME from a JSON document (a file path, or the JSON itself).
    Put {
        name: String,
        document: String,
    },
    Get {
        name: String,
    },
    Delete {
        name: String,
    },
    List,
    /// Attach policy NAME to a principal or a group.
    Attach {
        name: String,
        #[arg(long, conflicts_with = "group", required_unless_present = "group")]
        principal: Option<String>,
        #[arg(long)]
        group: Option<String>,
    },
    Detach {
        name: String,
        #[arg(long, conflicts_with = "group", required_unless_present = "group")]
        principal: Option<String>,
        #[arg(long)]
        group: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    Create {
        name: String,
    },
    Delete {
        name: String,
    },
    List,
    /// Add PRINCIPAL to GROUP.
    Add {
        group: String,
        principal: String,
    },
    /// Remove PRINCIPAL from GROUP.
    Remove {
        group: String,
        principal: String,
    },
}

pub async fn run(client: &Client, out: Output, command: AuthCommand) -> Result<()> {
    let mut admin = client.admin();
    match command {
        AuthCommand::Principal(c) => match c {
            PrincipalCommand::Create { name } => {
                let p = admin
                    .create_principal(pb::CreatePrincipalRequest { name })
                    .await?
                    .into_inner();
                show(out, principal_json(&p));
            }
            PrincipalCommand::Delete { name } => {
                admin
                    .delete_principal(pb::DeletePrincipalRequest { name: name.clone() })
                    .await?;
                show(out, json!({ "deleted": name }));
            }
            PrincipalCommand::List => {
                let list = admin
                    .list_principals(pb::ListPrincipalsRequest {})
                    .await?
                    .into_inner();
                let rows: Vec<Value> = list.principals.iter().map(principal_json).collect();
                table(out, &rows, &["Name", "Policies", "Groups", "Arn"]);
            }
        },
        AuthCommand::Key(c) => match c {
            KeyCommand::Create { principal } => {
                let k = admin
                    .create_access_key(pb::CreateAccessKeyRequest { principal })
                    .await?
                    .into_inner();
                show(out, new_key_json(&k));
            }
            KeyCommand::Rotate { access_key_id } => {
                let k = admin
                    .rotate_access_key(pb::RotateAccessKeyRequest { access_key_id })
                    .await?
                    .into_inner();
                show(out, new_key_json(&k));
            }
            KeyCommand::Revoke { access_key_id } => {
                let k = set_status(&mut admin, access_key_id, "Inactive").await?;
                show(out, key_json(&k));
            }
            KeyCommand::Activate { access_key_id } => {
                let k = set_status(&mut admin, access_key_id, "Active").await?;
                show(out, key_json(&k));
            }
            KeyCommand::Delete { access_key_id } => {
                admin
                    .delete_access_key(pb::DeleteAccessKeyRequest {
                        access_key_id: access_key_id.clone(),
                    })
                    .await?;
                show(out, json!({ "deleted": access_key_id }));
            }
            KeyCommand::List { principal } => {
                let list = admin
                    .list_access_keys(pb::ListAccessKeysRequest {
                        principal: principal.unwrap_or_default(),
                    })
                    .await?
                    .into_inner();
                let rows: Vec<Value> = list.keys.iter().map(key_json).collect();
                table(
                    out,
                    &rows,
                    &["AccessKeyId", "Principal", "Status", "Created"],
                );
            }
        },
        AuthCommand::Policy(c) => match c {
            PolicyCommand::Put { name, document } => {
                let document = if document.trim_start().starts_with('{') {
                    document
                } else {
                    std::fs::read_to_string(&document)
                        .with_context(|| format!("reading policy document {document}"))?
                };
                let p = admin
                    .put_policy(pb::PutPolicyRequest { name, document })
                    .await?
                    .into_inner();
                show(out, policy_json(&p));
            }
            PolicyCommand::Get { name } => {
                let p = admin
                    .get_policy(pb::GetPolicyRequest { name })
                    .await?
                    .into_inner();
                match out {
                    Output::Json => print_json(&policy_json(&p)),
                    Output::Table => {
                        let doc: Value = serde_json::from_str(&p.document)
                            .unwrap_or(Value::String(p.document.clone()));
                        println!("{}", serde_json::to_string_pretty(&doc)?);
                    }
                }
            }
            PolicyCommand::Delete { name } => {
                admin
                    .delete_policy(pb::DeletePolicyRequest { name: name.clone() })
                    .await?;
                show(out, json!({ "deleted": name }));
            }
            PolicyCommand::List => {
                let list = admin
                    .list_policies(pb::ListPoliciesRequest {})
                    .await?
                    .into_inner();
                let rows: Vec<Value> = list.policies.iter().map(policy_json).collect();
                table(out, &rows, &["Name", "Updated", "Arn"]);
            }
            PolicyCommand::Attach {
                name,
                principal,
                group,
            } => {
                admin
                    .attach_policy(attachment(&name, principal.clone(), group.clone())?)
                    .await?;
                show(
                    out,
                    json!({ "attached": name, "principal": principal, "group": group }),
                );
            }
            PolicyCommand::Detach {
                name,
                principal,
                group,
            } => {
                admin
                    .detach_policy(attachment(&name, principal.clone(), group.clone())?)
                    .await?;
                show(
                    out,
                    json!({ "detached": name, "principal": principal, "group": group }),
                );
            }
        },
        AuthCommand::Group(c) => match c {
            GroupCommand::Create { name } => {
                admin
                    .create_group(pb::CreateGroupRequest { name: name.clone() })
                    .await?;
                show(out, json!({ "created": name }));
            }
            GroupCommand::Delete { name } => {
                admin
                    .delete_group(pb::DeleteGroupRequest { name: name.clone() })
                    .await?;
                show(out, json!({ "deleted": name }));
            }
            GroupCommand::List => {
                let list = admin
                    .list_groups(pb::ListGroupsRequest {})
                    .await?
                    .into_inner();
                let rows: Vec<Value> = list
                    .groups
                    .iter()
                    .map(|g| {
                        json!({
                            "Name": g.name,
                            "Policies": g.policies.join(","),
                            "Members": g.members.join(","),
                            "Arn": g.arn,
                        })
                    })
                    .collect();
                table(out, &rows, &["Name", "Policies", "Members", "Arn"]);
            }
            GroupCommand::Add { group, principal } => {
                admin
                    .add_principal_to_group(pb::GroupMembershipRequest {
                        group: group.clone(),
                        principal: principal.clone(),
                    })
                    .await?;
                show(out, json!({ "group": group, "added": principal }));
            }
            GroupCommand::Remove { group, principal } => {
                admin
                    .remove_principal_from_group(pb::GroupMembershipRequest {
                        group: group.clone(),
                        principal: principal.clone(),
                    })
                    .await?;
                show(out, json!({ "group": group, "removed": principal }));
            }
        },
        AuthCommand::Simulate {
            principal,
            action,
            resource,
            context,
        } => {
            let context = context
                .iter()
                .map(|entry| match entry.split_once('=') {
                    Some((key, values)) => Ok(pb::ContextEntry {
                        key: key.to_string(),
                        values: values.split(',').map(str::to_string).collect(),
                    }),
                    None => bail!("--context {entry:?}: expected KEY=VALUE[,VALUE...]"),
                })
                .collect::<Result<Vec<_>>>()?;
            let r = admin
                .simulate_principal_policy(pb::SimulateRequest {
                    principal,
                    action,
                    resource,
                    context,
                })
                .await?
                .into_inner();
            let value = json!({
                "Decision": r.decision,
                "DecidingStatement": r.statement,
                "EvaluatedPolicies": r.policies,
            });
            match out {
                Output::Json => print_json(&value),
                Output::Table => {
                    println!("decision:  {}", r.decision);
                    let statement = if r.statement.is_empty() {
                        "(none: nothing allows it)".to_string()
                    } else {
                        r.statement
                    };
                    println!("statement: {statement}");
                    println!("policies:  {}", r.policies.join(", "));
                }
            }
        }
        AuthCommand::RotateKey { kms_key_id } => {
            let r = admin
                .rotate_key(pb::RotateKeyRequest {
                    kms_key_id: kms_key_id.clone(),
                })
                .await?
                .into_inner();
            show(
                out,
                json!({
                    "KmsKeyId": kms_key_id,
                    "Version": r.version,
                    "DataKeysRewrapped": r.data_keys,
                    "SecretsRewrapped": r.secrets,
                }),
            );
        }
    }
    Ok(())
}

async fn set_status(
    admin: &mut quiver_proto::v1::auth_client::AuthClient<quiver_client::Transport>,
    access_key_id: String,
    status: &str,
) -> Result<pb::AccessKey> {
    Ok(admin
        .update_access_key(pb::UpdateAccessKeyRequest {
            access_key_id,
            status: status.into(),
        })
        .await?
        .into_inner())
}

fn attachment(
    policy: &str,
    principal: Option<String>,
    group: Option<String>,
) -> Result<pb::AttachPolicyRequest> {
    if principal.is_none() && group.is_none() {
        bail!("give --principal or --group");
    }
    Ok(pb::AttachPolicyRequest {
        policy: policy.to_string(),
        principal: principal.unwrap_or_default(),
        group: group.unwrap_or_default(),
    })
}

fn principal_json(p: &pb::Principal) -> Value {
    json!({
        "Name": p.name,
        "Id": p.id,
        "Arn": p.arn,
        "Policies": p.policies.join(","),
        "Groups": p.groups.join(","),
    })
}

fn key_json(k: &pb::AccessKey) -> Value {
    json!({
        "AccessKeyId": k.access_key_id,
        "Principal": k.principal,
        "Status": k.status,
        "Created": super::output::format_iso8601_millis(k.created_unix_ms),
    })
}

fn new_key_json(k: &pb::CreateAccessKeyResponse) -> Value {
    let mut value = k.key.as_ref().map(key_json).unwrap_or_else(|| json!({}));
    value["SecretAccessKey"] = Value::String(k.secret_access_key.clone());
    value
}

fn policy_json(p: &pb::Policy) -> Value {
    json!({
        "Name": p.name,
        "Arn": p.arn,
        "Updated": super::output::format_iso8601_millis(p.updated_unix_ms),
        "Document": p.document,
    })
}

/// One object: JSON, or `key: value` lines.
fn show(out: Output, value: Value) {
    match out {
        Output::Json => print_json(&value),
        Output::Table => {
            if let Value::Object(map) = &value {
                for (k, v) in map {
                    println!("{k}: {}", cell(v));
                }
            }
        }
    }
}

fn table(out: Output, rows: &[Value], columns: &[&str]) {
    match out {
        Output::Json => print_json(&Value::Array(rows.to_vec())),
        Output::Table => print_table(
            columns,
            &rows
                .iter()
                .map(|r| columns.iter().map(|c| cell(&r[*c])).collect())
                .collect::<Vec<_>>(),
        ),
    }
}
