// Drives the sg-client web UI in Debian's headless Chromium (playwright-core).
// Usage: node ui-test.mjs URL PASSWORD SCREENSHOT TRAFFIC_SIGNAL_FILE ACL_RULE
// Prints progress lines; exits non-zero on any failure.
import { chromium } from 'playwright-core';
import fs from 'node:fs';

const [url, password, screenshot, trafficSignal, aclRule] = process.argv.slice(2);
const fail = (msg) => { console.error('FAIL ' + msg); process.exit(1); };
// The UI's Content-Security-Policy forbids evaluating strings in the page, which
// page.waitForFunction does: poll from here instead, reading text through selectors.
const until = async (page, selector, test, timeout, what) => {
  const end = Date.now() + timeout;
  for (;;) {
    const text = (await page.textContent(selector).catch(() => null)) || '';
    if (test(text)) return text;
    if (Date.now() > end) fail('timed out waiting for ' + what + ' (last: ' + JSON.stringify(text) + ')');
    await new Promise((r) => setTimeout(r, 100));
  }
};

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const page = await browser.newPage();
  await page.goto(url);
  if (!page.url().endsWith('/login')) fail('expected the login page, got ' + page.url());
  console.log('LOGIN PAGE');

  await page.fill('#password', 'not-the-password');
  await page.click('#login');
  await page.waitForSelector('text=Wrong password', { timeout: 10000 });
  console.log('WRONG PASSWORD REFUSED');

  await page.fill('#password', password);
  await page.click('#login');
  await page.waitForSelector('#total', { timeout: 10000 });
  const before = Number(await until(page, '#total', (t) => t !== '–' && t !== '', 10000, 'the first figures'));
  console.log('BEFORE ' + before);

  fs.writeFileSync(trafficSignal, 'go');
  const after = Number(await until(page, '#total', (t) => Number(t) > before, 30000, 'the figures to grow'));
  console.log('AFTER ' + after);

  await page.waitForSelector('section[id^="gw-"] .acl', { timeout: 10000 });
  await page.fill('section[id^="gw-"] .acl', aclRule);
  await page.click('section[id^="gw-"] .save-acl');
  await until(page, 'section[id^="gw-"] .acl-msg', (t) => t.includes('sent to the node'), 10000, 'the ACL to be sent');
  console.log('ACL SAVED');

  await page.screenshot({ path: screenshot, fullPage: true });
  console.log('SCREENSHOT ' + screenshot);
} catch (e) {
  fail(e.message);
} finally {
  await browser.close();
}
