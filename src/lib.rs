//! missive mails a letter to a list of people: each gets their own copy, personalized, as HTML
//! and text, sent at a pace the server can bear, and never twice.
//!
//! Data flows one way. Loading: [`campaign`] (the settings file), [`letter`] (the sections a writer
//! edits) and [`recipients`] (the CSV, streamed). Rendering: [`render`] (HTML with Maud, and text),
//! [`language`] (which of a campaign's letters, one per language, a person gets) and [`message`]
//! (MIME and headers). Sending: [`send`] (the engine), [`ratelimit`] (its pace and quotas),
//! [`retry`] (when to try a deferred message again), [`smtp`] (the client and what replies mean),
//! [`refusal`] (what a server's refusal says of the address: a dead mailbox or not) and
//! [`sendlog`] (the durable record that makes a second run resume instead of repeat).
//! Deliverability: [`unsubscribe`] (the one-click link and its token, which [`serve`] answers over
//! HTTP), [`suppression`] (people never to mail), [`verp`] (the per-person envelope sender that
//! makes a bounce name whom it is about), [`bounce`] (what a bounce or a complaint that came back
//! says, and about whom), [`dkim`] (signing) and [`lint`] (what `check` finds wrong with a letter
//! before mailbox providers or readers do). [`capture`] is the local SMTP server a dry run falls
//! back on, and [`outdir`] how files go into folders missive does not own. [`app`] is the edge: it
//! turns the [`app::Options`] the binary makes of a command line (clap lives in the binary, with
//! the signals and the exit) into calls to the modules above. [`error`] is what each error of the
//! core asks of the person running missive (mend the campaign, or run again later): the edge's exit
//! code. Beneath them all, [`address`] says when two addresses are the same person, [`keymap`]
//! keeps a small value per person, and [`csvline`] numbers a CSV's lines as an editor does.
//!
//! The modules the binary, the integration tests and the benches use are public; the others are
//! the library's own.

pub mod address;
pub mod app;
mod bounce;
pub mod campaign;
mod capture;
mod csvline;
mod dkim;
pub mod error;
mod keymap;
pub mod language;
pub mod letter;
mod lint;
pub mod logging;
pub mod message;
mod outdir;
pub mod ratelimit;
pub mod recipients;
mod refusal;
pub mod render;
mod retry;
pub mod send;
pub mod sendlog;
mod serve;
pub mod smtp;
pub mod suppression;
mod typography;
pub mod unsubscribe;
pub mod verp;
pub mod window;
