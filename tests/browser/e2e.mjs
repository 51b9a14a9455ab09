// End-to-end run of the demo pages in headless Chromium (Debian's), driven by playwright-core.
// tests/browser.rs starts `tsp serve` and runs this with:
//   TSP_BASE (http://host:port), TSP_KEYS ({"app","admin","terminal"}), TSP_PAN (a card to add),
//   TSP_GIFT_CODE (a gift certificate to add), TSP_STEPUP_PAN (a card its issuer steps up),
//   TSP_SCREENSHOTS (a folder, optional).
// Prints one JSON object with what it saw; exits 1 on the first check that fails. The PAN check covers
// every page's HTML, every response and every request but the one that registers the card the user
// typed (that request exists to carry it).
import { chromium } from 'playwright-core';

const base = process.env.TSP_BASE;
const keys = JSON.parse(process.env.TSP_KEYS);
const pan = process.env.TSP_PAN;
const giftCode = process.env.TSP_GIFT_CODE;
const stepUpPan = process.env.TSP_STEPUP_PAN;
const shots = process.env.TSP_SCREENSHOTS;
const phone = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true };
const seen = { pages: {}, traffic: 0 };
const texts = []; // every page's HTML and every request and response body, for the PAN check

function check(ok, what) {
  if (!ok) {
    console.log(JSON.stringify({ failed: what, seen }));
    process.exit(1);
  }
}

async function open(browser, path, scheme = 'light') {
  const context = await browser.newContext({ ...phone, colorScheme: scheme });
  const page = await context.newPage();
  page.on('request', (r) => {
    seen.traffic += 1;
    const url = new URL(r.url());
    if (url.pathname.startsWith('/v1/')) {
      calls.add(`${r.method()} ${url.pathname.replace(/\/(ins|tok)_[0-9a-f]+/g, '/$1_…')}`);
      check(documented.some((d) => d.method === r.method() && d.re.test(url.pathname)), `an undocumented call: ${r.method()} ${url.pathname}`);
    }
    check(r.url().startsWith(base) || r.url().startsWith('blob:') || r.url().startsWith('data:'), `a request left the server: ${r.url()}`);
    const body = r.postData();
    // The one request that must carry the number: the user registering the card they typed.
    const registering = r.method() === 'POST' && r.url() === `${base}/v1/instruments` && body && body.includes('"type":"card"');
    if (registering) seen.card_registrations = (seen.card_registrations || 0) + 1;
    else if (body) texts.push(body);
  });
  page.on('response', async (r) => {
    try { texts.push(await r.text()); } catch { /* a redirect or a body already gone */ }
  });
  await page.goto(base + path);
  return { context, page };
}

async function shot(page, name) {
  if (shots) await page.screenshot({ path: `${shots}/${name}.png`, fullPage: false });
}

// The pages' REST calls must be documented ones: every /v1 request is matched against /openapi.json.
const doc = await (await fetch(`${base}/openapi.json`)).json();
const documented = Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => ({
  method: m.toUpperCase(), re: new RegExp(`^${path.replace(/\{[^}]+\}/g, '[^/]+')}$`),
})));
const calls = new Set();

const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
try {
  // The wallet: sign in, add a card, a gift certificate and a local wallet, charge the wallet.
  const { page: wallet } = await open(browser, '/wallet?theme=light');
  check(await wallet.getByLabel('App API key').isVisible(), 'the wallet asks for a key');
  await wallet.getByLabel('App API key').fill(keys.app);
  await wallet.getByRole('button', { name: 'Sign in' }).click();
  await wallet.getByLabel('Card number').fill(pan);
  await wallet.getByLabel('Expiry (YYMM)').fill('3012');
  await wallet.getByRole('button', { name: 'Add card' }).click();
  const masked = `${pan.slice(0, 6)}******${pan.slice(-4)}`;
  await wallet.locator('.tile[data-type="card"] .number', { hasText: masked }).waitFor();
  // The card shows its product's art, loaded (a drawn SVG here), and names the product.
  const art = wallet.locator('.tile[data-type="card"] img.art');
  await art.waitFor();
  await wallet.waitForFunction(() => { const i = document.querySelector('.tile[data-type="card"] img.art'); return i && i.complete; });
  const artSeen = await art.evaluate((i) => ({ width: i.naturalWidth, alt: i.alt, src: i.getAttribute('src') }));
  check(artSeen.width > 0 && /card$/.test(artSeen.alt) && artSeen.src.startsWith('/v1/card-art/'), `the card art did not load: ${JSON.stringify(artSeen)}`);
  seen.card_art = artSeen;
  // A card its issuer steps up: no Pay until verified; a code by SMS, read off the simulated phone
  // as a user would read their phone, typed in.
  await wallet.getByLabel('Card number').fill(stepUpPan);
  await wallet.getByLabel('Expiry (YYMM)').fill('3012');
  await wallet.getByRole('button', { name: 'Add card' }).click();
  const stepMasked = `${stepUpPan.slice(0, 6)}******${stepUpPan.slice(-4)}`;
  const stepTile = wallet.locator('.tile[data-type="card"]').filter({ has: wallet.locator('.number', { hasText: stepMasked }) });
  await stepTile.locator('[data-testid="verify"]').waitFor();
  check(await stepTile.getByRole('button', { name: `Pay with ${stepMasked}` }).count() === 0, 'no Pay before the card is verified');
  await stepTile.getByRole('button', { name: /^Text 010-/ }).click();
  const phoneText = stepTile.locator('[data-testid="phone"] p');
  await phoneText.waitFor();
  const message = await phoneText.textContent();
  const otp = (message.match(/\b(\d{6})\b/) || [])[1];
  check(otp, `a six-digit code on the simulated phone: ${message}`);
  await shot(wallet, 'wallet-step-up');
  await stepTile.getByLabel('Verification code').fill(otp);
  await stepTile.getByRole('button', { name: 'Verify' }).click();
  await wallet.getByRole('button', { name: `Pay with ${stepMasked}` }).waitFor();
  seen.step_up = { masked: stepMasked, message: message.replace(otp, '######'), verified: true };
  await wallet.getByLabel('Gift certificate code').fill(giftCode);
  await wallet.getByRole('button', { name: 'Add gift certificate' }).click();
  await wallet.locator('.tile[data-type="gift"]').waitFor();
  await wallet.getByLabel('Local currency region').fill('seoul-gangnam');
  await wallet.getByRole('button', { name: 'Add local wallet' }).click();
  const local = wallet.locator('.tile[data-type="local"]');
  await local.waitFor();
  await local.getByLabel('Charge amount (KRW)').fill('10000');
  await local.getByRole('button', { name: 'Charge' }).click();
  await local.locator('[data-testid="balance"]', { hasText: '10000 + bonus 1000 KRW' }).waitFor();
  seen.pages.wallet = { masked, local: await local.locator('[data-testid="balance"]').textContent() };

  // Pay with the card: a token with its barcode, QR code and countdown.
  await wallet.getByRole('button', { name: `Pay with ${masked}` }).click();
  await wallet.locator('#pay-token[data-token]').waitFor();
  const cardToken = await wallet.locator('#pay-token').getAttribute('data-token');
  check(/^\d{16}$/.test(cardToken), 'a 16-digit token on the page');
  check(cardToken !== pan, 'the token is not the card number');
  await wallet.waitForFunction(() => document.getElementById('pay-qr').naturalWidth > 0 && document.getElementById('pay-barcode').naturalWidth > 0);
  check(/\d+:\d\d left/.test(await wallet.locator('#pay-countdown').textContent()), 'a countdown of the TTL');
  await shot(wallet, 'wallet');

  // The terminal page pays it over ISO 8583.
  const { page: terminal } = await open(browser, '/terminal?theme=light');
  await terminal.getByLabel('Terminal API key').fill(keys.terminal);
  await terminal.getByRole('button', { name: 'Sign in' }).click();
  await terminal.getByLabel('Token (type, paste or scan)').fill(cardToken);
  await terminal.getByLabel('Amount (KRW)').fill('4500');
  await terminal.getByRole('button', { name: 'Pay' }).click();
  await terminal.locator('[data-testid="response-code"]', { hasText: /\d\d/ }).waitFor();
  const cardCode = await terminal.locator('[data-testid="response-code"]').textContent();
  const cardWords = await terminal.locator('#result-words').textContent();
  check(cardCode === '00' && /approved/i.test(cardWords), `the card payment is approved: ${cardCode} ${cardWords}`);
  await terminal.evaluate(() => window.scrollTo(0, 0));
  await shot(terminal, 'terminal');

  // The wallet sees its token used.
  await wallet.locator('#pay[data-state="consumed"]').waitFor({ timeout: 10_000 });
  seen.pages.wallet.card_token_state = await wallet.locator('#pay-state').textContent();

  // Pay 3,000 from the local wallet: its balance on the wallet page goes down.
  await wallet.getByRole('button', { name: 'Pay with seoul-gangnam' }).click();
  await wallet.waitForFunction((old) => {
    const t = document.getElementById('pay-token');
    return t.dataset.token && t.dataset.token !== old;
  }, cardToken);
  const localToken = await wallet.locator('#pay-token').getAttribute('data-token');
  await terminal.getByLabel('Token (type, paste or scan)').fill(localToken);
  await terminal.getByLabel('Amount (KRW)').fill('3000');
  await terminal.getByRole('button', { name: 'Pay' }).click();
  await terminal.waitForFunction(() => document.getElementById('result-detail').textContent.includes('3000'));
  check(await terminal.locator('[data-testid="response-code"]').textContent() === '00', 'the wallet payment is approved');
  await wallet.locator('#pay[data-state="consumed"]').waitFor({ timeout: 10_000 });
  await local.locator('[data-testid="balance"]', { hasText: /^(?!10000 \+ bonus 1000)/ }).waitFor();
  seen.pages.wallet.local_after = await local.locator('[data-testid="balance"]').textContent();
  check(seen.pages.wallet.local_after !== seen.pages.wallet.local, 'the wallet balance changed');

  // A used token paid again: declined in words.
  await terminal.getByLabel('Token (type, paste or scan)').fill(cardToken);
  await terminal.getByLabel('Amount (KRW)').fill('1000');
  await terminal.getByRole('button', { name: 'Pay' }).click();
  await terminal.locator('[data-testid="response-code"]', { hasText: '78' }).waitFor();
  seen.pages.terminal = { card: cardCode, reused: await terminal.locator('#result-words').textContent() };

  // The console: transactions, the chart, closing the day.
  const { page: console_ } = await open(browser, '/console', 'dark');
  await console_.getByLabel('Admin API key').fill(keys.admin);
  await console_.getByRole('button', { name: 'Sign in' }).click();
  await console_.locator('#txns tr[data-kind="purchase"]').first().waitFor();
  const rows = await console_.locator('#txns tr').count();
  await console_.getByLabel('Response', { exact: true }).selectOption('78');
  const declinedRows = await console_.locator('#txns tr[data-code="78"]').count();
  check(declinedRows >= 1 && declinedRows < rows, 'the response-code filter narrows the table');
  await console_.getByLabel('Response', { exact: true }).selectOption('');
  check(await console_.locator('#chart rect.approved').count() === 1, 'approvals in the chart');
  check(await console_.locator('#chart rect.declined').count() >= 1, 'declines in the chart');
  await console_.getByRole('button', { name: 'Close the business day' }).click();
  await console_.locator('[data-testid="close-status"]', { hasText: 'Closed: settlement stl_' }).waitFor();
  const theme = await console_.evaluate(() => document.documentElement.dataset.theme);
  check(theme === 'dark', 'the dark theme on prefers-color-scheme: dark');
  seen.pages.console = { rows, declinedRows, closed: await console_.locator('[data-testid="close-status"]').textContent(), theme };
  await console_.evaluate(() => window.scrollTo(0, 0));
  await shot(console_, 'console');

  // Keyboard: the wallet's sign-in works with the keyboard alone.
  const { page: keyboard } = await open(browser, '/wallet');
  let focused = '';
  for (let i = 0; i < 4 && focused !== 'app-key'; i += 1) {
    await keyboard.keyboard.press('Tab');
    focused = await keyboard.evaluate(() => document.activeElement && document.activeElement.id);
  }
  check(focused === 'app-key', `Tab reaches the key field (got ${focused})`);
  await keyboard.keyboard.type(keys.app);
  await keyboard.keyboard.press('Enter');
  await keyboard.locator('.tile[data-type="card"]').first().waitFor();

  // Contrast (WCAG 2.x AA, 4.5:1 for text) of text against what is behind it, in both themes.
  const contrast = async (page) => page.evaluate(() => {
    const rgb = (c) => c.match(/\d+(\.\d+)?/g).slice(0, 3).map(Number);
    const lum = ([r, g, b]) => [r, g, b].map((v) => { const c = v / 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; })
      .reduce((a, c, i) => a + c * [0.2126, 0.7152, 0.0722][i], 0);
    const bg = (n) => { for (let e = n; e; e = e.parentElement) { const c = getComputedStyle(e).backgroundColor; if (!/rgba\(.*,\s*0\)$/.test(c) && c !== 'transparent') return c; } return 'rgb(255,255,255)'; };
    const ratios = {};
    for (const sel of ['h1', 'h2', 'label', 'button', '.muted', '.status', 'td', '.number']) {
      const n = [...document.querySelectorAll(sel)].find((e) => e.offsetParent !== null);
      if (!n) continue;
      const [a, b] = [lum(rgb(getComputedStyle(n).color)), lum(rgb(bg(n)))];
      ratios[sel] = Math.round(((Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05)) * 10) / 10;
    }
    return ratios;
  });
  seen.contrast = { wallet_light: await contrast(wallet), console_dark: await contrast(console_), terminal_light: await contrast(terminal) };
  for (const [page, ratios] of Object.entries(seen.contrast)) {
    for (const [sel, r] of Object.entries(ratios)) check(r >= 4.5, `contrast of ${sel} on ${page}: ${r}`);
  }

  // Dark after sunset by the device's clock. Seoul, 21 June 2026: sunrise 05:11, sunset 19:57 KST
  // (Korea Astronomy and Space Science Institute's tables), so 12:00 and 19:50 are light, 20:05 and
  // 23:00 dark — with the system asking for light.
  const clockThemes = {};
  for (const [at, want] of [['2026-06-21T03:00:00Z', 'light'], ['2026-06-21T10:50:00Z', 'light'],
    ['2026-06-21T11:05:00Z', 'dark'], ['2026-06-21T14:00:00Z', 'dark']]) {
    const ctx = await browser.newContext({ ...phone, colorScheme: 'light' });
    const p = await ctx.newPage();
    await p.clock.install({ time: new Date(at) });
    await p.goto(`${base}/wallet`);
    clockThemes[at] = await p.evaluate(() => document.documentElement.dataset.theme);
    await ctx.close();
    check(clockThemes[at] === want, `theme at ${at}: ${clockThemes[at]}, want ${want}`);
  }
  seen.clock_themes = clockThemes;

  // No page, request or response carried the card number or its middle digits.
  for (const p of [wallet, terminal, console_, keyboard]) texts.push(await p.content());
  const middle = pan.slice(6, -4);
  const leak = texts.find((t) => t.includes(pan) || (middle.length >= 6 && t.includes(pan.slice(0, 6) + middle)) || t.includes(middle + pan.slice(-4)));
  check(!leak, 'a page or its traffic carried the PAN');
  seen.checked_bodies = texts.length;
  seen.rest_calls = [...calls].sort();
  console.log(JSON.stringify({ ok: true, seen }));
} finally {
  await browser.close();
}
