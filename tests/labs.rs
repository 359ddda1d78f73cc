//! The labs' graders (xtask/src/lab.rs), checked both ways: every
//! chapter's solution passes every check, and its untouched starter
//! fails every check, at the starter's todo!(). The starters are built
//! once, together, in one generated workspace under target/lab/.

mod common;

use std::path::PathBuf;

use xtask::lab::{self, Outcome, Variant, Verdict};

/// Every chapter that has a lab.
fn labs() -> Vec<lab::Chapter> {
    let chapters = lab::chapters(&common::workspace()).unwrap();
    let labs: Vec<_> = chapters
        .into_iter()
        .filter(|c| !lab::properties(c.number).is_empty())
        .collect();
    assert!(labs.len() >= 12, "chapters 1 to 12 have a lab each");
    labs
}

fn failures(outcomes: &[Outcome]) -> Vec<String> {
    outcomes
        .iter()
        .filter_map(|o| match &o.verdict {
            Verdict::Pass => None,
            Verdict::Fail(why) => Some(format!("{}: {why}", o.property)),
        })
        .collect()
}

#[test]
fn every_solution_passes_its_checks() {
    if !root() {
        return;
    }
    let mut failed = Vec::new();
    for c in labs() {
        let outcomes = lab::grade(c.number, &common::bin_dir().join(c.package()));
        print!("{}", lab::table(&c.name, &outcomes));
        assert!(!outcomes.is_empty());
        for f in failures(&outcomes) {
            failed.push(format!("{}: {f}", c.name));
        }
    }
    assert!(
        failed.is_empty(),
        "solutions failing:\n{}",
        failed.join("\n")
    );
}

/// The starters of every lab, built as one workspace of `starter-chNN-*`
/// packages.
fn starters() -> Vec<Variant> {
    let dir = lab::lab_dir().join("test");
    let variants: Vec<Variant> = labs()
        .into_iter()
        .map(|c| {
            let src = dir.join("starters").join(&c.name);
            // Written afresh, so that a starter never lags its solution.
            let _ = std::fs::remove_dir_all(&src);
            lab::write_starter(&c, &src).unwrap();
            Variant {
                package: format!("starter-{}", c.package()),
                src: src.join("src"),
                chapter: c,
            }
        })
        .collect();
    lab::build(&dir.join("workspace"), &variants).expect("the starters compile");
    variants
}

#[test]
fn every_starter_fails_every_check_at_its_todo() {
    if !root() {
        return;
    }
    let mut passed = Vec::new();
    for v in starters() {
        let outcomes = lab::grade(v.chapter.number, &v.binary());
        // Seen with --nocapture: every lab's table as a student first sees it.
        print!("{}", lab::table(&v.chapter.name, &outcomes));
        for o in &outcomes {
            match &o.verdict {
                Verdict::Pass => passed.push(format!("{}: {}", v.chapter.name, o.property)),
                Verdict::Fail(why) => assert!(
                    why.starts_with("todo!() reached: "),
                    "{}: {}: fails, but not at a todo!(): {why}",
                    v.chapter.name,
                    o.property
                ),
            }
        }
    }
    assert!(
        passed.is_empty(),
        "starters passing a check:\n{}",
        passed.join("\n")
    );
}

/// `lab start`, `lab check` and `lab status` as a student types them, on
/// chapter 6: the starter's table, then the solution's.
#[test]
fn start_check_status() {
    if !root() {
        return;
    }
    let dir = PathBuf::from(common::SCRATCH).join(format!("labs-{}", common::unique_id()));
    let xtask = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO"))
            .args(["run", "--quiet", "-p", "xtask", "--", "lab"])
            .args(args)
            .arg("--dir")
            .arg(&dir)
            .current_dir(common::workspace())
            .output()
            .unwrap();
        let shown = String::from_utf8_lossy(&out.stdout).replace(&*dir.to_string_lossy(), "labs");
        (out.status.code().unwrap_or(-1), shown)
    };
    let (code, started) = xtask(&["start", "06"]);
    assert_eq!(code, 0, "{started}");
    let (code, again) = xtask(&["start", "06"]);
    assert_ne!(code, 0, "a second start overwrote the lab: {again}");
    let (code, before) = xtask(&["check", "06"]);
    assert_eq!(code, 1, "{before}");
    let (_, status_before) = xtask(&["status"]);
    // The student's answer: the solution's own lines.
    let solution = common::workspace().join("chapters/06-uts/src/lib.rs");
    std::fs::copy(solution, dir.join("06-uts/src/lib.rs")).unwrap();
    let (code, after) = xtask(&["check", "06"]);
    assert_eq!(code, 0, "{after}");
    let (_, status_after) = xtask(&["status"]);
    std::fs::remove_dir_all(&dir).unwrap();
    let transcript = format!(
        "$ cargo xtask lab start 06\n{started}\
         $ cargo xtask lab check 06\n{before}\
         $ cargo xtask lab status\n{status_before}\
         $ cargo xtask lab check 06\n{after}\
         $ cargo xtask lab status\n{status_after}"
    );
    crate::snapshot!("lab_session", transcript);
}

fn root() -> bool {
    common::root()
}
