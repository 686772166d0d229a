//! Tidy: the layers of `src/` import only downward.
//!
//! The table lives in ARCHITECTURE.md (section "Layers"), so the document and the code
//! cannot drift apart: this test reads it, checks that it has no cycle and names every
//! top-level module, then scans every file under `src/` for `crate::` paths (including
//! grouped `use crate::{a, b::c}`) and fails on an edge the table does not allow. A new
//! edge means a deliberate change to the table, with its reason beside it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Layers = BTreeMap<String, BTreeSet<String>>;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `| module | may import | why |` rows under `## Layers`.
fn table() -> Layers {
    let doc = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let section = doc
        .split("\n## Layers")
        .nth(1)
        .expect("ARCHITECTURE.md has a `## Layers` section");
    let section = section.split("\n## ").next().unwrap();
    let mut layers = Layers::new();
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let module = cells[1].trim_matches('`').to_owned();
        let allowed = cells[2]
            .split(',')
            .map(|m| m.trim().trim_matches('`').to_owned())
            .filter(|m| !m.is_empty() && m != "—")
            .collect();
        assert!(
            layers.insert(module.clone(), allowed).is_none(),
            "`{module}` twice in the table"
        );
    }
    assert!(!layers.is_empty(), "the layer table has no rows");
    layers
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to; `None` for the crate root and the binary.
fn module_of(file: &Path) -> Option<String> {
    let relative = file.strip_prefix(root().join("src")).unwrap();
    let first = relative
        .components()
        .next()?
        .as_os_str()
        .to_str()?
        .to_owned();
    match first.strip_suffix(".rs") {
        Some("lib" | "main") => None,
        Some(stem) => Some(stem.to_owned()),
        None => Some(first),
    }
}

/// Top-level modules a piece of source names through `crate::`.
fn imports(source: &str) -> BTreeSet<String> {
    let code: String = source
        .lines()
        .map(|line| line.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let mut found = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        let preceded_by_ident = rest[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_');
        rest = &rest[at + "crate::".len()..];
        if preceded_by_ident {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        found.extend(first_segment(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                if depth == 0 || c != '{' {
                    item.push(c);
                }
            }
            found.extend(first_segment(&item));
        } else {
            found.extend(first_segment(rest));
        }
    }
    found
}

fn first_segment(path: &str) -> Option<String> {
    let name: String = path
        .trim_start()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty() && name != "self").then_some(name)
}

#[test]
fn the_layer_table_has_no_cycle() {
    let layers = table();
    for (module, allowed) in &layers {
        for target in allowed {
            assert!(
                layers.contains_key(target),
                "`{module}` may import `{target}`, which is not in the table"
            );
        }
    }
    // Kahn's algorithm: peel off modules whose imports are all peeled already.
    let mut done: BTreeSet<&str> = BTreeSet::new();
    while done.len() < layers.len() {
        let ready: Vec<&str> = layers
            .iter()
            .filter(|(m, allowed)| {
                !done.contains(m.as_str()) && allowed.iter().all(|a| done.contains(a.as_str()))
            })
            .map(|(m, _)| m.as_str())
            .collect();
        assert!(
            !ready.is_empty(),
            "the layer table has a cycle among: {:?}",
            layers
                .keys()
                .filter(|m| !done.contains(m.as_str()))
                .collect::<Vec<_>>()
        );
        done.extend(ready);
    }
}

#[test]
fn every_import_between_top_level_modules_is_in_the_table() {
    let layers = table();
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    files.sort();
    let mut modules = BTreeSet::new();
    let mut violations = Vec::new();
    for file in &files {
        let Some(module) = module_of(file) else {
            continue;
        };
        modules.insert(module.clone());
        let allowed = layers.get(&module).unwrap_or_else(|| {
            panic!(
                "`{module}` ({}) is not in ARCHITECTURE.md's layer table",
                file.display()
            )
        });
        let source = std::fs::read_to_string(file).unwrap();
        for target in imports(&source) {
            if target != module && layers.contains_key(&target) && !allowed.contains(&target) {
                violations.push(format!("{} : {module} -> {target}", file.display()));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "imports the layer table does not allow:\n{}",
        violations.join("\n")
    );
    let stale: Vec<&String> = layers.keys().filter(|m| !modules.contains(*m)).collect();
    assert!(
        stale.is_empty(),
        "modules in the table but not in src/: {stale:?}"
    );
}

#[test]
fn the_scanner_sees_grouped_and_nested_imports() {
    let source = "use crate::{config::Config, store::{Store, records::X}};\n\
                  // use crate::commented::Out;\n\
                  fn f() { crate::telegram::types::Update::default(); }\n\
                  use crate::{self as me};";
    let found: Vec<String> = imports(source).into_iter().collect();
    assert_eq!(found, ["config", "store", "telegram"]);
}
