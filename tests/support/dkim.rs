//! DKIM for tests: a key pair made at test time with `openssl` (never a key anyone relies on),
//! and verification by Python's dkimpy, independent of the lettre code that signs.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;

/// A private key file and the DNS TXT record that publishes its public half.
pub struct TestKey {
    pub pem: PathBuf,
    pub record: String,
}

/// Makes a key pair in `dir`: `algorithm` is `"ed25519"` or `"rsa"` (2048 bits).
pub fn generate(dir: &Path, algorithm: &str) -> TestKey {
    let pem = dir.join(format!("dkim-{algorithm}.pem"));
    let mut genpkey = Command::new("openssl");
    genpkey
        .args(["genpkey", "-algorithm", algorithm, "-out"])
        .arg(&pem);
    if algorithm == "rsa" {
        genpkey.args(["-pkeyopt", "rsa_keygen_bits:2048"]);
    }
    super::openssl(&mut genpkey, "openssl genpkey");
    let der = super::openssl(
        Command::new("openssl")
            .args(["pkey", "-pubout", "-outform", "DER", "-in"])
            .arg(&pem),
        "openssl pkey -pubout",
    );
    // RFC 8463: an Ed25519 record holds the bare 32-byte key; an RSA record the whole SPKI.
    let (k, public) = match algorithm {
        "ed25519" => ("ed25519", &der[der.len() - 32..]),
        _ => ("rsa", &der[..]),
    };
    let p = base64::engine::general_purpose::STANDARD.encode(public);
    TestKey {
        pem,
        record: format!("v=DKIM1; k={k}; p={p}"),
    }
}

/// `python3` with dkimpy and PyNaCl importable; fails loudly, saying how to install them.
pub fn python() -> PathBuf {
    let python = PathBuf::from(std::env::var_os("PYTHON").unwrap_or_else(|| "python3".into()));
    let probe = Command::new(&python)
        .args(["-c", "import dkim, nacl"])
        .output();
    match probe {
        Ok(output) if output.status.success() => python,
        Ok(output) => panic!(
            "{} cannot import dkimpy/PyNaCl ({}): run `python3 -m pip install dkimpy PyNaCl` \
             (bash .ci/run does), or point PYTHON at an interpreter that has them",
            python.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        ),
        Err(e) => panic!(
            "cannot run {}: {e}; install Python 3 with `python3 -m pip install dkimpy PyNaCl`",
            python.display()
        ),
    }
}

/// dkimpy's verdict on `message`: `(passed, its one-line report)`.
pub fn verify(message: &[u8], selector: &str, domain: &str, record: &str) -> (bool, String) {
    let python = python();
    let dir = tempfile::tempdir().unwrap();
    let eml = dir.path().join("message.eml");
    std::fs::write(&eml, message).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/dkim_verify.py");
    let output = Command::new(python)
        .arg(script)
        .arg(&eml)
        .args([selector, domain, record])
        .output()
        .expect("run dkim_verify.py");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), report.trim().to_owned())
}
