//! Runs last (cargo runs test binaries in name order): after the whole suite,
//! the host must hold nothing the containers made: no cgroup, veth, mount,
//! state directory or process.

mod common;

use std::path::Path;

#[test]
fn the_suite_left_nothing_behind() {
    if !common::root() {
        return;
    }
    let mut left = Vec::new();
    left.extend(
        common::find_cgroups("stepbox-")
            .into_iter()
            .map(|c| format!("cgroup {c}")),
    );
    for link in std::fs::read_dir("/sys/class/net").unwrap().flatten() {
        let name = link.file_name().to_string_lossy().into_owned();
        if name.starts_with("sb") {
            left.push(format!("network link {name}"));
        }
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    for mount in mounts.lines().filter_map(|l| l.split(' ').nth(4)) {
        if mount.starts_with(common::SCRATCH)
            || mount.contains("/stepbox") && !mount.starts_with("/proc")
        {
            left.push(format!("mount {mount}"));
        }
    }
    if let Ok(entries) = std::fs::read_dir(common::SCRATCH) {
        left.extend(
            entries
                .flatten()
                .map(|e| format!("scratch dir {}", e.path().display())),
        );
    }
    if Path::new(ch08_overlay::testdata::ESCAPE_TARGET).exists() {
        left.push(format!("file {}", ch08_overlay::testdata::ESCAPE_TARGET));
    }
    for proc in std::fs::read_dir("/proc").unwrap().flatten() {
        let comm = std::fs::read_to_string(proc.path().join("comm")).unwrap_or_default();
        if comm.starts_with("ch0") {
            left.push(format!(
                "process {} {}",
                proc.file_name().to_string_lossy(),
                comm.trim()
            ));
        }
    }
    assert!(
        left.is_empty(),
        "left behind by the test suite:\n{}",
        left.join("\n")
    );
}
