//! A network namespace of its own for one process, joined to the tests' namespace by a veth
//! pair, so that a test can cut that process off from a server over a real network boundary:
//! the cable pulled, not a socket closed. Packets are then dropped, no reset is sent, and the
//! process learns of it only by its own timeouts, as a sender on the far side of a partition
//! would (the case that leaves Postal's messages stuck with their worker's locks).
//!
//! Making namespaces needs root, which the tests have (CI too). A namespace is deleted when
//! dropped, and its veth pair with it.

use std::net::Ipv4Addr;
use std::process::Command;

/// A namespace and the veth pair that joins it to the tests' namespace: the tests' end is
/// [`Netns::host_addr`], the namespace's end the next address, on a /30 of their own.
pub struct Netns {
    name: String,
    host_if: String,
    pub host_addr: Ipv4Addr,
}

impl Netns {
    /// Makes namespace number `index` (0–63) of this test process, its loopback up, joined to
    /// the tests' namespace by a veth pair.
    pub fn new(index: u8) -> Netns {
        assert!(index < 64, "index {index}: 64 namespaces at most");
        // Interface names hold 15 bytes; the pid keeps two test processes apart.
        let tag = format!("{}{index}", std::process::id() % 100_000);
        let name = format!("missive-{tag}");
        let (host_if, ns_if) = (format!("mvh{tag}"), format!("mvn{tag}"));
        let (host_addr, ns_addr) = (
            Ipv4Addr::new(10, 233, index * 4, 1),
            Ipv4Addr::new(10, 233, index * 4, 2),
        );
        // Left over by a test process killed with the same pid: start clean.
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        let _ = Command::new("ip").args(["link", "del", &host_if]).output();
        let netns = Netns {
            name,
            host_if,
            host_addr,
        };
        ip(&["netns", "add", &netns.name]);
        ip(&[
            "link",
            "add",
            &netns.host_if,
            "type",
            "veth",
            "peer",
            "name",
            &ns_if,
        ]);
        ip(&["link", "set", &ns_if, "netns", &netns.name]);
        ip(&[
            "addr",
            "add",
            &format!("{host_addr}/30"),
            "dev",
            &netns.host_if,
        ]);
        ip(&["link", "set", &netns.host_if, "up"]);
        netns.exec_ip(&["addr", "add", &format!("{ns_addr}/30"), "dev", &ns_if]);
        netns.exec_ip(&["link", "set", &ns_if, "up"]);
        netns.exec_ip(&["link", "set", "lo", "up"]);
        netns
    }

    /// The words before a program's own that run it inside the namespace (`ip netns exec`
    /// execs it in place, so the child's pid is the program's own: killing it kills the
    /// program).
    pub fn wrapper(&self) -> [&str; 4] {
        ["ip", "netns", "exec", &self.name]
    }

    /// A TCP listener on the namespace's own loopback, 127.0.0.1, on a free port: only a
    /// process inside the namespace reaches it, the way a relay next to the sender would be.
    /// The socket is made by a thread that enters the namespace; a socket stays in the
    /// namespace it was made in, whichever thread then uses it.
    pub fn bind_loopback(&self) -> std::net::TcpListener {
        let path = format!("/var/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            // SAFETY: setns on a namespace file this thread opened; it moves only this thread,
            // which ends right after.
            let entered =
                unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), libc::CLONE_NEWNET) };
            assert_eq!(
                entered,
                0,
                "setns {path}: {}",
                std::io::Error::last_os_error()
            );
            std::net::TcpListener::bind("127.0.0.1:0").expect("bind the namespace's loopback")
        })
        .join()
        .expect("the thread that binds in the namespace")
    }

    /// Pulls the cable: the tests' end of the veth pair goes down, and every packet between the
    /// namespace and the rest is dropped from now on (no reset, no error at either end).
    pub fn cut(&self) {
        ip(&["link", "set", &self.host_if, "down"]);
    }

    /// Plugs it back in.
    pub fn mend(&self) {
        ip(&["link", "set", &self.host_if, "up"]);
    }

    fn exec_ip(&self, args: &[&str]) {
        let mut all = vec!["netns", "exec", &self.name, "ip"];
        all.extend_from_slice(args);
        ip(&all);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // The veth pair goes with the namespace that holds one of its ends.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .output();
    }
}

/// Runs `ip` with `args`; fails loudly, saying what it needs, when it cannot.
fn ip(args: &[&str]) {
    let output = Command::new("ip").args(args).output().unwrap_or_else(|e| {
        panic!("cannot run `ip`: {e}; install iproute2 (`apt-get install -y iproute2`)")
    });
    assert!(
        output.status.success(),
        "ip {}: {} (network namespaces need root)",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}
