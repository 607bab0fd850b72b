// Drives the dashboard like an operator, in Debian's headless Chromium.
// Run by tests/it/dashboard.rs, which starts stewrd and passes these settings:
//   BASE, ADMIN_TOKEN, PROJECT_NAME, PROJECT_KEY (a project API key),
//   PROVIDER_KEY (the secret typed into the form), SHOTS (screenshot directory).
// Prints one JSON line with what it saw; exits non-zero on any failure.
const { chromium } = require('playwright-core');

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const BASE = env('BASE');
const PROVIDER_KEY = env('PROVIDER_KEY');
const SHOTS = env('SHOTS');

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  // Every response body the browser receives, to check none carries the key.
  const reading = [];
  page.on('response', (response) => {
    // Redirects have no body.
    reading.push(response.text().catch(() => ''));
  });
  const shot = (name) => page.screenshot({ path: `${SHOTS}/${name}.png`, fullPage: true });

  await page.goto(`${BASE}/dashboard`);
  await page.waitForSelector('#token');
  await shot('1-sign-in');
  await page.fill('#token', env('ADMIN_TOKEN'));
  await page.click('button[type=submit]');
  await page.waitForURL('**/dashboard');
  await shot('2-projects');

  await page.click(`text=${env('PROJECT_NAME')}`);
  await page.waitForSelector('#llm-configuration');
  const before = await page.textContent('#llm-key');
  await page.click('#llm-edit-button');
  await page.selectOption('#provider', 'openrouter');
  await page.fill('#api_key', PROVIDER_KEY);
  await page.fill('#model', 'anthropic/claude-sonnet-4');
  await shot('3-llm-edit');
  await page.click('#llm-save');
  await page.waitForSelector('text=LLM configuration saved.');
  const after = await page.textContent('#llm-key');
  const provider = await page.textContent('#llm-provider');
  const model = await page.textContent('#llm-model');
  const keyField = await page.inputValue('#api_key');
  await shot('4-llm-saved');

  // A session submitted through the API shows up with its output.
  const submitted = await fetch(`${BASE}/v1/agent`, {
    method: 'POST',
    headers: { authorization: `Bearer ${env('PROJECT_KEY')}`, 'content-type': 'application/json' },
    body: JSON.stringify({ message: 'Hello from the browser test' }),
  }).then((r) => r.json());
  const done = await fetch(`${BASE}/v1/sessions/${submitted.session_id}?wait=30`, {
    headers: { authorization: `Bearer ${env('PROJECT_KEY')}` },
  }).then((r) => r.json());
  await page.reload();
  await page.waitForSelector(`text=${submitted.session_id}`);
  await shot('5-project-with-session');
  await page.click(`text=${submitted.session_id}`);
  await page.waitForSelector('#session-status');
  const sessionText = await page.textContent('main');
  await shot('6-session');

  // A streamed answer appears on the session page as the model writes it.
  const streamed = await fetch(`${BASE}/v1/agent`, {
    method: 'POST',
    headers: { authorization: `Bearer ${env('PROJECT_KEY')}`, 'content-type': 'application/json' },
    body: JSON.stringify({ message: 'one two three four five six seven eight nine ten', stream: true }),
  }).then((r) => r.json());
  await page.goto(`${BASE}/dashboard/sessions/${streamed.session_id}`);
  await page.waitForFunction(() => {
    const live = document.getElementById('live');
    return live && live.textContent.length > 0;
  });
  const livePartial = await page.textContent('#live');
  const statusWhilePartial = await page.textContent('#session-status');
  await page.waitForFunction(() => document.getElementById('session-status').textContent.includes('succeeded'));
  const liveFinal = await page.textContent('#live');
  await shot('7-live-answer');
  const streamedDone = await fetch(`${BASE}/v1/sessions/${streamed.session_id}`, {
    headers: { authorization: `Bearer ${env('PROJECT_KEY')}` },
  }).then((r) => r.json());

  // Limits are set on the project page; its usage chart shows today's tokens.
  await page.goto(`${BASE}/dashboard`);
  await page.click(`text=${env('PROJECT_NAME')}`);
  await page.waitForSelector('#limits');
  await page.fill('#max_concurrent_runs', '3');
  await page.fill('#tokens_per_day', '123456');
  await page.click('#limits-save');
  await page.waitForSelector('text=Limits saved.');
  const limitsShown = {
    max_concurrent_runs: await page.inputValue('#max_concurrent_runs'),
    tokens_per_day: await page.inputValue('#tokens_per_day'),
  };
  const chart = page.locator('#usage-chart');
  await chart.scrollIntoViewIfNeeded();
  await chart.screenshot({ path: `${SHOTS}/8-usage-chart.png` });
  await shot('9-project-limits-and-usage');
  const bars = await page.$$eval('#usage-chart rect.bar', (rects) => rects.map((r) => ({
    height: Number(r.getAttribute('height')),
    title: r.textContent,
  })));
  const project = await fetch(`${BASE}/v1/project`, {
    headers: { authorization: `Bearer ${env('PROJECT_KEY')}` },
  }).then((r) => r.json());

  const sources = [await page.content()];
  const bodies = await Promise.all(reading);
  await browser.close();
  const everything = bodies.concat(sources).join('\n');
  console.log(JSON.stringify({
    before: before.trim(),
    after: after.trim(),
    provider: provider.trim(),
    model: model.trim(),
    key_field_after_save: keyField,
    session_status: done.status,
    session_output: done.output,
    session_page_has_output: sessionText.includes(done.output || '\u0000'),
    live_partial: livePartial,
    live_status_while_partial: statusWhilePartial.trim(),
    live_final: liveFinal,
    streamed_output: streamedDone.output,
    limits_shown: limitsShown,
    limits_stored: project.limits,
    chart_bars: bars,
    responses_seen: bodies.length,
    key_seen: everything.includes(PROVIDER_KEY),
    key_prefix_seen: everything.includes(PROVIDER_KEY.slice(0, 12)),
  }));
})().catch((error) => {
  console.error(error);
  process.exit(1);
});
