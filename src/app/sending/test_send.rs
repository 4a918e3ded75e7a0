//! `send --test ADDRESS,... [--as EMAIL]`: the letter as one real person would get it, mailed to
//! the people preparing the campaign before the real send.
//!
//! The row of `--as` (by default the first valid, unsuppressed one) is rendered once per test
//! address and sent through the campaign's own relay (or `--smtp`), DKIM-signed and with the
//! envelope sender rules of the real thing, its subject marked `[TEST] `. Nothing of the
//! campaign's state moves: no send log is read or written (nor created), no lock or state file
//! is touched, no quota is charged, and the pace is the relay's own (one message after another).
//!
//! A test message must never act for the real person. Its links and tags are made for the test
//! campaign `<id>+test` (a `+` no campaign id may hold, so no served campaign answers to it) and
//! for the tester's own address: the unsubscribe link, if followed, names the tester, and a
//! bounce's VERP tag verifies for no real campaign. Its Message-ID is of that test campaign and
//! of this run, so it is neither the person's real one (a later real send is not taken for a
//! duplicate) nor the same as an earlier test's (which some providers drop unseen).

use std::sync::Arc;
use std::time::SystemTime;

use anyhow::Context;
use lettre::Address;

use super::relays::relay;
use super::{Exit, Loaded, Options};
use crate::address::RecipientKey;
use crate::campaign::Campaign;
use crate::recipients::{Recipient, Row};
use crate::smtp::{Relay, RelayName, Trouble};
use crate::verp::Verp;

/// What `--test` and `--as` ask for, as typed.
#[derive(Debug, Clone)]
pub struct TestSend {
    pub addresses: Vec<String>,
    /// Whose row to render; `None`: the first valid one.
    pub as_email: Option<String>,
}

/// The subject's mark, so nobody takes a test for the letter itself.
const MARK: &str = "[TEST] ";

pub(super) async fn send(
    loaded: &Loaded,
    options: &Options,
    test: &TestSend,
) -> anyhow::Result<Exit> {
    let campaign = &loaded.campaign;
    let addresses = test_addresses(&test.addresses)?;
    let person = whose_row(loaded, test.as_email.as_deref())?;
    let composing = TestLetter::new(loaded)?;
    let endpoint = options.smtp.as_ref().unwrap_or(&campaign.smtp.endpoint);
    let mut relays = vec![relay(
        RelayName::Primary,
        &campaign.smtp,
        endpoint,
        campaign.smtp_timeout,
    )?];
    // `--smtp` names one server for this run: no fallback behind it.
    if let (Some(settings), None) = (&campaign.fallback, &options.smtp) {
        relays.push(relay(
            RelayName::Fallback,
            settings,
            &settings.endpoint,
            campaign.smtp_timeout,
        )?);
    }
    println!(
        "test: the letter of {} (line {} of {}) to {} address(es), subject \"{MARK}{}\"; no \
         send log read or written",
        person.email,
        person.line,
        loaded.recipients_path.display(),
        addresses.len(),
        // The person's own letter's: the test renders their row.
        campaign.letters[loaded.template.choose(&person)].subject
    );
    let mut exit = Exit::Done;
    for address in addresses {
        let recipient = person.addressed_to(address);
        let rendered = composing.template.render(&recipient);
        let message = composing
            .composer
            .compose(&recipient, rendered, SystemTime::now())?;
        match deliver(&relays, message.envelope(), &message.formatted()).await {
            Ok(reply) => println!("  {}: accepted ({reply})", recipient.email),
            Err(trouble) => {
                println!("  {}: not accepted ({trouble})", recipient.email);
                exit = worse(exit, exit_for(&trouble));
            }
        }
    }
    Ok(exit)
}

/// The campaign's letter and composer, made over for test messages (see the module's doc).
struct TestLetter {
    template: crate::render::Template,
    composer: crate::message::Composer,
}

impl TestLetter {
    fn new(loaded: &Loaded) -> anyhow::Result<TestLetter> {
        let campaign = &loaded.campaign;
        let test_id = format!("{}+test", campaign.id);
        let mut test = Campaign {
            id: test_id.clone(),
            subject: format!("{MARK}{}", campaign.subject),
            ..campaign.clone()
        };
        for letter in &mut test.letters {
            letter.subject = format!("{MARK}{}", letter.subject);
        }
        let unsubscribe = crate::app::unsubscribe(&test, loaded.secret.as_ref());
        // Only the Message-ID reads this id: one of this run's own.
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        test.id = format!("{test_id}.{}", now.as_millis());
        let (template, mut composer) =
            crate::app::prepare(&test, &loaded.letters, unsubscribe.as_ref());
        if let (Some(return_path), Some(secret)) = (&campaign.bounces.return_path, &loaded.secret) {
            let verp = Verp::new(return_path, &test_id, secret.clone())
                .with_context(|| format!("{}: [bounces] return_path", campaign.path.display()))?;
            composer = composer.with_verp(Arc::new(verp));
        }
        if let Some(settings) = &campaign.dkim {
            composer = composer.with_dkim(Arc::new(crate::dkim::signer(settings)?));
        }
        Ok(TestLetter { template, composer })
    }
}

/// How many addresses a test send takes. It skips the log, the quotas and the suppression
/// lists: meant for a few colleagues, and a longer list is more likely the real one pasted in
/// by mistake, which would mail people a `[TEST]` copy nothing remembers.
const MAX_TEST_ADDRESSES: usize = 20;

/// The test addresses, each once; every one refused is named, and nothing is sent.
fn test_addresses(typed: &[String]) -> anyhow::Result<Vec<Address>> {
    let mut addresses: Vec<Address> = Vec::new();
    let mut problems = Vec::new();
    for text in typed.iter().map(|text| text.trim()) {
        if text.contains(['\r', '\n']) {
            problems.push(format!("{text:?} holds a line break"));
            continue;
        }
        match text.parse::<Address>() {
            Ok(address) => {
                let key = RecipientKey::of(address.as_ref());
                if !addresses
                    .iter()
                    .any(|a| RecipientKey::of(a.as_ref()) == key)
                {
                    addresses.push(address);
                }
            }
            Err(_) => problems.push(format!("{text:?} is not an email address")),
        }
    }
    if !problems.is_empty() {
        anyhow::bail!(
            "--test: {}; nothing sent. Give addresses separated by commas: --test \
             a@example.org,b@example.org",
            problems.join("; ")
        );
    }
    if addresses.is_empty() {
        anyhow::bail!("--test: no address given; nothing sent");
    }
    if addresses.len() > MAX_TEST_ADDRESSES {
        anyhow::bail!(
            "--test: {} addresses, at most {MAX_TEST_ADDRESSES}; nothing sent. A test send skips \
             the send log, the quotas and the suppression lists: for the list itself, use `send` \
             (or `--dry-run` to look first)",
            addresses.len()
        );
    }
    Ok(addresses)
}

/// The row to render: that of `as_email` (valid, suppressed or not), or the first valid one
/// of the list not suppressed.
fn whose_row(loaded: &Loaded, as_email: Option<&str>) -> anyhow::Result<Recipient> {
    if let Some(text) = as_email
        && text.contains(['\r', '\n'])
    {
        anyhow::bail!("--as {text:?}: holds a line break; nothing sent");
    }
    let wanted = as_email.map(RecipientKey::of);
    let mut reader = loaded.recipients()?;
    while let Some(row) = reader.next_row()? {
        match (row, &wanted) {
            (Row::Valid(person), None) => return Ok(person),
            (Row::Valid(person) | Row::Suppressed(person, _), Some(key)) if person.key == *key => {
                return Ok(person);
            }
            _ => {}
        }
    }
    let list = loaded.recipients_path.display();
    Err(match as_email {
        Some(text) => anyhow::anyhow!(
            "--as {text}: no valid row of {list} has this address; name someone on the list \
             (or leave --as out for the first one); nothing sent"
        ),
        None => anyhow::anyhow!("{list} has no valid row to render; nothing sent"),
    })
}

/// One test message, on a connection of its own: through the first relay that answers.
async fn deliver(
    relays: &[Relay],
    envelope: &lettre::address::Envelope,
    data: &[u8],
) -> Result<String, Trouble> {
    let mut last = Trouble::Broken("no relay".into());
    for relay in relays {
        let connected = match relay.turn().await {
            Ok(turn) => relay.connect(turn).await,
            Err(trouble) => Err(trouble),
        };
        let mut connection = match connected {
            Ok(connection) => connection,
            // Unreachable or busy: the fallback, if any, may take it.
            Err(trouble @ (Trouble::Broken(_) | Trouble::Refused { .. })) => {
                last = trouble;
                continue;
            }
            Err(trouble) => return Err(trouble),
        };
        let reply = match connection.start(envelope, data).await {
            Ok(()) => connection.finish_data(data, None).await,
            Err(trouble) => Err(trouble),
        };
        connection.quit().await;
        return reply;
    }
    Err(last)
}

/// The exit code a test message's trouble calls for: the campaign's settings (65), a refusal
/// for good (1), or a server that may take it later (75).
fn exit_for(trouble: &Trouble) -> Exit {
    match trouble {
        Trouble::LoginRefused(_) | Trouble::Untrusted(_) => Exit::Invalid,
        _ if trouble.is_permanent() => Exit::Failure,
        _ => Exit::TryAgain,
    }
}

/// The exit code that says more: what a person must mend before what waiting mends.
fn worse(a: Exit, b: Exit) -> Exit {
    let rank = |exit| match exit {
        Exit::Done => 0,
        Exit::TryAgain => 1,
        Exit::Failure => 2,
        Exit::Invalid => 3,
    };
    if rank(b) > rank(a) { b } else { a }
}
