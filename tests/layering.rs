//! Which module may use which: reads every file of `src/` for `crate::…` and `super::…`
//! paths and checks each edge against the layers below, so that data keeps flowing one
//! way (capture → encode → slot → variants → HTTP) and no two modules import each other.
//! ARCHITECTURE.md ("Which module may use which") gives the reasons for the order.
//!
//! A file belongs to the longest module path listed in [`LAYERS`]; edges inside one listed
//! module are free (`http/mod.rs` and `http/admission.rs` are one server). A module may use
//! modules of lower layers only. Test modules (`#[cfg(test)]` to the end of the file) are
//! left out: they build fixtures from anything. A parent's `pub use child::…` is not an
//! edge either: a facade re-exporting its parts.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, bottom up: a module may use the modules of every layer below its own.
const LAYERS: &[&[&str]] = &[
    // The poisoned-lock helper and bounded joins, used everywhere.
    &["lock", "threads"],
    // Nothing of the crate but the lock helper.
    &[
        "frame",
        "font",
        "pacing",
        "jpeg",
        "memory",
        "host_addresses",
        "stats",
        // The settings table and change feed; the NT4 client's re-exports and log policy.
        "settings",
        "networktables",
        // The offset to the robot's clock: NetworkTables writes it, HTTP reads it.
        "robot_clock",
    ],
    // The frame slot, encoding, the source trait, the V4L2 ioctl layer, HTTP's byte level.
    &[
        "frame_slot",
        "encode",
        "no_signal",
        "source",
        "source::v4l2::device",
        "http::request",
        "http::response",
        "http::link",
    ],
    &[
        "transcode",
        "source::test_pattern",
        "source::jpeg_folder",
        "controls",
        "http::part",
        "http::radio",
    ],
    // Variants know frame slots and the transcoder, not cameras; the config schema.
    &["variants", "config"],
    &["saved_settings", "governor", "networktables::cscore_layout"],
    &["camera", "source::v4l2", "source::v4l2::discover"],
    // A switch shows one of its cameras at a time.
    &[
        "capture",
        "budget",
        "match_profile",
        "http::routes",
        "http::sender",
        "switch",
    ],
    // A pushed source can encode in the program's thread with the capture loop's own step.
    &[
        "source::pushed",
        "http::mjpeg",
        "http::pages",
        "http::settings",
    ],
    &["http"],
    &[
        "networktables::camera_publisher",
        "networktables::robot_clock_feed",
        "networktables::fms",
        "networktables::switch_publisher",
    ],
    &["streamer"],
    &["systemd"],
];

/// One `crate::`/`super::` path in a file.
struct Use {
    file: String,
    line: usize,
    /// The module it names (the longest module path that exists), or `None` for an item
    /// of the crate root.
    module: Option<String>,
    text: String,
}

#[test]
fn modules_use_only_modules_below_them() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = rust_files(&src);
    let modules: BTreeMap<String, PathBuf> = files
        .iter()
        .filter_map(|file| module_of(&src, file).map(|module| (module, file.clone())))
        .collect();
    let mut problems = Vec::new();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, file) in &modules {
        let Some(from) = layer_module(module) else {
            problems.push(format!(
                "{}: module `{module}` is in no layer of tests/layering.rs; add it where it belongs",
                relative(file)
            ));
            continue;
        };
        for used in uses_in(file, module, &modules) {
            let Some(target) = &used.module else {
                problems.push(format!(
                    "{}:{}: `{}` names an item of the crate root; name its module instead",
                    used.file, used.line, used.text
                ));
                continue;
            };
            let Some(to) = layer_module(target) else {
                continue; // reported above, for its own file
            };
            if to == from {
                continue;
            }
            graph.entry(from.clone()).or_default().insert(to.clone());
            if rank(&to) >= rank(&from) {
                problems.push(format!(
                    "{}:{}: `{from}` (layer {}) uses `{to}` (layer {}) through `{}`; a module may use only lower layers",
                    used.file,
                    used.line,
                    rank(&from),
                    rank(&to),
                    used.text
                ));
            }
        }
    }
    for cycle in cycles(&graph) {
        problems.push(format!("import cycle: {}", cycle.join(" → ")));
    }
    assert!(
        problems.is_empty(),
        "the module layering is broken:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn the_layers_name_each_module_once() {
    let mut seen = BTreeSet::new();
    for module in LAYERS.iter().flat_map(|layer| layer.iter()) {
        assert!(seen.insert(*module), "{module} is in two layers");
    }
}

#[test]
fn a_cycle_is_found_and_named() {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    graph
        .entry("camera".into())
        .or_default()
        .insert("variants".into());
    graph
        .entry("variants".into())
        .or_default()
        .insert("camera".into());
    graph
        .entry("http".into())
        .or_default()
        .insert("camera".into());
    assert_eq!(cycles(&graph), vec![vec!["camera", "variants", "camera"]]);
}

#[test]
fn paths_are_read_from_use_lines_and_expressions() {
    let modules: BTreeMap<String, PathBuf> = ["http", "http::sender", "http::part", "frame"]
        .iter()
        .map(|m| ((*m).to_owned(), PathBuf::new()))
        .collect();
    let text = "use super::part::Part;\nuse crate::{frame::Frame, http};\n// crate::camera in a comment\nlet x = super::lock(y);\n#[cfg(test)]\nmod tests { use crate::camera; }\n";
    let found: Vec<(usize, Option<String>)> =
        uses_in_text(text, "src/http/sender.rs", "http::sender", &modules)
            .into_iter()
            .map(|u| (u.line, u.module))
            .collect();
    assert_eq!(
        found,
        vec![
            (1, Some("http::part".to_owned())),
            (2, Some("frame".to_owned())),
            (2, Some("http".to_owned())),
            (4, Some("http".to_owned())),
        ]
    );
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// `src/http/sender.rs` → `http::sender`, `src/http/mod.rs` → `http`; `None` for the crate
/// root and the binary, which may use anything.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).ok()?.with_extension("");
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    match parts.as_slice() {
        [only] if only == "lib" || only == "main" => None,
        _ => Some(parts.join("::")),
    }
}

fn relative(file: &Path) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    file.strip_prefix(root)
        .unwrap_or(file)
        .display()
        .to_string()
}

/// The module of [`LAYERS`] that `module` belongs to: the longest listed prefix.
fn layer_module(module: &str) -> Option<String> {
    LAYERS
        .iter()
        .flat_map(|layer| layer.iter())
        .filter(|listed| module == **listed || module.starts_with(&format!("{listed}::")))
        .max_by_key(|listed| listed.len())
        .map(|listed| (*listed).to_owned())
}

fn rank(listed: &str) -> usize {
    LAYERS
        .iter()
        .position(|layer| layer.contains(&listed))
        .expect("a module of the layers")
}

fn uses_in(file: &Path, module: &str, modules: &BTreeMap<String, PathBuf>) -> Vec<Use> {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    uses_in_text(&text, &relative(file), module, modules)
}

/// Every `crate::`/`super::` path in `text` (the file `file` of module `module`), outside
/// comments and the test module; a `{…}` group gives one path per member.
fn uses_in_text(
    text: &str,
    file: &str,
    module: &str,
    modules: &BTreeMap<String, PathBuf>,
) -> Vec<Use> {
    let mut found = Vec::new();
    // Inline modules (`pub mod fuzzing { … }`) open and the brace depth each opened at.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    for (index, line) in text.lines().enumerate() {
        let code = line.trim_start();
        if code.starts_with("#[cfg(test)]") {
            break;
        }
        if code.starts_with("//") {
            continue;
        }
        if let Some(name) = inline_module(code) {
            inline.push((name, depth));
        }
        depth += code.matches('{').count();
        depth = depth.saturating_sub(code.matches('}').count());
        inline.retain(|(_, opened)| *opened < depth);
        let module = std::iter::once(module.to_owned())
            .chain(inline.iter().map(|(name, _)| name.clone()))
            .collect::<Vec<_>>()
            .join("::");
        let module = module.as_str();
        for (start, _) in code
            .match_indices("crate::")
            .chain(code.match_indices("super::"))
        {
            if start > 0 && is_path_char(code.as_bytes()[start - 1]) {
                continue; // `frcstream::crate`-like, or the `super::` of `super::super::`
            }
            for path in expand(&code[start..]) {
                let Some(absolute) = absolute_path(&path, module) else {
                    continue;
                };
                let named = longest_module(&absolute, modules);
                found.push(Use {
                    file: file.to_owned(),
                    line: index + 1,
                    module: named,
                    text: path,
                });
            }
        }
    }
    found
}

/// `pub mod fuzzing {` → `fuzzing`.
fn inline_module(code: &str) -> Option<String> {
    let rest = code.strip_prefix("pub ").unwrap_or(code);
    let rest = rest.strip_prefix("pub(crate) ").unwrap_or(rest);
    let name = rest.strip_prefix("mod ")?.strip_suffix('{')?.trim();
    Some(name.to_owned())
}

fn is_path_char(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || byte == b':'
}

/// `crate::a::{b::C, d}` → `crate::a::b::C`, `crate::a::d`; a plain path as it is.
fn expand(code: &str) -> Vec<String> {
    let head: String = code
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
        .collect();
    let rest = &code[head.len()..];
    if !rest.starts_with('{') {
        return vec![head.trim_end_matches(':').to_owned()];
    }
    let inner = rest[1..].split('}').next().unwrap_or("");
    inner
        .split(',')
        .map(str::trim)
        .filter(|member| !member.is_empty())
        .map(|member| {
            let member: String = member
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            format!("{head}{member}")
        })
        .collect()
}

/// The path's segments from the crate root, `super::` resolved against `module`.
fn absolute_path(path: &str, module: &str) -> Option<Vec<String>> {
    let mut segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
    let mut base: Vec<&str> = match segments.first() {
        Some(&"crate") => {
            segments.remove(0);
            Vec::new()
        }
        Some(&"super") => {
            let mut base: Vec<&str> = module.split("::").collect();
            // `super` of `http/mod.rs` (module `http`) is the crate root; of
            // `http/sender.rs` (module `http::sender`) it is `http`.
            while segments.first() == Some(&"super") {
                segments.remove(0);
                base.pop()?;
            }
            base
        }
        _ => return None,
    };
    base.extend(segments);
    Some(base.into_iter().map(str::to_owned).collect())
}

/// The longest prefix of `path` that is a module of the crate.
fn longest_module(path: &[String], modules: &BTreeMap<String, PathBuf>) -> Option<String> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].join("::"))
        .find(|candidate| modules.contains_key(candidate))
}

/// The cycles of `graph`, each from its smallest module around and back to it.
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    let mut found = BTreeSet::new();
    for start in graph.keys() {
        let mut path = vec![start.clone()];
        walk(graph, start, &mut path, &mut found);
    }
    found.into_iter().collect()
}

fn walk(
    graph: &BTreeMap<String, BTreeSet<String>>,
    start: &str,
    path: &mut Vec<String>,
    found: &mut BTreeSet<Vec<String>>,
) {
    let Some(next) = path.last().and_then(|last| graph.get(last)) else {
        return;
    };
    for module in next {
        if module == start {
            let mut cycle = path.clone();
            cycle.push(start.to_owned());
            found.insert(cycle);
        } else if module.as_str() > start && !path.contains(module) {
            path.push(module.clone());
            walk(graph, start, path, found);
            path.pop();
        }
    }
}
