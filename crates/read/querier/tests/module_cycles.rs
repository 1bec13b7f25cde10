//! The querier's files do not import each other in a circle: the HTTP edge (`src/http/`)
//! imports the domain modules, and no domain module imports the edge (nor uses axum) or,
//! through others, itself.
//!
//! Reads every `src/**/*.rs` file's production part (before its first `#[cfg(test)]`), takes
//! each path that starts with `crate::` or `super::` (in `use` lines and in code), resolves it
//! to the file module it names (the longest prefix that is a file: `crate::http::reply::reply`
//! is `http::reply`) and fails on a cycle in that graph. The crate root (`lib.rs`, which
//! declares the modules and holds `Querier`) is not a node: every module may name `Querier`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module path of a file under `src/` (`""` for `lib.rs`).
fn module_of(rel: &Path) -> String {
    let mut parts: Vec<String> =
        rel.iter().map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string()).collect();
    if parts.last().is_some_and(|l| l == "mod" || l == "lib") {
        parts.pop();
    }
    parts.join("::")
}

fn collect_files(dir: &Path, root: &Path, out: &mut Vec<(String, String)>) {
    let mut entries: Vec<_> =
        std::fs::read_dir(dir).expect("read src").map(|e| e.expect("dir entry").path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect_files(&path, root, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path.strip_prefix(root).expect("under src");
            let text = std::fs::read_to_string(&path).expect("read file");
            out.push((module_of(rel), text));
        }
    }
}

/// The production part of a file, without `//` comments.
fn production_code(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        if line.trim_start().starts_with("#[cfg(test)]") {
            break;
        }
        let code = match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        };
        out.push_str(code);
        out.push('\n');
    }
    out
}

/// Parses a use tree at the start of `s` (after `crate::` or `super::`): the full paths it
/// names, each as its segments.
fn use_tree(s: &str) -> Vec<Vec<String>> {
    fn tree(chars: &[char], i: &mut usize, prefix: &[String], out: &mut Vec<Vec<String>>) {
        let mut path = prefix.to_vec();
        loop {
            while *i < chars.len() && chars[*i].is_whitespace() {
                *i += 1;
            }
            if *i < chars.len() && chars[*i] == '{' {
                *i += 1;
                loop {
                    tree(chars, i, &path, out);
                    while *i < chars.len() && (chars[*i].is_whitespace() || chars[*i] == ',') {
                        *i += 1;
                    }
                    if *i >= chars.len() || chars[*i] == '}' {
                        *i += 1;
                        return;
                    }
                }
            }
            let start = *i;
            while *i < chars.len() && (chars[*i].is_alphanumeric() || chars[*i] == '_') {
                *i += 1;
            }
            if *i > start {
                path.push(chars[start..*i].iter().collect());
            }
            if chars.get(*i) == Some(&':') && chars.get(*i + 1) == Some(&':') {
                *i += 2;
                continue;
            }
            // `as name`, `;`, `,`, `}`, `(`, ... end this path
            out.push(path);
            return;
        }
    }
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    tree(&chars, &mut 0, &[], &mut out);
    out
}

/// The module paths `code` (a file of module `module`) names through `crate::` and `super::`.
fn named_paths(module: &str, code: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    for (prefix, base) in [("crate::", String::new()), ("super::", parent(module))] {
        let mut rest = code;
        while let Some(i) = rest.find(prefix) {
            let before = rest[..i].chars().last();
            rest = &rest[i + prefix.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue; // `$crate::`, `a::super::`
            }
            let base: Vec<String> =
                base.split("::").filter(|s| !s.is_empty()).map(str::to_string).collect();
            for p in use_tree(rest) {
                // `super::super::x`: each further `super` goes one module up
                let mut full = base.clone();
                for seg in p {
                    if seg == "super" {
                        full.pop();
                    } else {
                        full.push(seg);
                    }
                }
                found.push(full);
            }
        }
    }
    found
}

fn parent(module: &str) -> String {
    match module.rfind("::") {
        Some(i) => module[..i].to_string(),
        None => String::new(),
    }
}

/// The edges between file modules (the crate root left out).
fn graph(files: &[(String, String)]) -> BTreeMap<String, BTreeSet<String>> {
    let modules: BTreeSet<&str> = files.iter().map(|(m, _)| m.as_str()).collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, text) in files {
        if module.is_empty() {
            continue;
        }
        let to = edges.entry(module.clone()).or_default();
        for path in named_paths(module, &production_code(text)) {
            let target = (1..=path.len())
                .rev()
                .map(|n| path[..n].join("::"))
                .find(|m| modules.contains(m.as_str()));
            if let Some(target) = target {
                if &target != module {
                    to.insert(target);
                }
            }
        }
    }
    edges
}

/// A cycle of the graph, if there is one (as the modules along it, the first repeated last).
fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(node.to_string(), 1);
        stack.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            match state.get(next).copied().unwrap_or(0) {
                1 => {
                    let from = stack.iter().position(|m| m == next).unwrap_or(0);
                    let mut cycle = stack[from..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(next, edges, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(node.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in edges.keys() {
        if state.get(node).copied().unwrap_or(0) == 0 {
            if let Some(c) = visit(node, edges, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

#[test]
fn querier_modules_import_each_other_without_cycles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    collect_files(&src, &src, &mut files);
    let edges = graph(&files);
    assert!(edges.contains_key("http::reply") && edges.contains_key("query"), "{edges:?}");
    // the edge reaches into the domain
    assert!(edges["http::tail"].contains("tail"), "{:?}", edges["http::tail"]);
    if let Some(cycle) = find_cycle(&edges) {
        panic!("the querier's modules import each other in a circle: {}", cycle.join(" -> "));
    }
    // no domain module imports the HTTP edge, nor knows axum
    for (module, text) in &files {
        if !module.starts_with("http") {
            assert!(
                !production_code(text).contains("axum"),
                "the domain module `{module}` uses axum: HTTP belongs in src/http/"
            );
        }
    }
    for (module, to) in &edges {
        if !module.starts_with("http") {
            let edge: Vec<_> = to.iter().filter(|t| t.starts_with("http")).collect();
            assert!(edge.is_empty(), "{module} imports the HTTP edge: {edge:?}");
        }
    }
}

#[test]
fn use_trees_and_cycles_are_read() {
    let files = vec![
        (String::new(), "pub mod a; pub use a::X;".to_string()),
        ("a".to_string(), "use crate::{b::{self, f}, Querier};\nfn g() {}".to_string()),
        ("b".to_string(), "use crate::c::{x as y};\n// use crate::a;\n".to_string()),
        ("c".to_string(), "fn f() { crate::a::g(); }\n#[cfg(test)]\nuse crate::b;".to_string()),
        ("c::d".to_string(), "use super::x;\nuse super::super::b;".to_string()),
    ];
    let edges = graph(&files);
    assert_eq!(edges["a"], BTreeSet::from(["b".to_string()]));
    assert_eq!(edges["b"], BTreeSet::from(["c".to_string()]));
    assert_eq!(edges["c"], BTreeSet::from(["a".to_string()]));
    assert_eq!(edges["c::d"], BTreeSet::from(["b".to_string(), "c".to_string()]));
    let cycle = find_cycle(&edges).expect("a cycle");
    assert_eq!(cycle.join(" -> "), "a -> b -> c -> a");
    let mut acyclic = edges.clone();
    acyclic.get_mut("c").map(BTreeSet::clear);
    assert_eq!(find_cycle(&acyclic), None);
}
