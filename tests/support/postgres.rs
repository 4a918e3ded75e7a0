//! A throwaway PostgreSQL server for the tests of the database send log: `initdb` in a temporary
//! folder, `postgres` on a free port of 127.0.0.1 with its Unix socket in that folder, stopped
//! (fast shutdown) when dropped, and restartable, so a test can take the database away mid-run.
//!
//! PostgreSQL refuses to run as root, and the tests do (CI too): then the folder is given to the
//! `postgres` system user the server package makes, and the server runs as that user. Logins
//! over TCP need a password (scram-sha-256, [`PgServer::PASSWORD`]), so the tests go through the
//! same authentication as a real database; the Unix socket trusts, for `psql` in the tests.
//!
//! No server installed: the test fails, saying how to install one. It never skips.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A PostgreSQL server of its own for one test.
pub struct PgServer {
    bin: PathBuf,
    /// Holds the data folder, the socket and the server's log; owned by `user` when set.
    dir: tempfile::TempDir,
    port: u16,
    /// The unprivileged user the server runs as when the tests run as root.
    user: Option<String>,
    /// `listen_addresses`: 127.0.0.1, and the addresses of [`PgServer::start_listening_also`].
    listen: String,
    running: bool,
}

impl PgServer {
    /// The superuser's password for logins over TCP.
    pub const PASSWORD: &'static str = "missive-test-password";
    /// The superuser's name.
    pub const USER: &'static str = "missive";

    /// Makes a database cluster in a new temporary folder and starts it.
    pub fn start() -> PgServer {
        PgServer::start_listening_also(&[])
    }

    /// [`PgServer::start`], listening on `also` too (the tests' end of a [`super::netns::Netns`]),
    /// where logins must come over TLS (turn it on with [`PgServer::enable_tls`]).
    pub fn start_listening_also(also: &[std::net::Ipv4Addr]) -> PgServer {
        let bin = bin_dir();
        let user = running_as_root().then(|| "postgres".to_owned());
        // In /tmp, which every user may cross (a TMPDIR under /root may not be), and short: the
        // socket's whole path must fit in 107 bytes.
        let dir = tempfile::Builder::new()
            .prefix("missive-pg")
            .tempdir_in("/tmp")
            .expect("a temporary folder");
        if let Some(user) = &user {
            let (uid, gid) = ids_of(user);
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .expect("give the server's folder to its user");
        }
        let pwfile = dir.path().join("password");
        std::fs::write(&pwfile, PgServer::PASSWORD).unwrap();
        if let Some(user) = &user {
            let (uid, gid) = ids_of(user);
            std::os::unix::fs::chown(&pwfile, Some(uid), Some(gid)).unwrap();
        }
        let port = free_port();
        let mut server = PgServer {
            bin,
            dir,
            port,
            user,
            listen: std::iter::once("127.0.0.1".to_owned())
                .chain(also.iter().map(|address| address.to_string()))
                .collect::<Vec<_>>()
                .join(","),
            running: false,
        };
        let data = server.data();
        let initdb = server.bin.join("initdb");
        let output = server
            .command(&initdb)
            .arg("--pgdata")
            .arg(&data)
            .args(["--username", PgServer::USER, "--pwfile"])
            .arg(&pwfile)
            .args([
                "--auth-host=scram-sha-256",
                "--auth-local=trust",
                "--no-sync",
                "--encoding=UTF8",
                "--locale=C",
            ])
            .output()
            .expect("run initdb");
        check(&output, "initdb");
        if !also.is_empty() {
            let hba = data.join("pg_hba.conf");
            let mut rules = std::fs::read_to_string(&hba).unwrap();
            for address in also {
                // The far ends of the namespaces' veth pairs: TLS only, with the password.
                let net = address.octets();
                rules.push_str(&format!(
                    "hostssl all all {}.{}.{}.0/24 scram-sha-256\n",
                    net[0], net[1], net[2]
                ));
            }
            std::fs::write(&hba, rules).unwrap();
        }
        server.start_again();
        server
    }

    /// The URL of its database `postgres` over TCP, without the password (PGPASSWORD's).
    pub fn url(&self) -> String {
        format!(
            "postgres://{}@127.0.0.1:{}/postgres",
            PgServer::USER,
            self.port
        )
    }

    /// The URL of its database `postgres` at `host`, verifying TLS against `authority`.
    pub fn url_at(&self, host: std::net::Ipv4Addr, authority: &Path) -> String {
        format!(
            "postgres://{}@{host}:{}/postgres?sslmode=verify-full&sslrootcert={}",
            PgServer::USER,
            self.port,
            authority.display()
        )
    }

    /// The TCP port the server listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Starts the server (again, after [`PgServer::stop`]) on the same port, and waits until
    /// it takes connections.
    pub fn start_again(&mut self) {
        assert!(!self.running, "the server is already running");
        let pg_ctl = self.bin.join("pg_ctl");
        let options = format!(
            "-c listen_addresses={} -p {} -k {}",
            self.listen,
            self.port,
            self.dir.path().display()
        );
        let output = self
            .command(&pg_ctl)
            .arg("start")
            .arg("--pgdata")
            .arg(self.data())
            .arg("--log")
            .arg(self.dir.path().join("server.log"))
            .args(["--wait", "--timeout=60", "-o", &options])
            .output()
            .expect("run pg_ctl start");
        self.running = true;
        if !output.status.success() {
            let log = std::fs::read_to_string(self.dir.path().join("server.log"));
            panic!(
                "pg_ctl start failed: {}{}\nserver log:\n{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr),
                log.unwrap_or_default()
            );
        }
        // pg_ctl waits for the socket; wait for TCP too, within the same bound.
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the server never listened on TCP"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Turns TLS on, with the certificate and key at `cert` and `key` (PEM), and has the
    /// server read its configuration again. Connections may then use TLS; plain ones still work.
    pub fn enable_tls(&self, cert: &Path, key: &Path) {
        let (server_cert, server_key) = (
            self.dir.path().join("server.crt"),
            self.dir.path().join("server.key"),
        );
        std::fs::copy(cert, &server_cert).unwrap();
        std::fs::copy(key, &server_key).unwrap();
        // PostgreSQL refuses a key others may read.
        std::fs::set_permissions(
            &server_key,
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
        if let Some(user) = &self.user {
            let (uid, gid) = ids_of(user);
            for file in [&server_cert, &server_key] {
                std::os::unix::fs::chown(file, Some(uid), Some(gid)).unwrap();
            }
        }
        self.sql(&format!(
            "ALTER SYSTEM SET ssl_cert_file = '{}'",
            server_cert.display()
        ));
        self.sql(&format!(
            "ALTER SYSTEM SET ssl_key_file = '{}'",
            server_key.display()
        ));
        self.sql("ALTER SYSTEM SET ssl = on");
        self.sql("SELECT pg_reload_conf()");
        // The reload is asynchronous: wait until the server says TLS is on.
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.sql("SHOW ssl") != "on" {
            assert!(Instant::now() < deadline, "the server never turned TLS on");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server with a fast shutdown (clients are disconnected, nothing is lost).
    pub fn stop(&mut self) {
        if !self.running {
            return;
        }
        self.running = false;
        let pg_ctl = self.bin.join("pg_ctl");
        let output = self
            .command(&pg_ctl)
            .arg("stop")
            .arg("--pgdata")
            .arg(self.data())
            .args(["--mode=fast", "--wait", "--timeout=60"])
            .output()
            .expect("run pg_ctl stop");
        check(&output, "pg_ctl stop");
    }

    /// Runs `sql` with `psql` over the Unix socket, as the superuser; returns what it printed
    /// (unaligned, tuples only). Panics when it fails.
    pub fn sql(&self, sql: &str) -> String {
        let output = self
            .command(&self.bin.join("psql"))
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(self.dir.path())
            .args(["-p", &self.port.to_string(), "-U", PgServer::USER])
            .args(["-d", "postgres", "-c", sql])
            .output()
            .expect("run psql");
        check(&output, "psql");
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    }

    /// A `psql` session that runs `sql` and stays open until dropped: what it takes (a lock),
    /// it holds meanwhile. Returns once `until` (a query) prints `t`.
    pub fn session(&self, sql: &str, until: &str) -> Session {
        let mut child = self
            .command(&self.bin.join("psql"))
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(self.dir.path())
            .args(["-p", &self.port.to_string(), "-U", PgServer::USER])
            .args(["-d", "postgres"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("run psql");
        let stdin = child.stdin.as_mut().expect("psql's stdin");
        writeln!(stdin, "{sql}").expect("write to psql");
        stdin.flush().expect("write to psql");
        let session = Session(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.sql(until) != "t" {
            assert!(Instant::now() < deadline, "psql did not run {sql} in 20 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        session
    }

    /// Ends every connection made by missive (by its application name), as a database
    /// administrator or a failover would; returns how many were ended.
    pub fn terminate_missive_backends(&self) -> usize {
        self.sql(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE application_name LIKE 'missive %'",
        )
        .parse()
        .unwrap()
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A command for `program`, run as the server's user when there is one.
    fn command(&self, program: &Path) -> Command {
        // The server's user may not enter the folder the tests run in.
        let mut command = match &self.user {
            Some(user) => {
                let mut command = Command::new("runuser");
                command.args(["-u", user, "--"]).arg(program);
                command
            }
            None => Command::new(program),
        };
        command.current_dir(self.dir.path());
        command
    }
}

/// An open `psql` session (see [`PgServer::session`]), ended when dropped.
pub struct Session(Child);

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if self.running {
            self.running = false;
            let _ = self
                .command(&self.bin.join("pg_ctl"))
                .arg("stop")
                .arg("--pgdata")
                .arg(self.data())
                .args(["--mode=fast", "--wait", "--timeout=30"])
                .output();
        }
    }
}

/// The folder of the server's programs: `pg_config --bindir`, else the newest
/// `/usr/lib/postgresql/*/bin` (Debian's `pg_config` may come without the server).
fn bin_dir() -> PathBuf {
    let has_server = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()));
    if let Some(dir) = from_pg_config.filter(|dir| has_server(dir)) {
        return dir;
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, dir)| has_server(dir))
        .collect();
    versions.sort();
    match versions.pop() {
        Some((_, dir)) => dir,
        None => panic!(
            "no PostgreSQL server found (no initdb in `pg_config --bindir` nor in \
             /usr/lib/postgresql/*/bin): the database send log's tests need one; install it \
             with `apt-get install -y postgresql` (.ci/run does)"
        ),
    }
}

fn running_as_root() -> bool {
    let output = Command::new("id").arg("-u").output().expect("run id -u");
    String::from_utf8_lossy(&output.stdout).trim() == "0"
}

/// The uid and gid of `user`.
fn ids_of(user: &str) -> (u32, u32) {
    let id = |flag| {
        let output = Command::new("id").args([flag, user]).output().unwrap();
        assert!(
            output.status.success(),
            "no user {user} to run PostgreSQL as (the postgresql package makes it): {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .unwrap()
    };
    (id("-u"), id("-g"))
}

/// A port nobody listens on now (the server binds it a moment later).
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn check(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
