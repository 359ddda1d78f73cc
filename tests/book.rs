//! The book cannot drift from the code: every include, link and SUMMARY entry
//! resolves, pages hold no pasted code or transcripts, and the pinned mdBook
//! builds the book without a warning. And a student can read it without
//! scrolling sideways: rendered in headless Chromium at 1280 px, no code
//! block, table or page is wider than its room.

use std::collections::HashMap;
use std::fs;
use std::path::{Component, Path, PathBuf};
use std::process::Command;

const MDBOOK: &str = "mdbook v0.5.4";

#[test]
fn book_is_consistent_and_builds() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let src = root.join("book/src");
    let mut pages = Vec::new();
    markdown_files(&src, &mut pages);
    pages.sort();
    let mut errors = Vec::new();
    let mut err = |file: &Path, line: usize, msg: String| {
        errors.push(format!("{}:{line}: {msg}", shown(root, file)));
    };
    let summary = src.join("SUMMARY.md");
    let listed = links(&fs::read_to_string(&summary).unwrap_or_default());
    for (n, target) in &listed {
        if !src.join(target).is_file() {
            err(&summary, *n, format!("entry {target}: no such page"));
        }
    }
    for page in &pages {
        let rel = page.strip_prefix(&src).unwrap().to_string_lossy();
        if *page != summary && !listed.iter().any(|(_, t)| *t == rel) {
            err(page, 1, "page not listed in SUMMARY.md".into());
        }
        let text = fs::read_to_string(page).unwrap();
        for (n, line) in text.lines().enumerate() {
            for (kind, arg) in includes(line) {
                if let Err(msg) = check_include(root, page, arg) {
                    err(page, n + 1, format!("{{{{#{kind} {arg}}}}}: {msg}"));
                }
            }
        }
        for (n, target) in links(&text).into_iter().filter(|_| *page != summary) {
            if let Err(msg) = check_link(&src, page, &target) {
                err(page, n, format!("link ({target}): {msg}"));
            }
        }
        for (n, msg) in code_block_problems(root, page, &text) {
            err(page, n, msg);
        }
    }
    for (file, n, msg) in diagram_problems(&src) {
        err(&file, n, msg);
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

/// `path` without `..` and relative to the repository, for messages.
fn shown(root: &Path, path: &Path) -> String {
    let mut clean = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => drop(clean.pop()),
            c => clean.push(c),
        }
    }
    clean
        .strip_prefix(root)
        .unwrap_or(&clean)
        .display()
        .to_string()
}

/// The (kind, ARG) of every `{{#include ARG}}` and `{{#rustdoc_include ARG}}` on a line.
fn includes(line: &str) -> Vec<(&str, &str)> {
    let mut found = Vec::new();
    let mut rest = line;
    while let Some(start) = rest.find("{{#") {
        let escaped = rest[..start].ends_with('\\');
        let Some(end) = rest[start..].find("}}") else {
            break;
        };
        let body = rest[start + 3..start + end].trim();
        let (kind, arg) = body.split_once(char::is_whitespace).unwrap_or((body, ""));
        if !escaped && (kind == "include" || kind == "rustdoc_include") {
            found.push((kind, arg.trim()));
        }
        rest = &rest[start + end + 2..];
    }
    found
}

/// PATH exists (relative to the page), ANCHOR is opened and closed, line
/// numbers are in the file, and snapshots are included after their header.
fn check_include(root: &Path, page: &Path, arg: &str) -> Result<(), String> {
    let mut parts = arg.split(':');
    let path = page
        .parent()
        .unwrap()
        .join(parts.next().unwrap_or_default());
    let spec: Vec<&str> = parts.collect();
    let Ok(text) = fs::read_to_string(&path) else {
        return Err(format!("no such file: {}", shown(root, &path)));
    };
    if path.extension().is_some_and(|e| e == "snap") {
        let head: Vec<&str> = text.lines().take(3).collect();
        if !matches!(head[..], ["---", source, "---"] if source.starts_with("source: ")) {
            return Err(format!(
                "snapshot header is not `---`, `source: ...`, `---`: {head:?}"
            ));
        }
        if spec != ["4", ""] {
            return Err("include a snapshot as PATH:4: (from the line after its header)".into());
        }
    }
    let count = text.lines().count();
    let line = |s: &str| match s.parse::<usize>() {
        _ if s.is_empty() => Ok(None),
        Ok(n) if (1..=count).contains(&n) => Ok(Some(n)),
        _ => Err(format!("line {s} is not in 1..={count}")),
    };
    match spec[..] {
        [] => Ok(()),
        [anchor] if anchor.parse::<usize>().is_err() => ["ANCHOR", "ANCHOR_END"]
            .into_iter()
            .find(|marker| !has_marker(&text, marker, anchor))
            .map_or(Ok(()), |marker| {
                Err(format!("no `{marker}: {anchor}` in {}", shown(root, &path)))
            }),
        [n] => line(n).map(drop),
        [a, b] => match (line(a)?, line(b)?) {
            (Some(a), Some(b)) if a > b => Err(format!("empty line range {a}:{b}")),
            _ => Ok(()),
        },
        _ => Err("expected PATH, PATH:ANCHOR, PATH:N, PATH:N:, PATH:N:M or PATH::M".into()),
    }
}

/// `MARKER: name`, with name a whole word, as mdBook's anchor regex reads it.
fn has_marker(text: &str, marker: &str, name: &str) -> bool {
    let pat = format!("{marker}:");
    text.match_indices(&pat).any(|(i, _)| {
        let after = text[i + pat.len()..].trim_start();
        let end = after.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-'));
        after[..end.unwrap_or(after.len())] == *name
    })
}

/// Relative link targets (line, target), outside code blocks and inline code.
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
        let t = line.trim_start();
        let marker: String = t.chars().take_while(|&c| c == '`' || c == '~').collect();
        let marker = Some(marker).filter(|m| m.len() >= 3 && m.chars().all(|c| t.starts_with(c)));
        match (&fence, marker) {
            (None, Some(m)) => {
                blocks.push(Block {
                    line: i + 1,
                    info: t[m.len()..].trim(),
                    body: Vec::new(),
                });
                fence = Some(m);
            }
            (Some(open), Some(m)) if m.starts_with(open.as_str()) && t.trim_end() == m => {
                fence = None
            }
            (Some(_), _) => blocks.last_mut().unwrap().body.push(line),
            (None, None) => prose.push((i + 1, line)),
        }
    }
    (prose, blocks)
}

/// The target exists inside book/src, and its #fragment is a heading id there.
fn check_link(src: &Path, page: &Path, target: &str) -> Result<(), String> {
    let (file, frag) = target.split_once('#').unwrap_or((target, ""));
    let path = match file {
        "" => page.to_path_buf(),
        _ => page.parent().unwrap().join(file),
    };
    let path = path
        .canonicalize()
        .map_err(|_| "no such file".to_string())?;
    if !path.starts_with(src.canonicalize().unwrap()) {
        return Err("outside book/src: the rendered book would not have it".into());
    }
    if frag.is_empty() || path.extension().is_none_or(|e| e != "md") {
        return Ok(());
    }
    let ids = heading_ids(&fs::read_to_string(&path).unwrap());
    match ids.iter().any(|id| id == frag) {
        true => Ok(()),
        false => Err(format!(
            "no heading #{frag} there; its ids: {}",
            ids.join(" ")
        )),
    }
}

/// mdBook's heading ids: `{#id}` if given, else the text lowercased, spaces to
/// `-`, punctuation other than `-` and `_` dropped; repeats get `-1`, `-2`...
fn heading_ids(text: &str) -> Vec<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut ids = Vec::new();
    for (_, line) in split(text).0 {
        let Some(title) = line.strip_prefix('#').map(|l| l.trim_start_matches('#')) else {
            continue;
        };
        let Some(title) = title.strip_prefix(' ').map(str::trim) else {
            continue;
        };
        // The text as rendered: `[text](url)` shows only "text".
        let mut plain = String::new();
        for (i, part) in title.split("](").enumerate() {
            plain += if i == 0 {
                part
            } else {
                part.split_once(')').map_or(part, |p| p.1)
            };
        }
        let id = match plain.strip_suffix('}').and_then(|t| t.rsplit_once("{#")) {
            Some((_, attrs)) => attrs
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string(),
            None => plain
                .chars()
                .filter(|&c| c.is_alphanumeric() || c == '_' || c == '-' || c.is_whitespace())
                .flat_map(|c| {
                    if c.is_whitespace() {
                        '-'.to_lowercase()
                    } else {
                        c.to_lowercase()
                    }
                })
                .collect(),
        };
        let n = seen.entry(id.clone()).or_default();
        ids.push(if *n == 0 { id } else { format!("{id}-{n}") });
        *n += 1;
    }
    ids
}

/// Fenced blocks hold only include lines and up to 3 `$`/`sudo` command
/// lines; ```text diagrams are allowed in introduction.md and architecture
/// pages. Elsewhere a diagram is a file of its own, kept in book/src/diagrams/
/// and included in a ```text block.
///
/// A block that includes Rust source names its file: the line above it is
/// `<p class="caption">PATH</p>`, PATH relative to the repository. A
/// transcript is fenced ```text,transcript, not ```console (see
/// book/theme/stepbox.css), and a diagram's block is ```text.
fn code_block_problems(root: &Path, page: &Path, text: &str) -> Vec<(usize, String)> {
    let name = page.file_name().unwrap().to_string_lossy();
    let diagrams = name == "introduction.md" || name.starts_with("architecture");
    let mut problems = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    for block in split(text).1 {
        let source = block.body.iter().find_map(|l| {
            includes(l)
                .into_iter()
                .map(|(_, arg)| arg.split(':').next().unwrap_or_default())
                .find(|path| path.ends_with(".rs"))
        });
        if let Some(path) = source {
            let file = shown(root, &page.parent().unwrap().join(path));
            let caption = format!("<p class=\"caption\">{file}</p>");
            let above = lines[..block.line - 1]
                .iter()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(|l| l.trim());
            if above != Some(caption.as_str()) {
                problems.push((
                    block.line,
                    format!("an excerpt of {file} without its caption: put `{caption}` above it"),
                ));
            }
        }
        let lines = block
            .body
            .iter()
            .map(|l| l.trim())
            .filter(|l| !l.is_empty());
        let is_command = |l: &str| l.starts_with('$') || l.starts_with("sudo ");
        let commands = lines.clone().filter(|l| is_command(l)).count();
        let other = lines
            .filter(|l| !is_command(l) && includes(l).is_empty())
            .count();
        let diagram = block.body.iter().any(|l| {
            includes(l)
                .iter()
                .any(|(_, arg)| arg.starts_with("diagrams/"))
        });
        let snapshot = block.body.iter().any(|l| {
            includes(l)
                .iter()
                .any(|(_, arg)| arg.split(':').next().unwrap_or_default().ends_with(".snap"))
        });
        if snapshot && block.info == "console" {
            problems.push((
                block.line,
                "a transcript fenced ```console, where highlight.js takes a line such as \
                 `# namespaces` for a root prompt: fence it ```text,transcript"
                    .into(),
            ));
            continue;
        }
        if diagram && block.info != "text" {
            problems.push((
                block.line,
                format!(
                    "a diagram in a ```{} block: include it in a ```text one",
                    block.info
                ),
            ));
            continue;
        }
        if (block.info == "text" && diagrams) || (other == 0 && commands <= 3) {
            continue;
        }
        problems.push((block.line, format!(
            "```{} block with {other} line(s) that are not includes and {commands} command line(s): \
             a code block may hold only {{{{#include}}}} lines and up to 3 `$`/`sudo` lines \
             (include code from the source, transcripts from tests/snapshots; \
             ```text diagrams only in introduction.md and architecture pages, \
             elsewhere included from a file in book/src/diagrams/)",
            block.info
        )));
    }
    problems
}

/// Text diagrams, book/src/diagrams/*.txt, fit the code blocks' 100
/// columns (see book/theme/stepbox.css) with no tab, whose width would
/// depend on the reader's browser.
fn diagram_problems(src: &Path) -> Vec<(PathBuf, usize, String)> {
    let mut problems = Vec::new();
    let Ok(dir) = fs::read_dir(src.join("diagrams")) else {
        return problems;
    };
    for entry in dir {
        let path = entry.unwrap().path();
        let text = fs::read_to_string(&path).unwrap_or_default();
        for (n, line) in text.lines().enumerate() {
            let width = line.chars().count();
            if width > 100 || line.contains('\t') {
                problems.push((
                    path.clone(),
                    n + 1,
                    format!(
                        "a diagram line of {width} columns or with a tab (at most 100, spaces)"
                    ),
                ));
            }
        }
    }
    problems
}

/// The pinned mdBook, installed by scripts/install-mdbook.sh if needed
/// (once for both tests: they run at once). None if it cannot be had,
/// a failure (NOT RUN).
fn mdbook(root: &Path) -> Result<Option<PathBuf>, String> {
    static INSTALLED: std::sync::Mutex<Option<bool>> = std::sync::Mutex::new(None);
    let mdbook = root.join("target/tools/bin/mdbook");
    let mut installed = INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
    let ok = *installed.get_or_insert_with(|| {
        let version = Command::new(&mdbook)
            .arg("--version")
            .output()
            .ok()
            .map(|o| o.stdout);
        version.as_deref() == Some(format!("{MDBOOK}\n").as_bytes())
            || Command::new(root.join("scripts/install-mdbook.sh"))
                .status()
                .is_ok_and(|s| s.success())
    });
    match ok {
        true => Ok(Some(mdbook)),
        false => skip(&format!(
            "{MDBOOK} is missing and scripts/install-mdbook.sh failed"
        ))
        .map(|()| None),
    }
}

/// A check that cannot run fails with the reason ("NOT RUN"), never "ok".
fn skip(reason: &str) -> Result<(), String> {
    Err(format!("NOT RUN: {reason}"))
}

/// Builds the book with the pinned mdBook (installing it if needed); any
/// warning or error it prints fails the test.
fn build_with_mdbook(root: &Path) -> Result<(), String> {
    let Some(mdbook) = mdbook(root)? else {
        return Ok(());
    };
    let out_dir = std::env::temp_dir().join(format!("stepbox-book-{}", std::process::id()));
    let out = build(&mdbook, root, &out_dir, &[])?;
    let _ = fs::remove_dir_all(&out_dir);
    mdbook_log(&out)
}

/// `mdbook build book --dest-dir OUT_DIR`, with `env` added.
fn build(
    mdbook: &Path,
    root: &Path,
    out_dir: &Path,
    env: &[(&str, &str)],
) -> Result<std::process::Output, String> {
    Command::new(mdbook)
        .args(["build", "book", "--dest-dir"])
        .arg(out_dir)
        .current_dir(root)
        .env("NO_COLOR", "1")
        .envs(env.iter().copied())
        .output()
        .map_err(|e| format!("running {}: {e}", mdbook.display()))
}

/// Whether a build went through without a warning or an error.
fn mdbook_log(out: &std::process::Output) -> Result<(), String> {
    let log = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    // "WARN Caused By:" lines only repeat the ERROR line before them.
    let bad: Vec<&str> = log
        .lines()
        .filter(|l| (l.contains("WARN") || l.contains("ERROR")) && !l.contains("Caused By"))
        .collect();
    match (out.status.success(), bad.is_empty()) {
        (true, true) => Ok(()),
        (_, false) => Err(format!(
            "mdbook build book ({}):\n  {}",
            out.status,
            bad.join("\n  ")
        )),
        (false, true) => Err(format!("mdbook build book ({}):\n{log}", out.status)),
    }
}

/// The window the book must fit, a laptop's or a classroom projector's
/// (the sidebar open, as mdBook opens it at this width).
const WINDOW: (u32, u32) = (1280, 900);

/// Every page of the book, built once more with tests/data/book-width-check.js
/// added to it, is opened in headless Chromium at [`WINDOW`]'s size; no code
/// block may scroll sideways (nor the page), and no table may be wider than
/// its box. All pages load at once, each in a frame of a harness page that
/// collects what each one measured, so that one browser does the whole book.
#[test]
fn book_fits_a_1280px_window() {
    if let Err(msg) = check_width() {
        panic!("{msg}");
    }
}

fn check_width() -> Result<(), String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let Some(chromium) = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|c| Command::new(c).arg("--version").output().is_ok())
    else {
        return skip("no Chromium to render the book in (scripts/install-deps.sh installs it)");
    };
    let Some(mdbook) = mdbook(root)? else {
        return Ok(());
    };
    // mdBook's additional-js set from the environment replaces book.toml's.
    let config = fs::read_to_string(root.join("book/book.toml")).unwrap();
    assert!(
        !config.contains("additional-js"),
        "book.toml has additional-js: add it to MDBOOK_OUTPUT__HTML__ADDITIONAL_JS here"
    );
    // In target/: the script's path is given relative to book/ (see
    // measure_in_chromium).
    let name = format!("book-width-{}", std::process::id());
    let dir = root.join("target").join(&name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let result = measure_in_chromium(chromium, &mdbook, root, &name);
    let _ = fs::remove_dir_all(&dir);
    let reports = result?;
    let mut problems = Vec::new();
    for report in &reports {
        problems.extend(width_problems(report));
    }
    match problems.is_empty() {
        true => Ok(()),
        false => Err(format!(
            "{} place(s) in the book do not fit a {}x{} window:\n{}\n",
            problems.len(),
            WINDOW.0,
            WINDOW.1,
            problems.join("\n")
        )),
    }
}

/// The pages' reports, in SUMMARY.md's order, from a build in
/// target/NAME/book.
fn measure_in_chromium(
    chromium: &str,
    mdbook: &Path,
    root: &Path,
    name: &str,
) -> Result<Vec<serde_json::Value>, String> {
    // mdBook reads an additional-js file at book/PATH, writes it (hashed)
    // at DEST/PATH, and pages load it from their path to the root + PATH:
    // with PATH relative and leading out of book/ into the scratch dir, the
    // source stays untouched and a page in a subdirectory finds it too (an
    // absolute PATH would be prefixed with `../` there).
    let dir = root.join("target").join(name);
    let rel = format!("../target/{name}/width-check.js");
    fs::copy(
        root.join("tests/data/book-width-check.js"),
        dir.join("width-check.js"),
    )
    .unwrap();
    let book = dir.join("book");
    let additional = serde_json::json!([rel]).to_string();
    let out = build(
        mdbook,
        root,
        &book,
        &[("MDBOOK_OUTPUT__HTML__ADDITIONAL_JS", &additional)],
    )?;
    mdbook_log(&out)?;
    let summary = fs::read_to_string(root.join("book/src/SUMMARY.md")).unwrap();
    let pages: Vec<String> = links(&summary)
        .into_iter()
        .map(|(_, page)| page.replace(".md", ".html"))
        .collect();
    let harness = dir.join("harness.html");
    fs::write(&harness, harness_page(&pages)).unwrap();
    let dom = run_chromium(chromium, &dir, &harness)?;
    let report = dom
        .split_once("<pre id=\"report\">")
        .and_then(|(_, rest)| rest.split_once("</pre>"))
        .map(|(report, _)| unescape(report))
        .ok_or_else(|| format!("no report in the harness page:\n{dom}"))?;
    let reports: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&report)
        .map_err(|e| format!("the harness page's report: {e}: {report}"))?;
    pages
        .iter()
        .map(|page| {
            reports.get(page).cloned().ok_or_else(|| {
                format!(
                    "{page} sent no report to the harness page (did it load? \
                     got one from: {:?})",
                    reports.keys().collect::<Vec<_>>()
                )
            })
        })
        .collect()
}

/// A page that opens every page in a frame of [`WINDOW`]'s size and lists
/// what each one posts to it (tests/data/book-width-check.js posts it).
fn harness_page(pages: &[String]) -> String {
    let (w, h) = WINDOW;
    let pages = serde_json::to_string(pages).unwrap();
    format!(
        r#"<!doctype html>
<html><head><meta charset="utf-8"><title>width check</title></head>
<body><pre id="report">{{}}</pre>
<script>
const pages = {pages};
const reports = {{}};
window.addEventListener("message", function (e) {{
  reports[e.data.page] = e.data;
  document.getElementById("report").textContent = JSON.stringify(reports);
}});
for (const page of pages) {{
  const frame = document.createElement("iframe");
  frame.width = {w};
  frame.height = {h};
  frame.name = page;
  frame.src = "book/" + page;
  document.body.appendChild(frame);
}}
</script></body></html>
"#
    )
}

/// Chromium's DOM of `page` once it has settled, within a minute.
fn run_chromium(chromium: &str, dir: &Path, page: &Path) -> Result<String, String> {
    let (w, h) = WINDOW;
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            // As root, Chromium refuses to start with its sandbox.
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", dir.join("profile").display()))
        .arg(format!("--window-size={w},{h}"))
        // Virtual time: timers and loads are not waited for in real time.
        .arg("--virtual-time-budget=60000")
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting {chromium}: {e}"))?;
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || std::io::read_to_string(stdout));
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > std::time::Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{chromium} did not finish in 60 s"));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let dom = reader.join().unwrap().unwrap_or_default();
    let stderr = std::io::read_to_string(child.stderr.take().unwrap()).unwrap_or_default();
    match status.success() {
        true => Ok(dom),
        false => Err(format!("{chromium} --dump-dom: {status}\n{stderr}")),
    }
}

/// Text as Chromium serialises it inside an element.
fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&")
}

/// One message per place of a page's report that scrolls sideways, with
/// the lines that do not fit.
fn width_problems(report: &serde_json::Value) -> Vec<String> {
    let page = report["page"].as_str().unwrap_or("?");
    if let Some(error) = report["error"].as_str() {
        return vec![format!("{page}: the check failed in the page: {error}")];
    }
    let mut found = Vec::new();
    // mdBook's code font: measured in a fallback one, lines would be
    // counted otherwise than a reader sees them.
    let fonts = report["fonts"].as_array().cloned().unwrap_or_default();
    if report["blocks"].as_u64() > Some(0) && !fonts.iter().any(|f| f == "Source Code Pro") {
        found.push(format!(
            "{page}: the code font did not load (loaded: {fonts:?})"
        ));
    }
    for p in report["problems"].as_array().into_iter().flatten() {
        let mut msg = format!(
            "{page}: {} {} (under \"{}\"): {}",
            p["kind"].as_str().unwrap_or("?"),
            p["block"],
            p["heading"].as_str().unwrap_or(""),
            p["detail"].as_str().unwrap_or(""),
        );
        let lines = p["lines"].as_array().cloned().unwrap_or_default();
        for line in lines.iter().take(5) {
            let text: String = line["text"]
                .as_str()
                .unwrap_or("")
                .chars()
                .take(110)
                .collect();
            msg += &format!(
                "\n    line {} ({} characters): {text}",
                line["line"], line["chars"]
            );
        }
        if lines.len() > 5 {
            msg += &format!("\n    and {} more line(s)", lines.len() - 5);
        }
        found.push(msg);
    }
    found
}
