//! An SMTP server for integration tests: real TCP on 127.0.0.1 (port 0), in the test process,
//! keeping a journal of everything a client did, and able to fail on purpose so tests can check
//! what missive does when a server misbehaves.
//!
//! The journal tells apart what the server *accepted* (it replied 250 to the end of DATA: the
//! message is the server's now) from what it *received without acknowledging* (the whole message
//! arrived, then the server refused it with a 4xx or 5xx, hung up, stalled until the client gave
//! up, or was stopped before replying). Only accepted messages count as delivered; the others are
//! what makes a client's attempt *in doubt*. Every `RCPT TO` is journaled too, so a test can see
//! that a permanently refused address was never tried again.
//!
//! Faults are rules consulted at each step of a session: the greeting, `MAIL FROM`, `RCPT TO` and
//! the end of DATA. A rule returns a [`Fault`] (a reply instead of the usual one, a hang-up, a
//! stall, a late answer) or `None` to behave. Rules see how many times the address came before, so "451 the
//! first time only" needs no state in the test. The server can also vanish (stop listening and
//! cut every connection) after a number of accepted messages, or when the test calls
//! [`SmtpServer::stop`], and come back on the same port with [`SmtpServer::restart`].
//!
//! It is written independently of missive's own capture server, so a bug in one cannot hide a
//! bug in the other.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::mpsc;

mod session;

/// A stall ends when the client hangs up, or after this long whatever happens.
const STALL_LIMIT: Duration = Duration::from_secs(60);

/// What the server does instead of its usual answer at some step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// This reply instead of the usual one; the session goes on.
    Reply(u16, String),
    /// This reply, then the server closes the connection (what `421` announces).
    ReplyAndClose(u16, String),
    /// The server closes the connection without a word.
    HangUp,
    /// The server never answers: it waits until the client gives up and closes (or for
    /// [`STALL_LIMIT`]), then closes too. Longer than any client timeout in these tests.
    Stall,
    /// The usual answer, but only after this long (longer than the client's timeout, it comes
    /// when the client has given up: at the end of DATA, the server has the message and the
    /// client does not know).
    Late(Duration),
}

impl Fault {
    pub fn reply(code: u16, text: &str) -> Fault {
        Fault::Reply(code, text.to_owned())
    }
}

type ConnectionRule = Arc<dyn Fn(usize) -> Option<Fault> + Send + Sync>;
type AddressRule = Arc<dyn Fn(&str, usize) -> Option<Fault> + Send + Sync>;
type IndexRule = Arc<dyn Fn(usize) -> Option<Fault> + Send + Sync>;

/// How the server behaves; [`Behavior::accept_all`] accepts everything at once.
#[derive(Clone, Default)]
pub struct Behavior {
    greeting: Option<ConnectionRule>,
    mail: Option<ConnectionRule>,
    rcpt: Option<AddressRule>,
    data_end: Option<AddressRule>,
    data_index: Option<IndexRule>,
    reply_delay: Option<Duration>,
    vanish_after: Option<usize>,
    /// Leaves PIPELINING out of the EHLO reply, so the client sends one command at a time.
    lockstep: bool,
    /// TLS: offered with STARTTLS (and then required before MAIL), or from the first byte.
    tls: Option<TlsSetup>,
    /// A login (user, password) required before MAIL, with AUTH PLAIN (after TLS, with TLS).
    login: Option<(String, String)>,
    /// Consulted at each AUTH, with how many came before (over all connections).
    auth: Option<ConnectionRule>,
    /// Says 354 to a DATA with no recipient taken (a server RFC 2920 warns of), and answers
    /// the message that follows this late.
    data_without_recipients: Option<Duration>,
}

/// How the server speaks TLS.
#[derive(Clone)]
pub struct TlsSetup {
    pub acceptor: tokio_rustls::TlsAcceptor,
    /// TLS from the first byte (SMTPS) rather than after STARTTLS.
    pub implicit: bool,
}

impl Behavior {
    pub fn accept_all() -> Behavior {
        Behavior::default()
    }

    /// Consulted when connection number `n` (0-based, in order of arrival) opens.
    pub fn on_greeting(
        mut self,
        rule: impl Fn(usize) -> Option<Fault> + Send + Sync + 'static,
    ) -> Self {
        self.greeting = Some(Arc::new(rule));
        self
    }

    /// Consulted at each `MAIL FROM`, with how many messages this connection had accepted.
    pub fn on_mail(
        mut self,
        rule: impl Fn(usize) -> Option<Fault> + Send + Sync + 'static,
    ) -> Self {
        self.mail = Some(Arc::new(rule));
        self
    }

    /// Consulted at each `RCPT TO:<address>`, with how many earlier `RCPT TO` named the address.
    pub fn on_rcpt(
        mut self,
        rule: impl Fn(&str, usize) -> Option<Fault> + Send + Sync + 'static,
    ) -> Self {
        self.rcpt = Some(Arc::new(rule));
        self
    }

    /// Consulted once a message has arrived whole, with its (first) recipient and how many
    /// earlier messages to that recipient arrived whole.
    pub fn on_data_end(
        mut self,
        rule: impl Fn(&str, usize) -> Option<Fault> + Send + Sync + 'static,
    ) -> Self {
        self.data_end = Some(Arc::new(rule));
        self
    }

    /// Consulted once the n-th message (0-based, over all connections) has arrived whole, when
    /// the [`on_data_end`](Self::on_data_end) rule had nothing to say.
    pub fn on_data_index(
        mut self,
        rule: impl Fn(usize) -> Option<Fault> + Send + Sync + 'static,
    ) -> Self {
        self.data_index = Some(Arc::new(rule));
        self
    }

    /// Reads the n-th message whole, then hangs up without replying.
    pub fn drop_after_data_for(self, rule: impl Fn(usize) -> bool + Send + Sync + 'static) -> Self {
        self.on_data_index(move |n| rule(n).then_some(Fault::HangUp))
    }

    /// Replies `(code, text)` to `RCPT TO:<address>` whenever the rule says so.
    pub fn rcpt_reply(
        self,
        rule: impl Fn(&str) -> Option<(u16, String)> + Send + Sync + 'static,
    ) -> Self {
        self.on_rcpt(move |address, _| rule(address).map(|(code, text)| Fault::Reply(code, text)))
    }

    /// The first `k` connections are greeted with `421` and closed.
    pub fn greeting_421_for_first(self, k: usize) -> Self {
        self.on_greeting(move |n| (n < k).then(busy))
    }

    /// A connection that has accepted `n` messages answers the next `MAIL FROM` with `421` and
    /// closes, as a server that limits messages per connection does.
    pub fn close_with_421_after(self, n: usize) -> Self {
        self.on_mail(move |accepted| (accepted >= n).then(busy))
    }

    /// Waits this long before each `250` at the end of DATA: a slow server.
    pub fn reply_delay(mut self, delay: Duration) -> Self {
        self.reply_delay = Some(delay);
        self
    }

    /// Offers STARTTLS and refuses MAIL before it; or, `implicit`, speaks TLS from the first
    /// byte.
    pub fn with_tls(mut self, acceptor: tokio_rustls::TlsAcceptor, implicit: bool) -> Self {
        self.tls = Some(TlsSetup { acceptor, implicit });
        self
    }

    /// Consulted at each AUTH with how many AUTH commands came before; a fault replaces the
    /// usual answer.
    pub fn on_auth(
        mut self,
        rule: impl Fn(usize) -> Option<Fault> + Send + Sync + 'static,
    ) -> Self {
        self.auth = Some(Arc::new(rule));
        self
    }

    /// Requires this login (AUTH PLAIN) before MAIL.
    pub fn requiring_login(mut self, user: &str, password: &str) -> Self {
        self.login = Some((user.to_owned(), password.to_owned()));
        self
    }

    /// Says 354 even to a DATA whose recipients were all refused, and answers the (empty)
    /// message that follows only after `delay`.
    pub fn data_without_recipients(mut self, delay: Duration) -> Self {
        self.data_without_recipients = Some(delay);
        self
    }

    /// Does not offer PIPELINING (RFC 2920): a client must wait for each reply.
    pub fn without_pipelining(mut self) -> Self {
        self.lockstep = true;
        self
    }

    /// Once `n` messages were accepted, the server stops listening and cuts every connection,
    /// until [`SmtpServer::restart`].
    pub fn vanish_after(mut self, n: usize) -> Self {
        self.vanish_after = Some(n);
        self
    }
}

fn busy() -> Fault {
    Fault::ReplyAndClose(421, "4.3.2 Service shutting down, try later".into())
}

/// What became of a message the server received whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Replied 250: the server has it.
    Accepted,
    /// Replied with this 4xx or 5xx code.
    Refused(u16),
    /// The server hung up instead of replying.
    HungUp,
    /// The server stalled until the client gave up.
    Stalled,
    /// No reply yet (a slow or late one is on its way), or never: the connection ended (cut,
    /// or the server was stopped) before the server replied.
    Unanswered,
}

/// A message as the server received it.
#[derive(Debug, Clone)]
pub struct Received {
    /// The envelope sender, as `MAIL FROM:<…>` gave it.
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    /// The data after un-dot-stuffing, CRLF line endings as sent.
    pub data: Vec<u8>,
    pub connection_id: usize,
    /// When the end of its DATA arrived.
    pub at: Instant,
    pub fate: Fate,
    /// The next message's commands had arrived behind it (the client pipelined across
    /// messages).
    pub chained: bool,
    /// It came over TLS.
    pub secure: bool,
    /// The user the session had logged in as.
    pub login: Option<String>,
}

/// Everything the server saw, in order.
#[derive(Debug, Default, Clone)]
pub struct Journal {
    /// Every message that arrived whole, whatever its fate.
    pub received: Vec<Received>,
    /// The address of every `RCPT TO`, whatever the reply.
    pub rcpt_commands: Vec<String>,
    /// Each fault the server played, in words (to check a test really exercised it).
    pub faults: Vec<String>,
    pub connections: usize,
    pub listening: bool,
    /// Commands that arrived with the next one already behind them, before their reply was
    /// sent: the client pipelined.
    pub pipelined: usize,
    /// Sessions that went over to TLS (or began in it).
    pub tls_sessions: usize,
    /// Users logged in, once a login.
    pub logins: Vec<String>,
    pub failed_logins: usize,
    /// Every AUTH command, whatever the answer.
    pub auth_commands: usize,
}

impl Journal {
    /// The messages the server accepted.
    pub fn accepted(&self) -> impl Iterator<Item = &Received> {
        self.received.iter().filter(|m| m.fate == Fate::Accepted)
    }

    /// How many messages arrived with the next message's commands behind them.
    pub fn chained(&self) -> usize {
        self.received.iter().filter(|m| m.chained).count()
    }

    /// How many `RCPT TO` named `address`.
    pub fn rcpt_count(&self, address: &str) -> usize {
        self.rcpt_commands.iter().filter(|a| *a == address).count()
    }
}

enum Command {
    Stop(Option<std::sync::mpsc::Sender<()>>),
    Start(std::sync::mpsc::Sender<std::io::Result<()>>),
    Shutdown,
}

struct Shared {
    behavior: Behavior,
    journal: Mutex<Journal>,
    changed: Condvar,
    commands: mpsc::UnboundedSender<Command>,
}

impl Shared {
    fn journal(&self) -> MutexGuard<'_, Journal> {
        self.journal.lock().unwrap()
    }

    /// Changes the journal and wakes whoever waits on it.
    fn note<T>(&self, change: impl FnOnce(&mut Journal) -> T) -> T {
        let result = change(&mut self.journal());
        self.changed.notify_all();
        result
    }
}

/// A running server; dropping it stops it.
pub struct SmtpServer {
    port: u16,
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SmtpServer {
    /// Starts on its own thread and runtime, for synchronous tests that run the binary.
    pub fn start_in_background(behavior: Behavior) -> SmtpServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        SmtpServer::start_on(listener, behavior)
    }

    /// [`SmtpServer::start_in_background`] on a listener of the caller's (one made inside a
    /// network namespace, see `support::netns`).
    pub fn start_on(listener: std::net::TcpListener, behavior: Behavior) -> SmtpServer {
        let (commands, incoming) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            behavior,
            journal: Mutex::new(Journal {
                listening: true,
                ..Journal::default()
            }),
            changed: Condvar::new(),
            commands,
        });
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = TcpListener::from_std(listener).unwrap();
                session::serve(thread_shared, listener, port, incoming).await;
            });
        });
        SmtpServer {
            port,
            shared,
            thread: Some(thread),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// A copy of the journal as it stands.
    pub fn journal(&self) -> Journal {
        self.shared.journal().clone()
    }

    /// The messages a mailbox may now hold, in order: every message received whole that the
    /// server did not refuse (accepted, and those it hung up on, stalled on or never answered).
    /// [`Journal::accepted`] leaves the unanswered ones out.
    pub fn messages(&self) -> Vec<Received> {
        let journal = self.shared.journal();
        let kept = |m: &&Received| !matches!(m.fate, Fate::Refused(_));
        journal.received.iter().filter(kept).cloned().collect()
    }

    /// How many connections were opened.
    pub fn connections(&self) -> usize {
        self.shared.journal().connections
    }

    /// Waits until `condition` holds for the journal, or `timeout` passes; says whether it held.
    pub fn wait_until(&self, timeout: Duration, condition: impl Fn(&Journal) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut journal = self.shared.journal();
        loop {
            if condition(&journal) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            journal = self.shared.changed.wait_timeout(journal, left).unwrap().0;
        }
    }

    /// Waits until every message received whole has been answered (or `timeout` passed): no
    /// late reply or slow acceptance still on its way.
    pub fn wait_until_answered(&self, timeout: Duration) -> bool {
        self.wait_until(timeout, |j| {
            j.received.iter().all(|m| m.fate != Fate::Unanswered)
        })
    }

    /// Waits until there are `n` [`messages`](Self::messages) (or `timeout` passed) and returns
    /// them.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let refused = |m: &Received| matches!(m.fate, Fate::Refused(_));
        self.wait_until(timeout, |j| {
            j.received.iter().filter(|m| !refused(m)).count() >= n
        });
        self.messages()
    }

    /// Stops listening and cuts every connection; returns once the port is closed.
    pub fn stop(&self) {
        let (done, wait) = std::sync::mpsc::channel();
        if self.shared.commands.send(Command::Stop(Some(done))).is_ok() {
            let _ = wait.recv();
        }
    }

    /// Listens again on the same port (after [`stop`](Self::stop) or a vanishing).
    pub fn restart(&self) {
        let (done, wait) = std::sync::mpsc::channel();
        self.shared
            .commands
            .send(Command::Start(done))
            .expect("server thread runs");
        let bound = wait.recv().expect("server thread answers");
        bound.unwrap_or_else(|e| panic!("cannot listen again on port {}: {e}", self.port));
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.shared.commands.send(Command::Shutdown);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
