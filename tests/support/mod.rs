pub mod audit;
pub mod dkim;
pub mod engine;
pub mod harness;
pub mod http;
pub mod netns;
pub mod partition;
pub mod postgres;
pub mod smtp_server;
pub mod tls;

/// Runs an `openssl` command of a test helper (keys, certificates) and returns what it printed;
/// fails loudly, saying how to install OpenSSL, when it cannot run or fails.
pub fn openssl(command: &mut std::process::Command, what: &str) -> Vec<u8> {
    let output = command.output().unwrap_or_else(|e| {
        panic!(
            "cannot run {what}: {e}; install OpenSSL (`apt-get install -y openssl`; .ci/run does)"
        )
    });
    assert!(
        output.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// Waits for `child` to exit by itself, at most `timeout`; past that, kills it (SIGKILL on Unix)
/// and reaps it, so that no test leaves a process behind, and returns the killed process's
/// status as `Err`.
pub fn wait_or_kill(
    child: &mut std::process::Child,
    timeout: std::time::Duration,
) -> Result<std::process::ExitStatus, std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("wait for a child process") {
            return Ok(status);
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            return Err(child.wait().expect("reap a killed child process"));
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}
