'use strict';
// frcstream's page: every camera with its stream, its stats and its settings.
// A browser opens about 6 connections per host and each live MJPEG stream holds one, so
// at most MAX_LIVE cameras stream live; the others show a snapshot refreshed every
// second, one at a time ("Live" swaps one in). Stats come from one shared poll.
// Settings go through the server's validated POST; its refusal is shown as it is.
const MAX_LIVE = 3, POLL_MS = 1000, SNAP_MS = 1000, FIELD_MBIT = 7;
const only = document.body.dataset.camera;
const main = document.getElementById('cams');
const cams = [];
let live = [], readOnly = '', serverUp = true, held = null;

const sleep = ms => new Promise(r => setTimeout(r, ms));
const el = (tag, props, ...kids) => {
  const e = Object.assign(document.createElement(tag), props);
  e.append(...kids);
  return e;
};
const text = (e, t) => { t = String(t); if (e.textContent !== t) e.textContent = t; };
const num = (v, d) => (v > 0 ? v.toFixed(d) : '0');
const store = (k, v) => { try { return v === undefined ? localStorage.getItem(k) : localStorage.setItem(k, v); } catch (e) { return null; } };

async function get(url) {
  const r = await fetch(url, { cache: 'no-store', signal: AbortSignal.timeout && AbortSignal.timeout(4000) });
  if (!r.ok) throw new Error(r.status + ' ' + (await r.text()).trim());
  return r;
}

function banner(message) {
  const b = document.getElementById('banner');
  b.hidden = !message;
  text(b, message);
}

// Stream sizes a viewer can ask for: the camera's, half and quarter (even widths, as
// Elastic sends them).
function sizes(w, h) {
  const out = [];
  for (const d of [1, 2, 4]) {
    const s = (w / d & ~1) + 'x' + (h / d & ~1);
    if (w / d >= 16 && h / d >= 16 && !out.includes(s)) out.push(s);
  }
  return out;
}

function card(s) {
  const [, w = 640, h = 480] = /(\d+)x(\d+)/.exec(s.mode) || [];
  const c = { name: s.name, w: +w, h: +h, inputs: {}, values: {}, pending: {}, timers: {}, origin: {}, busy: false };
  const url = '/' + encodeURIComponent(s.name);
  c.post = url;
  c.res = store('res:' + s.name) || '';
  c.img = el('img', { alt: s.name + ' camera' });
  c.img.onerror = () => {
    if (!c.live || !c.img.getAttribute('src')) return;
    c.broken = true;
    note(c, 'stream not available; retrying', true);
    clearTimeout(c.retry);
    c.retry = setTimeout(() => c.live && restart(c), 2000);
  };
  c.img.onload = () => { if (c.broken) { c.broken = false; note(c, ''); } };
  c.go = el('button', { className: 'go', textContent: '▶ Live', title: 'Stream this camera live (another one goes to snapshots)', onclick: e => { e.stopPropagation(); setLive(c, true); } });
  c.view = el('div', { className: 'view', title: 'Tap to enlarge' }, c.img, c.nosig = el('div', { className: 'nosig', textContent: 'NO SIGNAL · camera disconnected' }), c.go);
  c.tag = el('span', { className: 'tag' });
  c.view.style.aspectRatio = c.w + '/' + c.h;
  c.view.onclick = () => c.el.classList.toggle('big');
  const stat = (label, tip) => { const b = el('b', { textContent: '–' }); c.stat.append(el('div', { title: tip }, b, el('small', { textContent: label }))); return b; };
  c.stat = el('div', { className: 'stats' });
  c.fps = stat('fps', 'frames per second sent (captured by the camera in the tooltip)');
  c.mbit = stat('Mbit/s', 'what all clients of this camera take');
  c.clients = stat('clients', 'streams open now');
  c.lat = stat('ms latency', 'capture to send, median (95th percentile and max in the tooltip)');
  c.mode = el('span', { className: 'mode' });
  c.ctl = el('div', { className: 'ctl' });
  c.more = el('details');
  c.msg = el('p', { className: 'msg' });
  const res = el('select', { className: 'viewsize', title: 'Only for this browser: the size of the stream sent here' });
  sizes(c.w, c.h).forEach((s, i) => res.add(new Option(s.replace('x', '×') + ['', ' (half)', ' (quarter)'][i], i ? s : '')));
  res.value = c.res;
  if (res.value !== c.res) res.value = c.res = '';
  res.onchange = () => { c.res = res.value; store('res:' + c.name, c.res); if (c.live) restart(c); };
  c.resRow = el('div', { className: 'row' }, el('span', { textContent: 'view size' }), res);
  c.el = el('section', { className: 'cam', id: 'cam-' + s.name },
    el('div', { className: 'head' }, el('i', { className: 'dot' }), el('b', { textContent: s.name }), c.tag, c.mode),
    c.view, c.stat, c.ctl, c.more, c.msg,
    el('div', { className: 'links' },
      el('a', { href: url + '.mjpg', textContent: 'stream' }), el('a', { href: url + '.jpg', textContent: 'snapshot' }),
      el('a', { href: url + '/settings.json', textContent: 'settings.json' }), only ? '' : el('a', { href: url + '.html', textContent: 'only this' })));
  main.append(c.el);
  return c;
}

function streamUrl(c) {
  return c.post + '.mjpg' + (c.res ? '?resolution=' + c.res : '');
}

// (Re)opens what the image shows: the live stream, or nothing until the next snapshot.
function restart(c) {
  clearTimeout(c.retry);
  const want = c.live && !document.hidden && serverUp ? streamUrl(c) : '';
  c.img.removeAttribute('src');
  if (want) setTimeout(() => { if (c.live) c.img.src = want; }, 0);
}

function setLive(c, on) {
  live = live.filter(x => x !== c);
  c.live = on;
  if (on) {
    live.push(c);
    while (live.length > MAX_LIVE) setLive(live[0], false);
  }
  c.el.classList.toggle('snap', !on);
  text(c.tag, on ? 'LIVE' : 'SNAPSHOT 1/s');
  c.tag.title = on ? 'streaming to this browser' : 'refreshed every second; ▶ Live streams it (the browser can hold ' + MAX_LIVE + ' streams)';
  restart(c);
}

// One row per setting: a slider and a number for integers, a checkbox for booleans, a
// list for menus (cscore's types 2, 1 and 8).
function row(c, k) {
  const name = k.name, v = +k.value;
  let inputs;
  if (k.type === '1') inputs = [el('input', { type: 'checkbox', checked: v !== 0 })];
  else if (k.type === '8') {
    const s = el('select');
    for (const [val, label] of Object.entries(k.menu || {})) s.add(new Option(label, val));
    s.value = v;
    inputs = [s];
  } else {
    const r = { min: k.min, max: k.max, step: k.step, value: v };
    inputs = [el('input', Object.assign({ type: 'range' }, r)), el('input', Object.assign({ type: 'number', inputMode: 'numeric' }, r))];
  }
  for (const i of inputs) {
    i.dataset.key = name;
    i.disabled = !!readOnly;
    i.addEventListener('input', () => {
      mirror(c, name, i);
      if (i.type === 'range') { clearTimeout(c.timers[name]); c.timers[name] = setTimeout(() => send(c, name, read(i)), 150); }
    });
    i.addEventListener('change', () => { mirror(c, name, i); send(c, name, read(i)); });
  }
  c.inputs[name] = inputs;
  c.values[name] = v;
  const label = name.replace(/_/g, ' ');
  // Where the value comes from (config, saved, changed) is shown after the label by the style.
  const span = c.origin[name] = el('span', { textContent: label });
  span.dataset.origin = k.origin || '';
  return el('div', { className: k.type === '1' ? 'row check' : 'row', title: label + ' (' + k.min + '–' + k.max + ', default ' + k.default + ')' }, span, ...inputs);
}

// Origins as /stats.json and POST answers give them; a control not listed is at default.
function origins(c, o) {
  if (!o) return;
  for (const k in c.origin) c.origin[k].dataset.origin = o[k] || 'default';
}

async function forget(c) {
  try {
    const r = await fetch(c.post, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"forget":true}' });
    const t = (await r.text()).trim();
    if (!r.ok) { note(c, t, true); if (r.status === 403) lock(t); return; }
    await loadSettings(c);
    note(c, '✓ saved settings forgotten: back to the config');
  } catch (e) { note(c, 'not sent: ' + e.message, true); }
}

function read(i) {
  if (i.type === 'checkbox') return i.checked;
  return isNaN(i.valueAsNumber) ? (i.type === 'number' ? i.value : +i.value) : i.valueAsNumber;
}

function mirror(c, name, from) {
  for (const i of c.inputs[name]) if (i !== from && i.type !== 'checkbox') i.value = from.value;
}

function show(c, name, v) {
  for (const i of c.inputs[name] || []) {
    if (i === held || (i === document.activeElement && i.type === 'number')) continue;
    if (i.type === 'checkbox') i.checked = !!v; else if (i.value != v) i.value = v;
  }
}

async function loadSettings(c) {
  let s;
  try { s = await (await get(c.post + '/settings.json')).json(); } catch (e) { note(c, 'settings: ' + e.message, true); return; }
  c.inputs = {};
  c.origin = {};
  const main = s.controls.filter(k => k.name === 'fps' || k.name === 'quality');
  const rest = s.controls.filter(k => !main.includes(k));
  const file = (s.saved_settings || {}).file;
  const drop = el('button', { className: 'forget', textContent: 'Forget saved settings', disabled: !!readOnly, onclick: () => forget(c),
    title: (file ? 'Changes are saved in ' + file + ' and come back after a restart. ' : 'Changes are not saved. ') + 'This puts every setting back to the config file' });
  drop.dataset.key = 'forget';
  c.ctl.replaceChildren(...main.map(k => row(c, k)), c.resRow, drop);
  c.more.replaceChildren();
  c.more.hidden = !rest.length;
  if (rest.length) {
    const reset = el('button', { textContent: 'Reset controls to defaults', disabled: !!readOnly, onclick: () => {
      const all = {};
      for (const k of rest) all[k.name] = k.type === '1' ? k.default !== '0' : +k.default;
      post(c, all);
    } });
    reset.dataset.key = 'reset';
    c.more.append(el('summary', { textContent: 'Camera controls (' + rest.length + ')' }), ...rest.map(k => row(c, k)), reset);
  }
}

function send(c, name, v) {
  clearTimeout(c.timers[name]);
  c.pending[name] = v;
  if (!c.busy) post(c, {});
}

// One request at a time per camera; changes made meanwhile go together in the next.
async function post(c, extra) {
  const body = Object.assign(c.pending, extra);
  c.pending = {};
  if (!Object.keys(body).length) return;
  c.busy = true;
  try {
    const r = await fetch(c.post, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
    const t = (await r.text()).trim();
    if (r.ok) {
      const a = JSON.parse(t);
      const got = Object.assign({ fps: a.fps, quality: a.quality }, a.controls);
      for (const k in got) if (!(k in c.pending)) { c.values[k] = got[k]; show(c, k, got[k]); }
      origins(c, a.origins);
      note(c, '✓ ' + Object.keys(body).map(k => k.replace(/_/g, ' ') + ' ' + got[k]).join(', '));
    } else {
      for (const k in body) show(c, k, c.values[k]);
      note(c, t || 'refused: HTTP ' + r.status, true);
      if (r.status === 403) lock(t);
    }
  } catch (e) {
    for (const k in body) show(c, k, c.values[k]);
    note(c, 'not sent: ' + e.message, true);
  }
  c.busy = false;
  if (Object.keys(c.pending).length) post(c, {});
}

function lock(reason) {
  readOnly = reason || 'settings are read-only';
  for (const i of document.querySelectorAll('[data-key]')) i.disabled = true;
  banner('Read-only: ' + readOnly);
}

function note(c, message, bad) {
  text(c.msg, message);
  c.msg.className = 'msg' + (bad ? ' err' : '');
  clearTimeout(c.noteTimer);
  if (message && !readOnly) c.noteTimer = setTimeout(() => note(c, ''), bad ? 10000 : 3000);
}

function update(stats) {
  let total = 0;
  for (const s of stats.cameras) {
    total += s.mbit_per_second;
    const c = cams.find(c => c.name === s.name);
    if (!c) continue;
    const was = c.connected;
    c.connected = s.connected;
    c.el.classList.toggle('off', !s.connected);
    if (s.connected && was === false) loadSettings(c);
    text(c.mode, s.mode + (s.connected ? '' : ' · NO SIGNAL') + (s.profile === 'match' ? ' · MATCH PROFILE' : ''));
    c.mode.title = 'profile: ' + s.profile + ' (' + s.profile_reason + ')';
    text(c.nosig, 'NO SIGNAL · ' + (s.problem || 'camera disconnected'));
    text(c.fps, num(s.published_fps, 1));
    c.fps.parentNode.title = 'sent ' + s.published_fps + ' fps, captured ' + s.captured_fps + ' fps, to clients ' + s.delivered_fps + ' fps';
    text(c.mbit, num(s.mbit_per_second, 2));
    const g = s.governor || {};
    const links = (s.client_list || []).filter(k => k.link).map(k => k.peer + ': link ' + k.link.rate_mbit + ' Mbit/s, ' + k.link.in_flight_bytes + ' B in flight, frame ' + k.link.frame_age_ms + ' ms old at send');
    c.mbit.parentNode.title = 'budget: quality ' + g.quality + ', ' + g.fps + ' fps' + (g.size ? ', ' + g.size.join('x') : '') + (g.transcoding ? ', transcoded' : '') + ' (' + g.reason + '); share ' + g.share_mbit + ' Mbit/s, demand ' + g.demand_mbit + ' Mbit/s' + (links.length ? '\n' + links.join('\n') : '');
    text(c.clients, s.clients);
    const l = s.latency || {};
    text(c.lat, !(l.p50_ms > 0) ? '–' : l.p50_ms < 10 ? l.p50_ms.toFixed(1) : Math.round(l.p50_ms));
    c.lat.parentNode.title = 'capture to send: median ' + l.p50_ms + ' ms, 95% ' + l.p95_ms + ' ms, max ' + l.max_ms + ' ms';
    if (s.settings && !c.busy) origins(c, s.settings.origin);
    for (const k of ['fps', 'quality']) {
      const v = s.settings && s.settings[k];
      if (v !== undefined && !c.busy && !(k in c.pending) && c.values[k] !== v) { c.values[k] = v; show(c, k, v); }
    }
  }
  (stats.switches || []).forEach(showSwitch);
  const t = document.getElementById('total');
  text(t, total.toFixed(2));
  const b = stats.budget, r = b && b.radio;
  if (b) t.title = 'robot budget ' + b.max_mbit + ' Mbit/s (0: off), ' + b.used_mbit + ' used across the radio' + (r && r.turns ? ', ' + r.members + ' clients take turns' : '');
  t.className = total > FIELD_MBIT ? 'over' : total > FIELD_MBIT * 0.6 ? 'warn' : '';
}

async function poll() {
  for (;;) {
    if (!document.hidden) {
      try {
        update(await (await get('/stats.json')).json());
        if (!serverUp) { serverUp = true; document.body.classList.remove('down'); banner(readOnly ? 'Read-only: ' + readOnly : ''); cams.forEach(restart); }
      } catch (e) {
        if (serverUp) cams.forEach(c => c.img.removeAttribute('src'));
        serverUp = false;
        document.body.classList.add('down');
        banner('No answer from the robot (' + e.message + '); retrying every second');
      }
    }
    await sleep(POLL_MS);
  }
}

async function snapshots() {
  for (;;) {
    const started = Date.now();
    for (const c of cams) {
      if (c.live || document.hidden || !serverUp || !c.connected) continue;
      try {
        const u = URL.createObjectURL(await (await get(c.post + '.jpg')).blob());
        if (c.live) { URL.revokeObjectURL(u); continue; }
        c.img.src = u;
        if (c.blob) URL.revokeObjectURL(c.blob);
        c.blob = u;
      } catch (e) { /* the next round tries again */ }
    }
    await sleep(Math.max(200, SNAP_MS - (Date.now() - started)));
  }
}

// A switched stream ([[switch]] in the config): the camera it shows, chosen here (POST
// /<switch>), over NetworkTables or by the robot program; its clients stay connected.
const switches = [];

function switchCard(w) {
  const url = '/' + encodeURIComponent(w.name), s = { name: w.name, pick: el('select') };
  w.cameras.forEach(n => s.pick.add(new Option(n, n)));
  s.pick.onchange = async () => {
    const r = await fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ selected: s.pick.value }) }).catch(e => ({ text: () => e.message }));
    const t = await r.text();
    banner(r.ok ? '' : w.name + ' not switched: ' + t);
    if (r.ok) showSwitch(JSON.parse(t));
  };
  main.append(el('section', { className: 'cam' }, el('div', { className: 'head' }, el('b', { textContent: w.name + ' (switch)' })),
    el('div', { className: 'row' }, el('span', { textContent: 'shows' }), s.pick), el('div', { className: 'links' }, el('a', { href: url + '.mjpg', textContent: 'stream' }))));
  switches.push(s);
  showSwitch(w);
}

function showSwitch(w) {
  const s = switches.find(s => s.name === w.name);
  if (s && document.activeElement !== s.pick) s.pick.value = w.selected;
}

async function boot() {
  let stats;
  for (;;) {
    try { stats = await (await get('/stats.json')).json(); break; } catch (e) { banner('No answer from the robot (' + e.message + '); retrying'); await sleep(2000); }
  }
  banner('');
  main.replaceChildren();
  for (const s of stats.cameras) if (!only || s.name === only) cams.push(card(s));
  if (!only) (stats.switches || []).forEach(switchCard);
  if (!cams.length) banner('No camera' + (only ? ' named ' + only : '') + ' on this server.');
  main.classList.toggle('one', cams.length === 1);
  update(stats);
  cams.forEach((c, i) => setLive(c, i < MAX_LIVE));
  await Promise.all(cams.map(loadSettings));
  listen();
  poll();
  snapshots();
}

// Settings changed by anyone (another page, NetworkTables, the robot program) arrive the
// moment they change: /events (Server-Sent Events; the browser reconnects by itself).
function listen() {
  if (!window.EventSource) return;
  const events = new EventSource('/events');
  events.addEventListener('switch', e => showSwitch(JSON.parse(e.data)));
  events.addEventListener('settings', e => {
    let s;
    try { s = JSON.parse(e.data); } catch (_) { return; }
    const c = cams.find(c => c.name === s.camera);
    if (!c || c.busy) return;
    const got = Object.assign({ fps: s.fps, quality: s.quality }, s.controls);
    for (const k in got) if (!(k in c.pending) && c.values[k] !== got[k]) { c.values[k] = got[k]; show(c, k, got[k]); }
    origins(c, s.origins);
    // This page's own changes come back over HTTP too: those it has noted already.
    if (s.writer && s.writer !== 'HTTP' && s.key in got) note(c, s.writer + ' set ' + s.key.replace(/_/g, ' ') + ' to ' + got[s.key]);
  });
}

document.addEventListener('pointerdown', e => { held = e.target; });
document.addEventListener('pointerup', () => { held = null; });
document.addEventListener('pointercancel', () => { held = null; });
// A phone in a pocket must not keep streams going over the robot's radio.
document.addEventListener('visibilitychange', () => live.forEach(restart));
boot();
