//! How a transcript's command lines are shown in the book
//! (`common::for_the_book`): folded between arguments, a long `sh -c`
//! script broken after its operators, the default image's layers as
//! `$LAYERS`, and output left as it was printed.

mod common;

use common::{for_the_book, COMMAND_WIDTH};

fn widest(text: &str) -> usize {
    text.lines().map(|l| l.chars().count()).max().unwrap_or(0)
}

#[test]
fn short_lines_and_output_are_left_alone() {
    let text = "$ ch01-process -- /bin/probe env\nA=1\n".to_owned()
        + &"output ".repeat(30)
        + "\n[exit status 1]\n";
    assert_eq!(for_the_book(&text), text);
}

#[test]
fn a_long_command_breaks_between_arguments_an_option_kept_with_its_value() {
    let shown = for_the_book(
        "$ ch07-cgroups --rootfs ROOTFS -v --cgroup-parent /sbtest-ID/nested --memory 64m --pids-limit 20 -- true\nok\n",
    );
    assert_eq!(
        shown,
        "$ ch07-cgroups --rootfs ROOTFS -v --cgroup-parent /sbtest-ID/nested \\\n    \
         --memory 64m --pids-limit 20 -- true\nok\n"
    );
}

#[test]
fn the_default_layers_are_shown_as_one_word() {
    let shown = for_the_book(
        "$ ch09-privileges --state-dir STATE --layer IMAGE/1-busybox.tar --layer IMAGE/2-probe.tar --layer IMAGE/3-cleanup.tar -- sh -c '/bin/probe caps'\n",
    );
    assert_eq!(
        shown,
        "$ ch09-privileges --state-dir STATE $LAYERS -- sh -c '/bin/probe caps'\n"
    );
    // Not when only some of them are given.
    let one = "$ ch08-overlay --state-dir STATE --layer IMAGE/1-busybox.tar -- true\n";
    assert_eq!(for_the_book(one), one);
}

#[test]
fn a_long_script_breaks_after_its_operators_never_inside_its_quotes() {
    let script = "timeout 2 sh -c \"while :; do :; done\"; cat /sys/fs/cgroup/cpu.stat \
                  /sys/fs/cgroup/cpu/cpu.stat 2>/dev/null | grep -E \"^nr_(periods|throttled)\"";
    let shown = for_the_book(&format!(
        "$ ch07-cgroups --rootfs ROOTFS --cpus 0.2 -- sh -c '{script}'\n"
    ));
    assert_eq!(
        shown,
        "$ ch07-cgroups --rootfs ROOTFS --cpus 0.2 -- sh -c \\\n    \
         'timeout 2 sh -c \"while :; do :; done\";\n    \
         cat /sys/fs/cgroup/cpu.stat /sys/fs/cgroup/cpu/cpu.stat 2>/dev/null |\n    \
         grep -E \"^nr_(periods|throttled)\"'\n"
    );
    assert!(widest(&shown) <= COMMAND_WIDTH, "{shown}");
    // Read as sh reads it, the script is the same: the newlines stand where
    // spaces were, and the indentation only adds blanks before a command.
    let lines: Vec<&str> = shown.lines().collect();
    let rejoined = lines.join(" ").replace("     ", " ");
    assert!(rejoined.contains(script), "{rejoined}");
}

#[test]
fn words_after_a_script_continue_with_a_backslash() {
    let shown = fold(&format!(
        "$ ch08-overlay --state-dir STATE {} --keep -- sh -c 'echo written > /root/note; rm /etc/motd; ls /root /etc/motd'",
        "$LAYERS"
    ));
    assert_eq!(
        shown,
        "$ ch08-overlay --state-dir STATE $LAYERS --keep -- sh -c \\\n    \
         'echo written > /root/note; rm /etc/motd; ls /root /etc/motd'"
    );
}

fn fold(line: &str) -> String {
    common::fold_command(line.strip_prefix("$ ").unwrap(), COMMAND_WIDTH)
}

#[test]
fn a_find_argument_is_not_an_operator() {
    let shown = fold(
        "$ ch05-mnt --rootfs ROOTFS -- sh -c 'find / -xdev -name \"*.so\" -exec ls -l {} \\; -print 2>/dev/null; echo done and done'",
    );
    assert!(!shown.contains("\\;\n"), "{shown}");
    assert!(widest(&shown) <= COMMAND_WIDTH, "{shown}");
}

#[test]
fn a_script_without_operators_breaks_between_words_for_its_sh() {
    let shown = fold(
        "$ ch08-overlay --state-dir STATE $LAYERS -- sh -c '/bin/probe attempt reboot adjtimex settimeofday unshare ptrace mknod raw-socket'",
    );
    assert_eq!(
        shown,
        "$ ch08-overlay --state-dir STATE $LAYERS -- sh -c \\\n    \
         '/bin/probe attempt reboot adjtimex settimeofday unshare ptrace mknod \\\n    \
         raw-socket'"
    );
}

/// The folded line, given to sh with `printf` for the program, passes the
/// same arguments as the line did, but for the blanks inside a script.
#[test]
fn a_folded_line_passes_the_same_arguments() {
    let lines = [
        "$ ch07-cgroups --rootfs ROOTFS -v --cgroup-parent /sbtest-ID/nested --memory 64m --pids-limit 20 -- true",
        "$ ch05-mnt --init --rootfs ROOTFS -- sh -c 'mkfifo /dev/shm/out; (exec >/dev/shm/out; o=$(sleep 0.1 & echo $!); for i in $(seq 100); do [ -e /proc/$o ] || break; sleep 0.01; done; ps -o stat,comm) & exec cat /dev/shm/out'",
        "$ ch08-overlay --state-dir STATE --layer A -- sh -c \"/bin/probe fs | grep -e root: -e ' / '; grep -o 'lowerdir=[^,]*,upperdir=[^,]*,workdir=[^,]*' /proc/mounts\"",
        "$ ch10-seccomp --state-dir STATE --layer A -- sh -c '/bin/probe attempt keyctl bpf userfaultfd perf_event_open personality unshare-user clone-newuser'",
        "$ ch06-uts --rootfs ROOTFS --hostname xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx -- true",
    ];
    let args = |line: &str| {
        let (_, args) = line.split_once(' ').unwrap().1.split_once(' ').unwrap();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("printf '%s\\0' {args}"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{line}");
        let blanks = regex::Regex::new(r"\s+").unwrap();
        let out = String::from_utf8(out.stdout).unwrap();
        let words: Vec<String> = out
            .split('\0')
            .map(|w| {
                blanks
                    .replace_all(&w.replace("\\\n", " "), " ")
                    .into_owned()
            })
            .collect();
        words
    };
    for line in lines {
        let shown = fold(line);
        assert!(shown.lines().count() > 1, "{shown}");
        assert!(widest(&shown) <= COMMAND_WIDTH, "{shown}");
        assert_eq!(args(&shown), args(line), "{shown}");
    }
}

#[test]
fn a_comment_stays_whole_at_the_end_of_the_command() {
    let line = "$ ch11-userns --uidmap 0:100000:65536 -- sh -c 'kill -9 PID'   # PID: a process of the host's root\n";
    assert_eq!(
        for_the_book(line),
        "$ ch11-userns --uidmap 0:100000:65536 -- sh -c \\\n    \
         'kill -9 PID'   # PID: a process of the host's root\n"
    );
    let short = "$ grep Uid: /proc/CONTAINER/status   # on the host\n";
    assert_eq!(for_the_book(short), short);
    // A # inside a word or quotes is no comment.
    let hash = "$ ch01-process -- sh -c 'echo a # b' x#y\n";
    assert_eq!(for_the_book(hash), hash);
}
