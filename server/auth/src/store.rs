//! Principals, groups and managed policies (access keys in `keys.rs`): stored in the `auth` column family,
//! held in memory for the request path, and changed only through this type.
//!
//! Secret access keys are stored sealed ([`quiver_storage::kms::seal`], bound to the key id and its
//! principal), never in plaintext. The root principal is made on the first start with
//! authentication on, with the `AdministratorAccess` policy, and its key is written to a 0600
//! credentials file in the data dir.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use crate::keys::{AccessKey, KeyEntry, base32, key_key, secret_context};
use crate::policy::Policy;
use quiver_storage::auth_records::{AuthBatch, AuthRecords};
use quiver_storage::kms::{self, KeyProvider};
use quiver_types::error::{Error, Result};
use quiver_types::time::Clock;

/// The policy the root principal gets: everything.
pub const ADMINISTRATOR_ACCESS: &str = "AdministratorAccess";
pub const ROOT: &str = "root";
/// The most access keys a principal may have (as IAM: two, so a key can be rotated).
pub const MAX_KEYS_PER_PRINCIPAL: usize = 2;
/// The file, in the data dir, that the root principal's first key is written to.
pub const ROOT_CREDENTIALS_FILE: &str = "root-credentials";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Principal {
    pub name: String,
    /// A stable unique id (`aws:userid`).
    pub id: String,
    pub created_ms: i64,
    /// Attached managed policies, by name.
    pub policies: Vec<String>,
    /// The groups it belongs to.
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Group {
    pub name: String,
    pub created_ms: i64,
    pub policies: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ManagedPolicy {
    pub name: String,
    pub document: String,
    pub created_ms: i64,
    pub updated_ms: i64,
    #[serde(skip)]
    pub parsed: Option<Arc<Policy>>,
}

/// What is attached where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    Principal(&'a str),
    Group(&'a str),
}

/// A principal's policies, with what their evaluation needs of a request.
pub struct PolicySet {
    pub policies: Vec<(String, Arc<Policy>)>,
    /// Some policy has conditions or variables: the request's condition keys are needed.
    pub needs_context: bool,
    /// Some condition tests `quiver:FeatureNames`: the features requested are needed.
    pub tests_features: bool,
}

#[derive(Default)]
pub(crate) struct State {
    pub(crate) principals: BTreeMap<String, Principal>,
    pub(crate) groups: BTreeMap<String, Group>,
    pub(crate) policies: BTreeMap<String, ManagedPolicy>,
    pub(crate) keys: BTreeMap<String, AccessKey>,
    pub(crate) secrets: HashMap<String, KeyEntry>,
}

pub struct AuthStore {
    pub(crate) records: AuthRecords,
    pub(crate) keys: Arc<dyn KeyProvider>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) account_id: String,
    pub(crate) state: RwLock<State>,
    /// Policy sets by principal, emptied on every change.
    pub(crate) sets: RwLock<HashMap<String, Arc<PolicySet>>>,
    pub(crate) sets_generation: std::sync::atomic::AtomicU64,
    /// The key new secrets are sealed under.
    pub(crate) secret_key_id: String,
}

impl AuthStore {
    /// Loads everything stored; a secret that cannot be unsealed (a missing or wrong master
    /// key) is an error naming the key, not a silent skip.
    pub fn open(
        records: AuthRecords,
        keys: Arc<dyn KeyProvider>,
        clock: Arc<dyn Clock>,
        account_id: String,
    ) -> Result<Self> {
        let mut state = State::default();
        for (key, value) in records.all()? {
            let bad = |e: serde_json::Error| Error::internal(format!("auth record {key}: {e}"));
            match key.split_once('/') {
                Some(("principal", name)) => {
                    state.principals.insert(
                        name.to_string(),
                        serde_json::from_slice(&value).map_err(bad)?,
                    );
                }
                Some(("group", name)) => {
                    state.groups.insert(
                        name.to_string(),
                        serde_json::from_slice(&value).map_err(bad)?,
                    );
                }
                Some(("policy", name)) => {
                    let mut policy: ManagedPolicy = serde_json::from_slice(&value).map_err(bad)?;
                    let parsed = Policy::parse(&policy.document)
                        .map_err(|e| Error::internal(format!("stored policy {name}: {e}")))?;
                    policy.parsed = Some(Arc::new(parsed));
                    state.policies.insert(name.to_string(), policy);
                }
                Some(("key", id)) => {
                    let key: AccessKey = serde_json::from_slice(&value).map_err(bad)?;
                    let secret = kms::open(
                        keys.as_ref(),
                        secret_context(&key.key_id, &key.principal).context(),
                        &key.sealed_secret,
                    )
                    .map_err(|e| Error::internal(format!("access key {id}: {}", e.message())))?;
                    let secret = String::from_utf8(secret)
                        .map_err(|_| Error::internal(format!("access key {id}: not text")))?;
                    state.secrets.insert(
                        id.to_string(),
                        KeyEntry::new(key.principal.clone(), key.status, &secret),
                    );
                    state.keys.insert(id.to_string(), key);
                }
                _ => return Err(Error::internal(format!("unknown auth record {key}"))),
            }
        }
        Ok(Self {
            records,
            keys,
            clock,
            account_id,
            state: RwLock::new(state),
            sets: RwLock::new(HashMap::new()),
            sets_generation: std::sync::atomic::AtomicU64::new(0),
            secret_key_id: kms::DEFAULT_KEY_ID.to_string(),
        })
    }

    /// On the first start with authentication on: the root principal, with
    /// `AdministratorAccess` and one key written to `data_dir/root-credentials` (mode 0600).
    /// Returns the file's path when it was written.
    pub fn bootstrap(&self, data_dir: &Path) -> Result<Option<PathBuf>> {
        if !self.state.read().principals.is_empty() {
            return Ok(None);
        }
        let path = data_dir.join(ROOT_CREDENTIALS_FILE);
        if path.exists() {
            return Err(Error::internal(format!(
                "{} exists but no principal is stored: remove it to make a new root principal",
                path.display()
            )));
        }
        self.put_policy(
            ADMINISTRATOR_ACCESS,
            r#"{"Version":"2012-10-17","Statement":[{"Sid":"Everything","Effect":"Allow","Action":"*","Resource":"*"}]}"#,
        )?;
        self.create_principal(ROOT)?;
        self.attach_policy(Target::Principal(ROOT), ADMINISTRATOR_ACCESS)?;
        let (key, secret) = self.create_access_key(ROOT)?;
        let credentials = quiver_proto::signing::Credentials {
            access_key_id: key.key_id,
            secret_access_key: secret,
        };
        kms::write_private(&path, credentials.to_profile("default").as_bytes())?;
        Ok(Some(path))
    }

    /// Makes sure the principal the server itself acts as (the in-server ingest workers)
    /// exists with `policy` (`document`) attached. It has no access key: it never signs, its
    /// calls do not leave the process.
    pub fn service_principal(&self, principal: &str, policy: &str, document: &str) -> Result<()> {
        if self.policy(policy).is_none_or(|p| p.document != document) {
            self.put_policy(policy, document)?;
        }
        if self.principal(principal).is_none() {
            self.create_principal(principal)?;
        }
        if !self
            .principal(principal)
            .is_some_and(|p| p.policies.iter().any(|n| n == policy))
        {
            self.attach_policy(Target::Principal(principal), policy)?;
        }
        Ok(())
    }

    pub fn principal(&self, name: &str) -> Option<Principal> {
        self.state.read().principals.get(name).cloned()
    }

    /// Whether `name` is a principal (no copy: the mutual-TLS request path asks this).
    pub fn has_principal(&self, name: &str) -> bool {
        self.state.read().principals.contains_key(name)
    }

    /// The policies that apply to `principal`, and what evaluating them needs; computed once per
    /// principal and kept until the next change (the request path's lookup).
    pub fn policy_set(&self, principal: &str) -> Arc<PolicySet> {
        if let Some(set) = self.sets.read().get(principal) {
            return set.clone();
        }
        let generation = self
            .sets_generation
            .load(std::sync::atomic::Ordering::SeqCst);
        let policies = self.policies_for(principal);
        let set = Arc::new(PolicySet {
            needs_context: policies.iter().any(|(_, p)| p.needs_context()),
            tests_features: policies
                .iter()
                .any(|(_, p)| p.tests_key("quiver:featurenames")),
            policies,
        });
        // After a change since `generation` was read this set may be stale: it is used, not
        // kept. (A change takes the state's write lock, bumps the generation and clears the
        // cache before it lets go; `policies_for` reads under the state's read lock.)
        let mut sets = self.sets.write();
        if self
            .sets_generation
            .load(std::sync::atomic::Ordering::SeqCst)
            == generation
        {
            sets.insert(principal.to_string(), set.clone());
        }
        set
    }

    /// Every policy that applies to `principal`: its own, then its groups', each named as
    /// `policy` (attached to the principal) or `group/policy`.
    pub fn policies_for(&self, principal: &str) -> Vec<(String, Arc<Policy>)> {
        let state = self.state.read();
        let Some(p) = state.principals.get(principal) else {
            return Vec::new();
        };
        let parsed = |name: &str| state.policies.get(name).and_then(|m| m.parsed.clone());
        let mut out: Vec<(String, Arc<Policy>)> = p
            .policies
            .iter()
            .filter_map(|n| Some((n.clone(), parsed(n)?)))
            .collect();
        for g in &p.groups {
            if let Some(group) = state.groups.get(g) {
                out.extend(
                    group
                        .policies
                        .iter()
                        .filter_map(|n| Some((format!("{g}/{n}"), parsed(n)?))),
                );
            }
        }
        out
    }

    pub fn principal_arn(&self, name: &str) -> String {
        format!("arn:aws:iam::{}:user/{name}", self.account_id)
    }

    pub fn group_arn(&self, name: &str) -> String {
        format!("arn:aws:iam::{}:group/{name}", self.account_id)
    }

    pub fn policy_arn(&self, name: &str) -> String {
        format!("arn:aws:iam::{}:policy/{name}", self.account_id)
    }

    pub fn list_principals(&self) -> Vec<Principal> {
        self.state.read().principals.values().cloned().collect()
    }

    pub fn list_groups(&self) -> Vec<(Group, Vec<String>)> {
        let state = self.state.read();
        state
            .groups
            .values()
            .map(|g| {
                let members = state
                    .principals
                    .values()
                    .filter(|p| p.groups.contains(&g.name))
                    .map(|p| p.name.clone())
                    .collect();
                (g.clone(), members)
            })
            .collect()
    }

    pub fn list_policies(&self) -> Vec<ManagedPolicy> {
        self.state.read().policies.values().cloned().collect()
    }

    pub fn policy(&self, name: &str) -> Option<ManagedPolicy> {
        self.state.read().policies.get(name).cloned()
    }

    /// A principal's keys (all when `principal` is `None`).
    pub fn create_principal(&self, name: &str) -> Result<Principal> {
        check_name("PrincipalName", name)?;
        let mut state = self.state.write();
        if state.principals.contains_key(name) {
            return Err(Error::already_exists(format!(
                "principal {name} already exists"
            )));
        }
        let mut id = [0u8; 10];
        kms::random(&mut id)?;
        let principal = Principal {
            name: name.to_string(),
            id: format!("AIDQ{}", base32(&id)),
            created_ms: self.clock.now_ms(),
            policies: Vec::new(),
            groups: Vec::new(),
        };
        let mut batch = self.records.batch();
        batch.put(&principal_key(name), &principal)?;
        self.commit(batch, "creating a principal")?;
        state.principals.insert(name.to_string(), principal.clone());
        Ok(principal)
    }

    /// Deletes a principal and its access keys.
    pub fn delete_principal(&self, name: &str) -> Result<()> {
        let mut state = self.state.write();
        if !state.principals.contains_key(name) {
            return Err(not_found("principal", name));
        }
        let keys: Vec<String> = state
            .keys
            .values()
            .filter(|k| k.principal == name)
            .map(|k| k.key_id.clone())
            .collect();
        let mut batch = self.records.batch();
        batch.delete(&principal_key(name));
        for k in &keys {
            batch.delete(&key_key(k));
        }
        self.commit(batch, "deleting a principal")?;
        state.principals.remove(name);
        for k in &keys {
            state.keys.remove(k);
            state.secrets.remove(k);
        }
        Ok(())
    }

    /// Creates or replaces a managed policy; the document is validated first.
    pub fn put_policy(&self, name: &str, document: &str) -> Result<ManagedPolicy> {
        check_name("PolicyName", name)?;
        let parsed = Policy::parse(document)
            .map_err(|e| Error::validation(format!("PolicyDocument: {e}")))?;
        let mut state = self.state.write();
        let now = self.clock.now_ms();
        let created_ms = state.policies.get(name).map_or(now, |p| p.created_ms);
        let policy = ManagedPolicy {
            name: name.to_string(),
            document: document.to_string(),
            created_ms,
            updated_ms: now,
            parsed: Some(Arc::new(parsed)),
        };
        let mut batch = self.records.batch();
        batch.put(&policy_key(name), &policy)?;
        self.commit(batch, "storing a policy")?;
        state.policies.insert(name.to_string(), policy.clone());
        Ok(policy)
    }

    /// Deletes a policy attached to nothing.
    pub fn delete_policy(&self, name: &str) -> Result<()> {
        let mut state = self.state.write();
        if !state.policies.contains_key(name) {
            return Err(not_found("policy", name));
        }
        let users: Vec<String> = state
            .principals
            .values()
            .filter(|p| p.policies.iter().any(|n| n == name))
            .map(|p| format!("principal {}", p.name))
            .chain(
                state
                    .groups
                    .values()
                    .filter(|g| g.policies.iter().any(|n| n == name))
                    .map(|g| format!("group {}", g.name)),
            )
            .collect();
        if !users.is_empty() {
            return Err(Error::conflict(format!(
                "policy {name} is attached to {}: detach it first",
                users.join(", ")
            )));
        }
        let mut batch = self.records.batch();
        batch.delete(&policy_key(name));
        self.commit(batch, "deleting a policy")?;
        state.policies.remove(name);
        Ok(())
    }

    pub fn attach_policy(&self, target: Target, policy: &str) -> Result<()> {
        self.change_attachment(target, policy, true)
    }

    pub fn detach_policy(&self, target: Target, policy: &str) -> Result<()> {
        self.change_attachment(target, policy, false)
    }

    fn change_attachment(&self, target: Target, policy: &str, attach: bool) -> Result<()> {
        let mut state = self.state.write();
        if !state.policies.contains_key(policy) {
            return Err(not_found("policy", policy));
        }
        let change = |list: &mut Vec<String>, what: &str| -> Result<()> {
            let at = list.iter().position(|n| n == policy);
            match (attach, at) {
                (true, None) => list.push(policy.to_string()),
                (true, Some(_)) => {}
                (false, Some(i)) => {
                    list.remove(i);
                }
                (false, None) => {
                    return Err(Error::not_found(format!(
                        "policy {policy} is not attached to {what}"
                    )));
                }
            }
            Ok(())
        };
        let mut batch = self.records.batch();
        match target {
            Target::Principal(name) => {
                let mut p = state
                    .principals
                    .get(name)
                    .cloned()
                    .ok_or_else(|| not_found("principal", name))?;
                change(&mut p.policies, &format!("principal {name}"))?;
                batch.put(&principal_key(name), &p)?;
                self.commit(batch, "attaching a policy")?;
                state.principals.insert(name.to_string(), p);
            }
            Target::Group(name) => {
                let mut g = state
                    .groups
                    .get(name)
                    .cloned()
                    .ok_or_else(|| not_found("group", name))?;
                change(&mut g.policies, &format!("group {name}"))?;
                batch.put(&group_key(name), &g)?;
                self.commit(batch, "attaching a policy")?;
                state.groups.insert(name.to_string(), g);
            }
        }
        Ok(())
    }

    pub fn create_group(&self, name: &str) -> Result<Group> {
        check_name("GroupName", name)?;
        let mut state = self.state.write();
        if state.groups.contains_key(name) {
            return Err(Error::already_exists(format!(
                "group {name} already exists"
            )));
        }
        let group = Group {
            name: name.to_string(),
            created_ms: self.clock.now_ms(),
            policies: Vec::new(),
        };
        let mut batch = self.records.batch();
        batch.put(&group_key(name), &group)?;
        self.commit(batch, "creating a group")?;
        state.groups.insert(name.to_string(), group.clone());
        Ok(group)
    }

    /// Deletes a group without members.
    pub fn delete_group(&self, name: &str) -> Result<()> {
        let mut state = self.state.write();
        if !state.groups.contains_key(name) {
            return Err(not_found("group", name));
        }
        if let Some(p) = state
            .principals
            .values()
            .find(|p| p.groups.iter().any(|g| g == name))
        {
            return Err(Error::conflict(format!(
                "group {name} still has members (principal {}): remove them first",
                p.name
            )));
        }
        let mut batch = self.records.batch();
        batch.delete(&group_key(name));
        self.commit(batch, "deleting a group")?;
        state.groups.remove(name);
        Ok(())
    }

    /// Adds `principal` to `group` (`member`), or removes it.
    pub fn set_membership(&self, principal: &str, group: &str, member: bool) -> Result<()> {
        let mut state = self.state.write();
        if !state.groups.contains_key(group) {
            return Err(not_found("group", group));
        }
        let mut p = state
            .principals
            .get(principal)
            .cloned()
            .ok_or_else(|| not_found("principal", principal))?;
        let at = p.groups.iter().position(|g| g == group);
        match (member, at) {
            (true, None) => p.groups.push(group.to_string()),
            (false, Some(i)) => {
                p.groups.remove(i);
            }
            (false, None) => {
                return Err(Error::not_found(format!(
                    "principal {principal} is not in group {group}"
                )));
            }
            (true, Some(_)) => return Ok(()),
        }
        let mut batch = self.records.batch();
        batch.put(&principal_key(principal), &p)?;
        self.commit(batch, "changing a group's members")?;
        state.principals.insert(principal.to_string(), p);
        Ok(())
    }

    /// Writes durably (synced WAL): an administrative change is never lost once answered.
    /// Every change passes here (its caller holds the state's write lock), so the cached policy
    /// sets are dropped here too.
    pub(crate) fn commit(&self, batch: AuthBatch<'_>, context: &str) -> Result<()> {
        let written = batch.commit(context);
        self.sets_generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.sets.write().clear();
        written
    }
}

fn principal_key(name: &str) -> String {
    format!("principal/{name}")
}

fn group_key(name: &str) -> String {
    format!("group/{name}")
}

fn policy_key(name: &str) -> String {
    format!("policy/{name}")
}

pub(crate) fn not_found(what: &str, name: &str) -> Error {
    Error::not_found(format!("{what} {name} does not exist"))
}

/// IAM's rule for user, group and policy names: 1-64 of letters, digits and `+=,.@_-`.
fn check_name(field: &str, name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c))
    {
        return Err(Error::validation(format!(
            "{field}: {} must be 1-64 letters, digits or +=,.@_-",
            quiver_types::error::quote(name)
        )));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::keys::KeyStatus;
    use quiver_storage::db::{StorageOptions, open};
    use quiver_types::time::SystemClock;

    /// An auth store in `dir`, with local keys: for the tests of this crate.
    pub(crate) fn store(dir: &Path) -> AuthStore {
        let db = open(
            &dir.join("db"),
            &StorageOptions {
                block_cache_bytes: 1 << 20,
            },
        )
        .unwrap();
        let keys = Arc::new(kms::LocalKeys::open(&dir.join("keys")).unwrap());
        AuthStore::open(
            AuthRecords::new(db),
            keys,
            Arc::new(SystemClock),
            "000000000000".into(),
        )
        .unwrap()
    }

    #[test]
    fn root_bootstrap_keys_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (root_key, secret) = {
            let s = store(dir.path());
            let path = s.bootstrap(dir.path()).unwrap().expect("root made");
            let text = std::fs::read_to_string(&path).unwrap();
            let creds = quiver_proto::signing::Credentials::from_profile(&text, "default")
                .unwrap()
                .unwrap();
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(&path).unwrap().permissions().mode();
                assert_eq!(mode & 0o777, 0o600);
            }
            assert!(s.bootstrap(dir.path()).unwrap().is_none(), "only once");
            let entry = s.key(&creds.access_key_id).unwrap();
            assert_eq!(&*entry.secret, creds.secret_access_key);
            assert_eq!(entry.principal, ROOT);
            assert_eq!(s.policies_for(ROOT)[0].0, ADMINISTRATOR_ACCESS);
            (creds.access_key_id, creds.secret_access_key)
        };
        // Reopened: the secret is unsealed again; a second key, then the limit.
        let s = store(dir.path());
        assert_eq!(&*s.key(&root_key).unwrap().secret, secret);
        s.create_access_key(ROOT).unwrap();
        let err = s.create_access_key(ROOT).unwrap_err();
        assert!(err.message().contains("at most 2"), "{err}");
        s.set_access_key_status(&root_key, KeyStatus::Inactive)
            .unwrap();
        assert_eq!(s.key(&root_key).unwrap().status, KeyStatus::Inactive);
        drop(s);
        let s = store(dir.path());
        assert_eq!(s.key(&root_key).unwrap().status, KeyStatus::Inactive);
        // Without the master key the stored secrets cannot be read: a clear error.
        drop(s);
        std::fs::remove_file(dir.path().join("keys").join("local_default.key")).unwrap();
        let db = open(
            &dir.path().join("db"),
            &StorageOptions {
                block_cache_bytes: 1 << 20,
            },
        )
        .unwrap();
        let keys = Arc::new(kms::LocalKeys::open(&dir.path().join("keys")).unwrap());
        let err = AuthStore::open(
            AuthRecords::new(db),
            keys,
            Arc::new(SystemClock),
            "0".into(),
        )
        .err()
        .expect("refused");
        assert!(err.message().contains("access key"), "{err}");
    }

    #[test]
    fn groups_policies_and_their_rules() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        s.create_principal("alice").unwrap();
        assert!(s.create_principal("alice").is_err());
        assert!(
            s.create_principal("bad name")
                .unwrap_err()
                .message()
                .contains("PrincipalName")
        );
        let err = s.put_policy("broken", r#"{"Statement":{}}"#).unwrap_err();
        assert!(
            err.message().starts_with("PolicyDocument: Statement[0]"),
            "{err}"
        );
        s.put_policy(
            "read",
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"sagemaker:Get*","Resource":"*"}}"#,
        )
        .unwrap();
        s.create_group("analysts").unwrap();
        s.attach_policy(Target::Group("analysts"), "read").unwrap();
        assert!(s.policies_for("alice").is_empty());
        s.set_membership("alice", "analysts", true).unwrap();
        assert_eq!(s.policies_for("alice")[0].0, "analysts/read");
        assert!(
            s.delete_policy("read")
                .unwrap_err()
                .message()
                .contains("group analysts")
        );
        assert!(
            s.delete_group("analysts")
                .unwrap_err()
                .message()
                .contains("alice")
        );
        s.set_membership("alice", "analysts", false).unwrap();
        s.detach_policy(Target::Group("analysts"), "read").unwrap();
        assert!(s.detach_policy(Target::Group("analysts"), "read").is_err());
        s.delete_group("analysts").unwrap();
        s.delete_policy("read").unwrap();
        let (key, _) = s.create_access_key("alice").unwrap();
        s.delete_principal("alice").unwrap();
        assert!(s.key(&key.key_id).is_none());
    }
}
