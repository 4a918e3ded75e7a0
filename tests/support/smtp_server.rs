//! An SMTP server for integration tests: real TCP on 127.0.0.1 (port 0), in the test process,
//! recording every message byte for byte, and able to fail on purpose (a reply per recipient or
//! per message, a busy greeting, a hang-up after DATA, a stall) so tests can check what missive
//! does when a server misbehaves.
//!
//! It is written independently of missive's own capture server, so a bug in one cannot hide a
//! bug in the other.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

const MAX_LINE: u64 = 1024 * 1024;

type RcptRule = Arc<dyn Fn(&str) -> Option<(u16, String)> + Send + Sync>;
type DataRule = Arc<dyn Fn(usize) -> Option<(u16, String)> + Send + Sync>;
type DropRule = Arc<dyn Fn(usize) -> bool + Send + Sync>;

/// How the server misbehaves; `Behavior::accept_all()` accepts everything.
#[derive(Clone, Default)]
pub struct Behavior {
    rcpt_reply: Option<RcptRule>,
    data_reply: Option<DataRule>,
    busy_greetings: usize,
    drop_after_data: Option<DropRule>,
    stall_on_data_end: Option<Duration>,
}

impl Behavior {
    pub fn accept_all() -> Behavior {
        Behavior::default()
    }

    /// Replies to `RCPT TO:<address>` with `(code, text)` when the rule says so.
    pub fn rcpt_reply(
        mut self,
        rule: impl Fn(&str) -> Option<(u16, String)> + Send + Sync + 'static,
    ) -> Self {
        self.rcpt_reply = Some(Arc::new(rule));
        self
    }

    /// Replies to the end of DATA of the n-th message (0-based, across connections).
    pub fn data_reply(
        mut self,
        rule: impl Fn(usize) -> Option<(u16, String)> + Send + Sync + 'static,
    ) -> Self {
        self.data_reply = Some(Arc::new(rule));
        self
    }

    /// The first `k` connections get `421` and are closed.
    pub fn greeting_421_for_first(mut self, k: usize) -> Self {
        self.busy_greetings = k;
        self
    }

    /// Reads the n-th message whole, records it, then closes without replying.
    pub fn drop_after_data_for(
        mut self,
        rule: impl Fn(usize) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.drop_after_data = Some(Arc::new(rule));
        self
    }

    /// Waits this long before replying to the end of DATA.
    pub fn stall_on_data_end(mut self, delay: Duration) -> Self {
        self.stall_on_data_end = Some(delay);
        self
    }
}

/// A message as the server received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    /// The data after un-dot-stuffing, CRLF line endings as sent.
    pub data: Vec<u8>,
    pub connection_id: usize,
    /// When the end of its DATA arrived.
    pub at: Instant,
}

struct State {
    behavior: Behavior,
    messages: Mutex<Vec<Received>>,
    data_count: AtomicUsize,
    connections: AtomicUsize,
}

/// A running server; dropping it stops it.
pub struct SmtpServer {
    port: u16,
    state: Arc<State>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SmtpServer {
    /// Starts on its own thread and runtime, for synchronous tests that run the binary.
    pub fn start_in_background(behavior: Behavior) -> SmtpServer {
        let state = Arc::new(State {
            behavior,
            messages: Mutex::new(Vec::new()),
            data_count: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
        });
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread_state = Arc::clone(&state);
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                port_tx.send(listener.local_addr().unwrap().port()).unwrap();
                let accept = async {
                    while let Ok((stream, _)) = listener.accept().await {
                        let id = thread_state.connections.fetch_add(1, Ordering::SeqCst);
                        let state = Arc::clone(&thread_state);
                        tokio::spawn(async move {
                            let _ = session(stream, id, &state).await;
                        });
                    }
                };
                tokio::select! {
                    () = accept => {}
                    _ = stop_rx => {}
                }
            });
        });
        let port = port_rx.recv().expect("server thread starts");
        SmtpServer {
            port,
            state,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// What was received so far.
    pub fn messages(&self) -> Vec<Received> {
        self.state.messages.lock().unwrap().clone()
    }

    /// How many connections were opened.
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// Waits until `n` messages arrived (or `timeout` passed) and returns what arrived.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let messages = self.messages();
            if messages.len() >= n || Instant::now() >= deadline {
                return messages;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn session(stream: TcpStream, id: usize, state: &State) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let behavior = &state.behavior;
    if id < behavior.busy_greetings {
        write.write_all(b"421 4.3.2 Busy, try later\r\n").await?;
        return Ok(());
    }
    write.write_all(b"220 test-smtp ESMTP\r\n").await?;
    let mut mail_from = String::new();
    let mut rcpt_to: Vec<String> = Vec::new();
    let mut line = Vec::new();
    loop {
        if !read_line(&mut reader, &mut line).await? {
            return Ok(());
        }
        let command = String::from_utf8_lossy(&line).trim_end().to_owned();
        let upper = command.to_ascii_uppercase();
        let reply = if upper.starts_with("EHLO") {
            "250-localhost\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 SIZE 52428800".to_owned()
        } else if upper.starts_with("HELO") || upper.starts_with("NOOP") {
            "250 OK".to_owned()
        } else if upper.starts_with("MAIL FROM:") {
            mail_from = angle_address(&command);
            rcpt_to.clear();
            "250 2.1.0 OK".to_owned()
        } else if upper.starts_with("RCPT TO:") {
            let address = angle_address(&command);
            match behavior.rcpt_reply.as_ref().and_then(|rule| rule(&address)) {
                Some((code, text)) => format!("{code} {text}"),
                None => {
                    rcpt_to.push(address);
                    "250 2.1.5 OK".to_owned()
                }
            }
        } else if upper == "DATA" {
            if rcpt_to.is_empty() {
                "554 5.5.1 No valid recipients".to_owned()
            } else {
                write
                    .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    .await?;
                let data = read_data(&mut reader, &mut line).await?;
                let n = state.data_count.fetch_add(1, Ordering::SeqCst);
                let refused = behavior.data_reply.as_ref().and_then(|rule| rule(n));
                if refused.is_none() {
                    state.messages.lock().unwrap().push(Received {
                        mail_from: mail_from.clone(),
                        rcpt_to: std::mem::take(&mut rcpt_to),
                        data,
                        connection_id: id,
                        at: Instant::now(),
                    });
                }
                if behavior
                    .drop_after_data
                    .as_ref()
                    .is_some_and(|rule| rule(n))
                {
                    return Ok(());
                }
                if let Some(delay) = behavior.stall_on_data_end {
                    tokio::time::sleep(delay).await;
                }
                rcpt_to.clear();
                match refused {
                    Some((code, text)) => format!("{code} {text}"),
                    None => format!("250 2.0.0 Ok: queued as T{id}N{n}"),
                }
            }
        } else if upper.starts_with("RSET") {
            rcpt_to.clear();
            "250 OK".to_owned()
        } else if upper.starts_with("QUIT") {
            write.write_all(b"221 2.0.0 Bye\r\n").await?;
            return Ok(());
        } else {
            "502 5.5.2 Command not recognized".to_owned()
        };
        write.write_all(format!("{reply}\r\n").as_bytes()).await?;
    }
}

/// Reads one line into `line`; false at end of stream; an error past [`MAX_LINE`].
async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut Vec<u8>,
) -> std::io::Result<bool> {
    line.clear();
    let read = reader.take(MAX_LINE).read_until(b'\n', line).await?;
    if read as u64 >= MAX_LINE && !line.ends_with(b"\n") {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "line too long",
        ));
    }
    Ok(read > 0)
}

async fn read_data<R: tokio::io::AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut Vec<u8>,
) -> std::io::Result<Vec<u8>> {
    let mut data = Vec::new();
    loop {
        if !read_line(reader, line).await? {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if line == b".\r\n" {
            return Ok(data);
        }
        let unstuffed = if line.starts_with(b"..") {
            &line[1..]
        } else {
            &line[..]
        };
        data.extend_from_slice(unstuffed);
    }
}

fn angle_address(command: &str) -> String {
    match (command.find('<'), command.rfind('>')) {
        (Some(start), Some(end)) if start < end => command[start + 1..end].to_owned(),
        _ => command.split(':').nth(1).unwrap_or("").trim().to_owned(),
    }
}
