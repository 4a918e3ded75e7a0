//! What a worker delivers through: something that opens connections ([`Delivery`]) and
//! carries transactions over them ([`Carrier`]), lettre's `AsyncTransport` idea cut to the steps
//! the worker's rules need (the attempt made durable between MAIL-RCPT-DATA and the message,
//! pipelining, RSET after a refusal).
//!
//! A run delivers through [`Route`], the SMTP relays. [`Sink`] takes every message at once,
//! with no network, like lettre's `StubTransport`: it is for benchmarks and tests that measure
//! or exercise the engine (the queue, the log's group commit, the pace) without a server, as
//! `examples/bench_render.rs` does. The engine is generic over the two, not boxed, so the
//! SMTP path pays nothing for the seam.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use lettre::address::Envelope;

use super::Stopped;
use super::route::Route;
use crate::smtp::{Connection, Relay, RelayName, Trouble};

/// Opens connections for the workers and keeps what is known of the servers' health.
pub trait Delivery: Send + Sync + 'static {
    /// One open connection, used for many messages in turn.
    type Connection: Carrier;
    /// The server a connection goes to.
    type Relay: Sync;

    /// A new connection, or why the run should stop; `keep_trying` is asked before each try.
    fn connect<'a>(
        &'a self,
        keep_trying: impl Fn() -> bool + Send + 'a,
    ) -> impl Future<Output = Result<(Self::Connection, &'a Self::Relay), Stopped>> + Send + 'a;

    /// Which relay `relay` is (the log names the fallback).
    fn name(relay: &Self::Relay) -> RelayName;

    /// True when a connection to `relay` should be closed so that the next one goes elsewhere.
    fn should_leave(&self, relay: &Self::Relay) -> bool;

    /// A connection broke in the middle of a message. True when the run should stop.
    fn broke(&self, relay: &Self::Relay, trouble: &Trouble) -> bool;

    /// A server answered a message (yes or no).
    fn answered(&self);

    /// How long to wait before reconnecting after a 421.
    fn pause(&self) -> Duration;

    /// The relay set aside this run for a certificate that cannot be trusted, and why.
    fn set_aside(&self) -> Option<(RelayName, String)> {
        None
    }
}

/// One open connection's side of a transaction: see [`Connection`] for what each step means.
pub trait Carrier: Send {
    /// Whether the next message's commands may go out behind this one's content.
    fn pipelines(&self) -> bool;

    /// MAIL, RCPT and DATA: `Ok` when the server waits for the message.
    fn start(
        &mut self,
        envelope: &Envelope,
        message: &[u8],
    ) -> impl Future<Output = Result<(), Trouble>> + Send;

    /// The message, and the server's reply to it; `then`, the next message to announce behind
    /// it when the server pipelines.
    fn finish_data(
        &mut self,
        message: &[u8],
        then: Option<(&Envelope, &[u8])>,
    ) -> impl Future<Output = Result<String, Trouble>> + Send;

    /// RSET after a refusal; false when the connection is no longer usable.
    fn reset(&mut self) -> impl Future<Output = bool> + Send;

    /// Says goodbye.
    fn quit(self) -> impl Future<Output = ()> + Send;
}

impl Delivery for Route {
    type Connection = Connection;
    type Relay = Relay;

    fn connect<'a>(
        &'a self,
        keep_trying: impl Fn() -> bool + Send + 'a,
    ) -> impl Future<Output = Result<(Connection, &'a Relay), Stopped>> + Send + 'a {
        Route::connect(self, keep_trying)
    }

    fn name(relay: &Relay) -> RelayName {
        relay.name
    }

    fn should_leave(&self, relay: &Relay) -> bool {
        Route::should_leave(self, relay)
    }

    fn broke(&self, relay: &Relay, trouble: &Trouble) -> bool {
        Route::broke(self, relay, trouble)
    }

    fn answered(&self) {
        Route::answered(self)
    }

    fn pause(&self) -> Duration {
        Route::pause(self)
    }

    fn set_aside(&self) -> Option<(RelayName, String)> {
        Route::set_aside_relay(self)
    }
}

impl Carrier for Connection {
    fn pipelines(&self) -> bool {
        Connection::pipelines(self)
    }

    fn start(
        &mut self,
        envelope: &Envelope,
        message: &[u8],
    ) -> impl Future<Output = Result<(), Trouble>> + Send {
        Connection::start(self, envelope, message)
    }

    fn finish_data(
        &mut self,
        message: &[u8],
        then: Option<(&Envelope, &[u8])>,
    ) -> impl Future<Output = Result<String, Trouble>> + Send {
        Connection::finish_data(self, message, then)
    }

    fn reset(&mut self) -> impl Future<Output = bool> + Send {
        Connection::reset(self)
    }

    fn quit(self) -> impl Future<Output = ()> + Send {
        Connection::quit(self)
    }
}

/// Takes every message at once and answers `250` with a queue id, with no network: for
/// benchmarks and tests of the engine, never for a real run. It pipelines, so the engine takes
/// the path it takes with a server that does. Clones share their counts.
#[derive(Debug, Clone)]
pub struct Sink {
    name: RelayName,
    received: Arc<Received>,
}

#[derive(Debug, Default)]
struct Received {
    messages: AtomicU64,
    bytes: AtomicU64,
}

impl Default for Sink {
    fn default() -> Self {
        Sink {
            name: RelayName::Primary,
            received: Arc::default(),
        }
    }
}

impl Sink {
    /// Messages taken so far, and their bytes (as they go after DATA).
    pub fn received(&self) -> (u64, u64) {
        (
            self.received.messages.load(Ordering::Relaxed),
            self.received.bytes.load(Ordering::Relaxed),
        )
    }
}

/// A connection to a [`Sink`].
pub struct SinkConnection {
    received: Arc<Received>,
}

impl Delivery for Sink {
    type Connection = SinkConnection;
    type Relay = RelayName;

    async fn connect<'a>(
        &'a self,
        keep_trying: impl Fn() -> bool + Send + 'a,
    ) -> Result<(SinkConnection, &'a RelayName), Stopped> {
        if !keep_trying() {
            return Err(Stopped::Unreachable("the run is stopping".into()));
        }
        let connection = SinkConnection {
            received: Arc::clone(&self.received),
        };
        Ok((connection, &self.name))
    }

    fn name(relay: &RelayName) -> RelayName {
        *relay
    }

    fn should_leave(&self, _: &RelayName) -> bool {
        false
    }

    fn broke(&self, _: &RelayName, _: &Trouble) -> bool {
        false
    }

    fn answered(&self) {}

    fn pause(&self) -> Duration {
        Duration::ZERO
    }
}

impl Carrier for SinkConnection {
    fn pipelines(&self) -> bool {
        true
    }

    async fn start(&mut self, _: &Envelope, _: &[u8]) -> Result<(), Trouble> {
        Ok(())
    }

    async fn finish_data(
        &mut self,
        message: &[u8],
        _: Option<(&Envelope, &[u8])>,
    ) -> Result<String, Trouble> {
        let queued = self.received.messages.fetch_add(1, Ordering::Relaxed);
        self.received
            .bytes
            .fetch_add(message.len() as u64, Ordering::Relaxed);
        // As long as a Postfix reply, so the `sent` records weigh what they weigh in a run.
        Ok(format!("250 2.0.0 Ok: queued as {queued:010X}"))
    }

    async fn reset(&mut self) -> bool {
        true
    }

    async fn quit(self) {}
}
