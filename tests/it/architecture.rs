//! The layout is the architecture, and it stays so: in each crate, no
//! module uses its own ancestors (a `mod.rs` declares, lists and
//! re-exports its children; the children never reach back into it), the
//! children of every folder use each other without a circle, and the
//! top-level modules form the layers declared below, each using only those
//! before it. The check reads the sources (`use` and `crate::`/`super::`
//! paths outside `#[cfg(test)]` code), so a change that breaks a rule
//! fails here with the offending file and path.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::common::repo;

/// Each library crate's top-level modules, lowest layer first. Data flows
/// one way: scan (formats) → decode and batch (engine) → model (the
/// clip-model crate) → column (functions); the session installs it all.
const LAYERS: [(&str, &[&str]); 3] = [
    (
        "crates/clip-model/src",
        &[
            "error",
            "config",
            "registry",
            "profile",
            "ops",
            "towers",
            "image",
            "text",
            "clip",
            "embed",
            "checkpoint",
        ],
    ),
    (
        "crates/datafusion-clip/src",
        &[
            "config",
            "engine",
            "error",
            "formats",
            "functions",
            "query_cancel",
            "codec",
            "session",
            "distributed",
        ],
    ),
    (
        "crates/clip-sql/src",
        &[
            "files",
            "sql_params",
            "session_options",
            "catalogue",
            "sql_runner",
            "report",
            "suite",
            "bench",
            "commands",
        ],
    ),
];

/// A module's path inside its crate (`["formats", "webdataset", "scan"]`).
type ModulePath = Vec<String>;

/// Every module of the crate whose sources are in `src`, with its file.
/// `lib.rs` and `main.rs` are both the root (the binary's modules,
/// `commands/`, are checked with the library's).
fn modules(src: &Path) -> BTreeMap<ModulePath, PathBuf> {
    let mut found = BTreeMap::new();
    let mut pending = vec![src.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            // Helpers of the crate's unit tests (`#[cfg(test)] mod test_support;`).
            if path.file_stem().is_some_and(|stem| stem == "test_support") {
                continue;
            }
            let relative = path.strip_prefix(src).unwrap().with_extension("");
            let mut module: ModulePath = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if matches!(module.last().map(String::as_str), Some("mod")) {
                module.pop();
            }
            if matches!(module.as_slice(), [root] if root == "lib" || root == "main") {
                module.clear();
                if found.contains_key(&module) {
                    // lib.rs and main.rs: keep both under the root.
                    found.insert(vec!["<main>".to_string()], path);
                    continue;
                }
            }
            found.insert(module, path);
        }
    }
    found
}

/// The code of `file` that ships: up to its `#[cfg(test)]` module, with
/// `//` comments left out (intra-doc links are not imports).
fn shipped_code(file: &Path) -> String {
    let text = std::fs::read_to_string(file).unwrap();
    let mut code = String::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.trim_start().starts_with("#[cfg(test)]") {
            // The tests module ends what ships; a single test-only item
            // (`mod test_support;`) is skipped alone.
            match lines.next() {
                Some(item) if item.trim_start().starts_with("mod ") && item.ends_with('{') => break,
                _ => continue,
            }
        }
        let without_comment = match line.find("//") {
            // Not a `//` inside a string such as "https://".
            Some(at) if !line[..at].contains('"') => &line[..at],
            _ => line,
        };
        code.push_str(without_comment);
        code.push('\n');
    }
    code
}

/// `a::{b, c::{d, e}}` as the paths it names: `a::b`, `a::c::d`, `a::c::e`.
fn expand_use_tree(tree: &str) -> Vec<Vec<String>> {
    // One space between words (so `d as e` stays readable), none around
    // the punctuation.
    let mut tree = tree.split_whitespace().collect::<Vec<_>>().join(" ");
    for (spaced, tight) in [
        (" ::", "::"),
        (":: ", "::"),
        ("{ ", "{"),
        (" }", "}"),
        (", ", ","),
        (" ,", ","),
    ] {
        tree = tree.replace(spaced, tight);
    }
    let mut paths = Vec::new();
    expand_into(&[], &tree, &mut paths);
    paths
}

fn expand_into(prefix: &[String], tree: &str, paths: &mut Vec<Vec<String>>) {
    let mut depth = 0;
    let mut start = 0;
    let mut items = Vec::new();
    for (i, c) in tree.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&tree[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&tree[start..]);
    for item in items.into_iter().filter(|i| !i.is_empty()) {
        match item.find("::{") {
            Some(at) if item.ends_with('}') => {
                let mut inner_prefix = prefix.to_vec();
                inner_prefix.extend(item[..at].split("::").map(str::to_string));
                expand_into(&inner_prefix, &item[at + 3..item.len() - 1], paths);
            }
            _ => {
                let item = item.split(" as ").next().unwrap_or(item);
                let mut path = prefix.to_vec();
                path.extend(item.split("::").map(str::to_string));
                paths.push(path);
            }
        }
    }
}

/// The `crate::`/`super::` paths `code` names: in `use` declarations
/// (brace lists expanded) and inline.
fn named_paths(code: &str) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("use ") {
        let boundary = at == 0 || !rest.as_bytes()[at - 1].is_ascii_alphanumeric();
        rest = &rest[at + 4..];
        if !boundary {
            continue;
        }
        if let Some(end) = rest.find(';') {
            paths.extend(expand_use_tree(&rest[..end]));
        }
    }
    for start in ["crate::", "super::"] {
        for (at, _) in code.match_indices(start) {
            // Part of a longer path or a word (`no::crate::x`, `supercrate::`).
            let before = code[..at].chars().next_back();
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let path: String = code[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            // `super::{a, b}` is a use tree, read above.
            if !path.ends_with("::") {
                paths.push(path.split("::").map(str::to_string).collect());
            }
        }
    }
    paths
        .into_iter()
        .filter(|p| matches!(p.first().map(String::as_str), Some("crate" | "super")))
        .collect()
}

/// The module `path`, named in `module`, points into.
fn resolve(
    path: &[String],
    module: &ModulePath,
    known: &BTreeMap<ModulePath, PathBuf>,
) -> ModulePath {
    let mut segments = path.iter().peekable();
    let mut target: ModulePath = if segments.next().is_some_and(|s| s == "crate") {
        Vec::new()
    } else {
        // `super` of `a/b.rs` and of `a/b/mod.rs` is `a`.
        let mut parent = module.clone();
        parent.pop();
        while segments.peek().is_some_and(|s| *s == "super") {
            segments.next();
            parent.pop();
        }
        parent
    };
    for segment in segments {
        let mut deeper = target.clone();
        deeper.push(segment.clone());
        if !known.contains_key(&deeper) {
            break;
        }
        target = deeper;
    }
    target
}

/// For one crate: every use of an ancestor, and the edges between the
/// children of each module (child -> sibling), with where each was seen.
struct CrateUses {
    ancestors: Vec<String>,
    sibling_edges: BTreeMap<(ModulePath, ModulePath), String>,
}

fn crate_uses(src: &Path) -> CrateUses {
    let known = modules(src);
    let mut ancestors = Vec::new();
    let mut sibling_edges = BTreeMap::new();
    for (module, file) in &known {
        // The binary's root is checked as the crate root.
        let module: ModulePath = if module.first().is_some_and(|m| m == "<main>") {
            Vec::new()
        } else {
            module.clone()
        };
        for path in named_paths(&shipped_code(file)) {
            let target = resolve(&path, &module, &known);
            let common = module
                .iter()
                .zip(&target)
                .take_while(|(a, b)| a == b)
                .count();
            let seen = format!("{} uses {}", file.display(), path.join("::"));
            if common == module.len() {
                continue; // a module using its own children
            }
            if common == target.len() {
                ancestors.push(seen);
                continue;
            }
            sibling_edges
                .entry((module[..=common].to_vec(), target[..=common].to_vec()))
                .or_insert(seen);
        }
    }
    CrateUses {
        ancestors,
        sibling_edges,
    }
}

/// A circle in `edges`, as the modules along it, if there is one.
fn find_circle(edges: &BTreeMap<(ModulePath, ModulePath), String>) -> Option<Vec<ModulePath>> {
    let mut next: BTreeMap<&ModulePath, Vec<&ModulePath>> = BTreeMap::new();
    for (from, to) in edges.keys() {
        next.entry(from).or_default().push(to);
    }
    fn visit<'a>(
        node: &'a ModulePath,
        next: &BTreeMap<&'a ModulePath, Vec<&'a ModulePath>>,
        path: &mut Vec<&'a ModulePath>,
        done: &mut BTreeSet<&'a ModulePath>,
    ) -> Option<Vec<ModulePath>> {
        if let Some(at) = path.iter().position(|n| *n == node) {
            let mut circle: Vec<ModulePath> = path[at..].iter().map(|n| (*n).clone()).collect();
            circle.push(node.clone());
            return Some(circle);
        }
        if !done.insert(node) {
            return None;
        }
        path.push(node);
        for to in next.get(node).into_iter().flatten() {
            if let Some(circle) = visit(to, next, path, done) {
                return Some(circle);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    for start in next.keys() {
        if let Some(circle) = visit(start, &next, &mut Vec::new(), &mut done) {
            return Some(circle);
        }
    }
    None
}

#[test]
fn no_module_uses_its_ancestors() {
    for (src, _) in LAYERS {
        let uses = crate_uses(&Path::new(repo()).join(src));
        assert!(
            uses.ancestors.is_empty(),
            "modules reaching back into a module above them (move what they need \
             into a module of its own):\n{}",
            uses.ancestors.join("\n")
        );
    }
}

#[test]
fn the_modules_of_every_folder_use_each_other_without_a_circle() {
    for (src, _) in LAYERS {
        let uses = crate_uses(&Path::new(repo()).join(src));
        if let Some(circle) = find_circle(&uses.sibling_edges) {
            let steps: Vec<String> = circle
                .windows(2)
                .map(|pair| uses.sibling_edges[&(pair[0].clone(), pair[1].clone())].clone())
                .collect();
            panic!("an import circle in {src}:\n{}", steps.join("\n"));
        }
    }
}

#[test]
fn top_level_modules_use_only_the_layers_below_them() {
    for (src, layers) in LAYERS {
        let root = Path::new(repo()).join(src);
        let top_level: BTreeSet<String> = modules(&root)
            .keys()
            .filter(|m| m.len() == 1 && m[0] != "<main>")
            .map(|m| m[0].clone())
            .collect();
        let declared: BTreeSet<String> = layers.iter().map(|l| l.to_string()).collect();
        assert_eq!(
            top_level, declared,
            "{src}: the layers listed in tests/it/architecture.rs are not the crate's \
             top-level modules"
        );
        let layer = |m: &ModulePath| layers.iter().position(|l| *l == m[0]);
        for ((from, to), seen) in crate_uses(&root).sibling_edges {
            if from.len() != 1 {
                continue;
            }
            assert!(
                layer(&to) < layer(&from),
                "{src}: {} is a layer above {}: {seen}",
                to[0],
                from[0]
            );
        }
    }
}

#[test]
fn the_checker_sees_what_it_must() {
    // Brace lists, renames, nesting and inline paths.
    assert_eq!(
        expand_use_tree("super::{a, b::{c, d as e}, self}"),
        [
            vec!["super", "a"],
            vec!["super", "b", "c"],
            vec!["super", "b", "d"],
            vec!["super", "self"],
        ]
    );
    let paths = named_paths(
        "use crate::x::{Y, z::W};\nfn f() { crate::engine::run(); let s = \"no::crate::here\"; }",
    );
    assert!(paths.contains(&vec!["crate".into(), "x".into(), "Y".into()]));
    assert!(paths.contains(&vec!["crate".into(), "engine".into(), "run".into()]));
    assert!(!paths.iter().any(|p| p.contains(&"here".to_string())));
    // A circle is found, and named in order.
    let edge = |a: &str, b: &str| ((vec![a.to_string()], vec![b.to_string()]), String::new());
    let circular = BTreeMap::from([edge("a", "b"), edge("b", "c"), edge("c", "a")]);
    assert_eq!(find_circle(&circular).map(|c| c.len()), Some(4));
    let layered = BTreeMap::from([edge("a", "b"), edge("b", "c"), edge("a", "c")]);
    assert_eq!(find_circle(&layered), None);
}
