// Loaded into every page of a scratch build of the book by tests/book.rs
// (mdBook's output.html.additional-js), never into the real book: once the
// page and its fonts are loaded, measures what a reader would have to
// scroll sideways for, and hands the findings to the test's harness page
// (the page's parent frame), or, opened alone, writes them into the page.
//
// A code block scrolls when its <code> (mdBook gives it overflow-x: auto)
// or its <pre> is wider inside than its box: scrollWidth > clientWidth. For
// each such block the lines that do not fit are found by measuring them in
// the block's own font, so that a failure names the line to shorten. A
// transcript does not scroll (its output wraps, book/theme/stepbox.css),
// but a command line of it that would wrap counts as one that scrolls.
(function () {
  "use strict";

  function text(s, max) {
    s = s.replace(/\s+/g, " ").trim();
    return s.length > max ? s.slice(0, max - 1) + "…" : s;
  }

  // The heading a block comes under, to find it in the page's source.
  function headingBefore(el) {
    const all = Array.from(document.querySelectorAll("main h1, main h2, main h3, main h4"));
    let last = null;
    for (const h of all) {
      if (h.compareDocumentPosition(el) & Node.DOCUMENT_POSITION_FOLLOWING) last = h;
    }
    return last ? text(last.textContent, 60) : "(top of the page)";
  }

  // The indexes of the lines that belong to a `$ ` command: the line
  // itself, and the next ones while the command goes on (a line ending in
  // a backslash, or inside quotes).
  function commandLines(lines) {
    const found = new Set();
    let open = false;
    let quote = null;
    lines.forEach(function (line, n) {
      if (!open && !line.startsWith("$ ")) return;
      open = true;
      found.add(n);
      let escaped = false;
      for (const c of line) {
        if (escaped) {
          escaped = false;
        } else if (quote === "'") {
          if (c === "'") quote = null;
        } else if (c === "\\") {
          escaped = true;
        } else if (quote === '"') {
          if (c === '"') quote = null;
        } else if (c === "'" || c === '"') {
          quote = c;
        }
      }
      open = escaped || quote !== null;
    });
    return found;
  }

  // The harness names each frame after its page's path in the book
  // (`instructors/ch01.html`); a page opened alone goes by its file name.
  function pageName() {
    return window.name || location.pathname.split("/").pop();
  }

  function px(style, name) {
    return parseFloat(style.getPropertyValue(name)) || 0;
  }

  function measure() {
    const ctx = document.createElement("canvas").getContext("2d");
    const problems = [];
    let fit = null;
    const main = document.querySelector("main");
    const blocks = Array.from(main.querySelectorAll("pre"));
    blocks.forEach(function (pre, i) {
      const code = pre.querySelector("code") || pre;
      const style = getComputedStyle(code);
      ctx.font = style.font;
      const room = code.clientWidth - px(style, "padding-left") - px(style, "padding-right");
      const charWidth = ctx.measureText("0".repeat(100)).width / 100;
      const chars = Math.floor(room / charWidth);
      fit = fit === null ? chars : Math.min(fit, chars);
      const lines = code.textContent.replace(/\n$/, "").split("\n");
      const wide = lines
        .map(function (line, n) {
          const width = ctx.measureText(line.replace(/\t/g, "    ")).width;
          return { line: n + 1, chars: line.length, text: line, wide: width > room };
        })
        .filter(function (l) { return l.wide; });
      const scrolls = [pre, code].some(function (el) {
        return el.scrollWidth > el.clientWidth;
      });
      if (scrolls) {
        problems.push({
          kind: "code block",
          block: i + 1,
          heading: headingBefore(pre),
          detail: "scrolls sideways: " + code.scrollWidth + " px of text in " +
            code.clientWidth + " px; " + chars + " characters fit on a line",
          lines: wide,
        });
        return;
      }
      // A transcript's output may wrap (book/theme/stepbox.css), as in a
      // terminal; its command lines must not: a reader copies them.
      const commands = commandLines(lines);
      const wrapped = wide.filter(function (l) { return commands.has(l.line - 1); });
      if (wrapped.length > 0) {
        problems.push({
          kind: "code block",
          block: i + 1,
          heading: headingBefore(pre),
          detail: "a command line wraps: " + chars + " characters fit on a line",
          lines: wrapped,
        });
      }
    });
    const mainBox = main.getBoundingClientRect();
    Array.from(main.querySelectorAll("table")).forEach(function (table, i) {
      const box = table.parentElement;
      const clipped = box.scrollWidth > box.clientWidth;
      const beyond = table.getBoundingClientRect().right > mainBox.right + 0.5;
      if (!clipped && !beyond) return;
      const head = Array.from(table.querySelectorAll("th")).map(function (th) {
        return th.textContent.trim();
      });
      problems.push({
        kind: "table",
        block: i + 1,
        heading: headingBefore(table),
        detail: (clipped ? "scrolls sideways in its box: " : "sticks out of the page: ") +
          Math.round(table.getBoundingClientRect().width) + " px wide in " +
          box.clientWidth + " px; columns: " + text(head.join(" | "), 120),
        lines: [],
      });
    });
    const root = document.documentElement;
    if (root.scrollWidth > root.clientWidth) {
      problems.push({
        kind: "page",
        block: 0,
        heading: "",
        detail: "the whole page scrolls sideways: " + root.scrollWidth + " px in " +
          root.clientWidth + " px",
        lines: [],
      });
    }
    // The code font, as loaded: a fallback font would measure otherwise.
    const loaded = Array.from(document.fonts)
      .filter(function (f) { return f.status === "loaded"; })
      .map(function (f) { return f.family.replace(/"/g, ""); });
    return {
      page: pageName(),
      window: window.innerWidth,
      blocks: blocks.length,
      fit: fit,
      fonts: Array.from(new Set(loaded)),
      problems: problems,
    };
  }

  function report() {
    let result;
    try {
      result = measure();
    } catch (e) {
      result = { page: pageName(), error: String(e) };
    }
    if (window.parent !== window) {
      window.parent.postMessage(result, "*");
    } else {
      const pre = document.createElement("pre");
      pre.id = "stepbox-width-report";
      pre.textContent = JSON.stringify(result, null, 1);
      document.body.prepend(pre);
    }
  }

  // Not requestAnimationFrame: Chromium holds it back in frames out of
  // sight, and the harness page's frames are mostly below its window.
  window.addEventListener("load", function () {
    document.fonts.ready.then(function () {
      setTimeout(report, 0);
    });
  });
})();
