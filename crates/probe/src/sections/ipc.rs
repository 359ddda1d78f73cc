//! System V IPC: message queues, shared memory and semaphore sets.
//!
//! These objects are found by a numeric key that any process may guess, so
//! the IPC namespace gives each container its own set of keys. The
//! /proc/sysvipc files always list the objects of the *reader's* IPC
//! namespace (not the namespace of whoever mounted /proc), so a fresh
//! namespace reads as empty even with the host's /proc.

use std::fs;

use crate::report::path_reason;
use crate::Report;

/// (label, file) for each kind of object, in output order.
const KINDS: &[(&str, &str)] = &[
    ("message queues", "/proc/sysvipc/msg"),
    ("shared memory segments", "/proc/sysvipc/shm"),
    ("semaphore sets", "/proc/sysvipc/sem"),
];

pub fn run(r: &mut Report) {
    r.header("ipc");
    for &(label, path) in KINDS {
        match fs::read_to_string(path) {
            Ok(text) => {
                let entries = parse(&text);
                r.kv(label, entries.len());
                // Listed even for the host's namespace: seeing the host's queue is the demo.
                r.items(entries);
            }
            Err(e) => r.unavailable(label, path_reason(path, &e)),
        }
    }
}

/// One object per line after the header, as `key 0x0000abcd id 3`, sorted
/// by id. The kernel prints keys as signed decimals (`-1` is possible for
/// some keys), so they are reinterpreted as the unsigned 32-bit values that
/// `ipcs` shows in hex.
pub fn parse(text: &str) -> Vec<String> {
    let mut rows: Vec<(i64, String)> = text
        .lines()
        .skip(1)
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let mut fields = line.split_whitespace();
            let key = fields.next().and_then(|k| k.parse::<i32>().ok());
            let id = fields.next().and_then(|i| i.parse::<i64>().ok());
            match (key, id) {
                (Some(key), Some(id)) => (id, format!("key 0x{:08x} id {id}", key as u32)),
                _ => (i64::MAX, format!("(unparsable: {})", line.trim())),
            }
        })
        .collect();
    rows.sort();
    rows.into_iter().map(|(_, row)| row).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sysvipc() {
        let text = "       key      msqid perms\n      4660          3   644\n        -1          1   600\n";
        assert_eq!(parse(text), ["key 0xffffffff id 1", "key 0x00001234 id 3"]);
        assert!(parse("       key      shmid perms\n").is_empty());
    }
}
