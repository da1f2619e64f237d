//! Architecture checks: the crate's top-level modules form layers that only point down,
//! and sibling modules never depend on each other in a circle.
//!
//! Layering keeps the lower parts (STIX, envelopes, the store) usable and testable
//! without the network code, and keeps a change near the top from rippling down. The
//! check reads the sources, so it needs nothing beyond std: every `crate::`, `super::`
//! and `self::` path in `src/` is resolved to an absolute module path, skipping comments
//! (doc links included) and literals. Paths starting any other way (a child module,
//! another crate) cannot leave their module, so they are not followed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level modules by layer, lowest first. A module may refer only to modules on a
/// strictly lower layer, so modules sharing a layer (`sync` and `server`) may not refer
/// to each other: whatever both need belongs further down. `cli` is the binary
/// (`src/main.rs` and `src/cli/`). Every new top-level module must be placed here.
const LAYERS: &[&[&str]] = &[
    &["allocator"],
    &["parallel"],
    &["json"],
    &["stix"],
    // A fixed generator of STIX content, used by tests and benchmarks of the layers
    // above as well as by `gen` and the demo.
    &["workload"],
    &["roster"],
    &["envelope"],
    // The membership log: the roster as a chain of approved changes.
    &["membership"],
    &["config"],
    &["keys"],
    // TLS configurations for both ends, from the config and the key files.
    &["tls"],
    &["store"],
    &["node"],
    &["sync", "server"],
    &["demo"],
    &["cli"],
];

/// Source tokens (identifiers, `::` and single punctuation characters) with their lines.
type Tokens = [(usize, String)];

/// One path in the sources: where it is, the module whose code holds it, and the
/// absolute path it names (`["stix", "tlp", "TlpLevel"]`).
struct Ref {
    file: String,
    line: usize,
    from: Vec<String>,
    to: Vec<String>,
}

/// Index just past the string literal whose opening `"` is at `i`; a raw string (`raw`
/// counts its `#`s) has no escapes.
fn skip_string(c: &[char], mut i: usize, raw: Option<usize>) -> usize {
    let n = raw.unwrap_or(0);
    i += 1;
    while i < c.len() {
        if c[i] == '\\' && raw.is_none() {
            i += 1;
        } else if c[i] == '"' && c[i + 1..].iter().take(n).filter(|&&h| h == '#').count() == n {
            return i + 1 + n;
        }
        i += 1;
    }
    i
}

/// Splits Rust source into tokens, dropping comments, string and character literals,
/// lifetimes and numbers. Block comments are taken not to nest (none do here).
fn tokenize(src: &str) -> Vec<(usize, String)> {
    let c: Vec<char> = src.chars().collect();
    let at = |i: usize, s: &str| s.chars().enumerate().all(|(k, x)| c.get(i + k) == Some(&x));
    let (mut i, mut line, mut counted, mut out) = (0, 1, 0, Vec::new());
    while i < c.len() {
        let (start, mut token) = (i, None);
        if at(i, "//") || at(i, "/*") {
            let end = if at(i, "//") { "\n" } else { "*/" };
            while i < c.len() && !at(i, end) {
                i += 1;
            }
            i += end.len();
        } else if c[i] == '"' {
            i = skip_string(&c, i, None);
        } else if c[i] == '\'' {
            // A character literal ('x', '\n', '\u{7f}'), else a lifetime or label.
            if c.get(i + 1) == Some(&'\\') {
                i += 3;
                while i < c.len() && c[i] != '\'' {
                    i += 1;
                }
            } else if c.get(i + 2) == Some(&'\'') {
                i += 2;
            }
            i += 1;
        } else if c[i].is_alphanumeric() || c[i] == '_' {
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            let word: String = c[start..i].iter().collect();
            let hashes = c[i..].iter().take_while(|&&h| h == '#').count();
            let quote = c.get(i + hashes) == Some(&'"');
            if quote && matches!(word.as_str(), "r" | "br" | "cr") {
                i = skip_string(&c, i + hashes, Some(hashes));
            } else if quote && hashes == 0 && matches!(word.as_str(), "b" | "c") {
                i = skip_string(&c, i, None);
            } else if !c[start].is_ascii_digit() {
                token = Some(word);
            }
        } else {
            let len = if at(i, "::") { 2 } else { 1 };
            i += len;
            if !c[start].is_whitespace() {
                token = Some(c[start..i].iter().collect());
            }
        }
        if let Some(token) = token {
            line += c[counted..start].iter().filter(|&&x| x == '\n').count();
            counted = start;
            out.push((line, token));
        }
    }
    out
}

/// The token at `k`, or "" past either end.
fn tok(toks: &Tokens, k: usize) -> &str {
    toks.get(k).map_or("", |t| t.1.as_str())
}

/// Expands the path or use-tree continuing at `toks[i]` into full paths under `prefix`:
/// `a::{b, c::d}` gives `a::b` and `a::c::d`; `self` in a group names the prefix.
fn expand(toks: &Tokens, mut i: usize, mut prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    while tok(toks, i).starts_with(|ch: char| ch.is_alphabetic() || ch == '_') {
        if tok(toks, i) != "self" {
            prefix.push(tok(toks, i).to_string());
        }
        if tok(toks, i + 1) != "::" {
            break;
        }
        i += 2;
    }
    if tok(toks, i) != "{" {
        out.push(prefix);
        return;
    }
    let mut depth = 0;
    for (j, (_, t)) in toks.iter().enumerate().skip(i) {
        depth += match t.as_str() {
            "{" => 1,
            "}" => -1,
            _ => 0,
        };
        // Each item of the group starts after its `{` or a `,` at the group's level.
        match t.as_str() {
            "}" if depth == 0 => return,
            "{" | "," if depth == 1 => expand(toks, j + 1, prefix.clone(), out),
            _ => {}
        }
    }
}

/// Every `crate::`, `super::` or `self::` path in `src` (the file of `module`),
/// resolved to an absolute path. Inline `mod name { .. }` blocks are tracked, since
/// `super::` inside one names the file's own module.
fn references(file: &str, src: &str, module: &[String]) -> Vec<Ref> {
    let toks = tokenize(src);
    let (mut here, mut open, mut depth, mut out) = (module.to_vec(), Vec::new(), 0, Vec::new());
    for (i, (line, t)) in toks.iter().enumerate() {
        let starts_path = tok(&toks, i + 1) == "::" && (i == 0 || tok(&toks, i - 1) != "::");
        match t.as_str() {
            "{" => {
                depth += 1;
                if i >= 2 && tok(&toks, i - 2) == "mod" {
                    here.push(tok(&toks, i - 1).to_string());
                    open.push(depth);
                }
            }
            "}" => {
                if open.last() == Some(&depth) {
                    open.pop();
                    here.pop();
                }
                depth -= 1;
            }
            "crate" | "super" | "self" if starts_path => {
                let (mut base, mut k) = (here.clone(), i);
                while tok(&toks, k + 1) == "::"
                    && matches!(tok(&toks, k), "crate" | "super" | "self")
                {
                    if tok(&toks, k) == "crate" {
                        base.clear();
                    } else if tok(&toks, k) == "super" {
                        base.pop();
                    }
                    k += 2;
                }
                let mut paths = Vec::new();
                expand(&toks, k, base, &mut paths);
                for to in paths {
                    let (file, line, from) = (file.to_string(), *line, here.clone());
                    out.push(Ref {
                        file,
                        line,
                        from,
                        to,
                    });
                }
            }
            _ => {}
        }
    }
    out
}

/// All references in `src/`, and every module that has a file (with its ancestors).
fn scan() -> (Vec<Ref>, BTreeSet<Vec<String>>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (mut dirs, mut files) = (vec![root.join("src")], Vec::new());
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).expect("read source directory") {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    let (mut refs, mut modules) = (Vec::new(), BTreeSet::new());
    for path in files {
        // src/stix/pattern/mod.rs is `stix::pattern`; lib.rs and main.rs are crate roots.
        let rel = path
            .strip_prefix(root.join("src"))
            .expect("under src")
            .with_extension("");
        let module: Vec<String> = rel
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .filter(|p| !matches!(p.as_str(), "mod" | "lib" | "main"))
            .collect();
        modules.extend((1..=module.len()).map(|k| module[..k].to_vec()));
        let text = std::fs::read_to_string(&path).expect("read source file");
        let shown = path
            .strip_prefix(root)
            .expect("under the crate")
            .display()
            .to_string();
        refs.extend(references(&shown, &text, &module));
    }
    (refs, modules)
}

/// The layer of a top-level module; `None` for other items at the crate root (macros).
fn layer(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

/// No top-level module refers to one on its own or a higher layer (see [`LAYERS`]).
#[test]
fn layers_only_point_down() {
    let (refs, modules) = scan();
    let unplaced: Vec<_> = modules
        .iter()
        .filter(|m| m.len() == 1 && layer(&m[0]).is_none())
        .collect();
    assert!(
        unplaced.is_empty(),
        "top-level modules missing from LAYERS: {unplaced:?}"
    );
    let mut bad: Vec<String> = refs
        .iter()
        .filter_map(|r| {
            let (from, to) = (r.from.first()?, r.to.first()?);
            let up = from != to && layer(to)? >= layer(from)?;
            up.then(|| format!("{}:{}: {from} -> {to}", r.file, r.line))
        })
        .collect();
    // `use crate::x::{a, b}` names `x` twice on one line: report it once.
    bad.dedup();
    assert!(
        bad.is_empty(),
        "{} references point up or sideways:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

/// From each module to the siblings it refers to, with the first place it does so.
type Graph = BTreeMap<String, BTreeMap<String, String>>;

/// The nodes reachable from `start` by one or more edges.
fn reachable<'a>(graph: &'a Graph, start: &'a str) -> BTreeSet<&'a str> {
    let (mut seen, mut todo) = (BTreeSet::new(), vec![start]);
    while let Some(node) = todo.pop() {
        for next in graph.get(node).into_iter().flat_map(|m| m.keys()) {
            if seen.insert(next.as_str()) {
                todo.push(next.as_str());
            }
        }
    }
    seen
}

/// Sibling modules (`server::api` and `server::federation`, `stix::pattern::parser` and
/// `stix::pattern::simple`) must not depend on each other in a circle: then neither can
/// be read, tested or moved alone. A refers to its sibling B when code in A names a
/// path inside B.
#[test]
fn sibling_modules_have_no_cycles() {
    let (refs, modules) = scan();
    let mut graphs: BTreeMap<Vec<String>, Graph> = BTreeMap::new();
    for r in &refs {
        // The children of the closest common parent that hold each end.
        let n = r.from.iter().zip(&r.to).take_while(|(a, b)| a == b).count();
        let (Some(a), Some(b)) = (r.from.get(n), r.to.get(n)) else {
            continue;
        };
        if n > 0 && modules.contains(&r.to[..=n]) {
            let graph = graphs.entry(r.from[..n].to_vec()).or_default();
            let at = format!("{}:{}", r.file, r.line);
            graph
                .entry(a.clone())
                .or_default()
                .entry(b.clone())
                .or_insert(at);
        }
    }
    let mut cycles = Vec::new();
    for (parent, graph) in &graphs {
        let reach: BTreeMap<&str, BTreeSet<&str>> = graph
            .keys()
            .map(|m| (m.as_str(), reachable(graph, m)))
            .collect();
        let mut reported: BTreeSet<&str> = BTreeSet::new();
        for (&a, from_a) in &reach {
            if !from_a.contains(a) || reported.contains(a) {
                continue;
            }
            // A's cycle: the modules that A reaches and that reach A.
            let cycle: Vec<&str> = from_a
                .iter()
                .copied()
                .filter(|b| reach.get(b).is_some_and(|r| r.contains(a)))
                .collect();
            cycles.push(format!("{}: {}", parent.join("::"), cycle.join(" <-> ")));
            for &m in &cycle {
                for (to, at) in graph[m]
                    .iter()
                    .filter(|(to, _)| cycle.contains(&to.as_str()))
                {
                    cycles.push(format!("  {at}: {m} -> {to}"));
                }
            }
            reported.extend(cycle);
        }
    }
    assert!(
        cycles.is_empty(),
        "cycles between sibling modules:\n{}",
        cycles.join("\n")
    );
}
