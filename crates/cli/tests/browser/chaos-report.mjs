// A chaos experiment's HTML report seen by a real browser: Debian's headless Chromium,
// driven with playwright-core. Run by crates/cli/tests/chaos.rs with the report's path
// in REPORT and a fresh profile directory in USER_DATA_DIR. It checks that the page
// loads from the file alone with no console error, no page error and no request
// leaving it, and that its three plots are drawn (each an SVG of real size with at
// least one line). Exit 0 when all held, 1 with the reason if not.
import { chromium } from 'playwright-core';

const CHROMIUM = '/usr/bin/chromium';

const report = process.env.REPORT;
const userDataDir = process.env.USER_DATA_DIR;
if (!report || !userDataDir) {
  console.error('chaos-report.mjs: REPORT and USER_DATA_DIR must be set');
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
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`console error: ${message.text()}`);
  });
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('request', (request) => {
    if (!request.url().startsWith('file://')) problems.push(`request left the page: ${request.url()}`);
  });
  await page.goto(`file://${report}`, { waitUntil: 'load' });
  const plots = await page.$$eval('svg.plot', (svgs) => svgs.map((svg) => {
    const box = svg.getBoundingClientRect();
    return { width: box.width, height: box.height, lines: svg.querySelectorAll('polyline').length,
             faults: svg.querySelectorAll('rect.fault').length };
  }));
  console.log(`plots: ${JSON.stringify(plots)}`);
  if (plots.length !== 3) problems.push(`${plots.length} plots, expected 3`);
  for (const plot of plots) {
    if (plot.width < 100 || plot.height < 50) problems.push(`a plot is ${plot.width}×${plot.height}`);
    if (plot.lines < 1) problems.push('a plot has no line');
    if (plot.faults < 1) problems.push('a plot has no fault window');
  }
  const verdict = await page.textContent('.verdict');
  console.log(`verdict: ${verdict}`);
} finally {
  await context.close();
}
if (problems.length > 0) {
  console.error(problems.join('\n'));
  process.exit(1);
}
console.log('the report renders');
