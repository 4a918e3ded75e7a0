//! The reading of refusals against replies as real servers write them.

use super::*;

#[test]
fn enhanced_codes_are_found_where_servers_write_them() {
    let code = |text| StatusCode::in_reply(text).map(|c| c.to_string());
    assert_eq!(
        code("550 5.1.1 <a@b.c>: user unknown").as_deref(),
        Some("5.1.1")
    );
    assert_eq!(code("550-5.1.10 null MX").as_deref(), Some("5.1.10"));
    assert_eq!(code("5.2.2 mailbox full").as_deref(), Some("5.2.2"));
    assert_eq!(
        code("553 sorry, no mailbox here by that name. (#5.1.1)").as_deref(),
        Some("5.1.1")
    );
    for none in [
        "550 user unknown",
        "550",
        "",
        "550 1.2.3 x",
        "550 5.1 x",
        "5.1.1.1",
    ] {
        assert_eq!(code(none), None, "{none:?}");
    }
    assert_eq!(basic_code("550-5.1.1 x"), Some(550));
    assert_eq!(basic_code("5.1.1 x"), None);
    assert_eq!(basic_code("5501 x"), None);
}

/// Replies as real servers write them (continuation lines joined, as lettre joins them),
/// and what each says about the address.
#[test]
fn real_refusals_read_as_they_mean() {
    use Meaning::*;
    for (reply, expected) in [
        // Postfix.
        (
            "550 5.1.1 <marie@example.com>: Recipient address rejected: User unknown in \
             local recipient table",
            DeadMailbox,
        ),
        (
            "550 5.1.1 <marie@example.com>: Recipient address rejected: User unknown in \
             virtual mailbox table",
            DeadMailbox,
        ),
        ("554 5.7.1 <marie@example.com>: Relay access denied", Policy),
        (
            "554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using \
             zen.spamhaus.org",
            Policy,
        ),
        (
            "550 5.1.0 <bounces+ab@example.org>: Sender address rejected: User unknown in \
             local recipient table",
            Policy,
        ),
        // The sender, refused at RCPT with its probe's 5.1.1 (reject_unverified_sender).
        (
            "550 5.1.1 <bounces+ab@example.org>: Sender address rejected: undeliverable \
             address: host mx.example.org[192.0.2.7] said: 550 5.1.1 <bounces+ab@example.org>: \
             Recipient address rejected: User unknown in local recipient table",
            Policy,
        ),
        (
            "450 4.1.1 <marie@example.com>: Recipient address rejected: unverified address",
            Other,
        ),
        // Exim.
        ("550 Unrouteable address", DeadMailbox),
        (
            "550-Verification failed for <x@example.com> 550 Unrouteable address",
            DeadMailbox,
        ),
        (
            "550 Administrative prohibition: rejected due to spam content",
            Policy,
        ),
        // Gmail.
        (
            "550-5.1.1 The email account that you tried to reach does not exist. Please try \
             550-5.1.1 double-checking the recipient's email address for typos or \
             550-5.1.1 unnecessary spaces. https://support.google.com/mail/?p=NoSuchUser",
            DeadMailbox,
        ),
        (
            "550 5.2.1 The email account that you tried to reach is disabled.",
            DeadMailbox,
        ),
        (
            "552 5.2.2 The email account that you tried to reach is over quota.",
            Full,
        ),
        (
            "550-5.7.1 Our system has detected that this message is likely unsolicited \
             mail. To reduce the amount of spam sent to Gmail, this message has been blocked.",
            Policy,
        ),
        (
            "550 5.7.26 This mail has been blocked because the sender is unauthenticated.",
            Policy,
        ),
        (
            "450 4.2.1 The user you are trying to contact is receiving mail at a rate",
            Other,
        ),
        // Microsoft.
        (
            "550 5.5.0 Requested action not taken: mailbox unavailable (S2017062302)",
            DeadMailbox,
        ),
        (
            "550 5.1.1 RESOLVER.ADR.RecipNotFound; not found",
            DeadMailbox,
        ),
        (
            "550 5.7.1 Unfortunately, messages from [192.0.2.1] weren't sent. Please \
             contact your Internet service provider",
            Policy,
        ),
        ("550 5.4.1 Recipient address rejected: Access denied", Other),
        ("554 5.7.1 Message rejected due to local policy", Policy),
        (
            "550 5.5.0 Requested action not taken: policy violation",
            Policy,
        ),
        // Yahoo, qmail, null MX, the rest.
        (
            "554 delivery error: dd This user doesn't have a yahoo.com account",
            DeadMailbox,
        ),
        (
            "554 delivery error: dd Sorry your message to x cannot be delivered. This \
             mailbox is disabled (554.30)",
            DeadMailbox,
        ),
        (
            "553 sorry, no mailbox here by that name. (#5.1.1)",
            DeadMailbox,
        ),
        (
            "553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)",
            Policy,
        ),
        ("556 5.1.10 Recipient address has null MX", DeadMailbox),
        (
            "550 5.1.2 Host unknown (Name server: example.invalid: host not found)",
            DeadMailbox,
        ),
        ("553 5.1.3 Bad recipient address syntax", DeadMailbox),
        (
            "552 Requested mail action aborted: exceeded storage allocation",
            Full,
        ),
        ("452 4.2.2 Mailbox full", Full),
        ("550 5.5.2 Syntax error", Other),
        ("552 5.3.4 Message size exceeds fixed limit", Other),
        (
            "550 Requested action not taken: mailbox unavailable",
            DeadMailbox,
        ),
        ("550 Message refused", Other),
        ("421 4.3.2 Service shutting down", Other),
        // missive's own refusals, when the server lacks an extension.
        (
            "553 the address is not ASCII and the server lacks SMTPUTF8",
            Other,
        ),
        (
            "554 the message is 8-bit and the server lacks 8BITMIME",
            Other,
        ),
        // Words of a dead mailbox with a code that is not an address's.
        ("500 user unknown", Other),
    ] {
        assert_eq!(meaning(reply), expected, "{reply}");
    }
}

#[test]
fn a_bounce_report_gives_the_parts_apart() {
    let status = StatusCode::parse("5.1.1");
    assert_eq!(
        meaning_of(None, status, "smtp; 550 user unknown"),
        Meaning::DeadMailbox
    );
    assert_eq!(
        meaning_of(None, StatusCode::parse("4.1.1"), "smtp; 450 user unknown"),
        Meaning::Other
    );
    assert_eq!(
        meaning_of(None, StatusCode::parse("5.0.0"), "smtp; 550 no such user"),
        Meaning::DeadMailbox
    );
    assert_eq!(meaning_of(None, None, "no such user"), Meaning::Other);
}
