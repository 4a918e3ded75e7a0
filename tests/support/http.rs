//! `missive serve` as a child process, a campaign for it with the links of its people, and a
//! real HTTP/1.1 client to talk to it: hyper's own, over a TCP connection of its own for each
//! request (as a thousand different people would).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use missive::unsubscribe::{Secret, Unsubscribe};

use super::harness::{Fixture, people};

/// The secret the serve tests sign their links with.
pub const SECRET: &str = "serve-tests-key-serve-tests-key-0123";

/// A running `missive serve`, killed if a test ends without stopping it.
pub struct Serving {
    pub child: Child,
    pub addr: SocketAddr,
}

impl Serving {
    /// Starts `missive serve <campaigns…> --listen 127.0.0.1:0` with [`SECRET`], and waits for
    /// the line that says where it listens.
    pub fn start(campaigns: &[&Path]) -> Serving {
        let mut child = Command::new(env!("CARGO_BIN_EXE_missive"))
            .arg("serve")
            .args(campaigns)
            .args(["--listen", "127.0.0.1:0"])
            .env("MISSIVE_UNSUBSCRIBE_SECRET", SECRET)
            .env("MISSIVE_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start missive serve");
        let stdout = child.stdout.take().unwrap();
        let (found, address) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let first = lines.next().and_then(Result::ok).unwrap_or_default();
            let _ = found.send(first);
            // Keep reading, so that the pipe never fills.
            for _ in lines {}
        });
        let line = address
            .recv_timeout(Duration::from_secs(30))
            .expect("missive serve says where it listens within 30 s");
        let addr = line
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("first line: {line:?}"))
            .parse()
            .unwrap();
        Serving { child, addr }
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    }

    /// Waits for the process to exit, at most `limit`.
    pub fn wait(&mut self, limit: Duration) -> Result<ExitStatus, ExitStatus> {
        super::wait_or_kill(&mut self.child, limit)
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What came back.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// One request on a connection of its own: `target` is the path and query.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> Reply {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("HTTP handshake");
    tokio::spawn(connection);
    let mut builder = hyper::Request::builder()
        .method(method)
        .uri(target)
        .header("host", addr.to_string());
    if let Some(content_type) = content_type {
        builder = builder.header("content-type", content_type);
    }
    let response = sender
        .send_request(builder.body(Full::new(Bytes::from(body))).unwrap())
        .await
        .unwrap_or_else(|e| panic!("{method} {target}: {e}"));
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// A one-click unsubscribe (RFC 8058) of the link `target`, as a mail client posts it.
pub async fn one_click(addr: SocketAddr, target: &str) -> Reply {
    request(addr, "POST", target, Some(URLENCODED), ONE_CLICK.into()).await
}

/// A runtime for a test's requests.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// What a one-click POST carries (RFC 8058), and its content type.
pub const URLENCODED: &str = "application/x-www-form-urlencoded";
pub const ONE_CLICK: &[u8] = b"List-Unsubscribe=One-Click";

const SECTIONS: &str = r#"
[unsubscribe]
mailto = "desabonnement@example.org"
url = "https://dons.example.org/desabonnement"

[suppression]
unsubscribed = "suppression/unsubscribed.txt"
"#;

/// A campaign of `n` people with `[unsubscribe]` and an empty unsubscribed file.
pub fn campaign(n: usize) -> Fixture {
    let fixture = Fixture::new(&people(n), SECTIONS);
    fixture.write("suppression/unsubscribed.txt", "");
    fixture
}

/// The unsubscribe settings of [`campaign`] under [`SECRET`], for campaign id `campaign_id`.
pub fn unsubscribe_for(campaign_id: &str) -> Unsubscribe {
    Unsubscribe {
        campaign_id: campaign_id.into(),
        mailto: "desabonnement@example.org".parse().unwrap(),
        url: "https://dons.example.org/desabonnement".parse().unwrap(),
        footer: String::new(),
        link_text: String::new(),
        secret: Secret::new(SECRET).unwrap(),
    }
}

/// The path and query of `address`'s link, as missive puts it in the message.
pub fn target(address: &str) -> String {
    let link = unsubscribe_for("essai-2026").link(address);
    link.strip_prefix("https://dons.example.org")
        .unwrap()
        .to_owned()
}

/// The campaign's unsubscribed file.
pub fn unsubscribed(fixture: &Fixture) -> String {
    std::fs::read_to_string(fixture.path("suppression/unsubscribed.txt")).unwrap()
}

/// The one-click form as `multipart/form-data` with `boundary`.
pub fn multipart(boundary: &str) -> Vec<u8> {
    format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\n\
         One-Click\r\n--{boundary}--\r\n"
    )
    .into_bytes()
}

/// Writes `bytes` on a connection of its own and returns what came back before it closed (or
/// before 15 s passed).
pub fn raw(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let _ = stream.write_all(bytes);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}
