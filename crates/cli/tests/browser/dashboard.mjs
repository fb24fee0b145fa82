// The dashboard seen by a real browser: Debian's headless Chromium, driven with
// playwright-core (which downloads no browser of its own). Run by
// crates/cli/tests/dashboard.rs against a running `holdfast serve`; every input comes
// from the environment:
//
//   DASHBOARD_URL   http://127.0.0.1:PORT/dashboard
//   CLIENT_KEY      the client key to type into the page ("" when none is configured)
//   TARGET          a target whose breaker the test opened with an outage
//   TASK_ID         a task waiting on a human step
//   ESCALATION_ID   that step's escalation
//   OTHER_ESCALATION_ID  another open escalation, which this script resolves behind
//                   the page's back to see the page report the 409
//   SCREENSHOT      where to save the page once the task succeeded (PNG)
//   USER_DATA_DIR   a fresh, empty profile directory
//
// It checks, in order: the page loads with its CSP; the key form takes the key; the
// store shows up and its outbox empty beside it (from /ready); the
// target's breaker shows as open; a hidden tab stops the polling; an escalation
// resolved elsewhere meanwhile is reported as a 409 when approved in the page; a bad edit is refused in the page as invalid JSON
// and nothing is sent; Approve resolves the escalation; the task shows as succeeded;
// its timeline opens from the journal. Exit 0 when all held, 1 with the reason if not.
import { chromium } from 'playwright-core';

const CHROMIUM = '/usr/bin/chromium';
const STEP_TIMEOUT_MS = 20_000;
const OVERALL_TIMEOUT_MS = 120_000;

function input(name, optional = false) {
  const value = process.env[name];
  if (value === undefined || (!optional && value === '')) {
    console.error(`dashboard.mjs: ${name} is not set`);
    process.exit(2);
  }
  return value;
}

const url = input('DASHBOARD_URL');
const key = input('CLIENT_KEY', true);
const target = input('TARGET');
const taskId = input('TASK_ID');
const escalationId = input('ESCALATION_ID');
const otherEscalationId = input('OTHER_ESCALATION_ID');
const screenshot = input('SCREENSHOT');
const userDataDir = input('USER_DATA_DIR');

const overall = setTimeout(() => {
  console.error(`dashboard.mjs: gave up after ${OVERALL_TIMEOUT_MS} ms`);
  process.exit(1);
}, OVERALL_TIMEOUT_MS);

function step(text) {
  console.log(`step: ${text}`);
}

// Chromium headless has no tab to hide, so the page is told its tab is hidden (or
// shown) the way a browser tells it: `document.hidden` and a visibilitychange event.
async function setHidden(page, hidden) {
  await page.evaluate((value) => {
    Object.defineProperty(document, 'hidden', { configurable: true, get: () => value });
    Object.defineProperty(document, 'visibilityState', {
      configurable: true,
      get: () => (value ? 'hidden' : 'visible'),
    });
    document.dispatchEvent(new Event('visibilitychange'));
  }, hidden);
}

const problems = [];
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: CHROMIUM,
  headless: true,
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-dev-shm-usage',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
  viewport: { width: 1400, height: 1100 },
});
let failed = null;
try {
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(STEP_TIMEOUT_MS);
  page.on('pageerror', (e) => problems.push(`uncaught error in the page: ${e.message}`));
  page.on('console', (m) => {
    // A 401 before the key is typed is expected; anything the CSP refused is not.
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) {
      problems.push(`console error: ${m.text()}`);
    }
  });

  step(`open ${url}`);
  const response = await page.goto(url);
  if (!response || response.status() !== 200) {
    throw new Error(`GET ${url} answered ${response && response.status()}`);
  }
  const csp = response.headers()['content-security-policy'] || '';
  if (!csp.includes("default-src 'self'")) {
    throw new Error(`the page's Content-Security-Policy is ${JSON.stringify(csp)}`);
  }

  if (key) {
    step('type the client key into the key form');
    await page.getByTestId('key-form').waitFor({ state: 'visible' });
    await page.getByTestId('key-input').fill(key);
    await page.getByTestId('key-save').click();
    await page.getByTestId('key-form').waitFor({ state: 'hidden' });
  }

  step('see the store up, from /ready');
  await page.getByTestId('store-status').filter({ hasText: 'store up since' }).waitFor();

  step('see the outbox empty beside it, from /ready');
  await page.getByTestId('outbox-status').filter({ hasText: 'outbox 0 B of 1 MiB (0.0%)' }).waitFor();

  step(`see ${target}'s breaker open`);
  await page.locator(`[data-testid="breaker-${target}"][data-state="open"]`).waitFor();

  step('a hidden tab stops polling');
  await page.getByTestId(`escalation-${otherEscalationId}`).waitFor();
  await setHidden(page, true);
  // A tick under way when the tab hid finishes first; then nothing more runs.
  await page.getByTestId('live-status').filter({ hasText: 'paused' }).waitFor();
  await page.waitForTimeout(2500);
  const paused = await page.getByTestId('live-status').textContent();
  if (!paused.includes('paused')) {
    throw new Error(`the page kept polling while hidden: ${JSON.stringify(paused)}`);
  }

  step(`resolve ${otherEscalationId} behind the page's back, then approve it in the page`);
  const origin = new URL(url).origin;
  const headers = { 'Content-Type': 'application/json' };
  if (key) headers.Authorization = `Bearer ${key}`;
  const elsewhere = await fetch(`${origin}/v1/escalations/${encodeURIComponent(otherEscalationId)}/resolve`, {
    method: 'POST', headers, body: JSON.stringify({ action: 'approve' }),
  });
  if (elsewhere.status !== 200) {
    throw new Error(`resolving ${otherEscalationId} over the API answered ${elsewhere.status}`);
  }
  await page.getByTestId(`approve-${otherEscalationId}`).click();
  const conflict = page.getByTestId(`escalation-error-${otherEscalationId}`);
  await conflict.waitFor({ state: 'visible' });
  const conflictText = await conflict.textContent();
  if (!conflictText.includes('already resolved') || !conflictText.includes('409')) {
    throw new Error(`a second resolve showed ${JSON.stringify(conflictText)}`);
  }
  console.log(`the page said: ${conflictText}`);
  await setHidden(page, false);
  await page.getByTestId(`escalation-${otherEscalationId}`).waitFor({ state: 'detached' });

  step('an edit that is not JSON is refused in the page');
  await page.getByTestId(`escalation-${escalationId}`).waitFor();
  await page.getByTestId(`edit-${escalationId}`).click();
  await page.getByTestId(`edit-text-${escalationId}`).fill('{"item": not json');
  await page.getByTestId(`edit-send-${escalationId}`).click();
  const error = page.getByTestId(`escalation-error-${escalationId}`);
  await error.waitFor({ state: 'visible' });
  const said = await error.textContent();
  if (!said.includes('not valid JSON')) {
    throw new Error(`a bad edit showed ${JSON.stringify(said)}`);
  }

  step(`approve escalation ${escalationId}`);
  await page.getByTestId(`approve-${escalationId}`).click();
  await page.getByTestId(`escalation-${escalationId}`).waitFor({ state: 'detached' });
  const note = await page.getByTestId('inbox-message').textContent();
  if (!note.includes('Approved')) {
    throw new Error(`after Approve the inbox said ${JSON.stringify(note)}`);
  }

  step(`see task ${taskId} succeed`);
  await page.locator(`[data-testid="task-status-${taskId}"][data-state="succeeded"]`).waitFor();

  step("open the task's timeline");
  await page.getByTestId(`task-${taskId}`).click();
  await page.getByTestId('timeline').waitFor({ state: 'visible' });
  await page.getByTestId('timeline-entry').first().waitFor();
  const kinds = await page.locator('[data-testid="timeline-entry"] .kind').allTextContents();
  console.log(`timeline: ${kinds.join(', ')}`);

  // Let the charts take a few more readings so the picture shows lines.
  await page.waitForTimeout(2000);
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(`screenshot: ${screenshot}`);

  if (problems.length > 0) {
    throw new Error(`the page reported problems:\n  ${problems.join('\n  ')}`);
  }
} catch (e) {
  failed = e;
} finally {
  await context.close();
  clearTimeout(overall);
}
if (failed) {
  console.error(`dashboard.mjs failed: ${failed.message}`);
  process.exit(1);
}
console.log('dashboard.mjs: all checks held');
