//! One SMTP session as the test server plays it, faults included, and the accept loop that
//! starts sessions and stops them all when the server vanishes.

use std::sync::Arc;
use std::time::Instant;

use base64::Engine;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::{Command, Fate, Fault, Received, STALL_LIMIT, Shared};

const MAX_LINE: u64 = 1024 * 1024;

/// A session's connection, plain or TLS.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// Reads are buffered (a client may pipeline); writes go straight through.
type Conn = BufReader<Box<dyn Stream>>;

async fn send(conn: &mut Conn, bytes: &[u8]) -> std::io::Result<()> {
    let stream = conn.get_mut();
    stream.write_all(bytes).await?;
    stream.flush().await
}

/// Accepts connections until told to stop; while stopped, waits to be started again.
pub(super) async fn serve(
    shared: Arc<Shared>,
    listener: TcpListener,
    port: u16,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let mut listener = Some(listener);
    loop {
        let Some(open) = listener.take() else {
            match commands.recv().await {
                Some(Command::Start(done)) => {
                    let answer = match TcpListener::bind(("127.0.0.1", port)).await {
                        Ok(open) => {
                            listener = Some(open);
                            shared.note(|j| j.listening = true);
                            Ok(())
                        }
                        Err(e) => Err(e),
                    };
                    let _ = done.send(answer);
                }
                Some(Command::Stop(done)) => {
                    done.map(|done| done.send(()));
                }
                Some(Command::Shutdown) | None => return,
            }
            continue;
        };
        let mut sessions = JoinSet::new();
        let stopped = loop {
            tokio::select! {
                accepted = open.accept() => {
                    if let Ok((stream, _)) = accepted {
                        let id = shared.note(|j| {
                            j.connections += 1;
                            j.connections - 1
                        });
                        let shared = Arc::clone(&shared);
                        sessions.spawn(async move {
                            let _ = session(stream, id, &shared).await;
                        });
                    }
                }
                Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
                command = commands.recv() => match command {
                    Some(Command::Start(done)) => {
                        let _ = done.send(Ok(()));
                    }
                    Some(Command::Stop(done)) => break Some(done),
                    Some(Command::Shutdown) | None => break None,
                },
            }
        };
        // Aborting a session drops its socket: the client sees the connection cut.
        sessions.shutdown().await;
        drop(open);
        shared.note(|j| j.listening = false);
        match stopped {
            Some(done) => {
                done.map(|done| done.send(()));
            }
            None => return,
        }
    }
}

/// Whether the session goes on after an answer.
enum Next {
    Continue,
    Close,
}

async fn session(stream: TcpStream, id: usize, shared: &Shared) -> std::io::Result<()> {
    let behavior = &shared.behavior;
    // What the session has become: encrypted, logged in as.
    let mut secure = false;
    let mut login: Option<String> = None;
    let mut conn: Conn = match &behavior.tls {
        Some(tls) if tls.implicit => {
            secure = true;
            shared.note(|j| j.tls_sessions += 1);
            BufReader::new(Box::new(tls.acceptor.accept(stream).await?))
        }
        _ => BufReader::new(Box::new(stream)),
    };
    let greeting = behavior.greeting.as_ref().and_then(|rule| rule(id));
    if let Next::Close = answer(
        shared,
        &mut conn,
        greeting,
        "220 test-smtp ESMTP",
        "greeting",
    )
    .await?
    {
        return Ok(());
    }
    let mut rcpt_to: Vec<String> = Vec::new();
    let mut mail_from = String::new();
    let mut accepted_here = 0;
    let mut line = Vec::new();
    loop {
        if !read_line(&mut conn, &mut line).await? {
            return Ok(());
        }
        let command = String::from_utf8_lossy(&line).trim_end().to_owned();
        let upper = command.to_ascii_uppercase();
        if !conn.buffer().is_empty() {
            shared.note(|j| j.pipelined += 1);
        }
        let starttls = behavior.tls.as_ref().filter(|tls| !tls.implicit && !secure);
        let (fault, ok) = if upper.starts_with("EHLO") {
            rcpt_to.clear();
            let mut offers = vec!["localhost"];
            if !behavior.lockstep {
                offers.push("PIPELINING");
            }
            offers.extend(["8BITMIME", "SMTPUTF8", "SIZE 52428800"]);
            if starttls.is_some() {
                offers.push("STARTTLS");
            } else if behavior.login.is_some() {
                offers.push("AUTH PLAIN");
            }
            let last = offers.len() - 1;
            let lines: Vec<String> = offers
                .iter()
                .enumerate()
                .map(|(i, offer)| format!("250{}{offer}", if i == last { ' ' } else { '-' }))
                .collect();
            (None, lines.join("\r\n"))
        } else if upper == "STARTTLS" {
            let Some(tls) = starttls else {
                send(
                    &mut conn,
                    b"503 5.5.1 TLS already active or not offered\r\n",
                )
                .await?;
                continue;
            };
            send(&mut conn, b"220 2.0.0 Ready to start TLS\r\n").await?;
            // The client waits for the 220 before its handshake: nothing is buffered.
            conn = BufReader::new(Box::new(tls.acceptor.accept(conn.into_inner()).await?));
            secure = true;
            shared.note(|j| j.tls_sessions += 1);
            rcpt_to.clear();
            continue;
        } else if upper.starts_with("AUTH PLAIN") {
            let mut answer = command["AUTH PLAIN".len()..].trim().to_owned();
            if answer.is_empty() {
                send(&mut conn, b"334 \r\n").await?;
                if !read_line(&mut conn, &mut line).await? {
                    return Ok(());
                }
                answer = String::from_utf8_lossy(&line).trim().to_owned();
            }
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(answer)
                .unwrap_or_default();
            let parts: Vec<&[u8]> = decoded.split(|&b| b == 0).collect();
            let earlier = shared.note(|j| {
                j.auth_commands += 1;
                j.auth_commands - 1
            });
            let fault = behavior.auth.as_ref().and_then(|rule| rule(earlier));
            match &behavior.login {
                _ if fault.is_some() => (fault, String::new()),
                Some((user, password))
                    if (secure || behavior.tls.is_none())
                        && parts.len() == 3
                        && parts[1] == user.as_bytes()
                        && parts[2] == password.as_bytes() =>
                {
                    login = Some(user.clone());
                    shared.note(|j| j.logins.push(user.clone()));
                    (None, "235 2.7.0 Authentication successful".to_owned())
                }
                _ => {
                    shared.note(|j| j.failed_logins += 1);
                    (
                        None,
                        "535 5.7.8 Authentication credentials invalid".to_owned(),
                    )
                }
            }
        } else if upper.starts_with("MAIL FROM:") && starttls.is_some() {
            (
                None,
                "530 5.7.0 Must issue a STARTTLS command first".to_owned(),
            )
        } else if upper.starts_with("MAIL FROM:") && behavior.login.is_some() && login.is_none() {
            (None, "530 5.7.0 Authentication required".to_owned())
        } else if upper.starts_with("HELO")
            || upper.starts_with("NOOP")
            || upper.starts_with("RSET")
        {
            rcpt_to.clear();
            (None, "250 OK".to_owned())
        } else if upper.starts_with("MAIL FROM:") {
            rcpt_to.clear();
            mail_from = angle_address(&command);
            let fault = behavior.mail.as_ref().and_then(|rule| rule(accepted_here));
            (fault, "250 2.1.0 OK".to_owned())
        } else if upper.starts_with("RCPT TO:") {
            let address = angle_address(&command);
            let earlier = shared.note(|j| {
                j.rcpt_commands.push(address.clone());
                j.rcpt_count(&address) - 1
            });
            let fault = behavior
                .rcpt
                .as_ref()
                .and_then(|rule| rule(&address, earlier));
            if fault.is_none() {
                rcpt_to.push(address);
            }
            (fault, "250 2.1.5 OK".to_owned())
        } else if upper == "DATA" {
            if let (true, Some(delay)) = (rcpt_to.is_empty(), behavior.data_without_recipients) {
                send(&mut conn, b"354 End data with <CR><LF>.<CR><LF>\r\n").await?;
                read_data(&mut conn, &mut line).await?;
                shared.note(|j| j.faults.push("354 without recipients, late reply".into()));
                tokio::time::sleep(delay).await;
                (None, "250 2.0.0 Ok: delivered to nobody".to_owned())
            } else if rcpt_to.is_empty() {
                (None, "554 5.5.1 No valid recipients".to_owned())
            } else {
                send(&mut conn, b"354 End data with <CR><LF>.<CR><LF>\r\n").await?;
                let data = read_data(&mut conn, &mut line).await?;
                let envelope = Envelope {
                    connection_id: id,
                    mail_from: mail_from.clone(),
                    rcpt_to: std::mem::take(&mut rcpt_to),
                    secure,
                    login: login.clone(),
                };
                let (fate, next) = end_of_data(shared, &mut conn, envelope, data).await?;
                accepted_here += usize::from(fate == Fate::Accepted);
                match next {
                    Next::Continue => continue,
                    Next::Close => return Ok(()),
                }
            }
        } else if upper.starts_with("QUIT") {
            send(&mut conn, b"221 2.0.0 Bye\r\n").await?;
            return Ok(());
        } else {
            (None, "502 5.5.2 Command not recognized".to_owned())
        };
        let step = upper.split(':').next().unwrap_or("").to_owned();
        if let Next::Close = answer(shared, &mut conn, fault, &ok, &step).await? {
            return Ok(());
        }
    }
}

/// Who a message came from, and how.
struct Envelope {
    connection_id: usize,
    mail_from: String,
    rcpt_to: Vec<String>,
    secure: bool,
    login: Option<String>,
}

/// Journals a message that arrived whole, then answers it as the rules say.
async fn end_of_data(
    shared: &Shared,
    conn: &mut Conn,
    envelope: Envelope,
    data: Vec<u8>,
) -> std::io::Result<(Fate, Next)> {
    let connection_id = envelope.connection_id;
    let first = envelope.rcpt_to[0].clone();
    let chained = !conn.buffer().is_empty();
    let (index, earlier) = shared.note(|j| {
        let earlier = j.received.iter().filter(|m| m.rcpt_to[0] == first).count();
        j.received.push(Received {
            mail_from: envelope.mail_from,
            rcpt_to: envelope.rcpt_to,
            data,
            connection_id,
            at: Instant::now(),
            fate: Fate::Unanswered,
            chained,
            secure: envelope.secure,
            login: envelope.login,
        });
        (j.received.len() - 1, earlier)
    });
    let behavior = &shared.behavior;
    let fault = (behavior
        .data_end
        .as_ref()
        .and_then(|rule| rule(&first, earlier)))
    .or_else(|| behavior.data_index.as_ref().and_then(|rule| rule(index)));
    let delay = match &fault {
        None => behavior.reply_delay,
        Some(Fault::Late(delay)) => Some(*delay),
        Some(_) => None,
    };
    if let Some(late @ Fault::Late(_)) = &fault {
        shared.note(|j| j.faults.push(format!("{late:?} at end of DATA")));
    }
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    let fate = match &fault {
        None | Some(Fault::Late(_)) => Fate::Accepted,
        Some(Fault::Reply(code, _) | Fault::ReplyAndClose(code, _)) if *code < 400 => {
            Fate::Accepted
        }
        Some(Fault::Reply(code, _) | Fault::ReplyAndClose(code, _)) => Fate::Refused(*code),
        Some(Fault::HangUp) => Fate::HungUp,
        Some(Fault::Stall) => Fate::Stalled,
    };
    // Journaled before the reply leaves, so a client that saw the 250 finds it journaled.
    let accepted = shared.note(|j| {
        j.received[index].fate = fate;
        j.accepted().count()
    });
    let ok = format!("250 2.0.0 Ok: queued as T{connection_id}N{index}");
    // A late answer was journaled and waited for above: answer now.
    let fault = fault.filter(|f| !matches!(f, Fault::Late(_)));
    let next = answer(shared, conn, fault, &ok, "end of DATA").await?;
    if fate == Fate::Accepted && shared.behavior.vanish_after == Some(accepted) {
        shared.note(|j| {
            j.faults
                .push(format!("vanished after {accepted} accepted messages"))
        });
        let _ = shared.commands.send(Command::Stop(None));
    }
    Ok((fate, next))
}

/// Gives the usual answer `ok`, or plays `fault` instead (and journals it).
async fn answer(
    shared: &Shared,
    conn: &mut Conn,
    fault: Option<Fault>,
    ok: &str,
    step: &str,
) -> std::io::Result<Next> {
    let Some(fault) = fault else {
        send(conn, format!("{ok}\r\n").as_bytes()).await?;
        return Ok(Next::Continue);
    };
    shared.note(|j| j.faults.push(format!("{fault:?} at {step}")));
    match fault {
        Fault::Reply(code, text) => {
            send(conn, format!("{code} {text}\r\n").as_bytes()).await?;
            Ok(Next::Continue)
        }
        Fault::ReplyAndClose(code, text) => {
            send(conn, format!("{code} {text}\r\n").as_bytes()).await?;
            Ok(Next::Close)
        }
        Fault::HangUp => Ok(Next::Close),
        Fault::Late(delay) => {
            tokio::time::sleep(delay).await;
            send(conn, format!("{ok}\r\n").as_bytes()).await?;
            Ok(Next::Continue)
        }
        Fault::Stall => {
            // Read (and ignore) whatever comes until the client closes.
            let mut sink = Vec::new();
            let _ = tokio::time::timeout(STALL_LIMIT, conn.read_to_end(&mut sink)).await;
            Ok(Next::Close)
        }
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
