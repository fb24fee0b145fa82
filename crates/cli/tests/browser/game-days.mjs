// The dashboard's game-day panel seen by a real browser: Debian's headless Chromium,
// driven with playwright-core. Run by crates/cli/tests/chaos.rs with a node's base URL
// in BASE (a node without client keys), the verdict its newest game day must show in
// EXPECT (`passed` or `failed`) and a fresh profile directory in USER_DATA_DIR. It
// waits for the panel's newest entry to carry that badge, with no page error. Exit 0
// when it did, 1 with the reason if not.
import { chromium } from 'playwright-core';

const CHROMIUM = '/usr/bin/chromium';

const { BASE: base, EXPECT: expect, USER_DATA_DIR: userDataDir } = process.env;
if (!base || !expect || !userDataDir) {
  console.error('game-days.mjs: BASE, EXPECT and USER_DATA_DIR must be set');
  process.exit(2);
}

const problems = [];
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: CHROMIUM,
  headless: true,
  args: ['--no-sandbox'],
});
try {
  const page = await context.newPage();
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  await page.goto(`${base}/dashboard`, { waitUntil: 'load' });
  const badge = page.getByTestId('game-day-state-0');
  await badge.filter({ hasText: expect }).waitFor({ timeout: 15000 });
  const line = await page.getByTestId('game-day-0').textContent();
  console.log(`newest game day: ${line}`);
} catch (error) {
  problems.push(`the panel never showed a ${expect} game day: ${error.message}`);
} finally {
  await context.close();
}
if (problems.length > 0) {
  console.error(problems.join('\n'));
  process.exit(1);
}
console.log('the game-day panel shows');
