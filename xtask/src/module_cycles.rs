//! The module-cycle check of `cargo xtask lint`: no top-level module of the
//! host (`host/src/*.rs`, `host/src/*/`) may reach itself through the
//! modules it uses. ARCHITECTURE.md draws the host as layers; a cycle is
//! two modules that can no longer be understood (or split into crates)
//! one without the other, and nothing else notices one appearing.
//!
//! A module uses another when its code names `crate::other` (a `use`, a
//! path in an expression or a type). Comments do not count, doc links
//! included: rustdoc resolves them, but they are not a dependency. `super::`
//! stays inside a top-level module, and a `use` group (`crate::{a, b}`)
//! names each module in the group.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level module → the top-level modules its code names.
pub type Graph = BTreeMap<String, BTreeSet<String>>;

/// The graph of `src` (a crate's `src/`): every `.rs` file under it,
/// attributed to the top-level module it belongs to.
pub fn graph(src: &Path) -> Result<Graph, String> {
    let mut graph = Graph::new();
    let mut files = Vec::new();
    collect(src, &mut files)?;
    for file in files {
        let relative = file.strip_prefix(src).expect("under src");
        let Some(module) = top_level(relative) else {
            continue;
        };
        let text = std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        let used = graph.entry(module.clone()).or_default();
        for name in used_modules(&text) {
            if name != module {
                used.insert(name);
            }
        }
    }
    Ok(graph)
}

fn collect(dir: &Path, files: &mut Vec<std::path::PathBuf>) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.is_dir() {
            collect(&path, files)?;
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
    Ok(())
}

/// `engine/claims.rs` → `engine`; `metrics.rs` → `metrics`; the crate roots
/// (`lib.rs`, `main.rs`) are not modules of the graph.
fn top_level(relative: &Path) -> Option<String> {
    let first = relative.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "lib" | "main")).then(|| name.to_owned())
}

/// The top-level modules named as `crate::NAME` in `text`, outside comments.
pub fn used_modules(text: &str) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    for line in text.lines() {
        let code = match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        };
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let preceded_by_ident = rest[..at]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$');
            rest = &rest[at + "crate::".len()..];
            if preceded_by_ident {
                continue;
            }
            if let Some(group) = rest.strip_prefix('{') {
                // `crate::{a, b::c}`: each item's first segment.
                let end = group.find('}').unwrap_or(group.len());
                for item in group[..end].split(',') {
                    if let Some(name) = first_segment(item.trim()) {
                        used.insert(name);
                    }
                }
            } else if let Some(name) = first_segment(rest) {
                used.insert(name);
            }
        }
    }
    used
}

/// The identifier `path` starts with, if one follows by `::` (a module,
/// not an item of the crate root such as `crate::Error`) — or a lone
/// lowercase identifier in a `use` group (`crate::{metrics, engine}`).
fn first_segment(path: &str) -> Option<String> {
    let name: String = path
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    let is_module = name.chars().next().is_some_and(|c| c.is_lowercase());
    (is_module && name != "self").then_some(name)
}

/// Every cycle's modules, one strongly connected component (of two or more
/// modules) each, in a stable order.
pub fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    let names: Vec<&String> = graph.keys().collect();
    let mut components = Vec::new();
    let mut seen = BTreeSet::new();
    for start in &names {
        if seen.contains(*start) {
            continue;
        }
        let forward = reachable(graph, start);
        let component: Vec<String> = forward
            .iter()
            .filter(|other| reachable(graph, other).contains(*start))
            .cloned()
            .collect();
        for name in &component {
            seen.insert(name.clone());
        }
        if component.len() > 1 {
            components.push(component);
        }
    }
    components
}

/// The modules `from` reaches, itself included.
fn reachable(graph: &Graph, from: &str) -> BTreeSet<String> {
    let mut reached = BTreeSet::from([from.to_owned()]);
    let mut todo = vec![from.to_owned()];
    while let Some(name) = todo.pop() {
        for next in graph.get(&name).into_iter().flatten() {
            if reached.insert(next.clone()) {
                todo.push(next.clone());
            }
        }
    }
    reached
}

/// One line per cycle, with the edges that close it, for the lint's error.
pub fn describe(graph: &Graph, cycles: &[Vec<String>]) -> String {
    let mut out = String::new();
    for cycle in cycles {
        let members: BTreeSet<&String> = cycle.iter().collect();
        let edges: Vec<String> = cycle
            .iter()
            .flat_map(|from| {
                graph[from]
                    .iter()
                    .filter(|to| members.contains(to))
                    .map(move |to| format!("{from} → {to}"))
            })
            .collect();
        out.push_str(&format!(
            "  cycle among {}: {}\n",
            cycle.join(", "),
            edges.join(", ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph_of(edges: &[(&str, &str)]) -> Graph {
        let mut graph = Graph::new();
        for (from, to) in edges {
            graph.entry((*from).into()).or_default().insert((*to).into());
            graph.entry((*to).into()).or_default();
        }
        graph
    }

    #[test]
    fn names_modules_in_paths_and_groups_but_not_in_comments() {
        let text = "use crate::metrics::Metrics;\n\
                    use crate::{engine::Engine, switches, Error};\n\
                    // see crate::cluster\n\
                    /// [`crate::notify`]\n\
                    let x = crate::config::load(); // crate::silence\n\
                    let y = $crate::ignored::x; fn f() -> crate::Error {}\n";
        let used: Vec<String> = used_modules(text).into_iter().collect();
        assert_eq!(used, ["config", "engine", "metrics", "switches"]);
    }

    #[test]
    fn finds_a_three_module_cycle_and_not_a_chain() {
        let cyclic = graph_of(&[
            ("cluster", "metrics"),
            ("metrics", "engine"),
            ("engine", "cluster"),
            ("http", "engine"),
        ]);
        let found = cycles(&cyclic);
        assert_eq!(
            found,
            vec![vec!["cluster".to_owned(), "engine".into(), "metrics".into()]]
        );
        assert!(describe(&cyclic, &found).contains("engine → cluster"));

        let chain = graph_of(&[("http", "engine"), ("engine", "cluster"), ("cluster", "switches")]);
        assert!(cycles(&chain).is_empty());
    }

    #[test]
    fn the_host_has_no_module_cycle() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../host/src");
        let graph = graph(&src).expect("host/src reads");
        // Read, not vacuous: the server's module uses several others.
        assert!(graph.len() > 10 && graph["http"].len() > 3, "{graph:?}");
        let found = cycles(&graph);
        assert!(found.is_empty(), "{}", describe(&graph, &found));
    }
}
