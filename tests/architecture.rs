//! The shape of the code: no module of any crate depends on itself through other modules
//! (no cycle of any length, between files or between top-level modules with their
//! children), so each step of a query has one place and a clear direction; and the crates
//! are layered: the model depends on no transport, `synth` on the model only (no gRPC or
//! telemetry; Parquet's async reader brings tokio, which is not a transport).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every crate's source folder.
const CRATES: [&str; 7] = ["model/src", "common/src", "present/src", "agent/src", "coordinator/src", "synth/src", "src"];

/// Module path (`engine::margins`) of every source file under `src`.
fn modules(src: &Path) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let rel = p.strip_prefix(src).unwrap().with_extension("");
                let mut parts: Vec<String> = rel.iter().map(|s| s.to_string_lossy().to_string()).collect();
                if parts.last().is_some_and(|l| l == "mod" || l == "lib" || l == "main") {
                    parts.pop();
                }
                out.insert(parts.join("::"), p);
            }
        }
    }
    out
}

/// Expands a use tree (`a::{b, c::{d, e}}`) into its paths.
fn expand(tree: &str) -> Vec<String> {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else { return vec![tree.to_string()] };
    let prefix = &tree[..open];
    let body = &tree[open + 1..];
    let mut depth = 1;
    let mut end = body.len();
    for (i, c) in body.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    end = i;
                    break;
                }
            }
            _ => {}
        }
    }
    let mut parts = Vec::new();
    let (mut depth, mut current) = (0, String::new());
    for c in body[..end].chars() {
        match c {
            ',' if depth == 0 => parts.push(std::mem::take(&mut current)),
            '{' => {
                depth += 1;
                current.push(c)
            }
            '}' => {
                depth -= 1;
                current.push(c)
            }
            _ => current.push(c),
        }
    }
    parts.push(current);
    parts.iter().filter(|p| !p.trim().is_empty()).flat_map(|p| expand(p).into_iter().map(|x| format!("{prefix}{x}"))).collect()
}

/// The modules each module names with `crate::` or `super::` paths (outside its tests),
/// grouped imports (`use crate::{a, b::c}`) included.
fn imports(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mods = modules(src);
    let mut out = BTreeMap::new();
    for (name, path) in &mods {
        let text = std::fs::read_to_string(path).unwrap();
        let code: String = text.split("#[cfg(test)]").next().unwrap_or("").lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n");
        let parent: Vec<&str> = if name.is_empty() { vec![] } else { name.split("::").collect() };
        let mut found = BTreeSet::new();
        let starts: Vec<usize> = code.match_indices("crate::").chain(code.match_indices("super::")).map(|(i, _)| i).collect();
        for i in starts {
            // A `super::` inside `super::super::` or a path already counted from its start.
            if i >= 2 && &code[i - 2..i] == "::" {
                continue;
            }
            let rest = &code[i..];
            let head: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':').collect();
            let paths = if rest[head.len()..].starts_with('{') {
                let mut depth = 0;
                let mut end = rest.len();
                for (j, c) in rest.char_indices().skip(head.len()) {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = j + 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                expand(&rest[..end].split_whitespace().collect::<Vec<_>>().join(" "))
            } else {
                vec![head]
            };
            for p in paths {
                let mut segs: Vec<String> = p.split("::").map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
                if segs.is_empty() {
                    continue;
                }
                let base: Vec<String> = if segs[0] == "crate" {
                    segs.remove(0);
                    vec![]
                } else {
                    // `super` is the parent module, however the files are laid out.
                    let mut b: Vec<String> = parent.iter().map(|s| s.to_string()).collect();
                    let ups = segs.iter().take_while(|s| *s == "super").count();
                    segs.drain(..ups);
                    for _ in 0..ups.min(b.len()) {
                        b.pop();
                    }
                    b
                };
                // The longest prefix that is a module.
                let target = (0..=segs.len()).rev().map(|n| base.iter().cloned().chain(segs[..n].iter().cloned()).collect::<Vec<_>>().join("::")).find(|k| mods.contains_key(k));
                if let Some(t) = target {
                    // A module's own children and parents are its structure, not a dependency.
                    let nested = t.starts_with(&format!("{name}::")) || name.starts_with(&format!("{t}::")) || t.is_empty() || t == *name;
                    if !nested {
                        found.insert(t);
                    }
                }
            }
        }
        out.insert(name.clone(), found);
    }
    out
}

/// The same graph with every module taken together with its children (`audit::log` is
/// `audit`): a cycle through a child is a cycle of the top-level modules.
fn top_level(deps: &BTreeMap<String, BTreeSet<String>>) -> BTreeMap<String, BTreeSet<String>> {
    let top = |m: &str| m.split("::").next().unwrap_or("").to_string();
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (a, targets) in deps {
        let entry = out.entry(top(a)).or_default();
        for b in targets {
            if top(b) != top(a) {
                entry.insert(top(b));
            }
        }
    }
    out
}

/// The strongly connected components with more than one module (Tarjan): every cycle of
/// any length lies in one.
fn cycles(deps: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'a> {
        deps: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        let targets: Vec<&'a str> = s.deps.get(v).map(|t| t.iter().map(String::as_str).collect()).unwrap_or_default();
        for w in targets {
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.out.push(component);
            }
        }
    }
    let mut s = State { deps, index: BTreeMap::new(), low: BTreeMap::new(), stack: Vec::new(), on_stack: BTreeSet::new(), out: Vec::new() };
    for v in deps.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out
}

#[test]
fn no_module_depends_on_itself_through_others() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for krate in CRATES {
        let deps = imports(&root.join(krate));
        let found = cycles(&deps);
        assert!(found.is_empty(), "{krate}: modules in a cycle: {found:?}");
        let found = cycles(&top_level(&deps));
        assert!(found.is_empty(), "{krate}: top-level modules (with their children) in a cycle: {found:?}");
    }
    // The check finds what it looks for: grouped imports, and cycles longer than two.
    let deps = imports(&root.join("agent/src"));
    assert!(deps["disclosure"].contains("engine::cells"), "{:?}", deps["disclosure"]);
    assert_eq!(expand("crate::{a, b::{c, d}}"), vec!["crate::a", "crate::b::c", "crate::b::d"]);
    let graph: BTreeMap<String, BTreeSet<String>> = [("query", "audit"), ("audit", "error"), ("error", "query"), ("text", "query")]
        .iter()
        .fold(BTreeMap::new(), |mut g, (a, b)| {
            g.entry(a.to_string()).or_insert_with(BTreeSet::new).insert(b.to_string());
            g
        });
    assert_eq!(cycles(&graph), vec![vec!["audit".to_string(), "error".into(), "query".into()]]);
    let nested: BTreeMap<String, BTreeSet<String>> = [("query", "audit"), ("audit::log", "error"), ("error", "query")]
        .iter()
        .fold(BTreeMap::new(), |mut g, (a, b)| {
            g.entry(a.to_string()).or_insert_with(BTreeSet::new).insert(b.to_string());
            g
        });
    assert!(cycles(&nested).is_empty(), "between files there is none");
    assert_eq!(cycles(&top_level(&nested)).len(), 1, "but audit with its children is in one");
}

/// The packages a package depends on (normal, build and dev dependencies alike), from
/// Cargo.lock.
fn closure(package: &str) -> BTreeSet<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lock: toml::Value = toml::from_str(&std::fs::read_to_string(root.join("Cargo.lock")).unwrap()).unwrap();
    let packages = lock["package"].as_array().unwrap();
    let deps_of = |name: &str| -> Vec<String> {
        packages
            .iter()
            .filter(|p| p["name"].as_str() == Some(name))
            .flat_map(|p| p.get("dependencies").and_then(|d| d.as_array()).cloned().unwrap_or_default())
            .filter_map(|d| d.as_str().map(|s| s.split(' ').next().unwrap_or("").to_string()))
            .collect()
    };
    let mut seen = BTreeSet::new();
    let mut todo = vec![package.to_string()];
    while let Some(p) = todo.pop() {
        for d in deps_of(&p) {
            if seen.insert(d.clone()) {
                todo.push(d);
            }
        }
    }
    seen
}

#[test]
fn the_model_and_the_generator_carry_no_transport() {
    for (package, transport) in [("norrsken-model", ["tonic", "opentelemetry", "tokio"]), ("norrsken-synth", ["tonic", "opentelemetry", "h2"])] {
        let deps = closure(package);
        assert!(!deps.is_empty(), "{package} is in Cargo.lock");
        for t in transport {
            assert!(!deps.contains(t), "{package} depends on {t}");
        }
    }
    assert!(!closure("norrsken-synth").contains("norrsken-common"), "synth uses the model, not the node runtime");
    // The check sees transport where it is.
    assert!(closure("norrsken-common").contains("tonic"));
}
