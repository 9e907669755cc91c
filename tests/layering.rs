//! The module layering stated in ARCHITECTURE.md, enforced: every `crate::` path in `src/`
//! (in `use` lines and inline) may only name a module of the same layer or a lower one, and the
//! modules of one layer may not import each other in a cycle. A failure names the file and line.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// From the bottom. Keep in step with ARCHITECTURE.md ("Layers").
const LAYERS: &[&[&str]] = &[
    &["time", "kql", "fields", "config", "sync", "logging"],
    &["dsl", "matcher", "ecs", "generate"],
    &["rules", "alerts"],
    &["engine", "backend"],
    &["scheduler", "explain", "hunt"],
    &["service", "http", "metrics"],
    &["cli"],
    &["commands"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

/// One `crate::<module>` reference: the importing module, where, and the module named.
#[derive(Debug, Clone)]
struct Import {
    from: String,
    file: String,
    line: usize,
    to: String,
}

/// The top-level module a file of `src/` belongs to (`src/backend/embedded/mod.rs` → `backend`).
fn module_of(rel: &Path) -> String {
    let first = rel
        .components()
        .next()
        .map(|c| c.as_os_str().to_string_lossy().to_string())
        .unwrap_or_default();
    first.trim_end_matches(".rs").to_string()
}

/// The `crate::` references of one file's text (comments ignored).
fn imports_of(module: &str, file: &str, text: &str) -> Vec<Import> {
    let mut out = Vec::new();
    let mut in_group: Option<usize> = None; // brace depth inside `crate::{ ... }`
    for (n, raw) in text.lines().enumerate() {
        let line = match raw.find("//") {
            Some(i) => &raw[..i],
            None => raw,
        };
        let mut push = |to: &str| {
            if !to.is_empty() && to != module {
                out.push(Import {
                    from: module.to_string(),
                    file: file.to_string(),
                    line: n + 1,
                    to: to.to_string(),
                });
            }
        };
        let mut rest = line;
        if let Some(depth) = in_group {
            in_group = scan_group(rest, depth, &mut push);
            rest = "";
        }
        while let Some(i) = rest.find("crate::") {
            let after = &rest[i + "crate::".len()..];
            if let Some(group) = after.strip_prefix('{') {
                in_group = scan_group(group, 1, &mut push);
                break;
            }
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            push(&name);
            rest = &after[name.len()..];
        }
    }
    out
}

/// Reads the top-level names of a `crate::{a::b, c, d::{e, f}}` group from `text`, starting at
/// brace depth `depth`; returns the depth still open at the end of the text (None: closed).
fn scan_group(text: &str, mut depth: usize, push: &mut impl FnMut(&str)) -> Option<usize> {
    let mut expecting_name = depth == 1;
    let mut name = String::new();
    for c in text.chars() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    if expecting_name {
                        push(&name);
                    }
                    return None;
                }
            }
            ',' if depth == 1 => {
                if expecting_name {
                    push(&name);
                }
                name.clear();
                expecting_name = true;
                continue;
            }
            c if depth == 1 && expecting_name && (c.is_ascii_alphanumeric() || c == '_') => {
                name.push(c);
                continue;
            }
            c if c.is_whitespace() => continue,
            _ => {}
        }
        if depth == 1 && expecting_name && !name.is_empty() {
            push(&name);
            name.clear();
            expecting_name = false;
        }
    }
    if expecting_name && !name.is_empty() {
        push(&name);
    }
    Some(depth)
}

/// Every rule the imports break: an import up a layer, a module missing from `LAYERS`, a cycle
/// among modules.
fn violations(imports: &[Import]) -> Vec<String> {
    let mut problems = Vec::new();
    for i in imports {
        match (layer_of(&i.from), layer_of(&i.to)) {
            (Some(from), Some(to)) if to > from => problems.push(format!(
                "{}:{}: `{}` (layer {from}) imports `crate::{}` (layer {to}), a higher layer",
                i.file, i.line, i.from, i.to
            )),
            (None, _) => problems.push(format!(
                "{}:{}: module `{}` is in no layer of tests/layering.rs",
                i.file, i.line, i.from
            )),
            (_, None) => problems.push(format!(
                "{}:{}: `crate::{}` is in no layer of tests/layering.rs",
                i.file, i.line, i.to
            )),
            _ => {}
        }
    }
    // Cycles: depth-first search over the module graph.
    let mut graph: BTreeMap<&str, BTreeMap<&str, &Import>> = BTreeMap::new();
    for i in imports {
        graph
            .entry(i.from.as_str())
            .or_default()
            .entry(i.to.as_str())
            .or_insert(i);
    }
    let mut done = BTreeSet::new();
    for start in graph.keys() {
        let mut path = Vec::new();
        find_cycle(start, &graph, &mut path, &mut done, &mut problems);
    }
    problems
}

fn find_cycle<'a>(
    node: &'a str,
    graph: &BTreeMap<&'a str, BTreeMap<&'a str, &'a Import>>,
    path: &mut Vec<&'a str>,
    done: &mut BTreeSet<&'a str>,
    problems: &mut Vec<String>,
) {
    if let Some(pos) = path.iter().position(|m| *m == node) {
        let cycle = &path[pos..];
        let mut text = format!("import cycle: {} -> {node}", cycle.join(" -> "));
        for (k, from) in cycle.iter().enumerate() {
            let to = cycle.get(k + 1).copied().unwrap_or(node);
            let i = graph[from][to];
            text.push_str(&format!(
                "\n  {}:{}: {} imports {}",
                i.file, i.line, from, to
            ));
        }
        problems.push(text);
        return;
    }
    if done.contains(node) {
        return;
    }
    path.push(node);
    if let Some(next) = graph.get(node) {
        for to in next.keys() {
            find_cycle(to, graph, path, done, problems);
        }
    }
    path.pop();
    done.insert(node);
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

#[test]
fn src_imports_only_go_down_the_layers_and_form_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut imports = Vec::new();
    let mut modules = BTreeSet::new();
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap();
        let module = module_of(rel);
        if module == "lib" || module == "main" {
            continue; // the crate root and the binary sit above every layer
        }
        modules.insert(module.clone());
        let text = std::fs::read_to_string(f).unwrap();
        imports.extend(imports_of(
            &module,
            &format!("src/{}", rel.display()),
            &text,
        ));
    }
    let problems = violations(&imports);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    for m in &modules {
        assert!(
            layer_of(m).is_some(),
            "module `{m}` is in no layer: add it to LAYERS and to ARCHITECTURE.md"
        );
    }
    assert!(imports.len() > 50, "the scan found almost no imports");
}

#[test]
fn an_upward_import_is_reported_with_file_and_line() {
    let text = "//! doc mentioning crate::service\nuse crate::{fields::FieldCatalog,\n    service::run};\nfn f() { crate::kql::parse(\"\"); }\n";
    let imports = imports_of("dsl", "src/dsl/mod.rs", text);
    let to: Vec<&str> = imports.iter().map(|i| i.to.as_str()).collect();
    assert_eq!(to, ["fields", "service", "kql"]);
    let problems = violations(&imports);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with("src/dsl/mod.rs:3: `dsl` (layer 1) imports `crate::service`"),
        "{}",
        problems[0]
    );
}

#[test]
fn a_cycle_within_one_layer_is_reported() {
    let mut imports = imports_of(
        "engine",
        "src/engine/mod.rs",
        "use crate::backend::Backend;\n",
    );
    imports.extend(imports_of(
        "backend",
        "src/backend/x.rs",
        "\n\nuse crate::engine::ExecRule;\n",
    ));
    let problems = violations(&imports);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("import cycle: backend -> engine -> backend"));
    assert!(problems[0].contains("src/backend/x.rs:3: backend imports engine"));
}
