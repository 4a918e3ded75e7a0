//! A TCP relay between a client and a server on 127.0.0.1 that a test can cut as a network
//! partition does: the connections stay open, nothing is refused or reset, but no byte goes
//! through either way until it is mended (or ever). A process behind it sees a database that
//! stops answering, which is what a sender cut off from its database meets.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// A relay to `127.0.0.1:<port>`, listening on a port of its own.
pub struct Partition {
    port: u16,
    cut: Arc<AtomicBool>,
}

impl Partition {
    /// Relays every connection made to [`Partition::port`] to the server's `port`.
    pub fn to(port: u16) -> Partition {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let own = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let relay_cut = Arc::clone(&cut);
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(("127.0.0.1", port)) else {
                    continue;
                };
                for (from, to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    let cut = Arc::clone(&relay_cut);
                    std::thread::spawn(move || pump(from, to, &cut));
                }
            }
        });
        Partition { port: own, cut }
    }

    /// The port to connect to instead of the server's.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// From now on nothing goes through, either way; the connections stay open.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
    }
}

/// Copies `from` to `to` while the relay is not cut; once it is, holds both open, silent.
fn pump(mut from: TcpStream, mut to: TcpStream, cut: &AtomicBool) {
    let mut buffer = [0; 16 * 1024];
    from.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    loop {
        if cut.load(Ordering::SeqCst) {
            // Read nothing more: the peer's writes fill the socket's buffers and stall.
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        match from.read(&mut buffer) {
            Ok(0) => return,
            Ok(n) => {
                if cut.load(Ordering::SeqCst) {
                    continue;
                }
                if to.write_all(&buffer[..n]).is_err() {
                    return;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
}
