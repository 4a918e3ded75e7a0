//! End to end: `missive send --dry-run` delivers the shipped example campaign to a real MailDev
//! (the npm package pinned in `tests/maildev/package.json`), and MailDev's REST API shows one
//! correct letter per person of `recipients/donors.csv`, in the person's language: French or
//! English (`[letters]`), both of which the list holds.
//!
//! `cargo test` is the only command needed: when `tests/maildev/node_modules` lacks the pinned
//! MailDev, this test runs `npm ci` there first. Without Node.js and npm it fails and says how to
//! install them; it never skips.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::wait_or_kill;

/// Longest `npm ci` may take (a cold cache downloads ~270 packages).
const NPM_CI_TIMEOUT: Duration = Duration::from_secs(600);
/// Longest MailDev may take to listen on both ports.
const MAILDEV_START_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest one `missive send --dry-run` of the example campaign may take.
const MISSIVE_TIMEOUT: Duration = Duration::from_secs(120);
/// Longest MailDev's API may take to list every delivered message.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);
/// Connect, read and write timeout of one HTTP request to MailDev.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// The oldest Node.js the pinned MailDev supports (its `engines.node`).
const MIN_NODE_MAJOR: u32 = 20;

const HOW_TO_INSTALL: &str = "This test runs MailDev, which needs Node.js >= 20 and npm: install \
     them (Debian/Ubuntu: `apt-get install nodejs npm`; elsewhere https://nodejs.org/), or run \
     `npm ci --prefix tests/maildev` yourself, then rerun `cargo test`.";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn maildev_dir() -> PathBuf {
    repo().join("tests").join("maildev")
}

/// Writes straight to the process's stderr, past the test harness's capture, so a person running
/// `cargo test` sees what is going on while a slow install runs.
fn announce(message: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "e2e_maildev: {message}");
}

/// The last `lines` lines of a file, for diagnostics.
fn tail(path: &Path, lines: usize) -> String {
    let text = match std::fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => return format!("(cannot read {}: {e})\n", path.display()),
    };
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    let mut out = String::new();
    if start > 0 {
        out.push_str(&format!("(… {start} earlier lines)\n"));
    }
    for line in &all[start..] {
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// What one bounded run of a command printed.
struct Finished {
    status: Option<ExitStatus>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

impl Finished {
    fn describe(&self) -> String {
        let status = match &self.status {
            Some(status) => status.to_string(),
            None => "killed: it did not finish in time".to_owned(),
        };
        format!(
            "{status} after {:.1} s\n--- stdout\n{}--- stderr\n{}",
            self.elapsed.as_secs_f64(),
            self.stdout,
            self.stderr
        )
    }
}

/// Runs `command` to completion (at most `timeout`), its output going to files in `scratch` so a
/// chatty child never blocks on a full pipe.
fn run_bounded(mut command: Command, timeout: Duration, scratch: &Path, name: &str) -> Finished {
    let out_path = scratch.join(format!("{name}.stdout"));
    let err_path = scratch.join(format!("{name}.stderr"));
    command
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).expect("create stdout file"))
        .stderr(File::create(&err_path).expect("create stderr file"));
    let started = Instant::now();
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
    let status = wait_or_kill(&mut child, timeout).ok();
    let read = |path: &Path| {
        String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
    };
    Finished {
        status,
        stdout: read(&out_path),
        stderr: read(&err_path),
        elapsed: started.elapsed(),
    }
}

/// The MailDev version `package.json` pins.
fn pinned_maildev_version() -> String {
    let path = maildev_dir().join("package.json");
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let json: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()));
    json["dependencies"]["maildev"]
        .as_str()
        .unwrap_or_else(|| panic!("{} pins no dependencies.maildev", path.display()))
        .to_owned()
}

/// The MailDev version in `node_modules`, if one is installed.
fn installed_maildev_version() -> Option<String> {
    let dir = maildev_dir().join("node_modules");
    if !dir.join(".bin").join("maildev").exists() {
        return None;
    }
    let text = std::fs::read_to_string(dir.join("maildev").join("package.json")).ok()?;
    let json: Value = serde_json::from_str(&text).ok()?;
    json["version"].as_str().map(str::to_owned)
}

/// Fails unless `node` runs and is recent enough for the pinned MailDev.
fn require_node() {
    let output = Command::new("node")
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run `node --version` ({e}). {HOW_TO_INSTALL}"));
    let version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let major = version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse::<u32>().ok());
    match major {
        Some(major) if output.status.success() && major >= MIN_NODE_MAJOR => {}
        _ => panic!(
            "`node --version` says {version:?}; MailDev needs Node.js >= {MIN_NODE_MAJOR}. {HOW_TO_INSTALL}"
        ),
    }
}

/// Installs the pinned MailDev with `npm ci` unless it is already there.
fn ensure_maildev_installed(scratch: &Path) {
    require_node();
    let pinned = pinned_maildev_version();
    let installed = installed_maildev_version();
    if installed.as_deref() == Some(pinned.as_str()) {
        return;
    }
    let dir = maildev_dir();
    let reason = match &installed {
        Some(other) => format!("MailDev {other} is installed but package.json pins {pinned}"),
        None => format!(
            "MailDev {pinned} is not installed in {}",
            dir.join("node_modules").display()
        ),
    };
    announce(&format!(
        "{reason}; running `npm ci --no-audit --no-fund --prefix {}` (once; it takes a few seconds to a few minutes)",
        dir.display()
    ));
    if let Err(e) = Command::new("npm")
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        panic!("{reason}, and `npm` cannot be run ({e}). {HOW_TO_INSTALL}");
    }
    let mut npm = Command::new("npm");
    npm.args(["ci", "--no-audit", "--no-fund", "--prefix"])
        .arg(&dir)
        .current_dir(&dir);
    let finished = run_bounded(npm, NPM_CI_TIMEOUT, scratch, "npm-ci");
    let succeeded = finished.status.is_some_and(|s| s.success());
    if !succeeded || installed_maildev_version().as_deref() != Some(pinned.as_str()) {
        panic!(
            "`npm ci --prefix {}` did not install MailDev {pinned}: {}\n{HOW_TO_INSTALL}",
            dir.display(),
            finished.describe()
        );
    }
    announce(&format!(
        "installed MailDev {pinned} in {:.1} s",
        finished.elapsed.as_secs_f64()
    ));
}

/// Two distinct ports that were free on 127.0.0.1 a moment ago.
fn free_ports() -> (u16, u16) {
    let a = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a free port");
    let b = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a free port");
    (
        a.local_addr().expect("local addr").port(),
        b.local_addr().expect("local addr").port(),
    )
}

/// A running MailDev; killed, with its process group, when dropped.
struct MailDev {
    child: Child,
    smtp_port: u16,
    web_port: u16,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
}

impl MailDev {
    /// Starts MailDev on two free loopback ports, storing mail in `scratch/mail`, and waits until
    /// both ports accept connections.
    fn start(scratch: &Path) -> MailDev {
        let (smtp_port, web_port) = free_ports();
        let mail_dir = scratch.join("mail");
        std::fs::create_dir_all(&mail_dir).expect("create the mail directory");
        // An explicit, empty config file: MailDev would otherwise look for one in its working
        // directory and every parent.
        let config = scratch.join("maildev.json");
        std::fs::write(&config, "{}\n").expect("write the MailDev config");
        let stdout_path = scratch.join("maildev.stdout");
        let stderr_path = scratch.join("maildev.stderr");
        let bin = maildev_dir()
            .join("node_modules")
            .join(".bin")
            .join("maildev");

        let mut command = Command::new(&bin);
        command
            .arg("--smtp")
            .arg(smtp_port.to_string())
            .arg("--web")
            .arg(web_port.to_string())
            .args(["--ip", "127.0.0.1", "--web-ip", "127.0.0.1"])
            .arg("--mail-directory")
            .arg(&mail_dir)
            .arg("--config")
            .arg(&config)
            .current_dir(scratch)
            .stdin(Stdio::null())
            .stdout(File::create(&stdout_path).expect("create the MailDev stdout file"))
            .stderr(File::create(&stderr_path).expect("create the MailDev stderr file"));
        // Nothing from the environment may turn on an outgoing relay, auth, or other ports.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("MAILDEV_") {
                command.env_remove(key);
            }
        }
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}. {HOW_TO_INSTALL}", bin.display()));
        let mut maildev = MailDev {
            child,
            smtp_port,
            web_port,
            stdout_path,
            stderr_path,
        };
        maildev.wait_until_listening();
        maildev
    }

    fn wait_until_listening(&mut self) {
        let deadline = Instant::now() + MAILDEV_START_TIMEOUT;
        let mut pending = vec![self.smtp_port, self.web_port];
        while !pending.is_empty() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "MailDev exited before listening ({status})\n{}",
                    self.diagnostics()
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "MailDev did not listen on 127.0.0.1:{pending:?} within {MAILDEV_START_TIMEOUT:?}\n{}",
                    self.diagnostics()
                );
            }
            pending.retain(|&port| {
                let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
                TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_err()
            });
            if !pending.is_empty() {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    /// The tail of what MailDev printed.
    fn diagnostics(&self) -> String {
        format!(
            "--- MailDev stdout (tail)\n{}--- MailDev stderr (tail)\n{}",
            tail(&self.stdout_path, 30),
            tail(&self.stderr_path, 60)
        )
    }

    /// `GET /api/email` (MailDev 3; MailDev 2 served `/email`), as JSON.
    fn emails(&self) -> Result<Vec<Value>, String> {
        let (status, body) = http_get(self.web_port, "/api/email")?;
        if status != 200 {
            return Err(format!("GET /api/email answered {status}: {body}"));
        }
        match serde_json::from_str(&body) {
            Ok(Value::Array(emails)) => Ok(emails),
            Ok(other) => Err(format!("GET /api/email is not a JSON array: {other}")),
            Err(e) => Err(format!("GET /api/email is not JSON ({e}): {body}")),
        }
    }
}

impl Drop for MailDev {
    fn drop(&mut self) {
        // MailDev is one Node process today, but kill its whole group in case it ever forks.
        #[cfg(unix)]
        {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", self.child.id())])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.1 GET to 127.0.0.1:`port`: the status code and the body as text.
fn http_get(port: u16, path: &str) -> Result<(u16, String), String> {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&address, HTTP_TIMEOUT)
        .map_err(|e| format!("connect {address}: {e}"))?;
    stream
        .set_read_timeout(Some(HTTP_TIMEOUT))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(HTTP_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("send GET {path}: {e}"))?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .map_err(|e| format!("read the answer to GET {path}: {e}"))?;

    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| {
            format!(
                "GET {path}: no end of headers in {:?}",
                String::from_utf8_lossy(&raw)
            )
        })?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let body = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| format!("GET {path}: bad status line {status_line:?}"))?;
    let headers: BTreeMap<String, String> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();

    let chunked = headers
        .get("transfer-encoding")
        .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
    let body = if chunked {
        dechunk(body).map_err(|e| format!("GET {path}: {e}"))?
    } else if let Some(length) = headers.get("content-length") {
        let length: usize = length
            .parse()
            .map_err(|_| format!("GET {path}: bad Content-Length {length:?}"))?;
        body.get(..length)
            .ok_or_else(|| format!("GET {path}: body shorter than its Content-Length {length}"))?
            .to_vec()
    } else {
        body.to_vec()
    };
    let body =
        String::from_utf8(body).map_err(|e| format!("GET {path}: body is not UTF-8: {e}"))?;
    Ok((status, body))
}

/// Decodes a `Transfer-Encoding: chunked` body.
fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("truncated chunk size line")?;
        let size_line = String::from_utf8_lossy(&rest[..end]).into_owned();
        let size_hex = size_line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|_| format!("bad chunk size {size_line:?}"))?;
        rest = &rest[end + 2..];
        if size == 0 {
            return Ok(body);
        }
        let chunk = rest.get(..size).ok_or("truncated chunk")?;
        body.extend_from_slice(chunk);
        rest = rest.get(size + 2..).ok_or("truncated chunk")?;
    }
}

/// One row of `recipients/donors.csv`.
#[derive(Debug)]
struct Donor {
    email: String,
    first_name: String,
    amount: String,
    /// The `language` column, as written (empty without the column).
    language: String,
}

fn donors(path: &Path) -> Vec<Donor> {
    let mut reader =
        csv::Reader::from_path(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let headers = reader.headers().expect("a header row").clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h.trim() == name)
            .unwrap_or_else(|| panic!("{} has no {name} column: {headers:?}", path.display()))
    };
    let (email, first_name, amount) = (column("email"), column("first_name"), column("amount"));
    let language = headers.iter().position(|h| h.trim() == "language");
    reader
        .records()
        .map(|record| {
            let record = record.unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
            let field = |i: usize| record.get(i).unwrap_or_default().trim().to_owned();
            Donor {
                email: field(email),
                first_name: field(first_name),
                amount: field(amount),
                language: language.map(field).unwrap_or_default(),
            }
        })
        .collect()
}

/// What the test needs from `campaign.toml`.
struct Campaign {
    id: String,
    /// The default letter's language (`language`).
    language: String,
    /// Each letter's subject, by language: `[letters.<language>]`, or the one `subject`.
    subjects: BTreeMap<String, String>,
    recipients: PathBuf,
    /// The domain of `from`, which Message-IDs use.
    domain: String,
}

fn campaign(path: &Path) -> Campaign {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let toml: toml::Table =
        toml::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()));
    let string = |key: &str| {
        toml.get(key)
            .and_then(|v| v.as_str())
            .unwrap_or_else(|| panic!("{} has no string `{key}`", path.display()))
            .to_owned()
    };
    let from = string("from");
    let domain = from
        .rsplit_once('@')
        .map(|(_, domain)| domain.trim_end_matches(['>', ' ']).to_owned())
        .unwrap_or_else(|| panic!("cannot read the domain of from = {from:?}"));
    let language = string("language");
    let subjects = match toml.get("letters").and_then(|v| v.as_table()) {
        Some(letters) => letters
            .iter()
            .map(|(tag, letter)| {
                let subject = letter["subject"].as_str().expect("a subject").to_owned();
                (tag.to_lowercase(), subject)
            })
            .collect(),
        None => BTreeMap::from([(language.to_lowercase(), string("subject"))]),
    };
    Campaign {
        id: string("id"),
        language: language.to_lowercase(),
        subjects,
        recipients: path
            .parent()
            .expect("campaign dir")
            .join(string("recipients")),
        domain,
    }
}

/// How maud escapes text, so a name can be looked for in the HTML.
fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Whether `id` is `<{campaign}.{24 lowercase hex}@{domain}>`.
fn is_campaign_message_id(id: &str, campaign: &Campaign) -> bool {
    let Some(inner) = id.strip_prefix('<').and_then(|s| s.strip_suffix('>')) else {
        return false;
    };
    let Some((local, domain)) = inner.split_once('@') else {
        return false;
    };
    let Some(hash) = local.strip_prefix(&format!("{}.", campaign.id)) else {
        return false;
    };
    domain == campaign.domain
        && hash.len() == 24
        && hash
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The language of the letter `donor` must get: their own when the campaign has a letter in it
/// (`fr-CA` reads as `fr`), else the default.
fn expected_language(donor: &Donor, campaign: &Campaign) -> String {
    let value = donor.language.to_lowercase().replace('_', "-");
    if campaign.subjects.contains_key(&value) {
        return value;
    }
    let primary = value.split('-').next().unwrap_or_default();
    if campaign.subjects.contains_key(primary) {
        return primary.to_owned();
    }
    campaign.language.clone()
}

/// The words each language's letter must hold: its greeting, the three stories with what got
/// stuck and what was learned, the ask with the person's amount, and the unsubscribe footer.
struct Words {
    hello: &'static str,
    needles: [&'static str; 6],
    amount: fn(&str) -> String,
}

const FRENCH: Words = Words {
    hello: "Bonjour",
    needles: [
        "Erreur n°1",
        "Erreur n°2",
        "Erreur n°3",
        "Ce qui a coincé",
        "Ce que nous avons appris",
        "Se désabonner en un clic",
    ],
    amount: |amount| format!("{amount}\u{a0}$"),
};

const ENGLISH: Words = Words {
    hello: "Hello",
    needles: [
        "Mistake #1",
        "Mistake #2",
        "Mistake #3",
        "What got stuck",
        "What we learned",
        "Unsubscribe in one click",
    ],
    amount: |amount| format!("donate ${amount} to Mozilla"),
};

/// Every problem with the letter MailDev received for `donor`.
fn check_email(email: &Value, donor: &Donor, campaign: &Campaign) -> Vec<String> {
    let mut problems = Vec::new();
    let who = &donor.email;
    let language = expected_language(donor, campaign);
    let words = match language.as_str() {
        "fr" => &FRENCH,
        "en" => &ENGLISH,
        other => return vec![format!("{who}: this test knows no letter in {other:?}")],
    };
    let subject = email["subject"].as_str().unwrap_or_default();
    if subject != campaign.subjects[&language] {
        problems.push(format!(
            "{who}: subject is {subject:?}, not {:?}",
            campaign.subjects[&language]
        ));
    }
    let text = email["text"].as_str().unwrap_or_default();
    let html = email["html"].as_str().unwrap_or_default();
    if text.trim().is_empty() {
        problems.push(format!("{who}: no text/plain part"));
    }
    if html.trim().is_empty() {
        problems.push(format!("{who}: no text/html part"));
    }
    if !html.contains(&format!("lang=\"{language}\"")) {
        problems.push(format!("{who}: the HTML does not say lang=\"{language}\""));
    }
    let greeting = if donor.first_name.is_empty() {
        format!("{},", words.hello)
    } else {
        format!("{} {},", words.hello, html_escape(&donor.first_name))
    };
    if !html.contains(&greeting) {
        problems.push(format!("{who}: the HTML lacks the greeting {greeting:?}"));
    }
    for needle in words.needles {
        if !text.contains(needle) {
            problems.push(format!("{who}: the text part lacks {needle:?}"));
        }
    }
    let amount = if donor.amount.is_empty() {
        "25"
    } else {
        &donor.amount
    };
    let ask = (words.amount)(amount);
    if !text.contains(&ask) {
        problems.push(format!("{who}: the text part lacks the amount {ask:?}"));
    }
    // French spacing in French only.
    if language != "fr" && (text.contains(['\u{a0}', '\u{202f}'])) {
        problems.push(format!(
            "{who}: French no-break spaces in a {language} letter"
        ));
    }
    let message_id = message_id(email);
    if !is_campaign_message_id(message_id, campaign) {
        problems.push(format!(
            "{who}: Message-ID {message_id:?} is not <{}.<24 hex>@{}>",
            campaign.id, campaign.domain
        ));
    }
    problems
}

/// The Message-ID MailDev parsed: MailDev 3 keeps it in `headers`, MailDev 2 also as `messageId`.
fn message_id(email: &Value) -> &str {
    email["headers"]["message-id"]
        .as_str()
        .or_else(|| email["messageId"].as_str())
        .unwrap_or_default()
}

/// The lower-cased `to` addresses of one email.
fn to_addresses(email: &Value) -> Vec<String> {
    email["to"]
        .as_array()
        .map(|to| {
            to.iter()
                .filter_map(|a| a["address"].as_str())
                .map(str::to_lowercase)
                .collect()
        })
        .unwrap_or_default()
}

/// A one-line-per-email summary of what MailDev holds, for failure messages.
fn summary(emails: &[Value]) -> String {
    let mut out = String::new();
    for email in emails {
        out.push_str(&format!(
            "  to {:?} subject {:?} message-id {:?}\n",
            to_addresses(email),
            email["subject"].as_str().unwrap_or_default(),
            message_id(email)
        ));
    }
    out
}

#[test]
fn dry_run_delivers_the_example_campaign_to_maildev() {
    let started = Instant::now();
    let scratch = tempfile::tempdir().expect("temp dir");
    ensure_maildev_installed(scratch.path());

    let campaign_path = repo().join("campaign.toml");
    let campaign = campaign(&campaign_path);
    let donors = donors(&campaign.recipients);
    assert!(
        !donors.is_empty(),
        "{} lists nobody",
        campaign.recipients.display()
    );
    let expected: BTreeMap<String, &Donor> =
        donors.iter().map(|d| (d.email.to_lowercase(), d)).collect();
    assert_eq!(
        expected.len(),
        donors.len(),
        "{} lists an address twice; this test expects one letter per row",
        campaign.recipients.display()
    );

    let maildev = MailDev::start(scratch.path());

    // From a directory that is not the repository's: nothing may depend on the working directory.
    let cwd = scratch.path().join("cwd");
    std::fs::create_dir_all(&cwd).expect("create the working directory");
    let mut missive = Command::new(env!("CARGO_BIN_EXE_missive"));
    missive
        .arg("send")
        .arg(&campaign_path)
        .arg("--dry-run")
        .arg("--smtp")
        .arg(format!("smtp://127.0.0.1:{}", maildev.smtp_port))
        .current_dir(&cwd)
        .env_remove("MISSIVE_SMTP_PASSWORD")
        .env_remove("MISSIVE_UNSUBSCRIBE_SECRET")
        .env_remove("MISSIVE_LOG");
    let run = run_bounded(missive, MISSIVE_TIMEOUT, scratch.path(), "missive");
    assert!(
        run.status.is_some_and(|s| s.code() == Some(0)),
        "`missive send --dry-run` should exit 0: {}\n{}",
        run.describe(),
        maildev.diagnostics()
    );

    // Wait until MailDev lists as many messages as there are people (or more).
    let deadline = Instant::now() + DELIVERY_TIMEOUT;
    let emails = loop {
        let listed = maildev.emails();
        match &listed {
            Ok(emails) if emails.len() >= expected.len() => {
                // A moment more, to see any message beyond the expected count.
                std::thread::sleep(Duration::from_millis(300));
                break maildev
                    .emails()
                    .unwrap_or_else(|e| panic!("{e}\n{}", maildev.diagnostics()));
            }
            _ if Instant::now() > deadline => {
                let seen = match &listed {
                    Ok(emails) => format!("{} message(s):\n{}", emails.len(), summary(emails)),
                    Err(e) => e.clone(),
                };
                panic!(
                    "MailDev did not list {} messages within {DELIVERY_TIMEOUT:?}; it has {seen}\n--- missive\n{}\n{}",
                    expected.len(),
                    run.describe(),
                    maildev.diagnostics()
                );
            }
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    };

    let mut problems = Vec::new();
    if emails.len() != expected.len() {
        problems.push(format!(
            "MailDev received {} messages for {} recipients",
            emails.len(),
            expected.len()
        ));
    }
    // The shipped list holds both languages: the test covers both.
    let languages: BTreeSet<String> = donors
        .iter()
        .map(|donor| expected_language(donor, &campaign))
        .collect();
    assert!(
        languages.contains("fr") && languages.contains("en"),
        "{} should hold people of both languages, holds {languages:?}",
        campaign.recipients.display()
    );
    let mut seen_ids = BTreeSet::new();
    let mut received: BTreeMap<String, usize> = BTreeMap::new();
    for email in &emails {
        let to = to_addresses(email);
        let [address] = to.as_slice() else {
            problems.push(format!(
                "a message is addressed to {to:?}, not to exactly one person"
            ));
            continue;
        };
        *received.entry(address.clone()).or_default() += 1;
        match expected.get(address) {
            Some(donor) => problems.extend(check_email(email, donor, &campaign)),
            None => problems.push(format!(
                "a message went to {address}, who is not in the list"
            )),
        }
        let id = message_id(email);
        if !seen_ids.insert(id.to_owned()) {
            problems.push(format!("Message-ID {id:?} is used twice"));
        }
    }
    for address in expected.keys() {
        match received.get(address).copied().unwrap_or(0) {
            1 => {}
            n => problems.push(format!("{address} received {n} messages, not 1")),
        }
    }

    assert!(
        problems.is_empty(),
        "{} problem(s):\n  {}\n--- received\n{}--- missive\n{}\n{}",
        problems.len(),
        problems.join("\n  "),
        summary(&emails),
        run.describe(),
        maildev.diagnostics()
    );
    println!(
        "{} letters checked in MailDev in {:.1} s (missive ran {:.1} s)",
        emails.len(),
        started.elapsed().as_secs_f64(),
        run.elapsed.as_secs_f64()
    );
}
