//! A person looks at it: the shipped letter, as `missive preview` writes it for a page, rendered
//! by headless Chromium at 600 px (a desktop mail client's reading pane) and 375 px (a phone).
//! The pictures must show a letter (not a blank page), and on the phone no text may run past
//! the screen's edge. `UPDATE_SCREENSHOTS=1 cargo test --features browser-tests --test
//! tests screenshots::` also writes them to `docs/` for the README; review them like code.
//!
//! It needs a browser, so it runs only with the `browser-tests` feature (`bash .ci/run` installs
//! Chromium and enables it). Without the feature it is compiled but listed as ignored, with the
//! command that runs it; with the feature and no Chromium it fails, saying how to install it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::harness::repo;
use crate::support::wait_or_kill;

const WIDTHS: [(u32, &str); 2] = [(600, "desktop"), (375, "phone")];
const CHROMIUM_TIMEOUT: Duration = Duration::from_secs(90);
/// Lays the page out, then records its height, its widest element's right edge, and every
/// element that sticks out sideways. `WIDTH` is replaced by the width under test.
const MEASURE: &str = r#"<script>
(function () {
  var width = WIDTH, out = [], right = 0;
  document.querySelectorAll('body *').forEach(function (el) {
    var r = el.getBoundingClientRect();
    if (r.width > 0 && r.height > 0) right = Math.max(right, r.right);
    if (r.width > 0 && r.height > 0 && (r.right > width + 0.5 || r.left < -0.5)) {
      out.push(el.tagName + ' ' + Math.round(r.left) + '..' + Math.round(r.right) + ' ' +
        (el.textContent || '').trim().slice(0, 40));
    }
  });
  document.body.setAttribute('data-measure', JSON.stringify({
    width: width,
    right: Math.ceil(right),
    height: document.documentElement.scrollHeight,
    overflow: out
  }));
})();
</script>"#;

fn chromium() -> PathBuf {
    let candidates = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .into_iter()
        .chain(["chromium", "chromium-browser", "google-chrome"].map(PathBuf::from));
    for candidate in candidates {
        let found = Command::new(&candidate)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if found {
            return candidate;
        }
    }
    panic!(
        "headless Chromium is needed to render the letter: `apt-get install -y chromium` \
         (bash .ci/run does), or set CHROMIUM to its path"
    );
}

/// Runs Chromium headless on `page` at `width`×`height` with `action` (a --screenshot or
/// --dump-dom); returns its standard output.
fn run_chromium(page: &Path, width: u32, height: u32, action: &str, scratch: &Path) -> String {
    let profile = scratch.join(format!("profile-{width}-{}", action.len()));
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            "--force-device-scale-factor=1",
            &format!("--window-size={width},{height}"),
            &format!("--user-data-dir={}", profile.display()),
            action,
        ])
        .arg(format!("file://{}", page.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    if wait_or_kill(&mut child, CHROMIUM_TIMEOUT).is_err() {
        panic!("chromium did not finish {action} within {CHROMIUM_TIMEOUT:?}");
    }
    let output = child.wait_with_output().expect("chromium output");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `(height, widest right edge, overflowing elements)` of the page laid out at `width`.
///
/// Chromium's `--dump-dom` keeps windows at least 500 px wide, so the page itself is held to
/// `width` (the phone layout's media query, `max-width:620px`, applies at 500 as at 375). The
/// screenshot, which does honour 375 px, is checked at its right edge as well.
fn measure(page: &str, width: u32, scratch: &Path) -> (u32, u32, Vec<String>) {
    let measured = scratch.join(format!("measure-{width}.html"));
    let page = page
        .replace(
            "</head>",
            &format!("<style>html{{width:{width}px!important}}</style></head>"),
        )
        .replace(
            "</body>",
            &format!("{}</body>", MEASURE.replace("WIDTH", &width.to_string())),
        );
    std::fs::write(&measured, page).unwrap();
    let dom = run_chromium(&measured, width, 800, "--dump-dom", scratch);
    let start = dom
        .find("data-measure=\"")
        .unwrap_or_else(|| panic!("no measurement in the DOM Chromium dumped:\n{dom}"))
        + "data-measure=\"".len();
    let end = start + dom[start..].find('"').unwrap();
    let json = dom[start..end]
        .replace("&quot;", "\"")
        .replace("&amp;", "&");
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    let overflow = value["overflow"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    (
        value["height"].as_u64().unwrap() as u32,
        value["right"].as_u64().unwrap() as u32,
        overflow,
    )
}

/// Decodes a PNG into (width, height, RGB rows).
fn decode(path: &Path) -> (u32, u32, Vec<[u8; 3]>) {
    let decoder = png::Decoder::new(std::fs::File::open(path).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buffer = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buffer).unwrap();
    let channels = info.color_type.samples();
    assert!(channels >= 3, "{:?}", info.color_type);
    let pixels = buffer[..info.buffer_size()]
        .chunks(channels)
        .map(|p| [p[0], p[1], p[2]])
        .collect();
    (info.width, info.height, pixels)
}

fn luminance([r, g, b]: [u8; 3]) -> u32 {
    (299 * r as u32 + 587 * g as u32 + 114 * b as u32) / 1000
}

#[test]
#[cfg_attr(
    not(feature = "browser-tests"),
    ignore = "needs headless Chromium: left to CI; run `cargo test --features browser-tests --test tests screenshots::` (bash .ci/run does)"
)]
fn the_shipped_letter_looks_right_on_a_desktop_and_on_a_phone() {
    // Look for the browser first, so that a machine without one fails here, plainly.
    chromium();
    let scratch = tempfile::tempdir().unwrap();
    let out = scratch.path().join("preview");
    let campaign = repo().join("campaign.toml");
    let preview = Command::new(env!("CARGO_BIN_EXE_missive"))
        .args([
            "preview",
            campaign.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .args(["--recipient", "zoe.durand@example.com"])
        .env(
            "MISSIVE_UNSUBSCRIBE_SECRET",
            "screenshots-only-key-screenshots-only-key",
        )
        .output()
        .unwrap();
    assert!(preview.status.success(), "{preview:?}");
    let page_path = out.join("screenshot.html");
    let page = std::fs::read_to_string(&page_path).expect("preview writes screenshot.html");
    assert!(page.contains("Bonjour Zoé,") && page.contains("Se désabonner en un clic"));

    let update = std::env::var_os("UPDATE_SCREENSHOTS").is_some();
    for (width, name) in WIDTHS {
        let (height, right, overflow) = measure(&page, width, scratch.path());
        assert!(
            right <= width && overflow.is_empty(),
            "at {width} px the page reaches {right} px; sticking out:\n{}",
            overflow.join("\n")
        );
        assert!((1500..20_000).contains(&height), "{height}");

        let png = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("letter-{name}.png"));
        let _ = std::fs::remove_file(&png);
        run_chromium(
            &page_path,
            width,
            height,
            &format!("--screenshot={}", png.display()),
            scratch.path(),
        );
        let (w, h, pixels) = decode(&png);
        assert_eq!((w, h), (width, height), "{}", png.display());
        // Not blank: a page of text has many dark pixels and many shades (anti-aliasing, the
        // button's red, the rules' colours).
        let ink = pixels.iter().filter(|p| luminance(**p) < 110).count();
        let shades: std::collections::HashSet<[u8; 3]> = pixels.iter().copied().collect();
        assert!(
            ink * 100 > pixels.len() && shades.len() > 64,
            "{} looks blank: {ink} dark pixels of {}, {} colours",
            png.display(),
            pixels.len(),
            shades.len()
        );
        // Nothing dark touches the right edge: text that ran past the screen would.
        let edge_ink = (0..h as usize)
            .flat_map(|y| (w as usize - 4..w as usize).map(move |x| (x, y)))
            .filter(|(x, y)| luminance(pixels[y * w as usize + x]) < 160)
            .count();
        assert_eq!(
            edge_ink,
            0,
            "{}: dark pixels at the right edge",
            png.display()
        );

        if update {
            let docs = repo().join("docs");
            std::fs::create_dir_all(&docs).unwrap();
            std::fs::copy(&png, docs.join(format!("letter-{name}.png"))).unwrap();
        }
    }
}
