//! DKIM for tests: a key pair made at test time with `openssl` (never a key anyone relies on),
//! and verification by code independent of the lettre code that signs. stalwart's `mail-auth`
//! (its own parser and canonicalization, ring's RSA and Ed25519) always verifies, so `cargo test`
//! needs nothing but cargo. Python's dkimpy gives a second opinion where it is installed, and must
//! agree; `bash .ci/run` installs it and sets `MISSIVE_TEST_DKIMPY=1`, which makes it required, so
//! CI never skips it without a word.

use std::borrow::Borrow;
use std::hash::Hash;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use base64::Engine;
use mail_auth::common::crypto::Algorithm;
use mail_auth::common::parse::TxtRecordParser;
use mail_auth::common::verify::DomainKey;
use mail_auth::hickory_resolver::config::{ResolverConfig, ResolverOpts};
use mail_auth::{
    AuthenticatedMessage, DkimResult, DnsError, MessageAuthenticator, Parameters, ResolverCache,
    Txt,
};

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

/// What the verifiers made of a message's DKIM signature.
#[derive(Debug)]
pub struct Verdict {
    pub passed: bool,
    /// The signature's `a=`: `rsa-sha256` or `ed25519-sha256`.
    pub algorithm: String,
    /// The signature's `h=`, in lower case and in order.
    pub signed: Vec<String>,
    /// Each verifier's result on a line, for assertion messages.
    pub report: String,
}

/// Verifies `message` against the public key `record` (the DNS TXT record published at
/// `selector._domainkey.domain`); no DNS is queried. Passes only when the message carries
/// exactly one DKIM signature and it verifies. Where dkimpy runs too, the two must agree.
pub fn verify(message: &[u8], selector: &str, domain: &str, record: &str) -> Verdict {
    let mut verdict = verify_with_mail_auth(message, selector, domain, record);
    if let Some(python) = dkimpy() {
        let (passed, report) = verify_with_dkimpy(&python, message, selector, domain, record);
        assert_eq!(
            passed, verdict.passed,
            "the two DKIM verifiers disagree:\n{}\ndkimpy: {report}",
            verdict.report
        );
        verdict.report.push_str(&format!("\ndkimpy: {report}"));
    }
    verdict
}

/// mail-auth's verdict, with the key handed over through its TXT cache instead of DNS.
fn verify_with_mail_auth(message: &[u8], selector: &str, domain: &str, record: &str) -> Verdict {
    let key = DomainKey::parse(record.as_bytes())
        .unwrap_or_else(|e| panic!("mail-auth cannot read the key record {record:?}: {e}"));
    let published = PublishedKey {
        name: format!("{selector}._domainkey.{domain}.").to_lowercase(),
        key: Txt::DomainKey(Arc::new(key)),
    };
    let parsed = AuthenticatedMessage::parse(message).expect("mail-auth parses the message");
    // No name servers: a lookup the cache does not answer fails instead of reaching the network.
    let authenticator = MessageAuthenticator::new(
        ResolverConfig::from_name_servers(vec![]),
        ResolverOpts::default(),
    )
    .expect("a resolver without name servers");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let outputs = runtime
        .block_on(authenticator.verify_dkim(Parameters::new(&parsed).with_txt_cache(&published)));
    let results: Vec<String> = outputs
        .iter()
        .map(|output| format!("{:?}", output.result()))
        .collect();
    let passed = outputs.len() == 1 && outputs[0].result() == &DkimResult::Pass;
    let signature = outputs.first().and_then(|output| output.signature());
    let algorithm = match signature.map(|s| s.a) {
        Some(Algorithm::RsaSha256) => "rsa-sha256",
        Some(Algorithm::Ed25519Sha256) => "ed25519-sha256",
        Some(Algorithm::RsaSha1) => "rsa-sha1",
        None => "",
    };
    let signed: Vec<String> = signature
        .map(|s| s.h.iter().map(|h| h.to_lowercase()).collect())
        .unwrap_or_default();
    Verdict {
        passed,
        algorithm: algorithm.to_owned(),
        report: format!(
            "mail-auth: {} a={algorithm} h={}",
            if results.is_empty() {
                "no DKIM-Signature".to_owned()
            } else {
                results.join(", ")
            },
            signed.join(":")
        ),
        signed,
    }
}

/// A one-entry TXT cache: the test's key at its name, and "no such record" for any other name
/// (which a correct verifier never asks for).
struct PublishedKey {
    name: String,
    key: Txt,
}

impl ResolverCache<Box<str>, Txt> for PublishedKey {
    fn get<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let asked: Box<str> = self.name.clone().into();
        if asked.borrow() == name {
            Some(self.key.clone())
        } else {
            Some(Txt::Error(mail_auth::Error::Dns(DnsError::Resolver(
                format!("the test publishes only {}", self.name),
            ))))
        }
    }

    fn remove<Q>(&self, _: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        None
    }

    fn insert(&self, _: Box<str>, _: Txt, _: std::time::Instant) {}
}

/// The interpreter to run dkimpy with, when dkimpy is to run: whenever it imports (with PyNaCl,
/// for Ed25519), and always under `MISSIVE_TEST_DKIMPY=1`, where its absence fails the test with
/// the command that installs it.
fn dkimpy() -> Option<PathBuf> {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let probe = PYTHON.get_or_init(|| {
        let python = PathBuf::from(std::env::var_os("PYTHON").unwrap_or_else(|| "python3".into()));
        match Command::new(&python)
            .args(["-c", "import dkim, nacl"])
            .output()
        {
            Ok(output) if output.status.success() => Ok(python),
            Ok(output) => Err(format!(
                "{} cannot import dkimpy/PyNaCl ({})",
                python.display(),
                String::from_utf8_lossy(&output.stderr).trim()
            )),
            Err(e) => Err(format!("cannot run {}: {e}", python.display())),
        }
    });
    let required = std::env::var_os("MISSIVE_TEST_DKIMPY").is_some_and(|v| v == "1");
    match probe {
        Ok(python) => Some(python.clone()),
        Err(why) if required => panic!(
            "MISSIVE_TEST_DKIMPY=1 asks for dkimpy's second opinion, but {why}: run \
             `python3 -m pip install dkimpy==1.1.8 PyNaCl==1.6.2` (bash .ci/run does), or point \
             PYTHON at an interpreter that has them"
        ),
        Err(_) => None,
    }
}

/// dkimpy's verdict on `message`: `(passed, its one-line report)`.
fn verify_with_dkimpy(
    python: &Path,
    message: &[u8],
    selector: &str,
    domain: &str,
    record: &str,
) -> (bool, String) {
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
