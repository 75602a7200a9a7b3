// Drive the `asrquant web` page in Debian's headless chromium (playwright-core, no browser
// download): feed each clip of the manifests through the page's file input, as a user would,
// and write what the page shows (text, time taken, bytes downloaded) as JSON.
//
//   node web/driver.mjs --url http://127.0.0.1:PORT/ --out results.json [--screenshot page.png] \
//       [--chromium /usr/bin/chromium] [--timeout-s 600] MANIFEST.jsonl...
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

function parseArgs(argv) {
  const args = { chromium: '/usr/bin/chromium', timeoutS: 600, manifests: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--url') args.url = argv[++i];
    else if (a === '--out') args.out = argv[++i];
    else if (a === '--screenshot') args.screenshot = argv[++i];
    else if (a === '--chromium') args.chromium = argv[++i];
    else if (a === '--timeout-s') args.timeoutS = Number(argv[++i]);
    else args.manifests.push(a);
  }
  if (!args.url || !args.out || !args.manifests.length) {
    console.error('usage: node driver.mjs --url URL --out OUT.json [--screenshot PNG] MANIFEST.jsonl...');
    process.exit(2);
  }
  return args;
}

function clips(manifest) {
  const dir = path.dirname(manifest);
  return fs.readFileSync(manifest, 'utf8').split('\n').filter((l) => l.trim()).map((l) => {
    const row = JSON.parse(l);
    return { id: row.id, audio: path.resolve(dir, row.audio), reference: row.text };
  });
}

const args = parseArgs(process.argv.slice(2));
const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'asrquant-chromium-'));
// Flags: this machine has no network beyond localhost; a fresh profile so nothing is cached.
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: args.chromium, headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
         '--disable-component-update', '--disable-sync'],
});
const deadline = args.timeoutS * 1000;
const pageEnv = (page) => page.evaluate(() => ({
  crossOriginIsolated: self.crossOriginIsolated, userAgent: navigator.userAgent,
  backend: document.getElementById('backend').textContent, loadMs: window.asrquant.loadMs,
  downloadedBytes: window.asrquant.downloadedBytes(),
  resources: performance.getEntriesByType('resource').map((e) => ({ name: e.name, bytes: e.encodedBodySize || 0 })),
}));
try {
  const page = browser.pages()[0] || await browser.newPage();
  const console_ = [];
  page.on('console', (m) => console_.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => console_.push(`pageerror: ${e.message}`));
  await page.goto(args.url);
  await page.waitForSelector('#status[data-state="ready"], #status[data-state="error"]', { timeout: deadline });
  if (await page.getAttribute('#status', 'data-state') === 'error') {
    throw new Error(`${await page.textContent('#status')}\n${console_.join('\n')}`);
  }
  const all = args.manifests.flatMap(clips);
  const loaded = await pageEnv(page);  // the download and load, for a run cut short
  const results = [];
  for (const [i, clip] of all.entries()) {
    await page.setInputFiles('#file', clip.audio);
    await page.waitForSelector(`#status[data-state="done"][data-count="${i + 1}"], #status[data-state="error"]`,
                               { timeout: deadline });
    if (await page.getAttribute('#status', 'data-state') === 'error') {
      throw new Error(`${clip.audio}: ${await page.textContent('#status')}`);
    }
    const r = await page.evaluate((n) => window.asrquant.results[n], i);
    results.push({ id: clip.id, text: r.text, stops: r.stops, ms: r.ms, audio_s: r.audio_s });
    console.error(`${clip.id}: ${r.text}${r.stops.filter((s) => s !== 'eot').map((s) => ` [${s}]`).join('')}`);
    fs.writeFileSync(args.out, JSON.stringify({ ...loaded, partial: true, results }, null, 1) + '\n');  // a cut run keeps its clips
  }
  const env = await pageEnv(page);
  if (args.screenshot) await page.screenshot({ path: args.screenshot, fullPage: true });
  fs.writeFileSync(args.out, JSON.stringify({ ...env, results }, null, 1) + '\n');
} finally {
  await browser.close();
  fs.rmSync(profile, { recursive: true, force: true });
}
