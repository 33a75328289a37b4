//! Stored recipes: every save of a name is a new version (1, 2, ...), kept, listed and
//! readable, so that a recipe's history can be compared (`diff`) and a run names exactly the
//! version it ran. Files: `recipes/<name>/<version>.json`, written through a temporary file and
//! a rename; a deleted recipe's folder is removed.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use quiver_types::error::{Error, Result, quote};
use quiver_types::time::EpochMillis;

use crate::recipe::{Recipe, Step, check_name};

/// One stored version of a recipe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredRecipe {
    pub version: u32,
    pub saved_ms: EpochMillis,
    pub recipe: Recipe,
}

pub struct RecipeStore {
    dir: PathBuf,
    /// Saves of one name are numbered one at a time.
    saving: Mutex<()>,
}

fn io(context: &str, e: std::io::Error) -> Error {
    Error::internal(format!("{context}: {e}"))
}

impl RecipeStore {
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| io(&format!("creating {}", dir.display()), e))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            saving: Mutex::new(()),
        })
    }

    fn folder(&self, name: &str) -> Result<PathBuf> {
        check_name(name)?;
        Ok(self.dir.join(name))
    }

    fn versions(&self, name: &str) -> Result<Vec<u32>> {
        let folder = self.folder(name)?;
        let mut versions: Vec<u32> = match std::fs::read_dir(&folder) {
            Ok(entries) => entries
                .filter_map(|e| e.ok())
                .filter_map(|e| {
                    e.file_name()
                        .to_str()
                        .and_then(|n| n.strip_suffix(".json"))
                        .and_then(|n| n.parse().ok())
                })
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io("listing recipe versions", e)),
        };
        versions.sort_unstable();
        Ok(versions)
    }

    /// Saves `recipe` (checked) as its name's next version. What its steps learned is kept:
    /// a fitted recipe saved replays as fitted.
    pub fn save(&self, recipe: &Recipe, now: EpochMillis) -> Result<StoredRecipe> {
        recipe.check()?;
        let _one_at_a_time = self.saving.lock().unwrap_or_else(|p| p.into_inner());
        let folder = self.folder(&recipe.name)?;
        std::fs::create_dir_all(&folder).map_err(|e| io("creating the recipe's folder", e))?;
        let version = self.versions(&recipe.name)?.last().copied().unwrap_or(0) + 1;
        let stored = StoredRecipe {
            version,
            saved_ms: now,
            recipe: recipe.clone(),
        };
        let path = folder.join(format!("{version}.json"));
        let temporary = folder.join(format!(".{version}.json.tmp"));
        let text = serde_json::to_vec_pretty(&stored)
            .map_err(|e| Error::internal(format!("writing the recipe: {e}")))?;
        std::fs::write(&temporary, text).map_err(|e| io("writing the recipe", e))?;
        std::fs::rename(&temporary, &path).map_err(|e| io("writing the recipe", e))?;
        Ok(stored)
    }

    /// A version of a recipe (the latest when `None`).
    pub fn get(&self, name: &str, version: Option<u32>) -> Result<StoredRecipe> {
        let versions = self.versions(name)?;
        let Some(latest) = versions.last().copied() else {
            return Err(Error::not_found(format!("no recipe named {}", quote(name))));
        };
        let version = version.unwrap_or(latest);
        if !versions.contains(&version) {
            return Err(Error::not_found(format!(
                "recipe {} has no version {version} (it has 1 to {latest})",
                quote(name)
            )));
        }
        let path = self.folder(name)?.join(format!("{version}.json"));
        let text = std::fs::read(&path).map_err(|e| io("reading the recipe", e))?;
        serde_json::from_slice(&text).map_err(|e| {
            Error::internal(format!(
                "recipe {} version {version} is unreadable: {e}",
                quote(name)
            ))
        })
    }

    /// The latest version of each recipe, by name.
    pub fn list(&self) -> Result<Vec<StoredRecipe>> {
        let mut names: Vec<String> = std::fs::read_dir(&self.dir)
            .map_err(|e| io("listing recipes", e))?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().to_str().map(String::from))
            .filter(|n| check_name(n).is_ok())
            .collect();
        names.sort();
        let mut out = Vec::new();
        for name in names {
            match self.get(&name, None) {
                Ok(r) => out.push(r),
                Err(e) if e.kind() == quiver_types::error::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Deletes every version of a recipe.
    pub fn delete(&self, name: &str) -> Result<StoredRecipe> {
        let latest = self.get(name, None)?;
        std::fs::remove_dir_all(self.folder(name)?).map_err(|e| io("deleting the recipe", e))?;
        Ok(latest)
    }
}

/// How two versions of a recipe differ, step by step: lines of `- ` (only in the first), `+ `
/// (only in the second) and `  ` (in both), each a step as one line of JSON.
pub fn diff(a: &Recipe, b: &Recipe) -> String {
    let line = |s: &Step| serde_json::to_string(s).unwrap_or_default();
    let a_lines: Vec<String> = std::iter::once(format!("source {}", json_line(&a.source)))
        .chain(a.steps.iter().map(line))
        .collect();
    let b_lines: Vec<String> = std::iter::once(format!("source {}", json_line(&b.source)))
        .chain(b.steps.iter().map(line))
        .collect();
    // The longest common subsequence of steps: recipes are short (at most 200 steps).
    let (n, m) = (a_lines.len(), b_lines.len());
    let mut common = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            common[i][j] = if a_lines[i] == b_lines[j] {
                common[i + 1][j + 1] + 1
            } else {
                common[i + 1][j].max(common[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < n || j < m {
        if i < n && j < m && a_lines[i] == b_lines[j] {
            out.push(format!("  {}", a_lines[i]));
            i += 1;
            j += 1;
        } else if j < m && (i == n || common[i][j + 1] >= common[i + 1][j]) {
            out.push(format!("+ {}", b_lines[j]));
            j += 1;
        } else {
            out.push(format!("- {}", a_lines[i]));
            i += 1;
        }
    }
    out.join("\n")
}

fn json_line<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recipe(steps: serde_json::Value) -> Recipe {
        let doc = serde_json::json!({"name": "r1", "source": {"query": {"sql": "SELECT 1"}}, "steps": steps});
        Recipe::from_json(&doc.to_string()).unwrap()
    }

    #[test]
    fn versions_are_kept_and_listed() {
        let dir = tempfile::tempdir().unwrap();
        let store = RecipeStore::open(dir.path()).unwrap();
        let one = recipe(serde_json::json!([{"step": "drop", "columns": ["a"]}]));
        let two = recipe(
            serde_json::json!([{"step": "drop", "columns": ["a"]}, {"step": "filter", "expression": "b > 1"}]),
        );
        assert_eq!(store.save(&one, 1).unwrap().version, 1);
        assert_eq!(store.save(&two, 2).unwrap().version, 2);
        assert_eq!(store.get("r1", None).unwrap().recipe, two);
        assert_eq!(store.get("r1", Some(1)).unwrap().recipe, one);
        assert!(
            store
                .get("r1", Some(3))
                .unwrap_err()
                .to_string()
                .contains("1 to 2")
        );
        assert_eq!(store.list().unwrap().len(), 1);
        let d = diff(&one, &two);
        assert_eq!(d.lines().filter(|l| l.starts_with("+ ")).count(), 1, "{d}");
        assert!(d.contains("b > 1"));
        store.delete("r1").unwrap();
        assert!(store.get("r1", None).is_err());
        assert!(store.get("../etc", None).is_err());
    }
}
