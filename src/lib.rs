//! missive mails a letter to a list of people: each gets their own copy, personalized, as HTML
//! and text, sent at a pace the server can bear, and never twice.
//!
//! Data flows one way. Loading: [`campaign`] (the settings file), [`letter`] (the sections a
//! writer edits) and [`recipients`] (the CSV, streamed). Rendering: [`render`] (HTML with Maud,
//! and text) and [`message`] (MIME and headers). Sending: [`send`] (the engine), [`ratelimit`]
//! (its pace and quotas), [`retry`] (when to try a deferred message again), [`smtp`] (the
//! client and what replies mean) and [`sendlog`] (the durable record that makes a second run
//! resume instead of repeat). Deliverability: [`unsubscribe`] (the one-click link and its
//! token), [`suppression`] (people never to mail), [`dkim`] (signing) and [`lint`] (what
//! `check` finds wrong with a letter before mailbox providers or readers do). [`capture`] is the
//! local SMTP server a dry run falls back on. [`app`] and [`cli`] are the edge: they turn a
//! command line into calls to the modules above. [`error`] is what each error of the core asks
//! of the person running missive (mend the campaign, or run again later): the edge's exit code.

pub mod app;
pub mod campaign;
pub mod capture;
pub mod cli;
pub mod dkim;
pub mod error;
pub mod keymap;
pub mod letter;
pub mod lint;
pub mod logging;
pub mod message;
pub mod ratelimit;
pub mod recipients;
pub mod render;
pub mod retry;
pub mod send;
pub mod sendlog;
pub mod smtp;
pub mod suppression;
pub mod typography;
pub mod unsubscribe;
