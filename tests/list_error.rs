//! A recipient file that cannot be read half-way through a run: the engine's error wraps the
//! list's, and must end the run with the list's exit code (65), not 1.
//!
//! The binary can hardly be made to meet this: the file is read twice before sending begins
//! (its header when the campaign loads, then from the start), so a failure there is not
//! wrapped, and a read that fails later needs a failing disk. So the engine runs here, in the
//! test's process, against a real SMTP server, with a list that fails as a disk would after
//! its first rows; the exit code is the binary's own mapping, `missive::app::exit_for_error`.

use std::io::Read;
use std::time::Duration;

use crate::support::engine::{Prepared, loopback_route};
use crate::support::harness::{Fixture, people};
use crate::support::smtp_server::{Behavior, SmtpServer};
use missive::app::{Exit, exit_for_error};
use missive::recipients::{RecipientReader, RecipientsError};
use missive::send::SendError;
use missive::sendlog::{MemoryLog, Replay};

/// The bytes it holds, then an I/O error (EIO), as a disk that failed under the file.
struct FailingDisk(std::io::Cursor<Vec<u8>>);

impl Read for FailingDisk {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.0.read(buf)? {
            0 => Err(std::io::Error::from_raw_os_error(5)),
            read => Ok(read),
        }
    }
}

#[test]
fn a_list_that_fails_half_way_ends_the_run_with_65_once_the_rows_read_are_sent() {
    let server = SmtpServer::start_in_background(Behavior::accept_all());
    let fixture = Fixture::new(&people(3), "");
    let prepared = Prepared::load(&fixture);
    let campaign = &prepared.campaign;
    let list = std::fs::read(&campaign.recipients_path).unwrap();
    let mut reader = RecipientReader::from_reader(
        &campaign.recipients_path,
        Box::new(FailingDisk(std::io::Cursor::new(list))),
        &campaign.name_columns,
    )
    .unwrap();
    let route = loopback_route(server.port());
    let result = prepared.send(
        &mut reader,
        &Replay::default(),
        route,
        Box::new(MemoryLog::default()),
        "test",
    );

    let error = result.expect_err("the list could not be read to its end");
    assert!(
        matches!(error, SendError::Recipients(RecipientsError::Read { .. })),
        "{error:?}"
    );
    assert_eq!(exit_for_error(&anyhow::Error::from(error)), Exit::Invalid);
    // The rows read before the failure were delivered, not abandoned in doubt.
    let received = server.wait_for(3, Duration::from_secs(10));
    let mut to: Vec<_> = received.iter().map(|m| m.rcpt_to[0].clone()).collect();
    to.sort();
    assert_eq!(
        to,
        [
            "person01@example.com",
            "person02@example.com",
            "person03@example.com"
        ]
    );
}
