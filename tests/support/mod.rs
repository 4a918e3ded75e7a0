pub mod audit;
pub mod dkim;
pub mod harness;
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
