//! A capture SMTP server on 127.0.0.1, for dry runs on a machine with no mailcatcher.
//!
//! `send --dry-run` still delivers over real SMTP (the whole pipeline runs, lettre included);
//! this server accepts every message and writes it, byte for byte, as an `.eml` file into an
//! outbox folder a person can open. It speaks just enough ESMTP for lettre, listens only on
//! loopback, bounds every line it reads, and stops when dropped. Each server writes into a
//! folder it created for itself, so two dry runs never mix (or overwrite) their messages.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::outdir;

/// Longest command or data line accepted; a longer one ends the session.
const MAX_LINE: usize = 64 * 1024;
/// Largest message written (the SIZE advertised). A dry run must capture whatever the real send
/// would hand a relay, and missive sets no bound of its own on a message (a 28 MB receipt makes
/// one of 38 MB), so this is far past any relay's: it only keeps a runaway client from filling
/// the disk. Messages are written as they arrive, never held whole, so it costs no memory; one
/// past it is refused with 552 (failed, as a relay would say), never cut off (in doubt).
const MAX_MESSAGE: usize = 1 << 30;
/// How long the server waits after failing to accept a connection before it tries again.
const ACCEPT_PAUSE: std::time::Duration = std::time::Duration::from_millis(100);

/// A running capture server; dropping it stops it.
pub struct CaptureServer {
    port: u16,
    outbox: PathBuf,
    received: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl CaptureServer {
    /// Listens on 127.0.0.1 (a free port) and writes what it receives into a new folder of
    /// `outboxes` named `name` (`name-2`… when that exists: see [`outdir::create_folder`]).
    pub async fn start(outboxes: &Path, name: &str) -> std::io::Result<CaptureServer> {
        Self::start_bounded(outboxes, name, MAX_MESSAGE).await
    }

    /// [`CaptureServer::start`], refusing messages over `max_message` bytes.
    async fn start_bounded(
        outboxes: &Path,
        name: &str,
        max_message: usize,
    ) -> std::io::Result<CaptureServer> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let port = listener.local_addr()?.port();
        let outbox = outdir::create_folder(outboxes, name)?;
        let received = Arc::new(AtomicUsize::new(0));
        let state = Arc::new(Shared {
            outbox: outbox.clone(),
            received: Arc::clone(&received),
            numbers: AtomicUsize::new(0),
            max_message,
        });
        let task = tokio::spawn(async move {
            // Owned by this task, so that the sessions end with the server (a message cut off
            // leaves no hidden file behind), not with the client.
            let mut sessions = tokio::task::JoinSet::new();
            loop {
                // Reaps the sessions that ended, so that the set does not grow with the run.
                while sessions.try_join_next().is_some() {}
                let stream = match listener.accept().await {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of file descriptors (EMFILE), or a connection gone before it was
                        // taken: the listener is still good, and sessions that end free what
                        // it lacks. A pause, not a spin, as tokio's documentation advises.
                        tracing::warn!(error = %e, "the capture server could not accept a connection");
                        tokio::time::sleep(ACCEPT_PAUSE).await;
                        continue;
                    }
                };
                let state = Arc::clone(&state);
                sessions.spawn(async move {
                    if let Err(e) = session(stream, &state).await {
                        tracing::debug!(error = %e, "capture session ended");
                    }
                });
            }
        });
        Ok(CaptureServer {
            port,
            outbox,
            received,
            task,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn outbox(&self) -> &Path {
        &self.outbox
    }

    /// How many messages were written to the outbox.
    pub fn received(&self) -> usize {
        self.received.load(Ordering::SeqCst)
    }
}

impl Drop for CaptureServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Shared {
    outbox: PathBuf,
    received: Arc<AtomicUsize>,
    /// The last number given to a message's file (a refused message's number is not reused).
    numbers: AtomicUsize,
    max_message: usize,
}

async fn session(stream: TcpStream, state: &Shared) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut line = Vec::new();
    let mut rcpt: Option<String> = None;
    write
        .write_all(b"220 missive-capture ESMTP ready\r\n")
        .await?;
    loop {
        if !read_line(&mut reader, &mut line).await? {
            return Ok(());
        }
        let command = String::from_utf8_lossy(&line).trim_end().to_owned();
        let verb = command
            .split([' ', ':'])
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        let ehlo;
        let unwritten;
        let reply: &[u8] = match verb.as_str() {
            "EHLO" => {
                ehlo = format!(
                    "250-missive-capture\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 SIZE {}\r\n",
                    state.max_message
                );
                ehlo.as_bytes()
            }
            "HELO" | "NOOP" => b"250 OK\r\n",
            "MAIL" | "RSET" => {
                rcpt = None;
                b"250 OK\r\n"
            }
            "RCPT" => {
                rcpt.get_or_insert_with(|| address_of(&command));
                b"250 OK\r\n"
            }
            "DATA" if rcpt.is_none() => b"503 RCPT first\r\n",
            "DATA" => {
                write.write_all(b"354 End with <CRLF>.<CRLF>\r\n").await?;
                let number = state.numbers.fetch_add(1, Ordering::SeqCst) + 1;
                let name = format!(
                    "{number:05}-{}.eml",
                    file_safe(rcpt.as_deref().unwrap_or(""))
                );
                rcpt = None;
                // Written under a hidden name while it arrives, so that the outbox only ever
                // shows whole messages; a message cut off or refused leaves nothing.
                let mut partial = Partial {
                    path: state.outbox.join(format!(".{name}.part")),
                    created: false,
                    placed: false,
                };
                let written =
                    write_data(&mut reader, &mut line, &mut partial, state.max_message).await?;
                let written = match written {
                    Data::Whole => partial.place(&state.outbox.join(&name)).await,
                    Data::TooLarge => Ok(false),
                    Data::Unwritten(error) => Err(error),
                };
                match written {
                    Ok(true) => {
                        state.received.fetch_add(1, Ordering::SeqCst);
                        b"250 OK: captured\r\n"
                    }
                    Ok(false) => b"552 5.3.4 Message too large for the capture server\r\n",
                    // A disk full (or the folder gone) is the capture server's trouble, not the
                    // message's: said as a relay says it, for now, with the cause, rather than
                    // a hang-up that leaves the message in doubt and the cause unsaid.
                    Err(error) => {
                        // A deferral's reply is not shown at the default level: this is.
                        tracing::warn!(
                            outbox = %state.outbox.display(),
                            %error,
                            "the capture server could not write {name}: the message is \
                             deferred; make room (or mend the folder), then run the dry run again"
                        );
                        unwritten = format!(
                            "452 4.3.1 The capture server could not write {name}: {}\r\n",
                            one_line(&error.to_string())
                        );
                        unwritten.as_bytes()
                    }
                }
            }
            "QUIT" => {
                write.write_all(b"221 Bye\r\n").await?;
                return Ok(());
            }
            _ => b"502 Command not implemented\r\n",
        };
        write.write_all(reply).await?;
    }
}

/// Reads one line (with its CRLF) into `line`; false at end of stream. Errors past [`MAX_LINE`].
async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut Vec<u8>,
) -> std::io::Result<bool> {
    line.clear();
    let mut limited = tokio::io::AsyncReadExt::take(&mut *reader, MAX_LINE as u64);
    let read = limited.read_until(b'\n', line).await?;
    if read == 0 {
        return Ok(false);
    }
    if !line.ends_with(b"\n") && line.len() >= MAX_LINE {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "line too long",
        ));
    }
    Ok(true)
}

/// A message being written under a hidden name, removed when dropped unless placed: refused,
/// cut off, unwritable, or its session ended with the server. Only a file it created is
/// removed, never one found under its name.
struct Partial {
    path: PathBuf,
    created: bool,
    placed: bool,
}

impl Partial {
    /// Renames it to `whole`, its place in the outbox; true once there.
    async fn place(mut self, whole: &Path) -> std::io::Result<bool> {
        tokio::fs::rename(&self.path, whole).await?;
        self.placed = true;
        Ok(true)
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        if self.created && !self.placed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// What became of a message read to its end.
enum Data {
    Whole,
    /// Grew past the bound: the file holds only its start.
    TooLarge,
    /// The file could not be written (disk full, folder gone): the rest was read, not written.
    Unwritten(std::io::Error),
}

/// Writes the message after DATA, up to the lone `.` line and with dot-stuffing undone, into a
/// new file at `partial`'s path, line by line as it arrives. Whatever becomes of the file, the message
/// is read to its end, so that the session can answer and go on; `Err` only when the
/// connection fails (cut off, a line too long).
async fn write_data<R: tokio::io::AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut Vec<u8>,
    partial: &mut Partial,
    max_message: usize,
) -> std::io::Result<Data> {
    // The folder is this run's alone and the number counts up, so the name is new;
    // `create_new` makes sure of it rather than writing over anything.
    let opened = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&partial.path)
        .await;
    partial.created = opened.is_ok();
    let mut failure = None;
    let mut file = match opened {
        Ok(file) => Some(tokio::io::BufWriter::with_capacity(256 * 1024, file)),
        Err(error) => {
            failure = Some(error);
            None
        }
    };
    let mut length = 0;
    loop {
        if !read_line(reader, line).await? {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if line.as_slice() == b".\r\n" || line.as_slice() == b".\n" {
            if let Some(file) = &mut file
                && let Err(error) = file.flush().await
            {
                failure = Some(error);
            }
            return Ok(match failure {
                Some(error) => Data::Unwritten(error),
                None if length <= max_message => Data::Whole,
                None => Data::TooLarge,
            });
        }
        let content = line.strip_prefix(b".").unwrap_or(line);
        length += content.len();
        if length <= max_message
            && let Some(writing) = &mut file
            && let Err(error) = writing.write_all(content).await
        {
            failure = Some(error);
            file = None;
        }
    }
}

/// `text` on one line, fit for a reply.
fn one_line(text: &str) -> String {
    text.replace(['\r', '\n'], " ")
}

fn address_of(command: &str) -> String {
    let start = command.find('<').map_or(0, |i| i + 1);
    let end = command[start..]
        .find('>')
        .map_or(command.len(), |i| start + i);
    command[start..end].to_owned()
}

/// An address made safe as part of a file name.
pub fn file_safe(address: &str) -> String {
    address
        .chars()
        .take(100)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '@' | '.' | '-' | '_' | '+') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
