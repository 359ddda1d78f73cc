//! The book cannot drift from the code: every include, link and SUMMARY entry
//! must resolve, pages hold no pasted code or transcripts, and the pinned
//! mdBook must build the book without a warning.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const MDBOOK_VERSION: &str = "mdbook v0.5.4";

#[test]
fn book_is_consistent_and_builds() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let src = root.join("book/src");
    let mut pages = Vec::new();
    markdown_files(&src, &mut pages);
    pages.sort();
    let mut errors = Vec::new();
    let mut err = |file: &Path, line: usize, msg: String| {
        let file = file.strip_prefix(root).unwrap_or(file).display();
        errors.push(format!("{file}:{line}: {msg}"));
    };

    check_summary(&src, &pages, &mut err);
    for page in &pages {
        let text = fs::read_to_string(page).unwrap();
        for (n, line) in text.lines().enumerate() {
            for (kind, arg) in includes(line) {
                if let Err(msg) = check_include(page, arg) {
                    err(page, n + 1, format!("{{{{#{kind} {arg}}}}}: {msg}"));
                }
            }
        }
        for (n, target) in links(&text) {
            if let Err(msg) = check_link(&src, page, &target) {
                err(page, n, format!("link ({target}): {msg}"));
            }
        }
        for (n, msg) in code_block_problems(page, &text) {
            err(page, n, msg);
        }
    }
    if let Err(msg) = build_with_mdbook(root) {
        errors.push(msg);
    }
    assert!(
        errors.is_empty(),
        "{} problem(s) in the book:\n{}\n",
        errors.len(),
        errors.join("\n")
    );
}

fn markdown_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            markdown_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "md") {
            out.push(path);
        }
    }
}

/// Every SUMMARY entry exists, and every page but SUMMARY.md is listed.
fn check_summary(src: &Path, pages: &[PathBuf], err: &mut impl FnMut(&Path, usize, String)) {
    let summary = src.join("SUMMARY.md");
    let listed = links(&fs::read_to_string(&summary).unwrap_or_default());
    for (n, target) in &listed {
        if !src.join(target).is_file() {
            err(&summary, *n, format!("entry {target}: no such page"));
        }
    }
    for page in pages.iter().filter(|p| **p != summary) {
        let rel = page
            .strip_prefix(src)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if !listed.iter().any(|(_, t)| *t == rel) {
            err(page, 1, "page not listed in SUMMARY.md".into());
        }
    }
}

/// `{{#include ARG}}` and `{{#rustdoc_include ARG}}` on a line: (kind, ARG).
fn includes(line: &str) -> Vec<(&str, &str)> {
    let mut found = Vec::new();
    let mut rest = line;
    while let Some(start) = rest.find("{{#") {
        let escaped = rest[..start].ends_with('\\');
        let body = &rest[start + 3..];
        let Some(end) = body.find("}}") else { break };
        let (kind, arg) = body[..end]
            .trim()
            .split_once(char::is_whitespace)
            .unwrap_or((body[..end].trim(), ""));
        if !escaped && (kind == "include" || kind == "rustdoc_include") {
            found.push((kind, arg.trim()));
        }
        rest = &body[end + 2..];
    }
    found
}

/// PATH exists (relative to the page); ANCHOR is opened and closed; line ranges fit.
fn check_include(page: &Path, arg: &str) -> Result<(), String> {
    let mut parts = arg.split(':');
    let rel = parts.next().unwrap_or_default();
    let path = page.parent().unwrap().join(rel);
    let text =
        fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let spec: Vec<&str> = parts.collect();
    let is_snap = rel.ends_with(".snap");
    if is_snap {
        let head: Vec<&str> = text.lines().take(4).collect();
        let ok = head.len() == 4
            && head[0] == "---"
            && head[1].starts_with("source: ")
            && head[2] == "---";
        if !ok {
            return Err(format!("{rel} must start with the 3-line insta header (---, source: ..., ---), got {head:?}"));
        }
        if spec != ["4", ""] {
            return Err(
                "a snapshot must be included from line 4 (PATH:4:), after its header".into(),
            );
        }
    }
    let count = text.lines().count();
    let line_no = |s: &str| -> Result<Option<usize>, String> {
        match s {
            "" => Ok(None),
            s => match s.parse::<usize>() {
                Ok(n) if (1..=count).contains(&n) => Ok(Some(n)),
                _ => Err(format!("line {s} is not within 1..={count}")),
            },
        }
    };
    match spec[..] {
        [] => Ok(()),
        [anchor] if !anchor.is_empty() && !anchor.bytes().all(|b| b.is_ascii_digit()) => {
            for marker in ["ANCHOR", "ANCHOR_END"] {
                if !has_marker(&text, marker, anchor) {
                    return Err(format!("no `{marker}: {anchor}` in {rel}"));
                }
            }
            Ok(())
        }
        [n] => line_no(n).map(drop),
        [a, b] => match (line_no(a)?, line_no(b)?) {
            (Some(a), Some(b)) if a > b => Err(format!("empty line range {a}:{b}")),
            _ => Ok(()),
        },
        _ => Err("expected PATH, PATH:ANCHOR, PATH:N, PATH:N:, PATH:N:M or PATH::M".into()),
    }
}

/// `MARKER: name` as a whole word, as mdBook's anchor regex reads it.
fn has_marker(text: &str, marker: &str, name: &str) -> bool {
    let pat = format!("{marker}:");
    text.match_indices(&pat).any(|(i, _)| {
        let after = text[i + pat.len()..].trim_start_matches([' ', '\t']);
        let word: String = after
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '-')
            .collect();
        word == name
    })
}

/// Relative links (line, target), outside code blocks and inline code.
fn links(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (n, line) in split(text).0 {
        let line: String = line.split('`').step_by(2).collect();
        for (i, _) in line.match_indices("](") {
            let target = line[i + 2..].split([')', ' ']).next().unwrap_or_default();
            if !target.contains("://") && !target.starts_with("mailto:") {
                found.push((n, target.to_string()));
            }
        }
    }
    found
}

/// A fenced code block: the line of its opening fence, its info string, its lines.
struct Block<'a> {
    line: usize,
    info: &'a str,
    body: Vec<&'a str>,
}

/// Splits a page into prose lines (numbered from 1) and fenced code blocks.
fn split(text: &str) -> (Vec<(usize, &str)>, Vec<Block<'_>>) {
    let (mut prose, mut blocks) = (Vec::new(), Vec::<Block>::new());
    let mut fence: Option<String> = None;
    for (i, line) in text.lines().enumerate() {
        match (&fence, fence_marker(line)) {
            (None, Some(m)) => {
                let info = line.trim_start()[m.len()..].trim();
                blocks.push(Block {
                    line: i + 1,
                    info,
                    body: Vec::new(),
                });
                fence = Some(m);
            }
            (Some(open), Some(m)) if m.starts_with(open.as_str()) && line.trim() == m => {
                fence = None
            }
            (Some(_), _) => blocks.last_mut().unwrap().body.push(line),
            (None, None) => prose.push((i + 1, line)),
        }
    }
    (prose, blocks)
}

/// "```" or "~~~" (or longer) opening a line.
fn fence_marker(line: &str) -> Option<String> {
    let t = line.trim_start();
    let c = t.chars().next().filter(|c| *c == '`' || *c == '~')?;
    let m: String = t.chars().take_while(|x| *x == c).collect();
    (m.len() >= 3).then_some(m)
}

/// The target file exists inside book/src, and its #fragment is a heading id there.
fn check_link(src: &Path, page: &Path, target: &str) -> Result<(), String> {
    let (file, frag) = target.split_once('#').unwrap_or((target, ""));
    let path = if file.is_empty() {
        page.to_path_buf()
    } else {
        page.parent().unwrap().join(file)
    };
    let path = path
        .canonicalize()
        .map_err(|_| "no such file".to_string())?;
    if !path.starts_with(src.canonicalize().unwrap()) {
        return Err("points outside book/src: the rendered book would not have it".into());
    }
    if frag.is_empty() || path.extension().is_none_or(|e| e != "md") {
        return Ok(());
    }
    let ids = heading_ids(&fs::read_to_string(&path).unwrap());
    match ids.contains(&frag.to_string()) {
        true => Ok(()),
        false => Err(format!(
            "no heading with id #{frag}; ids there: {}",
            ids.join(" ")
        )),
    }
}

/// mdBook's heading ids: `{#id}` if given, else the text lowercased, spaces to
/// `-`, punctuation but `-` and `_` dropped; repeats get `-1`, `-2`...
fn heading_ids(text: &str) -> Vec<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut ids = Vec::new();
    for (_, line) in split(text).0 {
        let Some(title) = line
            .trim_start_matches('#')
            .strip_prefix(' ')
            .filter(|_| line.starts_with('#'))
        else {
            continue;
        };
        let id = match title
            .trim()
            .strip_suffix('}')
            .and_then(|t| t.rsplit_once("{#"))
        {
            Some((_, id)) => id.split_whitespace().next().unwrap_or_default().to_string(),
            None => title
                .trim()
                .chars()
                .filter_map(|c| match c {
                    c if c.is_alphanumeric() || c == '_' || c == '-' => {
                        Some(c.to_ascii_lowercase())
                    }
                    c if c.is_whitespace() => Some('-'),
                    _ => None,
                })
                .collect(),
        };
        let n = seen.entry(id.clone()).or_default();
        ids.push(if *n == 0 {
            id.clone()
        } else {
            format!("{id}-{n}")
        });
        *n += 1;
    }
    ids
}

/// Fenced blocks hold only includes and up to 3 `$`/`sudo` command lines,
/// or, in introduction.md and architecture pages, a ```text diagram.
fn code_block_problems(page: &Path, text: &str) -> Vec<(usize, String)> {
    let name = page.file_name().unwrap().to_string_lossy();
    let diagrams_ok = name == "introduction.md" || name.starts_with("architecture");
    let mut problems = Vec::new();
    for block in split(text).1 {
        let lines: Vec<&str> = block
            .body
            .iter()
            .map(|l| l.trim())
            .filter(|l| !l.is_empty())
            .collect();
        let is_command = |l: &&&str| l.starts_with('$') || l.starts_with("sudo ");
        let commands = lines.iter().filter(is_command).count();
        let other = lines
            .iter()
            .filter(|l| !is_command(l) && includes(l).is_empty())
            .count();
        let diagram = block.info == "text" && diagrams_ok;
        if diagram || (other == 0 && commands <= 3) {
            continue;
        }
        let hint = match block.info {
            "text" => {
                " (```text diagrams are allowed only in introduction.md and architecture pages)"
            }
            _ => "",
        };
        problems.push((block.line, format!(
            "```{} block with {other} line(s) that are neither includes nor commands, and {commands} command line(s): \
             a block may hold only {{{{#include}}}} lines and up to 3 `$`/`sudo` lines; \
             include code from the source and transcripts from tests/snapshots/*.snap{hint}",
            block.info
        )));
    }
    problems
}

/// Builds the book with the pinned mdBook; any warning is an error.
fn build_with_mdbook(root: &Path) -> Result<(), String> {
    let mdbook = root.join("target/tools/bin/mdbook");
    let version = |p: &Path| {
        Command::new(p)
            .arg("--version")
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    if version(&mdbook).as_deref() != Some(MDBOOK_VERSION) {
        let script = root.join("scripts/install-mdbook.sh");
        let installed = Command::new(&script).status().is_ok_and(|s| s.success());
        if !installed || version(&mdbook).as_deref() != Some(MDBOOK_VERSION) {
            if std::env::var("CI").as_deref() == Ok("true") {
                return Err(format!(
                    "{MDBOOK_VERSION} is missing and {} failed to install it",
                    script.display()
                ));
            }
            eprintln!("skipping the mdbook build: {MDBOOK_VERSION} not installed (run scripts/install-mdbook.sh)");
            return Ok(());
        }
    }
    let out_dir = std::env::temp_dir().join(format!("stepbox-book-{}", std::process::id()));
    let out = Command::new(&mdbook)
        .args(["build", "book", "-d"])
        .arg(&out_dir)
        .current_dir(root)
        .env("NO_COLOR", "1")
        .output()
        .map_err(|e| format!("running {}: {e}", mdbook.display()))?;
    let _ = fs::remove_dir_all(&out_dir);
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let bad: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .collect();
    if !out.status.success() || !bad.is_empty() {
        return Err(format!(
            "mdbook build book: {}:\n  {}",
            out.status,
            if bad.is_empty() {
                log.trim().replace('\n', "\n  ")
            } else {
                bad.join("\n  ")
            }
        ));
    }
    Ok(())
}
