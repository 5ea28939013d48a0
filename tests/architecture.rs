//! The shape of the code: no module of the agent or the coordinator imports a module that
//! imports it back, so each step of a query has one place and a clear direction.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

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
                if parts.last().is_some_and(|l| l == "mod" || l == "lib") {
                    parts.pop();
                }
                out.insert(parts.join("::"), p);
            }
        }
    }
    out
}

/// The modules each module names with `crate::` or `super::` paths (outside its tests).
fn imports(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mods = modules(src);
    let mut out = BTreeMap::new();
    for (name, path) in &mods {
        let text = std::fs::read_to_string(path).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        let parent: Vec<&str> = if name.is_empty() { vec![] } else { name.split("::").collect() };
        let mut found = BTreeSet::new();
        for (i, _) in code.match_indices("crate::").chain(code.match_indices("super::")) {
            // Skip doc links and comments: only code lines.
            let line_start = code[..i].rfind('\n').map_or(0, |p| p + 1);
            let line = code[line_start..].lines().next().unwrap_or("").trim_start();
            if line.starts_with("//") {
                continue;
            }
            let rest = &code[i..];
            let path: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':').collect();
            let mut segs: Vec<String> = path.split("::").filter(|s| !s.is_empty()).map(str::to_string).collect();
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
            let mut target = None;
            for n in (0..=segs.len()).rev() {
                let candidate: Vec<String> = base.iter().cloned().chain(segs[..n].iter().cloned()).collect();
                let key = candidate.join("::");
                if mods.contains_key(&key) {
                    target = Some(key);
                    break;
                }
            }
            if let Some(t) = target {
                // A module's own children and parents are its structure, not a dependency.
                let nested = t.starts_with(&format!("{name}::")) || name.starts_with(&format!("{t}::")) || t.is_empty() || t == *name;
                if !nested {
                    found.insert(t);
                }
            }
        }
        out.insert(name.clone(), found);
    }
    out
}

fn cycles(src: &Path) -> Vec<(String, String)> {
    let deps = imports(src);
    let mut out = Vec::new();
    for (a, targets) in &deps {
        for b in targets {
            if a < b && deps.get(b).is_some_and(|t| t.contains(a)) {
                out.push((a.clone(), b.clone()));
            }
        }
    }
    out
}

#[test]
fn no_module_imports_a_module_that_imports_it_back() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for krate in ["agent/src", "coordinator/src", "common/src"] {
        let found = cycles(&root.join(krate));
        assert!(found.is_empty(), "{krate}: modules importing each other: {found:?}");
    }
    // The check finds what it looks for.
    let deps = imports(&root.join("agent/src"));
    assert!(deps["disclosure"].contains("engine::cells"), "{:?}", deps["disclosure"]);
}
