//! What a process sees from inside a container, as a stable text report.
//!
//! The `probe` binary prints one section per kernel feature the book
//! covers. Every section is a module with a `run(&mut Report)` function;
//! the output is line-oriented (`# section`, then `key: value` lines and
//! indented item lines) and sorted, so that snapshot tests and the book can
//! show it verbatim. Nothing in here may panic: whatever cannot be read is
//! reported as `key: unavailable (<reason>)`.

pub mod attempt;
pub mod report;
pub mod sections;
pub mod sys;

pub use report::Report;
