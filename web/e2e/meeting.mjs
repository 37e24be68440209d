// The meeting app end to end in real Chromium (Debian's, through playwright-core) against a
// running bedrud with its embedded LiveKit. Run by tests/web.rs inside scripts/netns-run.sh,
// which passes everything through the environment:
//   BEDRUD_URL        the app's origin (http://127.0.0.1:PORT, or https://<name>.test:PORT)
//   SCENARIO          "full" (every page and moderation), "tls" (one meeting over wss://) or
//                     "recording" (a moderator records, audio only; needs recording.enabled)
//   CHROMIUM          the browser binary; HOST_RULES optional --host-resolver-rules
//   SCREENSHOTS       where screenshots go; FIGURES a JSON file for the measured timings
//   BEDRUD_BIN, BEDRUD_CONFIG, LIVEKIT_VERSION   for the admin scenario
// Every step waits for what a person would see; a step that never happens fails the run.
import { chromium } from 'playwright-core';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import assert from 'node:assert/strict';

const env = process.env;
const base = env.BEDRUD_URL;
const scenario = env.SCENARIO ?? 'full';
const shots = env.SCREENSHOTS;
mkdirSync(shots, { recursive: true });
const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const figures = {};
const pages = [];
const STEP = 60_000;

const args = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
];
if (env.HOST_RULES) args.push(`--host-resolver-rules=${env.HOST_RULES}`, '--ignore-certificate-errors');
// playwright launches with a fresh temporary profile (its own --user-data-dir) every time.
const browser = await chromium.launch({ executablePath: env.CHROMIUM, headless: true, args });

// Every RTCPeerConnection the page makes is kept, so the test can read WebRTC's own stats.
const keepPeerConnections = () => {
  const Native = window.RTCPeerConnection;
  window.__pcs = [];
  window.RTCPeerConnection = function (...a) {
    const pc = new Native(...a);
    window.__pcs.push(pc);
    return pc;
  };
  window.RTCPeerConnection.prototype = Native.prototype;
  Object.setPrototypeOf(window.RTCPeerConnection, Native);
};

async function person(label) {
  const context = await browser.newContext({
    ignoreHTTPSErrors: true,
    permissions: ['camera', 'microphone'],
    viewport: { width: 1280, height: 800 },
  });
  const page = await context.newPage();
  pages.push([label, page]);
  page.setDefaultTimeout(STEP);
  page.on('console', (m) => { if (m.type() === 'error') console.log(`[${label}] console: ${m.text()}`); });
  page.on('pageerror', (e) => console.log(`[${label}] page error: ${e.message}`));
  await page.addInitScript(keepPeerConnections);
  page.sockets = [];
  page.on('websocket', (ws) => page.sockets.push(ws.url()));
  return page;
}

async function shot(page, name) {
  await page.screenshot({ path: `${shots}/${name}.png` });
}

async function axe(page, what) {
  await page.addScriptTag({ content: axeSource });
  const result = await page.evaluate(async () => window.axe.run(document, { resultTypes: ['violations'] }));
  const bad = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  const summary = bad.map((v) => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join('; ')}`);
  assert.deepEqual(summary, [], `axe found serious or critical problems on the ${what} page`);
  console.log(`axe: ${what} page clean (${result.violations.length} minor findings)`);
}

async function signUp(page, name, email) {
  await page.goto(`${base}/signup`);
  await page.getByLabel('Name').fill(name);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill('correct horse battery');
  await page.getByRole('button', { name: 'Create an account' }).click();
  await page.getByRole('heading', { name: 'Rooms' }).waitFor();
}

async function signIn(page, email) {
  await page.goto(`${base}/signin`);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill('correct horse battery');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Rooms' }).waitFor();
}

async function createRoom(page, name, guests) {
  await page.getByLabel('Room name').fill(name);
  if (guests) await page.getByLabel(/Guests may join/).check();
  await page.getByRole('button', { name: 'Create room' }).click();
  await page.getByRole('status').filter({ hasText: `Room “${name}” created` }).waitFor();
  await page.getByRole('link', { name: `Join ${name}` }).waitFor();
}

async function joinFromPreJoin(page, guestName) {
  await page.getByRole('heading', { name: /^Join “/ }).waitFor();
  if (guestName) await page.locator('.lk-prejoin input#username').fill(guestName);
  await page.getByRole('button', { name: 'Join meeting' }).click();
}

/** Sum of framesDecoded over inbound video, from every peer connection of the page. */
async function framesDecoded(page) {
  return page.evaluate(async () => {
    let frames = 0;
    for (const pc of window.__pcs ?? []) {
      if (pc.connectionState === 'closed') continue;
      const stats = await pc.getStats();
      stats.forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'video') frames += s.framesDecoded ?? 0; });
    }
    return frames;
  });
}

async function waitFrames(page, who) {
  const deadline = Date.now() + STEP;
  for (;;) {
    const n = await framesDecoded(page);
    if (n > 0) return n;
    if (Date.now() > deadline) throw new Error(`${who} decoded no remote video frame`);
    await page.waitForTimeout(50);
  }
}

/** Clicks "Join meeting" and measures the time until the first remote frame is decoded. */
async function joinAndTime(page, label) {
  const start = Date.now();
  await joinFromPreJoin(page);
  await page.locator('.lk-video-conference').waitFor();
  await waitFrames(page, label);
  return Date.now() - start;
}

async function meetingOf(alice, bob, room) {
  await alice.goto(`${base}/r/${room}`);
  await joinFromPreJoin(alice);
  await alice.locator('.lk-video-conference').waitFor();
  await bob.goto(`${base}/r/${room}`);
  // Bob joins second: from his click to his first frame of Alice's camera.
  const ms = await joinAndTime(bob, 'bob');
  await waitFrames(alice, 'alice');
  console.log(`both decode the other's video; join→first remote frame ${ms} ms`);
  return ms;
}

/** The page's own API call, with its signed-in session (as the app makes it). */
async function apiGet(page, path) {
  return page.evaluate(async (p) => {
    const s = JSON.parse(localStorage.getItem('bedrud.session'));
    const r = await fetch(p, { headers: { Authorization: `Bearer ${s.accessToken}` } });
    return { status: r.status, body: await r.json() };
  }, path);
}

const RECORDING = 'This meeting is being recorded';

try {
  if (scenario === 'recording') {
    const alice = await person('alice');
    const bob = await person('bob');
    await signUp(alice, 'Alice', 'alice@example.test');
    await signUp(bob, 'Bob', 'bob@example.test');
    await createRoom(alice, 'recorded', false);
    await meetingOf(alice, bob, 'recorded');
    await alice.locator('.people li.person', { hasText: 'Bob' }).waitFor();

    // Bob is a participant: no recording controls, and nothing says "recording" yet.
    await bob.locator('.people li.person', { hasText: 'Alice' }).waitFor();
    assert.equal(await bob.getByRole('button', { name: 'Record' }).count(), 0, 'a participant sees the Record button');
    assert.equal(await bob.getByRole('heading', { name: 'Recording' }).count(), 0, 'a participant sees the recordings');
    assert.equal(await bob.getByText(RECORDING).count(), 0);
    console.log('a participant has no recording controls');

    // Alice records, audio only (the default).
    const audioOnly = alice.getByRole('checkbox', { name: 'Audio only' });
    assert.ok(await audioOnly.isChecked(), 'audio only is not the default');
    await axe(alice, 'meeting with recording controls');
    const clicked = Date.now();
    await alice.getByRole('button', { name: 'Record', exact: true }).click();
    // Everyone sees it, from LiveKit's own room state (the egress worker joined as recorder).
    for (const p of [alice, bob]) await p.getByRole('status').filter({ hasText: RECORDING }).waitFor();
    figures.recordClickToIndicatorMs = Date.now() - clicked;
    console.log(`both see the recording indicator ${figures.recordClickToIndicatorMs} ms after the click`);
    await alice.locator('li.recording[data-status="active"]').waitFor();
    await shot(alice, 'recording-moderator');
    await shot(bob, 'recording-participant');

    // A few seconds of both people's audio, then stop.
    await alice.waitForTimeout(5000);
    const stopped = Date.now();
    await alice.getByRole('button', { name: 'Stop recording' }).click();
    for (const p of [alice, bob]) await p.getByText(RECORDING).waitFor({ state: 'detached' });
    const done = alice.locator('li.recording[data-status="complete"]');
    await done.waitFor();
    figures.stopClickToCompleteMs = Date.now() - stopped;
    await done.getByText(/complete · audio · \d+:\d\d · .* · started by you/).waitFor();
    console.log(`recording complete ${figures.stopClickToCompleteMs} ms after stop: ${await done.locator('.state').textContent()}`);
    await done.scrollIntoViewIfNeeded();
    await shot(alice, 'recordings-list');

    // The API's view of it, and the file the Download button gives.
    const id = await done.getAttribute('data-id');
    const api = await apiGet(alice, `/api/recordings/${id}`);
    assert.equal(api.status, 200, JSON.stringify(api.body));
    assert.equal(api.body.status, 'complete');
    assert.equal(api.body.audioOnly, true);
    assert.ok(api.body.size > 0 && api.body.durationMs >= 3000, JSON.stringify(api.body));
    const [download] = await Promise.all([
      alice.waitForEvent('download'),
      done.getByRole('button', { name: /^Download the recording/ }).click(),
    ]);
    const file = await download.path();
    const bytes = readFileSync(file);
    assert.equal(statSync(file).size, api.body.size, 'the downloaded file and the API disagree on the size');
    assert.equal(bytes.subarray(4, 8).toString('latin1'), 'ftyp', 'the download is not an MP4 file');
    assert.match(download.suggestedFilename(), /^recorded-\d+\.mp4$/);
    console.log(`downloaded ${download.suggestedFilename()}: ${bytes.length} bytes, as the API says`);

    // Deleted: gone from the list and from the API.
    alice.once('dialog', (d) => d.accept());
    await done.getByRole('button', { name: /^Delete the recording/ }).click();
    await alice.getByRole('status').filter({ hasText: 'Recording deleted.' }).waitFor();
    await done.waitFor({ state: 'detached' });
    assert.equal((await apiGet(alice, `/api/recordings/${id}`)).status, 404);
    console.log('recording deleted');
  } else if (scenario === 'tls') {
    const alice = await person('alice');
    const bob = await person('bob');
    await signUp(alice, 'Alice', 'alice@example.test');
    await signUp(bob, 'Bob', 'bob@example.test');
    await createRoom(alice, 'secure-standup', false);
    figures.joinToFirstFrameTlsMs = await meetingOf(alice, bob, 'secure-standup');
    const origin = new URL(base);
    for (const p of [alice, bob]) {
      const lk = p.sockets.filter((u) => u.includes('/livekit/'));
      assert.ok(lk.length > 0, `no LiveKit WebSocket was opened: ${p.sockets}`);
      for (const u of lk) assert.ok(u.startsWith(`wss://${origin.host}/livekit/`), `signaling went to ${u}`);
    }
    console.log('signaling went through wss:// on bedrud\'s own origin');
    await shot(bob, 'tls-meeting');
  } else {
    const alice = await person('alice');
    const bob = await person('bob');

    await alice.goto(`${base}/rooms`);
    await alice.getByRole('heading', { name: 'Sign in' }).waitFor();
    await axe(alice, 'sign-in');
    await shot(alice, 'sign-in');

    // Not a secure context (plain http, not localhost): the page says why there is no camera.
    const insecure = await person('insecure');
    await insecure.goto(`http://meet.bedrud.test:${new URL(base).port}/r/standup`);
    await insecure.getByRole('alert').filter({ hasText: 'camera and microphone are unavailable' })
      .filter({ hasText: 'server.enableTLS' }).waitFor();
    await shot(insecure, 'insecure-origin');
    await insecure.context().close();
    console.log('non-secure origin explained');

    await signUp(alice, 'Alice', 'alice@example.test');
    await signUp(bob, 'Bob', 'bob@example.test');
    // Sign out and in again, through the header.
    await bob.getByRole('button', { name: 'Sign out' }).click();
    await bob.getByRole('heading', { name: 'Sign in' }).waitFor();
    await signIn(bob, 'bob@example.test');

    await createRoom(alice, 'standup', true);
    await axe(alice, 'rooms');
    await shot(alice, 'rooms');

    figures.joinToFirstFrameMs = await meetingOf(alice, bob, 'standup');
    await alice.getByText('Bob', { exact: false }).first().waitFor();
    await shot(alice, 'meeting');
    await axe(alice, 'meeting');

    // This server does not record: the moderator's Record is refused with the API's reason.
    await alice.getByRole('button', { name: 'Record', exact: true }).click();
    await alice.getByRole('alert').filter({ hasText: 'Could not start recording: recording is not enabled on this server (recording.enabled)' }).waitFor();
    assert.equal(await alice.getByText('This meeting is being recorded').count(), 0);
    console.log('recording refused with the reason (recording.enabled is off)');

    // Chat, through LiveKit's own chat panel.
    await alice.getByRole('button', { name: /Chat/ }).click();
    await alice.locator('.lk-chat-form-input').fill('hello from alice');
    await alice.locator('.lk-chat-form-input').press('Enter');
    await bob.getByRole('button', { name: /Chat/ }).click();
    await bob.locator('.lk-chat-messages').getByText('hello from alice').waitFor();
    console.log('chat message arrived');

    // The moderator mutes Bob: both people panels show it.
    const bobOnAlice = alice.locator('.people li.person', { hasText: 'Bob' });
    await bobOnAlice.getByText('microphone on').waitFor();
    await alice.getByRole('button', { name: 'Mute Bob' }).click();
    await bobOnAlice.getByText('microphone muted').waitFor();
    await bob.locator('.people li.person', { hasText: 'Bob (you)' }).getByText('microphone muted').waitFor();
    console.log('muted on both sides');
    await shot(bob, 'muted');

    // Removed with a ban: Bob is told why, and cannot come back.
    await alice.getByRole('button', { name: 'Remove and ban Bob' }).click();
    await bob.getByRole('heading', { name: 'You were removed' }).waitFor();
    await bob.getByText('A moderator removed you from this meeting.').waitFor();
    await shot(bob, 'removed');
    await bob.getByRole('button', { name: 'Join again' }).click();
    await joinFromPreJoin(bob);
    await bob.getByRole('alert').filter({ hasText: 'removed from this room' }).waitFor();
    console.log('removed, and refused on rejoin');
    // The ban is listed for the moderator; lifted, Bob may come back.
    await alice.locator('.people').getByRole('button', { name: 'Lift ban on Bob' }).click();
    await alice.getByRole('status').filter({ hasText: 'Ban on Bob lifted' }).waitFor();
    await bob.getByRole('button', { name: 'Join meeting' }).click();
    await bob.locator('.lk-video-conference').waitFor();
    await alice.locator('.people li.person', { hasText: 'Bob' }).waitFor();
    console.log('ban lifted, Bob back in');

    // A guest, by the room's link, with just a name.
    const guest = await person('guest');
    await guest.goto(`${base}/r/standup`);
    await guest.getByText('You join as a guest').waitFor();
    await joinFromPreJoin(guest, 'Gita Guest');
    await guest.locator('.lk-video-conference').waitFor();
    await waitFrames(guest, 'guest');
    await alice.locator('.people li.person', { hasText: 'Gita Guest' }).waitFor();
    console.log('guest joined by link');

    // Permissions: the guest may no longer publish, so LiveKit takes the camera away.
    const gitaOnAlice = alice.locator('.people li.person', { hasText: 'Gita Guest' });
    await gitaOnAlice.getByText('camera on').waitFor();
    await gitaOnAlice.getByText('Permissions').click();
    await gitaOnAlice.getByLabel('Publish', { exact: true }).uncheck();
    await gitaOnAlice.getByRole('button', { name: 'Apply' }).click();
    await alice.getByRole('status').filter({ hasText: 'Permissions of Gita Guest changed' }).waitFor();
    await gitaOnAlice.getByText('no camera').waitFor();
    console.log('permissions applied: the guest no longer publishes');

    // Phone-sized viewport.
    await guest.setViewportSize({ width: 390, height: 844 });
    await shot(guest, 'meeting-phone');

    // Admin: Alice is made an administrator (the CLI), signs in again, and sees LiveKit.
    const made = spawnSync(env.BEDRUD_BIN, ['user', 'create-admin', '--email', 'alice@example.test', '--config', env.BEDRUD_CONFIG],
      { input: 'correct horse battery\n', encoding: 'utf8', env: { PATH: env.PATH, TMPDIR: env.TMPDIR } });
    assert.equal(made.status, 0, made.stderr);
    const admin = await person('admin');
    await signIn(admin, 'alice@example.test');
    await admin.getByRole('link', { name: 'Admin' }).click();
    await admin.getByTestId('livekit-version').filter({ hasText: env.LIVEKIT_VERSION }).waitFor();
    await admin.getByText(/standup.*in the meeting/).waitFor();
    await admin.getByRole('button', { name: 'Make admin: bob@example.test' }).click();
    await admin.getByRole('button', { name: 'Remove admin role from bob@example.test' }).waitFor();
    console.log(`admin page shows LiveKit ${env.LIVEKIT_VERSION}; Bob made admin`);
    await shot(admin, 'admin');

    // The owner ends the meeting for everyone.
    alice.once('dialog', (d) => d.accept());
    await alice.getByRole('button', { name: 'End meeting for all' }).click();
    await guest.getByText('The meeting was ended for everyone.').waitFor();
    console.log('meeting ended for all');

    // Dark colour scheme, for the record.
    await admin.emulateMedia({ colorScheme: 'dark' });
    await admin.goto(`${base}/rooms`);
    await admin.getByRole('heading', { name: 'Rooms' }).waitFor();
    await axe(admin, 'rooms (dark)');
    await shot(admin, 'rooms-dark');
  }
  if (env.FIGURES) writeFileSync(env.FIGURES, JSON.stringify(figures, null, 2));
  console.log(`e2e ${scenario}: all steps passed`);
} catch (e) {
  console.error(`e2e ${scenario} FAILED: ${e.stack ?? e}`);
  for (const [label, page] of pages) {
    await page.screenshot({ path: `${shots}/failed-${scenario}-${label}.png` }).catch(() => undefined);
  }
  process.exitCode = 1;
} finally {
  await browser.close();
}
