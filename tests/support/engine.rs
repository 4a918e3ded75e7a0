//! The engine driven in the test's own process, as `missive send` drives it but without the
//! command line around it: for what the binary cannot be made to meet (a disk failing under
//! the list) and for deliveries without a network (a `Sink`).

use std::sync::Arc;
use std::time::Duration;

use missive::campaign::Campaign;
use missive::letter::Letter;
use missive::message::Composer;
use missive::ratelimit::{Limits, Pace};
use missive::recipients::RecipientReader;
use missive::render::Template;
use missive::send::{
    Content, Delivery, Engine, Failover, InDoubt, Route, RunLimits, RunReport, SendError,
};
use missive::sendlog::{LogWriter, Replay, SendLog};
use missive::smtp::{Endpoint, Relay, RelayName};

use super::harness::Fixture;

/// A route to one relay, the SMTP server on this machine's `port`, with no fallback: what
/// `send` builds for a campaign's `[smtp]`.
pub fn loopback_route(port: u16) -> Route {
    let relay = Relay::new(
        RelayName::Primary,
        &Endpoint::loopback(port),
        None,
        None,
        Duration::from_secs(5),
    )
    .unwrap();
    Route::new(relay, None, Failover::default())
}

/// A fixture's campaign loaded, its letter prepared once, as the binary prepares it.
pub struct Prepared {
    pub campaign: Campaign,
    template: Template,
    composer: Composer,
}

impl Prepared {
    pub fn load(fixture: &Fixture) -> Prepared {
        let campaign = Campaign::load(&fixture.campaign()).unwrap();
        let letters: Vec<Letter> = campaign
            .letters
            .iter()
            .map(|settings| Letter::load(&settings.letter_path, &settings.language).unwrap())
            .collect();
        let (template, composer) = missive::app::prepare(&campaign, &letters, None);
        Prepared {
            campaign,
            template,
            composer,
        }
    }

    /// Runs the engine over `reader` through `route` on two connections, recording in `log`,
    /// on the one-thread runtime `send` uses; returns once every record is written.
    pub fn send<D: Delivery>(
        &self,
        reader: &mut RecipientReader,
        replay: &Replay,
        route: D,
        log: Box<dyn SendLog>,
        fingerprint: &str,
    ) -> Result<RunReport, SendError> {
        let unlimited = (&Limits::default(), &RunLimits::default());
        self.send_limited(reader, replay, route, log, fingerprint, unlimited)
    }

    /// [`Prepared::send`] at a pace and within a run's limits.
    pub fn send_limited<D: Delivery>(
        &self,
        reader: &mut RecipientReader,
        replay: &Replay,
        route: D,
        log: Box<dyn SendLog>,
        fingerprint: &str,
        (pace, limits): (&Limits, &RunLimits),
    ) -> Result<RunReport, SendError> {
        let run = (pace, limits);
        self.send_until(
            reader,
            replay,
            route,
            log,
            fingerprint,
            run,
            std::future::pending(),
        )
    }

    /// [`Prepared::send_limited`], stopped as the binary's signals stop it when `shutdown`
    /// resolves.
    #[allow(clippy::too_many_arguments)]
    pub fn send_until<D: Delivery>(
        &self,
        reader: &mut RecipientReader,
        replay: &Replay,
        route: D,
        log: Box<dyn SendLog>,
        fingerprint: &str,
        (pace, limits): (&Limits, &RunLimits),
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<RunReport, SendError> {
        let content = Content {
            template: &self.template,
            composer: &self.composer,
            fingerprint,
        };
        let (log, log_thread) = LogWriter::spawn(log);
        let engine = Engine {
            route,
            log,
            connections: 2,
            retry: Default::default(),
            pace: Pace::new(pace, &Default::default()),
            in_doubt: InDoubt::Resend,
            progress: Arc::default(),
            refusals: None,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let result = runtime.block_on(missive::send::run(
            &content, reader, replay, engine, limits, shutdown,
        ));
        log_thread.join().unwrap();
        result
    }
}
