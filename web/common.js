// Shared by the demo pages: the REST calls (the page's API key lives in sessionStorage only), safe
// DOM building, and the theme. Nothing here loads from anywhere but this server.
'use strict';

const TSP = (() => {
  const slot = (role) => `tsp.${role}.key`;
  const key = (role) => sessionStorage.getItem(slot(role));
  const setKey = (role, value) => value ? sessionStorage.setItem(slot(role), value) : sessionStorage.removeItem(slot(role));

  /** A documented REST call with the role's key; throws an Error carrying the error code. */
  async function api(role, method, path, body) {
    const headers = { Authorization: `Bearer ${key(role)}` };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const type = r.headers.get('content-type') || '';
    const data = type.includes('json') ? await r.json() : await r.blob();
    if (!r.ok) {
      const e = new Error((data && data.error && data.error.message) || r.statusText);
      e.status = r.status;
      e.code = data && data.error && data.error.code;
      throw e;
    }
    return data;
  }

  /** An element with attributes and children (text is always text, never HTML). */
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat()) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return node;
  }

  /** Sunrise and sunset (NOAA's approximation) on the device's date at a place; default Seoul. */
  function sunTimes(now, lat = 37.5665, lon = 126.978) {
    const rad = Math.PI / 180;
    const start = Date.UTC(now.getUTCFullYear(), 0, 1);
    const day = Math.floor((now.getTime() - start) / 864e5) + 1;
    const g = (2 * Math.PI / 365) * (day - 1 + (now.getUTCHours() - 12) / 24);
    const eqt = 229.18 * (0.000075 + 0.001868 * Math.cos(g) - 0.032077 * Math.sin(g) - 0.014615 * Math.cos(2 * g) - 0.040849 * Math.sin(2 * g));
    const decl = 0.006918 - 0.399912 * Math.cos(g) + 0.070257 * Math.sin(g) - 0.006758 * Math.cos(2 * g)
      + 0.000907 * Math.sin(2 * g) - 0.002697 * Math.cos(3 * g) + 0.00148 * Math.sin(3 * g);
    const cosHa = Math.cos(90.833 * rad) / (Math.cos(lat * rad) * Math.cos(decl)) - Math.tan(lat * rad) * Math.tan(decl);
    const ha = Math.acos(Math.min(1, Math.max(-1, cosHa))) / rad;
    const noon = 720 - 4 * lon - eqt; // minutes after UTC midnight
    const midnight = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate());
    return { sunrise: new Date(midnight + (noon - 4 * ha) * 6e4), sunset: new Date(midnight + (noon + 4 * ha) * 6e4) };
  }

  /** Dark after sunset (by the device's clock) and before sunrise, or when the system asks for it;
   * `?theme=dark|light` overrides both. */
  function applyTheme() {
    const asked = new URLSearchParams(location.search).get('theme');
    const now = new Date();
    const { sunrise, sunset } = sunTimes(now);
    const night = now < sunrise || now >= sunset;
    const systemDark = window.matchMedia && window.matchMedia('(prefers-color-scheme: dark)').matches;
    const dark = asked ? asked === 'dark' : night || systemDark;
    document.documentElement.dataset.theme = dark ? 'dark' : 'light';
  }

  /** Wires a sign-in form: stores the key for this tab and calls `ready`. */
  function signIn(role, form, ready) {
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const input = form.querySelector('input');
      setKey(role, input.value.trim());
      input.value = '';
      ready();
    });
  }

  function status(node, text, ok) {
    node.textContent = text;
    node.className = `status ${ok === undefined ? '' : ok ? 'ok' : 'bad'}`;
  }

  applyTheme();
  if (window.matchMedia) window.matchMedia('(prefers-color-scheme: dark)').addEventListener('change', applyTheme);
  setInterval(applyTheme, 60_000);
  return { key, setKey, api, el, signIn, status, sunTimes };
})();
