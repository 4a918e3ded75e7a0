//! `missive serve`, the one-click endpoint, driven over TCP by a real HTTP client: GET shows a
//! page and writes nothing; a valid one-click POST (urlencoded or multipart) appends the address
//! once; forged, altered, truncated and oversized requests write nothing; slow clients are cut
//! off; SIGTERM lets a request in flight finish. (`serve_load`: many at once.)

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use missive::unsubscribe::{Secret, Unsubscribe};

use crate::support::http::{
    ONE_CLICK, Reply, Serving, URLENCODED, campaign, multipart, one_click, raw, request, runtime,
    target, unsubscribe_for, unsubscribed,
};

fn assert_safe(reply: &Reply) {
    assert_eq!(reply.header("content-type"), "text/html; charset=utf-8");
    assert!(
        reply
            .header("content-security-policy")
            .starts_with("default-src 'none'")
    );
    assert_eq!(reply.header("cache-control"), "no-store");
    assert!(reply.headers.get("set-cookie").is_none());
    assert!(reply.headers.get("location").is_none());
    assert!(!reply.body.contains("<script") && !reply.body.contains("src="));
}

#[test]
fn get_shows_a_page_that_posts_back_and_post_unsubscribes_once() {
    let fixture = campaign(3);
    let serving = Serving::start(&[&fixture.campaign()]);
    let zoe = target("zoé.durand@example.com");
    runtime().block_on(async {
        let page = request(serving.addr, "GET", &zoe, None, vec![]).await;
        assert_eq!(page.status, 200, "{page:?}");
        assert_safe(&page);
        assert!(page.body.contains(r#"<html lang="fr""#), "{}", page.body);
        assert!(page.body.contains("<strong>zoé.durand@example.com</strong>"));
        let action = zoe.replace('&', "&amp;");
        assert!(
            page.body.contains(&format!(
                r#"<form method="post" action="{action}"><input type="hidden" name="List-Unsubscribe" value="One-Click"><button type="submit">Me désabonner</button>"#
            )),
            "{}",
            page.body
        );
        let head = request(serving.addr, "HEAD", &zoe, None, vec![]).await;
        assert_eq!((head.status, head.body.as_str()), (200, ""));
        // Link scanners fetch every URL: nothing was written.
        assert_eq!(unsubscribed(&fixture), "");

        let done = one_click(serving.addr, &zoe).await;
        assert_eq!(done.status, 200, "{done:?}");
        assert_safe(&done);
        assert!(done.body.contains("C’est fait"), "{}", done.body);
        assert!(done.body.contains(r#"<a href="mailto:reponses@example.org">"#));
        assert_eq!(unsubscribed(&fixture), "zoé.durand@example.com\n");

        // Again, as multipart, and in other case: the same person, nothing written.
        let again = request(
            serving.addr,
            "POST",
            &zoe,
            Some("multipart/form-data; boundary=b0undary"),
            multipart("b0undary"),
        )
        .await;
        assert_eq!(again.status, 200, "{again:?}");
        assert_eq!(unsubscribed(&fixture), "zoé.durand@example.com\n");

        // Multipart for someone else lands.
        let boundary = "----WebKitFormBoundary7MA4YWxkTrZu0gW";
        let other = request(
            serving.addr,
            "POST",
            &target("person02@example.com"),
            Some(&format!("multipart/form-data; boundary={boundary}")),
            multipart(boundary),
        )
        .await;
        assert_eq!(other.status, 200, "{other:?}");
        assert_eq!(
            unsubscribed(&fixture),
            "zoé.durand@example.com\nperson02@example.com\n"
        );
    });
}

#[test]
fn forged_altered_truncated_and_oversized_requests_write_nothing() {
    let fixture = campaign(3);
    fixture.write("suppression/unsubscribed.txt", "# unsubscribed\n");
    let serving = Serving::start(&[&fixture.campaign()]);
    let valid = target("person01@example.com");
    let token = valid.rsplit_once("t=").unwrap().1;
    let eve = target("eve@example.com");
    let eve_token = eve.rsplit_once("t=").unwrap().1;
    let other_key = Unsubscribe {
        secret: Secret::new("another-key-another-key-another-key!").unwrap(),
        ..unsubscribe_for("essai-2026")
    }
    .link("person01@example.com");
    let targets = [
        // The token's last digit changed, then the address, then cut short.
        format!(
            "{}{}",
            &valid[..valid.len() - 1],
            if valid.ends_with('0') { '1' } else { '0' }
        ),
        valid.replace("person01", "person02"),
        valid[..valid.len() - 1].to_owned(),
        valid[..valid.len() - 16].to_owned(),
        valid.replace(&format!("&t={token}"), ""),
        format!("{valid}&e=eve%40example.com"),
        valid.replace(token, eve_token),
        valid.replace("c=essai-2026", "c=autre"),
        other_key
            .strip_prefix("https://dons.example.org")
            .unwrap()
            .to_owned(),
        "/desabonnement".to_owned(),
        "/desabonnement?".to_owned(),
        "/desabonnement?c=%FF%FE&e=%00&t=%%%".to_owned(),
    ];
    let before = std::fs::read(fixture.path("suppression/unsubscribed.txt")).unwrap();
    runtime().block_on(async {
        for target in &targets {
            for method in ["GET", "POST"] {
                let reply = request(
                    serving.addr,
                    method,
                    target,
                    Some(URLENCODED),
                    ONE_CLICK.into(),
                )
                .await;
                assert_eq!(reply.status, 400, "{method} {target}: {reply:?}");
                assert_safe(&reply);
                // The same words whatever was wrong: nothing for a forger to learn.
                assert!(reply.body.contains("n’est pas valide"), "{}", reply.body);
                assert!(!reply.body.contains("person0") && !reply.body.contains("token"));
            }
        }
        let elsewhere = valid.replace("/desabonnement", "/ailleurs");
        let reply = one_click(serving.addr, &elsewhere).await;
        assert_eq!(reply.status, 404, "{reply:?}");
        // A valid link, but not the one-click form, or a body too large, or another method.
        let refusals = [
            (
                "POST",
                Some(URLENCODED),
                b"List-Unsubscribe=Two-Clicks".to_vec(),
                400,
            ),
            ("POST", Some("text/plain"), ONE_CLICK.to_vec(), 400),
            (
                "POST",
                Some("multipart/form-data; boundary=x"),
                multipart("y"),
                400,
            ),
            (
                "POST",
                Some(URLENCODED),
                [ONE_CLICK, &vec![b'&'; 64 * 1024]].concat(),
                413,
            ),
            ("PUT", Some(URLENCODED), ONE_CLICK.to_vec(), 405),
            ("DELETE", None, vec![], 405),
        ];
        for (method, content_type, body, status) in refusals {
            let reply = request(serving.addr, method, &valid, content_type, body).await;
            assert_eq!(reply.status, status, "{method} {content_type:?}: {reply:?}");
        }
    });
    // Too many headers, a header too large, bytes that are not HTTP: refused, and it lives on.
    let many: String = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect();
    let large = format!("X-Large: {}\r\n", "a".repeat(64 * 1024));
    for head in [many, large] {
        let answer = raw(
            serving.addr,
            format!("GET {valid} HTTP/1.1\r\nHost: x\r\n{head}\r\n").as_bytes(),
        );
        assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    }
    let answer = raw(
        serving.addr,
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n",
    );
    assert!(
        answer.starts_with("HTTP/1.1 400") || answer.is_empty(),
        "{answer}"
    );
    let after = std::fs::read(fixture.path("suppression/unsubscribed.txt")).unwrap();
    assert_eq!(after, before, "nothing written");
    runtime().block_on(async {
        let reply = one_click(serving.addr, &valid).await;
        assert_eq!(reply.status, 200, "still serving: {reply:?}");
    });
    assert_eq!(
        unsubscribed(&fixture),
        "# unsubscribed\nperson01@example.com\n"
    );
}

#[test]
fn sigterm_lets_a_request_in_flight_finish_and_its_address_land() {
    let fixture = campaign(2);
    let mut serving = Serving::start(&[&fixture.campaign()]);
    let target = target("person01@example.com");
    // Headers and half the body; the rest after SIGTERM.
    let mut stream = TcpStream::connect(serving.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    write!(
        stream,
        "POST {target} HTTP/1.1\r\nHost: x\r\nContent-Type: {URLENCODED}\r\nContent-Length: {}\r\n\r\nList-Unsub",
        ONE_CLICK.len()
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    serving.terminate();
    std::thread::sleep(Duration::from_millis(300));
    // No new connection is taken now.
    assert!(
        TcpStream::connect(serving.addr).is_err(),
        "the listener is closed"
    );
    stream.write_all(&ONE_CLICK[10..]).unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let status = serving.wait(Duration::from_secs(10)).expect("it stops");
    assert_eq!(status.code(), Some(0));
    assert_eq!(unsubscribed(&fixture), "person01@example.com\n");
}

#[test]
fn slow_clients_are_cut_off_and_write_nothing() {
    let fixture = campaign(2);
    let serving = Serving::start(&[&fixture.campaign()]);
    let target = target("person01@example.com");
    let started = std::time::Instant::now();
    // One never finishes its head, the other never finishes its body.
    let heads = [
        format!("POST {target} HTTP/1.1\r\nHost: x\r\nContent-Le"),
        format!(
            "POST {target} HTTP/1.1\r\nHost: x\r\nContent-Type: {URLENCODED}\r\nContent-Length: {}\r\n\r\nList-Unsub",
            ONE_CLICK.len()
        ),
    ];
    let answers: Vec<String> = std::thread::scope(|scope| {
        let slow: Vec<_> = heads
            .iter()
            .map(|head| scope.spawn(|| raw(serving.addr, head.as_bytes())))
            .collect();
        slow.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let elapsed = started.elapsed();
    // Cut off after the 10 s the server gives, not by the test's own 15 s read timeout.
    assert!(elapsed < Duration::from_secs(14), "{elapsed:?}");
    assert!(!answers[0].contains("200 OK"), "{}", answers[0]);
    assert!(answers[1].starts_with("HTTP/1.1 408"), "{}", answers[1]);
    assert_eq!(unsubscribed(&fixture), "");
}

#[test]
fn campaigns_sharing_a_path_each_get_their_own_links_in_their_own_language() {
    let french = campaign(2);
    let english = campaign(2);
    let toml = std::fs::read_to_string(english.campaign()).unwrap();
    english.write(
        "campaign.toml",
        &toml
            .replace(r#"id = "essai-2026""#, r#"id = "spring-2026""#)
            .replace(r#"language = "fr""#, r#"language = "en""#),
    );
    let serving = Serving::start(&[&french.campaign(), &english.campaign()]);
    let spring = unsubscribe_for("spring-2026").link("person02@example.com");
    let spring = spring.strip_prefix("https://dons.example.org").unwrap();
    runtime().block_on(async {
        let page = request(serving.addr, "GET", spring, None, vec![]).await;
        assert_eq!(page.status, 200, "{page:?}");
        assert!(page.body.contains(r#"<html lang="en""#), "{}", page.body);
        assert!(page.body.contains("Unsubscribe me"), "{}", page.body);
        for target in [spring, &target("person01@example.com")] {
            let done = one_click(serving.addr, target).await;
            assert_eq!(done.status, 200, "{done:?}");
        }
    });
    assert_eq!(unsubscribed(&english), "person02@example.com\n");
    assert_eq!(unsubscribed(&french), "person01@example.com\n");
    drop(serving);

    // The same campaign twice: links could not say which file is meant.
    let run = french.run(
        &[
            "serve",
            french.campaign().to_str().unwrap(),
            french.campaign().to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
        &[("MISSIVE_UNSUBSCRIBE_SECRET", crate::support::http::SECRET)],
    );
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr
            .contains("two campaigns given have the id \"essai-2026\""),
        "{}",
        run.all()
    );
    // No secret: it cannot tell real links from forged ones, and does not start.
    let run = french.run(
        &[
            "serve",
            french.campaign().to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
        &[],
    );
    assert_eq!(run.code, 65, "{}", run.all());
    assert!(
        run.stderr.contains("MISSIVE_UNSUBSCRIBE_SECRET"),
        "{}",
        run.all()
    );
}
