//! The check that keeps ARCHITECTURE.md true, run by `cargo xtask lint`:
//!
//! - its "Crates" table names every module of each crate (a file or folder
//!   under the crate's `src/`, the crate roots aside) as `` `name` `` in
//!   that crate's row, so a new module is placed on the map when it is made;
//! - its "Dependencies" list says exactly which of our crates each crate
//!   depends on, as the crates' `Cargo.toml` `[dependencies]` do.
//!
//! The prose can still be wrong; the map cannot leave a module out or draw
//! an arrow that does not exist.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// What is wrong with ARCHITECTURE.md, one line each (empty: nothing).
pub fn check(root: &Path) -> Result<Vec<String>, String> {
    let text =
        std::fs::read_to_string(root.join("ARCHITECTURE.md")).map_err(|e| format!("ARCHITECTURE.md: {e}"))?;
    let rows = crate_rows(&text);
    if rows.is_empty() {
        return Err("ARCHITECTURE.md: no \"## Crates\" table with `crate` | `path` | owns rows".into());
    }
    let mut problems = Vec::new();
    for row in &rows {
        let src = root.join(&row.path).join("src");
        if !src.is_dir() {
            continue;
        }
        for module in modules(&src)? {
            let named =
                row.owns.contains(&format!("`{module}`")) || row.owns.contains(&format!("`{module}.rs`"));
            if !named {
                problems.push(format!(
                    "ARCHITECTURE.md: the row of `{}` does not name its module `{module}` ({}/src)",
                    row.name, row.path
                ));
            }
        }
    }
    let documented = documented_dependencies(&text);
    if documented.is_empty() {
        return Err("ARCHITECTURE.md: no \"## Dependencies\" list (- `crate` → `crate`, …)".into());
    }
    for row in &rows {
        let manifest = root.join(&row.path).join("Cargo.toml");
        let Ok(toml) = std::fs::read_to_string(&manifest) else {
            continue;
        };
        let actual = our_dependencies(&toml);
        if actual.is_empty() && !documented.contains_key(&row.name) {
            continue;
        }
        let said = documented.get(&row.name).cloned().unwrap_or_default();
        if said != actual {
            problems.push(format!(
                "ARCHITECTURE.md: `{}` depends on {:?} ({}), the Dependencies list says {:?}",
                row.name,
                actual,
                manifest.strip_prefix(root).unwrap_or(&manifest).display(),
                said
            ));
        }
    }
    Ok(problems)
}

/// A row of the Crates table.
#[derive(Debug)]
struct CrateRow {
    name: String,
    path: String,
    owns: String,
}

/// The rows of the table under "## Crates" whose first two cells are one
/// code span each (a crate and its path).
fn crate_rows(text: &str) -> Vec<CrateRow> {
    section(text, "## Crates")
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.trim().strip_prefix('|')?.split('|').map(str::trim).collect();
            let [name, path, owns, ..] = cells.as_slice() else {
                return None;
            };
            let name = name.strip_prefix('`')?.strip_suffix('`')?;
            let path = path.strip_prefix('`')?.strip_suffix('`')?;
            (!name.contains('`') && !path.contains('*')).then(|| CrateRow {
                name: name.to_owned(),
                path: path.to_owned(),
                owns: (*owns).to_owned(),
            })
        })
        .collect()
}

/// The text from `heading` to the next heading of the same level.
fn section<'a>(text: &'a str, heading: &str) -> &'a str {
    let Some(start) = text.find(&format!("\n{heading}\n")) else {
        return "";
    };
    let body = &text[start + heading.len() + 2..];
    match body.find("\n## ") {
        Some(end) => &body[..end],
        None => body,
    }
}

/// `- `a` → `b`, `c`` lines of "## Dependencies" (`→ nothing of ours`: none).
fn documented_dependencies(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    section(text, "## Dependencies")
        .lines()
        .filter_map(|line| {
            let item = line.trim().strip_prefix("- ")?;
            let (from, to) = item.split_once('→')?;
            let from = from.trim().strip_prefix('`')?.strip_suffix('`')?.to_owned();
            let to = code_spans(to)
                .into_iter()
                .filter(|name| name.starts_with("autoheal"))
                .collect();
            Some((from, to))
        })
        .collect()
}

fn code_spans(text: &str) -> Vec<String> {
    text.split('`').skip(1).step_by(2).map(str::to_owned).collect()
}

/// The `autoheal-*` crates in a manifest's `[dependencies]` (not dev or build).
fn our_dependencies(toml: &str) -> BTreeSet<String> {
    let mut in_dependencies = false;
    let mut found = BTreeSet::new();
    for line in toml.lines().map(str::trim) {
        if line.starts_with('[') {
            in_dependencies = line == "[dependencies]";
            continue;
        }
        if !in_dependencies {
            continue;
        }
        let name: String = line
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '-' || *c == '_')
            .collect();
        if name.starts_with("autoheal") {
            found.insert(name);
        }
    }
    found
}

/// The modules of a crate: `src/*.rs` and `src/*/` (their names), roots aside.
fn modules(src: &Path) -> Result<BTreeSet<String>, String> {
    let entries = std::fs::read_dir(src).map_err(|e| format!("{}: {e}", src.display()))?;
    let mut names = BTreeSet::new();
    for entry in entries {
        let path = entry.map_err(|e| e.to_string())?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let module = if path.is_dir() {
            name
        } else if let Some(stem) = name.strip_suffix(".rs") {
            stem
        } else {
            continue;
        };
        if !matches!(module, "lib" | "main") {
            names.insert(module.to_owned());
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = "# A\n\n## Crates\n\n| crate | path | owns |\n|---|---|---|\n\
        | `one` | `crates/one` | the `parse` module and `wire.rs` |\n\
        | plugins | `plugins/*` | guests |\n\n\
        ## Dependencies\n\n- `one` → `autoheal-core`\n- `autoheal-core` → nothing of ours\n\n## Next\n";

    #[test]
    fn reads_the_rows_and_the_dependency_list() {
        let rows = crate_rows(PAGE);
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(
            (rows[0].name.as_str(), rows[0].path.as_str()),
            ("one", "crates/one")
        );
        assert!(rows[0].owns.contains("`wire.rs`"));
        let deps = documented_dependencies(PAGE);
        assert_eq!(deps["one"], BTreeSet::from(["autoheal-core".to_owned()]));
        assert!(deps["autoheal-core"].is_empty());
    }

    #[test]
    fn only_normal_dependencies_on_our_crates_count() {
        let toml = "[package]\nname = \"x\"\n[dependencies]\nautoheal-core.workspace = true\n\
                    serde = \"1\"\nautoheal-api = { path = \"../api\" }\n\
                    [dev-dependencies]\nautoheal-sandbox.workspace = true\n";
        let found: Vec<String> = our_dependencies(toml).into_iter().collect();
        assert_eq!(found, ["autoheal-api", "autoheal-core"]);
    }

    #[test]
    fn the_repository_architecture_page_is_true() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let problems = check(&root).expect("ARCHITECTURE.md reads");
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }
}
