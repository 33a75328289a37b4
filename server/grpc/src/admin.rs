//! `quiver.featurestore.v1.Auth` over tonic: administration of principals, keys, groups and
//! policies, and the policy simulator. Each call is authorized (`quiver:<Method>` on the
//! principal's, group's or policy's ARN) and each change audited, durably, before it is
//! answered.

use std::sync::Arc;

use quiver_proto::v1 as pb;
use quiver_proto::v1::auth_server::Auth as AuthApi;
use tonic::{Request, Response, Status};

use crate::service::caller;
use crate::status::{ToStatus, status};
use quiver_auth::access::{Access, Caller};
use quiver_auth::context::Context;
use quiver_auth::keys::KeyStatus;
use quiver_auth::store::{self, Target};
use quiver_core::FeatureStore;
use quiver_core::backup;
use quiver_types::error::{Error, Result};

#[derive(Clone)]
pub struct AdminService {
    access: Arc<Access>,
    data_keys: Arc<quiver_storage::kms::DataKeys>,
    /// What backups are taken of.
    store: Arc<FeatureStore>,
}

impl AdminService {
    pub fn new(
        access: Arc<Access>,
        data_keys: Arc<quiver_storage::kms::DataKeys>,
        store: Arc<FeatureStore>,
    ) -> Self {
        Self {
            access,
            data_keys,
            store,
        }
    }

    fn store(&self) -> &store::AuthStore {
        self.access.store()
    }

    /// Authorizes `quiver:<action>` on `resource` for the request's caller.
    fn authorize<T>(&self, request: &Request<T>, action: &str, resource: &str) -> Result<Caller> {
        let caller = caller(request).clone();
        self.access
            .authorize(&caller, &format!("quiver:{action}"), resource, None)?;
        Ok(caller)
    }

    /// Audits a change that was made.
    fn changed(&self, caller: &Caller, action: &str, resource: &str, detail: &str) -> Result<()> {
        self.access
            .record_change(caller, &format!("quiver:{action}"), resource, detail)
    }

    fn principal_pb(&self, p: store::Principal) -> pb::Principal {
        pb::Principal {
            arn: self.store().principal_arn(&p.name),
            name: p.name,
            id: p.id,
            created_unix_ms: p.created_ms,
            policies: p.policies,
            groups: p.groups,
        }
    }

    fn policy_pb(&self, p: store::ManagedPolicy) -> pb::Policy {
        pb::Policy {
            arn: self.store().policy_arn(&p.name),
            name: p.name,
            document: p.document,
            created_unix_ms: p.created_ms,
            updated_unix_ms: p.updated_ms,
        }
    }

    /// The ARN of the principal owning `key_id`, or `*` when there is no such key (so the
    /// caller learns whether it exists only if it may manage every principal's keys).
    fn key_owner_arn(&self, key_id: &str) -> String {
        match self.store().key(key_id) {
            Some(k) => self.store().principal_arn(&k.principal),
            None => "*".to_string(),
        }
    }

    /// The principal or group an attachment names, and its ARN.
    fn target<'a>(&self, r: &'a pb::AttachPolicyRequest) -> Result<(Target<'a>, String)> {
        match (r.principal.is_empty(), r.group.is_empty()) {
            (false, true) => Ok((
                Target::Principal(&r.principal),
                self.store().principal_arn(&r.principal),
            )),
            (true, false) => Ok((Target::Group(&r.group), self.store().group_arn(&r.group))),
            _ => Err(Error::validation(
                "give exactly one of principal and group to attach the policy to",
            )),
        }
    }
}

fn key_pb(k: quiver_auth::keys::AccessKey) -> pb::AccessKey {
    pb::AccessKey {
        access_key_id: k.key_id,
        principal: k.principal,
        status: format!("{:?}", k.status),
        created_unix_ms: k.created_ms,
    }
}

fn key_status(text: &str) -> Result<KeyStatus> {
    match text {
        "Active" => Ok(KeyStatus::Active),
        "Inactive" => Ok(KeyStatus::Inactive),
        other => Err(Error::validation(format!(
            "status: {} is not Active or Inactive",
            quiver_types::error::quote(other)
        ))),
    }
}

fn answer<T>(result: Result<T>) -> Result<Response<T>, Status> {
    result.map(Response::new).map_err(status)
}

#[tonic::async_trait]
impl AuthApi for AdminService {
    async fn create_principal(
        &self,
        request: Request<pb::CreatePrincipalRequest>,
    ) -> Result<Response<pb::Principal>, Status> {
        answer((|| {
            let name = &request.get_ref().name;
            let arn = self.store().principal_arn(name);
            let caller = self.authorize(&request, "CreatePrincipal", &arn)?;
            let p = self.store().create_principal(name)?;
            self.changed(&caller, "CreatePrincipal", &arn, "")?;
            Ok(self.principal_pb(p))
        })())
    }

    async fn delete_principal(
        &self,
        request: Request<pb::DeletePrincipalRequest>,
    ) -> Result<Response<pb::DeletePrincipalResponse>, Status> {
        answer((|| {
            let name = &request.get_ref().name;
            let arn = self.store().principal_arn(name);
            let caller = self.authorize(&request, "DeletePrincipal", &arn)?;
            if caller.principal.as_deref() == Some(name.as_str()) {
                return Err(Error::conflict(
                    "a principal cannot delete itself (it would lock itself out)",
                ));
            }
            self.store().delete_principal(name)?;
            self.changed(&caller, "DeletePrincipal", &arn, "with its access keys")?;
            Ok(pb::DeletePrincipalResponse {})
        })())
    }

    async fn list_principals(
        &self,
        request: Request<pb::ListPrincipalsRequest>,
    ) -> Result<Response<pb::ListPrincipalsResponse>, Status> {
        answer((|| {
            self.authorize(&request, "ListPrincipals", "*")?;
            Ok(pb::ListPrincipalsResponse {
                principals: self
                    .store()
                    .list_principals()
                    .into_iter()
                    .map(|p| self.principal_pb(p))
                    .collect(),
            })
        })())
    }

    async fn create_access_key(
        &self,
        request: Request<pb::CreateAccessKeyRequest>,
    ) -> Result<Response<pb::CreateAccessKeyResponse>, Status> {
        answer((|| {
            let principal = &request.get_ref().principal;
            let arn = self.store().principal_arn(principal);
            let caller = self.authorize(&request, "CreateAccessKey", &arn)?;
            let (key, secret) = self.store().create_access_key(principal)?;
            self.changed(&caller, "CreateAccessKey", &arn, &key.key_id)?;
            Ok(pb::CreateAccessKeyResponse {
                key: Some(key_pb(key)),
                secret_access_key: secret,
            })
        })())
    }

    async fn rotate_access_key(
        &self,
        request: Request<pb::RotateAccessKeyRequest>,
    ) -> Result<Response<pb::CreateAccessKeyResponse>, Status> {
        answer((|| {
            let old = &request.get_ref().access_key_id;
            let arn = self.key_owner_arn(old);
            let caller = self.authorize(&request, "RotateAccessKey", &arn)?;
            let (key, secret) = self.store().rotate_access_key(old)?;
            let detail = format!("{} replaces {old}, now inactive", key.key_id);
            self.changed(&caller, "RotateAccessKey", &arn, &detail)?;
            Ok(pb::CreateAccessKeyResponse {
                key: Some(key_pb(key)),
                secret_access_key: secret,
            })
        })())
    }

    async fn update_access_key(
        &self,
        request: Request<pb::UpdateAccessKeyRequest>,
    ) -> Result<Response<pb::AccessKey>, Status> {
        answer((|| {
            let r = request.get_ref();
            let arn = self.key_owner_arn(&r.access_key_id);
            let caller = self.authorize(&request, "UpdateAccessKey", &arn)?;
            let new_status = key_status(&r.status)?;
            let key = self
                .store()
                .set_access_key_status(&r.access_key_id, new_status)?;
            let detail = format!("{} {}", r.access_key_id, r.status);
            self.changed(&caller, "UpdateAccessKey", &arn, &detail)?;
            Ok(key_pb(key))
        })())
    }

    async fn delete_access_key(
        &self,
        request: Request<pb::DeleteAccessKeyRequest>,
    ) -> Result<Response<pb::DeleteAccessKeyResponse>, Status> {
        answer((|| {
            let id = &request.get_ref().access_key_id;
            let arn = self.key_owner_arn(id);
            let caller = self.authorize(&request, "DeleteAccessKey", &arn)?;
            self.store().delete_access_key(id)?;
            self.changed(&caller, "DeleteAccessKey", &arn, id)?;
            Ok(pb::DeleteAccessKeyResponse {})
        })())
    }

    async fn list_access_keys(
        &self,
        request: Request<pb::ListAccessKeysRequest>,
    ) -> Result<Response<pb::ListAccessKeysResponse>, Status> {
        answer((|| {
            let principal = &request.get_ref().principal;
            let resource = if principal.is_empty() {
                "*".to_string()
            } else {
                self.store().principal_arn(principal)
            };
            self.authorize(&request, "ListAccessKeys", &resource)?;
            let filter = (!principal.is_empty()).then_some(principal.as_str());
            Ok(pb::ListAccessKeysResponse {
                keys: self
                    .store()
                    .list_access_keys(filter)
                    .into_iter()
                    .map(key_pb)
                    .collect(),
            })
        })())
    }

    async fn put_policy(
        &self,
        request: Request<pb::PutPolicyRequest>,
    ) -> Result<Response<pb::Policy>, Status> {
        answer((|| {
            let r = request.get_ref();
            let arn = self.store().policy_arn(&r.name);
            let caller = self.authorize(&request, "PutPolicy", &arn)?;
            let policy = self.store().put_policy(&r.name, &r.document)?;
            self.changed(&caller, "PutPolicy", &arn, &r.document)?;
            Ok(self.policy_pb(policy))
        })())
    }

    async fn get_policy(
        &self,
        request: Request<pb::GetPolicyRequest>,
    ) -> Result<Response<pb::Policy>, Status> {
        answer((|| {
            let name = &request.get_ref().name;
            self.authorize(&request, "GetPolicy", &self.store().policy_arn(name))?;
            let policy = self
                .store()
                .policy(name)
                .ok_or_else(|| Error::not_found(format!("policy {name} does not exist")))?;
            Ok(self.policy_pb(policy))
        })())
    }

    async fn delete_policy(
        &self,
        request: Request<pb::DeletePolicyRequest>,
    ) -> Result<Response<pb::DeletePolicyResponse>, Status> {
        answer((|| {
            let name = &request.get_ref().name;
            let arn = self.store().policy_arn(name);
            let caller = self.authorize(&request, "DeletePolicy", &arn)?;
            self.store().delete_policy(name)?;
            self.changed(&caller, "DeletePolicy", &arn, "")?;
            Ok(pb::DeletePolicyResponse {})
        })())
    }

    async fn list_policies(
        &self,
        request: Request<pb::ListPoliciesRequest>,
    ) -> Result<Response<pb::ListPoliciesResponse>, Status> {
        answer((|| {
            self.authorize(&request, "ListPolicies", "*")?;
            Ok(pb::ListPoliciesResponse {
                policies: self
                    .store()
                    .list_policies()
                    .into_iter()
                    .map(|p| self.policy_pb(p))
                    .collect(),
            })
        })())
    }

    async fn attach_policy(
        &self,
        request: Request<pb::AttachPolicyRequest>,
    ) -> Result<Response<pb::AttachPolicyResponse>, Status> {
        answer((|| {
            let r = request.get_ref();
            let (target, arn) = match self.target(r) {
                Ok(found) => found,
                Err(e) => {
                    self.authorize(&request, "AttachPolicy", "*")?;
                    return Err(e);
                }
            };
            let caller = self.authorize(&request, "AttachPolicy", &arn)?;
            self.store().attach_policy(target, &r.policy)?;
            self.changed(&caller, "AttachPolicy", &arn, &r.policy)?;
            Ok(pb::AttachPolicyResponse {})
        })())
    }

    async fn detach_policy(
        &self,
        request: Request<pb::AttachPolicyRequest>,
    ) -> Result<Response<pb::AttachPolicyResponse>, Status> {
        answer((|| {
            let r = request.get_ref();
            let (target, arn) = match self.target(r) {
                Ok(found) => found,
                Err(e) => {
                    self.authorize(&request, "DetachPolicy", "*")?;
                    return Err(e);
                }
            };
            let caller = self.authorize(&request, "DetachPolicy", &arn)?;
            self.store().detach_policy(target, &r.policy)?;
            self.changed(&caller, "DetachPolicy", &arn, &r.policy)?;
            Ok(pb::AttachPolicyResponse {})
        })())
    }

    async fn create_group(
        &self,
        request: Request<pb::CreateGroupRequest>,
    ) -> Result<Response<pb::Group>, Status> {
        answer((|| {
            let name = &request.get_ref().name;
            let arn = self.store().group_arn(name);
            let caller = self.authorize(&request, "CreateGroup", &arn)?;
            let g = self.store().create_group(name)?;
            self.changed(&caller, "CreateGroup", &arn, "")?;
            Ok(pb::Group {
                name: g.name,
                arn,
                created_unix_ms: g.created_ms,
                policies: g.policies,
                members: Vec::new(),
            })
        })())
    }

    async fn delete_group(
        &self,
        request: Request<pb::DeleteGroupRequest>,
    ) -> Result<Response<pb::DeleteGroupResponse>, Status> {
        answer((|| {
            let name = &request.get_ref().name;
            let arn = self.store().group_arn(name);
            let caller = self.authorize(&request, "DeleteGroup", &arn)?;
            self.store().delete_group(name)?;
            self.changed(&caller, "DeleteGroup", &arn, "")?;
            Ok(pb::DeleteGroupResponse {})
        })())
    }

    async fn list_groups(
        &self,
        request: Request<pb::ListGroupsRequest>,
    ) -> Result<Response<pb::ListGroupsResponse>, Status> {
        answer((|| {
            self.authorize(&request, "ListGroups", "*")?;
            Ok(pb::ListGroupsResponse {
                groups: self
                    .store()
                    .list_groups()
                    .into_iter()
                    .map(|(g, members)| pb::Group {
                        arn: self.store().group_arn(&g.name),
                        name: g.name,
                        created_unix_ms: g.created_ms,
                        policies: g.policies,
                        members,
                    })
                    .collect(),
            })
        })())
    }

    async fn add_principal_to_group(
        &self,
        request: Request<pb::GroupMembershipRequest>,
    ) -> Result<Response<pb::GroupMembershipResponse>, Status> {
        answer((|| {
            let r = request.get_ref();
            let arn = self.store().group_arn(&r.group);
            let caller = self.authorize(&request, "AddPrincipalToGroup", &arn)?;
            self.store().set_membership(&r.principal, &r.group, true)?;
            self.changed(&caller, "AddPrincipalToGroup", &arn, &r.principal)?;
            Ok(pb::GroupMembershipResponse {})
        })())
    }

    async fn remove_principal_from_group(
        &self,
        request: Request<pb::GroupMembershipRequest>,
    ) -> Result<Response<pb::GroupMembershipResponse>, Status> {
        answer((|| {
            let r = request.get_ref();
            let arn = self.store().group_arn(&r.group);
            let caller = self.authorize(&request, "RemovePrincipalFromGroup", &arn)?;
            self.store().set_membership(&r.principal, &r.group, false)?;
            self.changed(&caller, "RemovePrincipalFromGroup", &arn, &r.principal)?;
            Ok(pb::GroupMembershipResponse {})
        })())
    }

    async fn simulate_principal_policy(
        &self,
        request: Request<pb::SimulateRequest>,
    ) -> Result<Response<pb::SimulateResponse>, Status> {
        answer((|| {
            let r = request.get_ref();
            let arn = self.store().principal_arn(&r.principal);
            self.authorize(&request, "SimulatePrincipalPolicy", &arn)?;
            if r.action.is_empty() || r.resource.is_empty() {
                return Err(Error::validation("action and resource are required"));
            }
            let principal = self.store().principal(&r.principal).ok_or_else(|| {
                Error::not_found(format!("principal {} does not exist", r.principal))
            })?;
            // The keys a real request would carry, unless the simulation gives them.
            let simulated = Caller::new(Some(principal.name.clone()), None, true);
            let mut context: Context = self.access.context(&simulated);
            for entry in &r.context {
                context.set_all(&entry.key, entry.values.iter().cloned());
            }
            let decision = self
                .access
                .decide(&principal.name, &r.action, &r.resource, &context);
            Ok(pb::SimulateResponse {
                decision: decision.outcome.as_str().to_string(),
                statement: decision
                    .statement
                    .map(|s| s.to_string())
                    .unwrap_or_default(),
                policies: self
                    .store()
                    .policies_for(&principal.name)
                    .into_iter()
                    .map(|(n, _)| n)
                    .collect(),
            })
        })())
    }

    async fn rotate_key(
        &self,
        request: Request<pb::RotateKeyRequest>,
    ) -> Result<Response<pb::RotateKeyResponse>, Status> {
        let key_id = request.get_ref().kms_key_id.clone();
        let caller = match self.authorize(&request, "RotateKey", &format!("kms-key/{key_id}")) {
            Ok(caller) => caller,
            Err(e) => return Err(e.to_status()),
        };
        let data_keys = self.data_keys.clone();
        let access = self.access.clone();
        // Re-wrapping calls the key provider once per data key: off the serving thread.
        let rotated = tokio::task::spawn_blocking(move || -> Result<pb::RotateKeyResponse> {
            if key_id.is_empty() {
                return Err(Error::validation("kms_key_id is required"));
            }
            let provider = data_keys.provider();
            provider.check_key_id("kms_key_id", &key_id)?;
            let version = provider.rotate(&key_id)?;
            let rewrapped = data_keys.rewrap(&key_id)?;
            let secrets = access.store().rewrap_secrets(&key_id)?;
            Ok(pb::RotateKeyResponse {
                version: version.unwrap_or(0),
                data_keys: rewrapped,
                secrets,
            })
        })
        .await
        .map_err(|e| Status::internal(format!("key rotation failed: {e}")))?;
        let response = rotated.map_err(|e| e.to_status())?;
        self.changed(
            &caller,
            "RotateKey",
            &format!("kms-key/{}", request.get_ref().kms_key_id),
            &format!(
                "version {}; {} data keys and {} secrets re-wrapped",
                response.version, response.data_keys, response.secrets
            ),
        )
        .map_err(|e| e.to_status())?;
        Ok(Response::new(response))
    }

    async fn backup(
        &self,
        request: Request<pb::BackupRequest>,
    ) -> Result<Response<pb::BackupResponse>, Status> {
        let destination = request.get_ref().destination.clone();
        let resource = format!("backup/{destination}");
        let caller = self
            .authorize(&request, "Backup", &resource)
            .map_err(|e| e.to_status())?;
        let report = self
            .store
            .backup(&destination)
            .await
            .map_err(|e| e.to_status())?;
        self.changed(
            &caller,
            "Backup",
            &resource,
            &format!(
                "backup {}: {} bytes; {} table files copied, {} files uploaded",
                report.backup.id,
                report.backup.size_bytes,
                report.copied_files,
                report.uploaded_files
            ),
        )
        .map_err(|e| e.to_status())?;
        Ok(Response::new(pb::BackupResponse {
            backup: Some(summary_pb(report.backup)),
            copied_files: report.copied_files,
            copied_bytes: report.copied_bytes,
            uploaded_files: report.uploaded_files,
            uploaded_bytes: report.uploaded_bytes,
        }))
    }

    async fn list_backups(
        &self,
        request: Request<pb::ListBackupsRequest>,
    ) -> Result<Response<pb::ListBackupsResponse>, Status> {
        let source = request.get_ref().source.clone();
        self.authorize(&request, "ListBackups", &format!("backup/{source}"))
            .map_err(|e| e.to_status())?;
        let offline = self.store.offline();
        let resolve = |uri: &str| offline.object_store(uri);
        let backups = backup::list(&source, &resolve)
            .await
            .map_err(|e| e.to_status())?;
        Ok(Response::new(pb::ListBackupsResponse {
            backups: backups.into_iter().map(summary_pb).collect(),
        }))
    }
}

fn summary_pb(b: quiver_storage::backup::BackupInfo) -> pb::BackupSummary {
    pb::BackupSummary {
        id: b.id,
        timestamp_unix_s: b.timestamp,
        size_bytes: b.size_bytes,
        files: b.files,
    }
}
