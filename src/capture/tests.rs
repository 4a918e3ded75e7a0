//! The capture server against lettre and a raw client: what it writes, what it refuses, and
//! what it leaves when a message cannot be written or is cut off.

use super::*;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::time::Duration;
use tokio::io::AsyncReadExt;

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

/// Set in the process [`accepting_goes_on_after_the_process_ran_out_of_file_descriptors`] runs
/// itself in, with few file descriptors.
const FEW_DESCRIPTORS: &str = "MISSIVE_TEST_FEW_DESCRIPTORS";

#[test]
fn accepting_goes_on_after_the_process_ran_out_of_file_descriptors() {
    const NAME: &str =
        "capture::tests::accepting_goes_on_after_the_process_ran_out_of_file_descriptors";
    if std::env::var_os(FEW_DESCRIPTORS).is_none() {
        // The limit is the process's: lowered here, it would fail the tests running beside
        // this one. So this test runs again, alone, in a process of its own.
        let output = std::process::Command::new(std::env::current_exe().unwrap())
            .args([NAME, "--exact", "--test-threads=1", "--nocapture"])
            .env(FEW_DESCRIPTORS, "1")
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{said}");
        assert!(said.contains("1 passed"), "{said}");
        return;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let server = CaptureServer::start(dir.path(), "run").await.unwrap();
        let address = ("127.0.0.1", server.port());
        let mut spare = Some(std::fs::File::open("/dev/null").unwrap());
        let open = std::fs::read_dir("/proc/self/fd").unwrap().count() as u64;
        let limit = libc::rlimit {
            rlim_cur: open + 10,
            rlim_max: libc::RLIM_INFINITY,
        };
        let mut old = limit;
        // SAFETY: plain calls on the process's own limits, with valid pointers.
        unsafe {
            assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut old), 0);
            let lowered = libc::rlimit {
                rlim_max: old.rlim_max,
                ..limit
            };
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lowered), 0);
        }
        let banner = |mut client: TcpStream| async move {
            let mut line = [0u8; 5];
            let read = client.read_exact(&mut line);
            let answered = tokio::time::timeout(Duration::from_secs(2), read).await;
            (client, matches!(answered, Ok(Ok(_))) && &line == b"220 m")
        };
        // Connections until the server's end of one finds no descriptor left (each takes two:
        // the client's and the server's; the spare makes the last one the server's).
        let mut held = Vec::new();
        loop {
            assert!(held.len() < 100, "never ran out of descriptors");
            match TcpStream::connect(address).await {
                Ok(client) => {
                    let (client, greeted) = banner(client).await;
                    held.push(client);
                    if !greeted {
                        break;
                    }
                }
                Err(_) if spare.is_some() => spare = None,
                Err(e) => panic!("out of descriptors on the client's side: {e}"),
            }
        }
        drop(held);
        let client = TcpStream::connect(address).await.unwrap();
        let (_, greeted) = banner(client).await;
        assert!(
            greeted,
            "no longer accepting once descriptors were free again"
        );
    });
}
