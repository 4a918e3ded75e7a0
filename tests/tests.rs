//! missive's integration tests, as one test binary: each module below was once a binary of its
//! own, which compiled `support` again and linked against the whole library again. One binary
//! links once (ripgrep's `tests/tests.rs`), and every helper in `support` is used by some module,
//! so none needs `allow(dead_code)`. Cargo.toml sets `autotests = false` so that the module files
//! beside this one are not also built as binaries of their own.
//!
//! Run one file's tests with a filter on its module: `cargo test --test tests send::`.

mod support;

mod attachments;
mod bounces;
mod check;
mod dead_mailboxes;
mod deliverability;
mod dkim;
mod dry_run;
mod e2e_maildev;
mod faults;
mod golden;
mod kill;
mod languages;
mod list_error;
mod listening;
mod modules;
mod netns;
mod outdir;
mod pace;
mod pg;
mod pg_audit;
mod pg_cross;
mod pg_lease;
mod pg_move;
mod pg_multi;
mod pg_pace;
mod pg_send;
mod relays;
mod screenshots;
mod secrets;
mod seed_fidelity;
mod send;
mod send_before;
mod sendlog;
mod serve;
mod serve_browser;
mod serve_lists;
mod serve_load;
mod shutdown;
mod sink;
mod test_send;
mod tls;
mod verp;
mod window;
