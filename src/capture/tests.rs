//! The capture server against lettre and a raw client: what it writes, what it refuses, and
//! what it leaves when a message cannot be written or is cut off.

use super::*;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

#[tokio::test]
async fn captures_what_lettre_sends_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let server = CaptureServer::start(dir.path(), "run").await.unwrap();
    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(server.port())
        .build();
    let message = Message::builder()
        .from("a@example.org".parse().unwrap())
        .to("Zoé <z@example.com>".parse().unwrap())
        .subject("Test")
        .body(".leading dot\r\nline two\r\n".to_owned())
        .unwrap();
    let mut expected = message.formatted();
    transport.send(message).await.unwrap();
    assert_eq!(server.received(), 1);
    assert_eq!(server.outbox(), dir.path().join("run"));
    let file = server.outbox().join("00001-z@example.com.eml");
    // lettre always ends DATA with CRLF.CRLF, so the data gains the final CRLF of its own.
    expected.extend_from_slice(b"\r\n");
    assert_eq!(std::fs::read(file).unwrap(), expected);
}

#[tokio::test]
async fn two_messages_to_one_address_are_two_files() {
    let dir = tempfile::tempdir().unwrap();
    let server = CaptureServer::start(dir.path(), "run").await.unwrap();
    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(server.port())
        .build();
    for subject in ["one", "two"] {
        let message = Message::builder()
            .from("a@example.org".parse().unwrap())
            .to("z@example.com".parse().unwrap())
            .subject(subject)
            .body("text\r\n".to_owned())
            .unwrap();
        transport.send(message).await.unwrap();
    }
    let mut names: Vec<_> = std::fs::read_dir(server.outbox())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["00001-z@example.com.eml", "00002-z@example.com.eml"]
    );
}

#[tokio::test]
async fn a_message_past_the_bound_is_refused_with_552_and_the_session_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let server = CaptureServer::start_bounded(dir.path(), "run", 10_000)
        .await
        .unwrap();
    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(server.port())
        .build();
    let message = |body: String| {
        Message::builder()
            .from("a@example.org".parse().unwrap())
            .to("z@example.com".parse().unwrap())
            .subject("Test")
            .body(body)
            .unwrap()
    };
    let large = "line of text\r\n".repeat(1_000);
    let refused = transport.send(message(large)).await.unwrap_err();
    assert_eq!(
        refused.status().map(|code| code.to_string()),
        Some("552".to_owned()),
        "{refused}"
    );
    // The same connection, pooled by lettre, carries the next one.
    transport
        .send(message("small\r\n".to_owned()))
        .await
        .unwrap();
    assert_eq!(server.received(), 1);
    let names: Vec<_> = std::fs::read_dir(server.outbox())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(
        names,
        ["00002-z@example.com.eml"],
        "nothing left of the refused one"
    );
}

#[tokio::test]
async fn an_outbox_that_cannot_be_written_is_said_with_452_and_the_session_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let server = CaptureServer::start(dir.path(), "run").await.unwrap();
    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(server.port())
        .build();
    let message = || {
        Message::builder()
            .from("a@example.org".parse().unwrap())
            .to("z@example.com".parse().unwrap())
            .subject("Test")
            .body("text\r\n".to_owned())
            .unwrap()
    };
    // As a disk full would: the file cannot be written.
    std::fs::remove_dir(server.outbox()).unwrap();
    let refused = transport.send(message()).await.unwrap_err();
    assert_eq!(
        refused.status().map(|code| code.to_string()),
        Some("452".to_owned()),
        "an answer, for now, not a hang-up (in doubt): {refused}"
    );
    assert!(
        refused.to_string().contains("No such file or directory"),
        "the cause is said: {refused}"
    );
    std::fs::create_dir(server.outbox()).unwrap();
    transport.send(message()).await.unwrap();
    assert_eq!(server.received(), 1);
}

#[tokio::test]
async fn a_message_cut_off_by_the_servers_end_leaves_no_hidden_file() {
    use tokio::io::AsyncReadExt;
    let dir = tempfile::tempdir().unwrap();
    let server = CaptureServer::start(dir.path(), "run").await.unwrap();
    let outbox = server.outbox().to_owned();
    let mut client = TcpStream::connect(("127.0.0.1", server.port()))
        .await
        .unwrap();
    client
        .write_all(b"EHLO x\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<z@example.com>\r\nDATA\r\n")
        .await
        .unwrap();
    let mut heard = Vec::new();
    while !heard.windows(3).any(|w| w == b"354") {
        let mut buffer = [0; 1024];
        let read = client.read(&mut buffer).await.unwrap();
        assert!(read > 0, "{}", String::from_utf8_lossy(&heard));
        heard.extend_from_slice(&buffer[..read]);
    }
    client
        .write_all(b"Subject: cut\r\n\r\nthe start of it\r\n")
        .await
        .unwrap();
    let entries = |outbox: &Path| std::fs::read_dir(outbox).unwrap().count();
    for _ in 0..100 {
        if entries(&outbox) == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(entries(&outbox), 1, "the message is being written");
    // The server ends (the dry run is over) while the client still holds its connection.
    drop(server);
    for _ in 0..100 {
        if entries(&outbox) == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(entries(&outbox), 0, "the hidden .part file is gone");
}

#[test]
fn file_names_are_safe() {
    assert_eq!(file_safe("../../etc/passwd@x"), ".._.._etc_passwd@x");
}
