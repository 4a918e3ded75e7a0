//! A person unsubscribes in a browser: `missive serve` answers the shipped campaign's link, and
//! headless Chromium, driven by Playwright (`tests/browser/unsubscribe.mjs`), opens it at 375 px
//! with JavaScript off, presses the button, and lands on the page that says it is done. The file
//! then holds the address, once; both pages are pictured. `UPDATE_SCREENSHOTS=1 cargo test
//! --features browser-tests --test tests serve_browser::` also writes the pictures to `docs/`
//! for the README.
//!
//! Like `screenshots`, it runs only with the `browser-tests` feature; it needs Chromium and
//! Node.js, and runs `npm ci` in `tests/browser` when Playwright's driver is not installed there.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use missive::campaign::Campaign;
use missive::unsubscribe::{Secret, Unsubscribe};

use crate::support::harness::repo;
use crate::support::http::{SECRET, Serving};
use crate::support::wait_or_kill;

const NODE_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs `command` to its end, at most [`NODE_TIMEOUT`]; returns its standard output.
fn run(mut command: Command, what: &str) -> String {
    let scratch = tempfile::tempdir().unwrap();
    let (out, err) = (scratch.path().join("out"), scratch.path().join("err"));
    let mut child = command
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run {what} ({e}): install Node.js >= 20 and npm (`apt-get install -y nodejs npm`)")
        });
    let status = wait_or_kill(&mut child, NODE_TIMEOUT);
    let stdout = std::fs::read_to_string(&out).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err).unwrap_or_default();
    assert!(
        status.is_ok_and(|s| s.success()),
        "{what} failed or took over {NODE_TIMEOUT:?}:\n{stdout}\n{stderr}"
    );
    stdout
}

fn ensure_playwright(dir: &Path) {
    if dir
        .join("node_modules/playwright-core/package.json")
        .exists()
    {
        return;
    }
    let mut npm = Command::new("npm");
    npm.args(["ci", "--no-audit", "--no-fund"]).current_dir(dir);
    run(npm, "`npm ci` in tests/browser");
}

/// Not blank: many dark pixels (text) and the button's blue.
fn assert_drawn(png: &Path) {
    let decoder = png::Decoder::new(std::fs::File::open(png).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buffer = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buffer).unwrap();
    assert_eq!(info.width, 375, "{}", png.display());
    let channels = info.color_type.samples();
    let pixels: Vec<&[u8]> = buffer[..info.buffer_size()].chunks(channels).collect();
    let dark = pixels
        .iter()
        .filter(|p| (p[0] as u32 + p[1] as u32 + p[2] as u32) < 200)
        .count();
    assert!(dark * 200 > pixels.len(), "{} looks blank", png.display());
}

#[test]
#[cfg_attr(
    not(feature = "browser-tests"),
    ignore = "needs headless Chromium and Node.js: run `cargo test --features browser-tests --test tests serve_browser::` (bash .ci/run does)"
)]
fn a_person_on_a_phone_unsubscribes_with_one_press() {
    let browser_dir = repo().join("tests/browser");
    ensure_playwright(&browser_dir);
    // The shipped campaign, in a folder of its own so that its unsubscribed file is the test's.
    let scratch = tempfile::tempdir().unwrap();
    let campaign_path = scratch.path().join("campaign.toml");
    std::fs::copy(repo().join("campaign.toml"), &campaign_path).unwrap();
    let campaign = Campaign::load(&campaign_path).unwrap();
    let settings = campaign.unsubscribe.clone().expect("[unsubscribe]");
    let link = Unsubscribe {
        campaign_id: campaign.id.clone(),
        mailto: settings.mailto,
        url: settings.url.clone(),
        footer: settings.footer,
        link_text: settings.link_text,
        secret: Secret::new(SECRET).unwrap(),
    }
    .link("zoe.durand@example.com");
    let serving = Serving::start(&[&campaign_path]);
    let local = link.replace(
        &format!("https://{}", settings.url.host_str().unwrap()),
        &format!("http://{}", serving.addr),
    );

    let shots = scratch.path().join("shots");
    std::fs::create_dir_all(&shots).unwrap();
    let mut node = Command::new("node");
    node.arg("unsubscribe.mjs")
        .arg(&local)
        .arg(&shots)
        .current_dir(&browser_dir);
    let report = run(node, "tests/browser/unsubscribe.mjs");
    let report: serde_json::Value =
        serde_json::from_str(report.trim()).unwrap_or_else(|e| panic!("{e}: {report}"));

    let confirm = &report["confirm"];
    assert_eq!(confirm["status"], 200, "{report}");
    assert_eq!(confirm["heading"], "Ne plus recevoir nos lettres\u{202f}?");
    assert_eq!(confirm["button"], "Me désabonner");
    assert_eq!(confirm["scrollWidth"], 375, "nothing sticks out at 375 px");
    let done = &report["done"];
    assert_eq!(
        (&done["status"], &done["method"]),
        (&200.into(), &"POST".into()),
        "{report}"
    );
    assert_eq!(done["url"], local.as_str(), "no redirect");
    assert_eq!(done["heading"], "C’est fait");
    assert!(
        done["text"]
            .as_str()
            .unwrap()
            .contains("reponses@example.org"),
        "{report}"
    );
    assert_eq!(done["scrollWidth"], 375);
    assert_eq!(done["cookies"], 0);
    // Nothing else was fetched: no style sheet, font, image or tracker.
    assert_eq!(report["requests"].as_array().unwrap().len(), 2, "{report}");
    let file = campaign.suppression_file(missive::suppression::Reason::Unsubscribed);
    assert_eq!(
        std::fs::read_to_string(file).unwrap(),
        "zoe.durand@example.com\n"
    );

    for name in ["unsubscribe-confirm.png", "unsubscribe-done.png"] {
        assert_drawn(&shots.join(name));
        if std::env::var_os("UPDATE_SCREENSHOTS").is_some() {
            std::fs::copy(shots.join(name), repo().join("docs").join(name)).unwrap();
        }
    }
}
