//! The shape of the code, kept by tests: modules that depend on each other one way
//! only, and libtorch only in the model side.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::util::{repo, BIN};

/// Which top-level modules of the crate in `src` each one names: `crate::NAME` in
/// code (comments and doc links are not dependencies), or `super::NAME` for a flat
/// crate such as `cli/src`.
fn module_graph(src: &Path, prefix: &str) -> BTreeMap<String, BTreeSet<String>> {
    fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                files(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut all = Vec::new();
    files(src, &mut all);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in all {
        let rel = f.strip_prefix(src).unwrap();
        let top = rel.iter().next().unwrap().to_string_lossy();
        let top = top.trim_end_matches(".rs").to_string();
        if top == "lib" || top == "main" {
            continue;
        }
        let deps = graph.entry(top.clone()).or_default();
        for line in std::fs::read_to_string(&f).unwrap().lines() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            for (i, _) in code.match_indices(prefix) {
                let name: String = code[i + prefix.len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                if !name.is_empty() && name != top {
                    deps.insert(name);
                }
            }
        }
    }
    graph
}

/// A cycle in `graph`, as the path that closes it, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == n) {
            let mut cycle = path[at..].to_vec();
            cycle.push(n.to_string());
            return Some(cycle);
        }
        if done.contains(n) {
            return None;
        }
        path.push(n.to_string());
        for m in graph.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for n in graph.keys() {
        if let Some(c) = visit(n, graph, &mut Vec::new(), &mut done) {
            return Some(c);
        }
    }
    None
}

#[test]
fn the_cycle_finder_finds_a_cycle() {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    g.entry("config".into())
        .or_default()
        .insert("stages".into());
    g.entry("stages".into())
        .or_default()
        .insert("pipeline".into());
    assert_eq!(find_cycle(&g), None);
    g.entry("pipeline".into())
        .or_default()
        .insert("config".into());
    assert_eq!(
        find_cycle(&g).unwrap(),
        ["config", "stages", "pipeline", "config"]
    );
}

#[test]
fn modules_depend_on_each_other_one_way_only() {
    for (dir, prefix) in [
        ("src", "crate::"),
        ("cli/src", "super::"),
        ("torch/src", "crate::"),
    ] {
        let g = module_graph(&repo().join(dir), prefix);
        assert!(g.len() > 3, "{dir}: {g:?}");
        if let Some(c) = find_cycle(&g) {
            panic!("{dir}: modules in a cycle: {}", c.join(" -> "));
        }
    }
    // The engine's layers, in the order they may be named.
    let g = module_graph(&repo().join("src"), "crate::");
    for (low, high) in [
        ("stages", "pipeline"),
        ("stages", "transport"),
        ("config", "pipeline"),
        ("limits", "config"),
    ] {
        assert!(
            !g[low].contains(high),
            "{low} must not name {high}: {:?}",
            g[low]
        );
    }
}

#[test]
fn the_lean_binary_does_not_link_libtorch() {
    let out = std::process::Command::new("ldd").arg(BIN).output().unwrap();
    let libs = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "ldd {BIN}");
    assert!(libs.contains("libc.so"), "{libs}");
    for lib in ["libtorch", "libc10", "libcuda", "libgomp"] {
        assert!(!libs.contains(lib), "{BIN} links {lib}:\n{libs}");
    }
    // The model side does.
    let torch = Path::new(BIN).with_file_name("capstream-torch");
    let out = std::process::Command::new("ldd")
        .arg(&torch)
        .output()
        .unwrap();
    let libs = String::from_utf8_lossy(&out.stdout);
    assert!(libs.contains("libtorch_cpu"), "{libs}");
    assert!(!libs.contains("not found"), "{libs}");
}
