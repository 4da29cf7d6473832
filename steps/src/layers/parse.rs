//! The layer check's reading of the sources: the layer table from `lib.rs`'s header, each
//! file's code without comments, literals and test items, and the module paths the code names.

use std::collections::BTreeMap;
use std::path::Path;

/// The layer table parsed from `lib.rs`: top-level module → its layer (1 = the bottom).
#[derive(Debug, Default)]
pub(super) struct Table {
    pub(super) layer_of: BTreeMap<String, usize>,
    pub(super) names: BTreeMap<usize, String>,
}

/// Parses the items `N. **name** (`module`, `module`, …)` of `lib.rs`'s header (an item may run
/// over several lines).
pub(super) fn parse_table(lib_rs: &str) -> Table {
    let doc: Vec<&str> = lib_rs.lines().filter_map(|l| l.strip_prefix("//!")).map(str::trim).collect();
    let doc = doc.join(" ");
    let mut table = Table::default();
    for (at, _) in doc.match_indices(". **") {
        let number: String = doc[..at].chars().rev().take_while(char::is_ascii_digit).collect();
        let Ok(layer) = number.chars().rev().collect::<String>().parse::<usize>() else { continue };
        let rest = &doc[at + 4..];
        let Some((name, rest)) = rest.split_once("** (") else { continue };
        let Some((modules, _)) = rest.split_once(')') else { continue };
        table.names.insert(layer, name.to_string());
        for module in modules.split(',') {
            let module = module.trim().trim_matches('`');
            if !module.is_empty() {
                table.layer_of.insert(module.to_string(), layer);
            }
        }
    }
    table
}

/// The source with comments, string and char literals blanked, and `#[cfg(test)]` items dropped.
pub(super) fn code_of(src: &str) -> String {
    let bytes = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    while i < bytes.len() {
        let rest = &src[i..];
        if rest.starts_with("//") {
            i += rest.find('\n').unwrap_or(rest.len());
        } else if rest.starts_with("/*") {
            let mut depth = 0;
            let mut j = i;
            while j < bytes.len() {
                if src[j..].starts_with("/*") {
                    depth += 1;
                    j += 2;
                } else if src[j..].starts_with("*/") {
                    depth -= 1;
                    j += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    j += 1;
                }
            }
            i = j;
        } else if (rest.starts_with("r\"")
            || rest.starts_with("r#")
            || rest.starts_with("br\"")
            || rest.starts_with("br#"))
            && (i == 0 || !ident(bytes[i - 1]))
        {
            let start = if rest.starts_with('b') { 2 } else { 1 };
            let hashes = rest[start..].bytes().take_while(|&b| b == b'#').count();
            if rest.as_bytes().get(start + hashes) != Some(&b'"') {
                out.push(bytes[i] as char);
                i += 1;
                continue;
            }
            let close = format!("\"{}", "#".repeat(hashes));
            let body = start + hashes + 1;
            i += rest[body..].find(&close).map_or(rest.len(), |e| body + e + close.len());
            out.push_str("\"\"");
        } else if bytes[i] == b'"' {
            let mut j = i + 1;
            while j < bytes.len() && bytes[j] != b'"' {
                j += if bytes[j] == b'\\' { 2 } else { 1 };
            }
            i = j + 1;
            out.push_str("\"\"");
        } else if bytes[i] == b'\'' {
            // A char literal ('x', '\n', '\u{…}', '"'); a lifetime ('a) is kept.
            let close = if rest[1..].starts_with('\\') {
                rest.get(3..).and_then(|r| r.find('\'')).map(|e| e + 4)
            } else {
                rest[1..].char_indices().nth(1).filter(|&(_, c)| c == '\'').map(|(e, _)| e + 2)
            };
            match close {
                Some(len) => {
                    out.push_str("' '");
                    i += len;
                }
                None => {
                    out.push('\'');
                    i += 1;
                }
            }
        } else {
            let c = rest.chars().next().unwrap_or(' ');
            out.push(c);
            i += c.len_utf8();
        }
    }
    drop_test_items(&out)
}

/// Drops each `#[cfg(test)]` attribute and the item it guards (to its `;` or closing brace).
fn drop_test_items(code: &str) -> String {
    const MARK: &str = "#[cfg(test)]";
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(at) = rest.find(MARK) {
        out.push_str(&rest[..at]);
        let item = &rest[at + MARK.len()..];
        let mut depth = 0usize;
        let mut end = item.len();
        for (k, c) in item.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        end = k + 1;
                        break;
                    }
                }
                ';' if depth == 0 => {
                    end = k + 1;
                    break;
                }
                _ => {}
            }
        }
        rest = &item[end..];
    }
    out.push_str(rest);
    out
}

/// Expands a `use` tree (`a::{b, c::{d, e as f}, self}`) into its paths.
fn expand_use(tree: &str) -> Vec<String> {
    let tree = tree.trim();
    if let Some(open) = tree.find('{') {
        let prefix = &tree[..open];
        let inner = tree[open + 1..].strip_suffix('}').unwrap_or(&tree[open + 1..]);
        let mut parts = Vec::new();
        let (mut depth, mut start) = (0usize, 0usize);
        for (k, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth = depth.saturating_sub(1),
                ',' if depth == 0 => {
                    parts.push(&inner[start..k]);
                    start = k + 1;
                }
                _ => {}
            }
        }
        parts.push(&inner[start..]);
        return parts
            .into_iter()
            .filter(|p| !p.trim().is_empty())
            .flat_map(|p| expand_use(p).into_iter().map(move |e| format!("{prefix}{e}")))
            .collect();
    }
    let path = tree.split(" as ").next().unwrap_or(tree);
    vec![path.split_whitespace().collect()]
}

/// Every path the code names: those of its `use` statements, and each `a::b::c` elsewhere.
pub(super) fn named_paths(code: &str) -> Vec<Vec<String>> {
    let mut paths: Vec<String> = Vec::new();
    let mut rest_of_code = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(at) = find_word(rest, "use") {
        rest_of_code.push_str(&rest[..at]);
        let statement = &rest[at + 3..];
        let end = statement.find(';').unwrap_or(statement.len());
        paths.extend(expand_use(&statement[..end]));
        rest = &statement[(end + 1).min(statement.len())..];
    }
    rest_of_code.push_str(rest);
    // Inline paths: identifiers joined by `::`, not themselves after a `::`.
    let bytes = rest_of_code.as_bytes();
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut i = 0;
    while i < bytes.len() {
        if ident(bytes[i]) && (i == 0 || !ident(bytes[i - 1])) && !rest_of_code[..i].trim_end().ends_with("::") {
            let mut j = i;
            loop {
                while j < bytes.len() && ident(bytes[j]) {
                    j += 1;
                }
                if rest_of_code[j..].starts_with("::") && bytes.get(j + 2).is_some_and(|&b| ident(b)) {
                    j += 2;
                } else {
                    break;
                }
            }
            if rest_of_code[i..j].contains("::") {
                paths.push(rest_of_code[i..j].to_string());
            }
            i = j.max(i + 1);
        } else {
            i += 1;
        }
    }
    paths
        .into_iter()
        .map(|p| p.split("::").map(str::trim).filter(|s| !s.is_empty() && *s != "*").map(str::to_string).collect())
        .collect()
}

/// The byte offset of `word` standing alone in `text`, if it does.
fn find_word(text: &str, word: &str) -> Option<usize> {
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(k) = text[from..].find(word) {
        let at = from + k;
        let end = at + word.len();
        if (at == 0 || !ident(bytes[at - 1])) && (end >= bytes.len() || !ident(bytes[end])) {
            return Some(at);
        }
        from = end;
    }
    None
}

/// A source file's module path: `lib.rs` → [], `a/mod.rs` → [a], `a/b.rs` → [a, b].
pub(super) fn module_of(file: &str) -> Vec<String> {
    let stem = file.strip_suffix(".rs").unwrap_or(file);
    let mut parts: Vec<String> = stem.split('/').map(str::to_string).collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts
}

/// Every `.rs` file under `dir`, by its path relative to it.
pub(super) fn read_sources(dir: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir).expect("read the kit's sources").flatten().collect();
        entries.sort_by_key(|e| e.path());
        for entry in entries {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let relative = path.strip_prefix(root).expect("under the root").to_string_lossy().replace('\\', "/");
                out.insert(relative, std::fs::read_to_string(&path).expect("read a source file"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_use_trees_and_inline_paths() {
        let code = code_of(
            "use crate::{a::{b, c as d}, e::self};\nfn f() { super::g::h(); let s = \"crate::x\"; 'a'; }\n#[cfg(test)]\nmod t { use crate::z; }",
        );
        let paths: Vec<String> = named_paths(&code).iter().map(|p| p.join("::")).collect();
        assert_eq!(paths, vec!["crate::a::b", "crate::a::c", "crate::e::self", "super::g::h"]);
    }
}
