//! The shape of the code: data flows one way (load → render → send → log), so the library's
//! modules must not import each other in a circle. Read from the source, as a newcomer would:
//! an edge `a → b` is a `crate::b` path anywhere in module `a`'s files outside its tests (the
//! code after `#[cfg(test)]`, and the `tests.rs` files that hold a module's tests).
//!
//! `MISSIVE_PRINT_MODULES=1 cargo test --test tests modules:: -- --nocapture` prints the graph.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

/// The top-level module a file of `src/` belongs to (`src/send/worker.rs` → `send`); none for
/// the crate roots.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).unwrap();
    let first = relative.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "lib" | "main")).then(|| name.to_owned())
}

/// The modules `text` names as `crate::name`, ignoring comments (doc links included) and everything from the first
/// `#[cfg(test)]` on (tests may reach anywhere).
fn imports(text: &str) -> BTreeSet<String> {
    let code = text.split("#[cfg(test)]").next().unwrap_or_default();
    let mut found = BTreeSet::new();
    for line in code.lines() {
        // A comment ends the line's code; `://` is a URL in a string, not a comment.
        let comment = line
            .match_indices("//")
            .find(|(at, _)| !line[..*at].ends_with(':'))
            .map_or(line.len(), |(at, _)| at);
        let line = &line[..comment];
        for (at, _) in line.match_indices("crate::") {
            let name: String = line[at + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_' || c.is_ascii_digit())
                .collect();
            if !name.is_empty() {
                found.insert(name);
            }
        }
    }
    found
}

/// The modules `lib.rs` declares: the library (the binary's own modules, such as its command
/// line, are not part of it).
fn library_modules(src: &Path) -> BTreeSet<String> {
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    lib.lines()
        .filter_map(|line| {
            let line = line.trim().strip_prefix("pub ").unwrap_or(line.trim());
            line.strip_prefix("mod ")?
                .strip_suffix(';')
                .map(str::to_owned)
        })
        .collect()
}

fn graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let library = library_modules(&src);
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph = Graph::new();
    for file in files {
        let Some(module) = module_of(&src, &file).filter(|m| library.contains(m)) else {
            continue;
        };
        // A module's `tests.rs` is its `#[cfg(test)] mod tests;` in a file of its own.
        if file.file_name().is_some_and(|name| name == "tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let edges = graph.entry(module.clone()).or_default();
        edges.extend(imports(&text).into_iter().filter(|m| *m != module));
    }
    graph
}

/// A cycle of `graph`, as the modules along it, if there is one.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &Graph,
        path: &mut Vec<String>,
        finished: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|n| n == node) {
            let mut cycle = path[start..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if finished.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, finished) {
                return Some(cycle);
            }
        }
        path.pop();
        finished.insert(node.to_owned());
        None
    }
    let mut finished = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut finished))
}

#[test]
fn the_library_modules_import_each_other_without_a_cycle() {
    let graph = graph();
    if std::env::var_os("MISSIVE_PRINT_MODULES").is_some() {
        for (module, imports) in &graph {
            let imports: Vec<&str> = imports.iter().map(String::as_str).collect();
            println!("{module} → {}", imports.join(" "));
        }
    }
    assert!(graph.len() > 10, "found the modules of src/: {graph:?}");
    assert!(
        graph["send"].contains("sendlog"),
        "the engine's edge to the send log is seen: {graph:?}"
    );
    if let Some(cycle) = find_cycle(&graph) {
        panic!(
            "the modules import each other in a circle: {}",
            cycle.join(" → ")
        );
    }
}

#[test]
fn a_cycle_is_found_and_named() {
    let mut graph = Graph::new();
    let edge = |graph: &mut Graph, a: &str, b: &str| {
        graph.entry(a.into()).or_default().insert(b.into());
    };
    edge(&mut graph, "campaign", "send");
    edge(&mut graph, "send", "smtp");
    edge(&mut graph, "letter", "typography");
    assert_eq!(find_cycle(&graph), None);
    edge(&mut graph, "smtp", "campaign");
    assert_eq!(
        find_cycle(&graph).unwrap(),
        ["campaign", "send", "smtp", "campaign"]
    );
    assert_eq!(
        imports("use crate::letter::Letter; // crate::render\n#[cfg(test)]\nuse crate::app;"),
        BTreeSet::from(["letter".to_owned()])
    );
}
