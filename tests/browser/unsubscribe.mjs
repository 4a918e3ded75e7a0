// A person on a phone follows the unsubscribe link: headless Chromium (the system's, through
// Playwright's driver) opens it 375 px wide with JavaScript off (the page must not need it),
// takes a picture, presses the button as a finger would, and takes a picture of the page after.
// Prints one JSON object for tests/serve_browser.rs to check.
//
// usage: node unsubscribe.mjs URL OUT_DIR

import { chromium } from "playwright-core";

const [url, out] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
  ],
  timeout: 60_000,
});
try {
  const context = await browser.newContext({
    viewport: { width: 375, height: 667 },
    deviceScaleFactor: 1,
    javaScriptEnabled: false,
    hasTouch: true,
    isMobile: true,
  });
  const page = await context.newPage();
  const requests = [];
  page.on("request", (request) => requests.push(`${request.method()} ${request.url()}`));
  const first = await page.goto(url, { timeout: 30_000 });
  const confirm = {
    status: first.status(),
    title: await page.title(),
    heading: await page.locator("h1").innerText(),
    button: await page.getByRole("button").innerText(),
    scrollWidth: await page.evaluate(() => document.documentElement.scrollWidth),
  };
  await page.screenshot({ path: `${out}/unsubscribe-confirm.png`, fullPage: true });
  const [answer] = await Promise.all([
    page.waitForNavigation({ timeout: 30_000 }),
    page.getByRole("button").tap(),
  ]);
  const done = {
    status: answer.status(),
    method: answer.request().method(),
    url: page.url(),
    heading: await page.locator("h1").innerText(),
    text: await page.locator("main").innerText(),
    scrollWidth: await page.evaluate(() => document.documentElement.scrollWidth),
    cookies: (await context.cookies()).length,
  };
  await page.screenshot({ path: `${out}/unsubscribe-done.png`, fullPage: true });
  console.log(JSON.stringify({ confirm, done, requests }));
} finally {
  await browser.close();
}
