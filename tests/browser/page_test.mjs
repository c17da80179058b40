// Browser test of the page at / : no result card before a photo is chosen; a file that is not an
// image shows the server's error and no card; then a built-in test image in headless chromium,
// whose top category shown must equal the API's answer for the same image; saves a screenshot.
// Usage: node page_test.mjs BASE_URL IMAGE_FILE SCREENSHOT_PNG
import { readFileSync, writeFileSync } from "node:fs";
import { chromium } from "playwright-core";

const [baseUrl, imagePath, screenshotPath] = process.argv.slice(2);
const fail = (message) => { console.error("FAIL: " + message); process.exit(1); };

const api = await fetch(`${baseUrl}/v1/models/garments:classify-image`, {
  method: "POST", headers: { "Content-Type": "image/jpeg" }, body: readFileSync(imagePath),
});
if (!api.ok) fail(`API answered ${api.status}`);
const expected = (await api.json()).categories[0].name;

const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] });
try {
  const page = await browser.newPage({ viewport: { width: 900, height: 760 } });
  const errors = [];
  page.on("pageerror", (error) => errors.push(error.message));
  await page.goto(baseUrl + "/");
  await page.waitForFunction(() => document.getElementById("model-info").textContent.includes("version"));
  if (await page.isVisible("#result")) fail("a result card is shown before any photo was chosen");
  const notAnImage = screenshotPath.replace(/\.png$/, "") + "-not-an-image.txt";
  writeFileSync(notAnImage, "this is text, not a photo");
  await page.setInputFiles("#file-input", notAnImage);
  await page.waitForSelector("body[data-state=error]", { timeout: 15000 });
  const message = await page.textContent("#error");
  if (!(await page.isVisible("#error")) || !message.includes("400"))
    fail(`expected the server's 400 shown as an error, got "${message}"`);
  if (await page.isVisible("#result")) fail("a result card is shown next to the error");
  await page.setInputFiles("#file-input", imagePath);
  await page.waitForSelector("body[data-state=classified]", { timeout: 15000 });
  const shown = await page.textContent("#categories li:first-child .name");
  const bars = await page.locator("#categories li").count();
  const tags = await page.locator("#tags li").count();
  const info = await page.textContent("#model-info");
  if (await page.isVisible("#error")) fail("the earlier error is still shown next to the result");
  await page.screenshot({ path: screenshotPath, fullPage: true });
  if (errors.length) fail("page errors: " + errors.join("; "));
  if (shown !== expected) fail(`page shows top category "${shown}", the API says "${expected}"`);
  if (bars !== 2 || tags !== 3) fail(`expected 2 category bars and 3 tags, got ${bars} and ${tags}`);
  console.log(`ok: top category ${shown} (matches the API), ${tags} tags, "${info}"; screenshot ${screenshotPath}`);
} finally {
  await browser.close();
}
