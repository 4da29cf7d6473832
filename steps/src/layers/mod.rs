//! The layer check: reads the kit's sources (`steps/src/**/*.rs`), builds its module graph from
//! the paths the code names (`use crate::…`, `crate::…`, `super::…`, `self::…`, a child module's
//! name, and `saga_conformance::…` in `main.rs`), and fails on
//!
//! - an **import circle** — between the top-level modules (a file or a folder directly under
//!   `src/`, a folder counting as one), and between the files of each folder (a folder's
//!   `mod.rs` is its front and is left out there: it declares its files and they use its types);
//! - an **upward import**: a top-level module importing one on a higher layer of the table in
//!   `lib.rs` (the architecture doc is the table: this check parses it), or a module the table
//!   does not place;
//! - **more than [`MAX_FLOORS`] floors**: the longest chain of top-level modules from `main.rs`
//!   down, both ends counted;
//! - a **source file over [`MAX_LINES`] lines**.
//!
//! Test code (an item under `#[cfg(test)]`) is left out of the graph: a test may build its
//! inputs from anywhere. Comments and string literals are left out too.
//!
//! The check runs as a unit test (`cargo test -p saga-conformance --lib layers`); its own tests
//! show it fail on a synthetic circle, upward import, long chain and long file.

mod parse;

use parse::{Table, code_of, module_of, named_paths};
use std::collections::{BTreeMap, BTreeSet};

/// At most this many floors from `main.rs` down.
const MAX_FLOORS: usize = 9;
/// At most this many lines per source file.
const MAX_LINES: usize = 500;

/// What the check found wrong: a stable `key` (what is wrong) and the evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Finding {
    key: String,
    detail: String,
}

fn show(module: &[String]) -> String {
    if module.is_empty() { "crate".into() } else { module.join("::") }
}

/// The module graph: each file's module → the modules (files) it names.
fn graph(files: &BTreeMap<String, String>) -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let modules: BTreeSet<Vec<String>> = files.keys().map(|f| module_of(f)).collect();
    let mut edges = BTreeMap::new();
    for (file, src) in files {
        let me = module_of(file);
        let children: BTreeSet<&String> =
            modules.iter().filter(|m| m.len() == me.len() + 1 && m.starts_with(&me)).filter_map(|m| m.last()).collect();
        let mut targets = BTreeSet::new();
        for path in named_paths(&code_of(src)) {
            let Some(first) = path.first() else { continue };
            let (mut base, segs): (Vec<String>, &[String]) = match first.as_str() {
                "crate" | "saga_conformance" => (vec![], &path[1..]),
                "self" => (me.clone(), &path[1..]),
                "super" => {
                    let ups = path.iter().take_while(|s| *s == "super").count();
                    (me[..me.len().saturating_sub(ups)].to_vec(), &path[ups..])
                }
                _ if children.contains(first) => (me.clone(), &path[..]),
                _ => continue,
            };
            base.extend(segs.iter().filter(|s| *s != "self").cloned());
            let target =
                (0..=base.len()).rev().map(|n| base[..n].to_vec()).find(|m| modules.contains(m)).unwrap_or_default();
            if target != me {
                targets.insert(target);
            }
        }
        edges.insert(me, targets);
    }
    edges
}

/// The strongly connected components of more than one node (Tarjan).
fn circles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        let graph = s.graph;
        for w in graph.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
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
                s.found.push(component);
            }
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: vec![],
        on_stack: BTreeSet::new(),
        found: vec![],
    };
    let nodes: BTreeSet<&str> =
        graph.iter().flat_map(|(a, bs)| std::iter::once(a).chain(bs)).map(String::as_str).collect();
    for v in nodes {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.found.sort();
    s.found
}

/// The longest chain of modules from `start` (both ends counted), a circle counted as one floor.
fn longest_chain(graph: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Vec<String> {
    // The condensation: each circle one node, named by its members.
    let mut name_of: BTreeMap<&str, String> = BTreeMap::new();
    for circle in circles(graph) {
        let name = circle.join(" ↔ ");
        for m in &circle {
            if let Some((key, _)) = graph.get_key_value(m.as_str()) {
                name_of.insert(key.as_str(), name.clone());
            }
        }
    }
    let name = |m: &str| name_of.get(m).cloned().unwrap_or_else(|| m.to_string());
    let mut dag: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, tos) in graph {
        let entry = dag.entry(name(from)).or_default();
        entry.extend(tos.iter().map(|t| name(t)).filter(|t| *t != name(from)));
    }
    fn chain(
        dag: &BTreeMap<String, BTreeSet<String>>,
        v: &str,
        memo: &mut BTreeMap<String, Vec<String>>,
    ) -> Vec<String> {
        if let Some(known) = memo.get(v) {
            return known.clone();
        }
        let mut best: Vec<String> = vec![];
        for w in dag.get(v).into_iter().flatten() {
            let below = chain(dag, w, memo);
            if below.len() > best.len() {
                best = below;
            }
        }
        let mut mine = vec![v.to_string()];
        mine.extend(best);
        memo.insert(v.to_string(), mine.clone());
        mine
    }
    chain(&dag, &name(start), &mut BTreeMap::new())
}

/// The graph between the children of `folder` (of the root: the top-level modules, `lib.rs`
/// itself as `crate`), each child standing for everything under it; the folder's own `mod.rs`
/// is left out.
fn folder_graph(
    edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
    folder: &[String],
) -> BTreeMap<String, BTreeSet<String>> {
    let child = |m: &Vec<String>| -> Option<String> {
        if folder.is_empty() && m.is_empty() {
            return Some("crate".into());
        }
        (m.len() > folder.len() && m.starts_with(folder)).then(|| show(&m[..folder.len() + 1]))
    };
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, tos) in edges {
        let Some(a) = child(from) else { continue };
        let targets: BTreeSet<String> = tos.iter().filter_map(child).filter(|b| *b != a).collect();
        g.entry(a).or_default().extend(targets);
    }
    g
}

/// Every finding over `files` (path under `src/` → source), judged by `table`.
fn check(files: &BTreeMap<String, String>, table: &Table) -> Vec<Finding> {
    let mut findings = Vec::new();
    let edges = graph(files);
    // The graph between the children of each folder (the root's: the top-level modules).
    let folders: BTreeSet<Vec<String>> = edges
        .keys()
        .filter(|m| files.keys().any(|f| f.ends_with("mod.rs") && module_of(f) == **m) || m.is_empty())
        .cloned()
        .collect();
    for folder in &folders {
        for circle in circles(&folder_graph(&edges, folder)) {
            findings.push(Finding {
                key: format!("circle: {}", circle.join(", ")),
                detail: format!("these modules import each other in a circle: {}", circle.join(" ↔ ")),
            });
        }
    }
    let top = folder_graph(&edges, &[]);
    // Upward imports and unplaced modules.
    let layer = |m: &str| if m == "main" { Some(usize::MAX) } else { table.layer_of.get(m).copied() };
    for (from, tos) in &top {
        if layer(from).is_none() {
            findings.push(Finding {
                key: format!("unplaced: {from}"),
                detail: format!("`{from}` has no layer in the table of lib.rs: add it to the layer it belongs to"),
            });
        }
        for to in tos {
            if let (Some(a), Some(b)) = (layer(from), layer(to))
                && a < b
            {
                let files_: Vec<String> = edges
                    .iter()
                    .filter(|(f, ts)| {
                        show(f).split("::").next() == Some(from)
                            && ts.iter().any(|t| show(t).split("::").next() == Some(to))
                    })
                    .map(|(f, _)| show(f))
                    .collect();
                findings.push(Finding {
                    key: format!("upward: {from} -> {to}"),
                    detail: format!(
                        "`{from}` (layer {a}, {}) imports `{to}` (layer {b}, {}), in {}",
                        table.names.get(&a).map_or("?", String::as_str),
                        table.names.get(&b).map_or("?", String::as_str),
                        files_.join(", ")
                    ),
                });
            }
        }
    }
    let chain = longest_chain(&top, "main");
    if chain.len() > MAX_FLOORS {
        findings.push(Finding {
            key: "floors".into(),
            detail: format!("{} floors from main.rs down (at most {MAX_FLOORS}): {}", chain.len(), chain.join(" → ")),
        });
    }
    for (file, src) in files {
        let lines = src.lines().count();
        if lines > MAX_LINES {
            findings.push(Finding {
                key: format!("long file: {file}"),
                detail: format!("{file} has {lines} lines (at most {MAX_LINES}): split it by purpose"),
            });
        }
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::parse::{parse_table, read_sources};
    use super::*;
    use std::path::Path;

    /// What the kit still owes: each entry must still be found (pay one, strike it off).
    const KNOWN: &[&str] = &[];

    #[test]
    fn the_kit_keeps_its_layers() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let files = read_sources(&src);
        let table = parse_table(&files["lib.rs"]);
        assert!(table.layer_of.len() > 5, "lib.rs's layer table could not be read: {table:?}");
        let findings = check(&files, &table);
        // The figures, for the record (`--nocapture` shows them).
        let (largest, lines) =
            files.iter().map(|(f, s)| (f, s.lines().count())).max_by_key(|(_, n)| *n).expect("sources");
        let floors = longest_chain(&folder_graph(&graph(&files), &[]), "main");
        println!("largest file: {largest} ({lines} lines); {} floors: {}", floors.len(), floors.join(" → "));
        for f in &findings {
            println!("- {}: {}", f.key, f.detail);
        }
        let new: Vec<&Finding> = findings.iter().filter(|f| !KNOWN.contains(&f.key.as_str())).collect();
        let paid: Vec<&&str> = KNOWN.iter().filter(|k| !findings.iter().any(|f| f.key == **k)).collect();
        assert!(
            new.is_empty(),
            "the kit breaks its layers (see the table in lib.rs):\n{}",
            new.iter().map(|f| format!("- {}: {}", f.key, f.detail)).collect::<Vec<_>>().join("\n")
        );
        assert!(paid.is_empty(), "no longer found, strike them off KNOWN in layers/mod.rs: {paid:?}");
    }

    const TABLE: &str =
        "//! 1. **types** (`crate`, `poll`)\n//! 2. **checkers** (`checkers`)\n//! 3. **watching** (`tap`, `sink`)\n";

    fn files(list: &[(&str, &str)]) -> BTreeMap<String, String> {
        list.iter().map(|(f, s)| (f.to_string(), s.to_string())).collect()
    }

    fn keys(findings: &[Finding]) -> Vec<&str> {
        findings.iter().map(|f| f.key.as_str()).collect()
    }

    #[test]
    fn a_clean_tree_passes() {
        let tree = files(&[
            ("lib.rs", TABLE),
            ("main.rs", "use saga_conformance::tap::Tap;"),
            ("poll.rs", "pub fn until() {}"),
            ("checkers.rs", "use crate::{poll, Service};\n#[cfg(test)]\nmod tests { use crate::tap::Tap; }"),
            ("tap.rs", "use crate::checkers::Violation; // crate::sink\nconst S: &str = \"crate::sink::X\";"),
            ("sink.rs", "fn f() { crate::poll::until(); }"),
        ]);
        assert_eq!(check(&tree, &parse_table(TABLE)), vec![]);
    }

    #[test]
    fn fails_on_a_circle() {
        let tree = files(&[
            ("lib.rs", TABLE),
            ("tap.rs", "use crate::sink::Push;"),
            ("sink.rs", "fn f() -> crate::tap::TapRecord { todo!() }"),
        ]);
        assert_eq!(keys(&check(&tree, &parse_table(TABLE))), vec!["circle: sink, tap"]);
    }

    #[test]
    fn fails_on_a_circle_inside_a_folder() {
        let tree = files(&[
            ("lib.rs", TABLE),
            ("tap/mod.rs", "mod load; mod summary; pub use load::run;"),
            ("tap/load.rs", "use super::summary::Summary;"),
            ("tap/summary.rs", "use super::{load::Run, Tap};"),
        ]);
        assert_eq!(keys(&check(&tree, &parse_table(TABLE))), vec!["circle: tap::load, tap::summary"]);
    }

    #[test]
    fn fails_on_an_upward_import_and_an_unplaced_module() {
        let tree = files(&[
            ("lib.rs", TABLE),
            ("checkers.rs", "use crate::{poll, sink::{self, Push as P}};"),
            ("sink.rs", ""),
            ("extra.rs", "use crate::poll;"),
        ]);
        let findings = check(&tree, &parse_table(TABLE));
        assert_eq!(keys(&findings), vec!["upward: checkers -> sink", "unplaced: extra"]);
        assert!(findings[0].detail.contains("layer 2, checkers"), "{findings:?}");
    }

    #[test]
    fn fails_on_too_many_floors() {
        let mut list = vec![(
            "lib.rs".to_string(),
            "//! 1. **all** (`crate`, `m1`, `m2`, `m3`, `m4`, `m5`, `m6`, `m7`, `m8`, `m9`, `m10`)".to_string(),
        )];
        list.push(("main.rs".into(), "use saga_conformance::m1;".into()));
        for k in 1..10 {
            list.push((format!("m{k}.rs"), format!("use crate::m{};", k + 1)));
        }
        list.push(("m10.rs".into(), String::new()));
        let tree: BTreeMap<String, String> = list.into_iter().collect();
        let findings = check(&tree, &parse_table(&tree["lib.rs"]));
        assert_eq!(keys(&findings), vec!["floors"]);
        assert!(findings[0].detail.starts_with("11 floors"), "{findings:?}");
    }

    #[test]
    fn fails_on_a_long_file() {
        let tree = files(&[("lib.rs", TABLE), ("poll.rs", &"fn f() {}\n".repeat(MAX_LINES + 1))]);
        assert_eq!(keys(&check(&tree, &parse_table(TABLE))), vec!["long file: poll.rs"]);
    }
}
