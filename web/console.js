// The operator console: recent transactions (masked as the API gives them), the last hour's answers
// by response code, issuers, regions, merchants, gift issuance and closing the business day.
'use strict';

(() => {
  const { api, el, status } = TSP;
  const $ = (id) => document.getElementById(id);
  const call = (method, path, body) => api('admin', method, path, body);
  let txns = [];

  function show(signedIn) {
    $('signin').classList.toggle('hidden', signedIn);
    $('console').classList.toggle('hidden', !signedIn);
    $('signout').classList.toggle('hidden', !signedIn);
  }

  function options(select, values) {
    const chosen = select.value;
    select.replaceChildren(el('option', { value: '' }, 'all'), ...values.map((v) => el('option', { value: v }, v)));
    if (values.includes(chosen)) select.value = chosen;
  }

  function renderTable() {
    const [kind, code, instrument] = [$('f-kind').value, $('f-code').value, $('f-instrument').value];
    const rows = txns.filter((t) => (!kind || t.kind === kind) && (!code || t.response_code === code)
      && (!instrument || t.instrument_kind === instrument));
    $('txns').replaceChildren(...rows.map((t) => el('tr', { 'data-kind': t.kind, 'data-code': t.response_code || '' },
      el('td', {}, new Date(t.created_at).toLocaleTimeString()),
      el('td', {}, t.kind),
      el('td', {}, t.response_code || t.status),
      el('td', {}, t.amount ? `${t.amount} ${t.currency || ''}` : ''),
      el('td', {}, t.instrument_kind || ''),
      el('td', {}, t.masked_pan || ''),
      el('td', {}, t.merchant_id || ''))));
    if (!rows.length) $('txns').append(el('tr', {}, el('td', { colspan: 7, class: 'muted' }, 'No transactions.')));
  }

  /** Bars per response code over the last hour: green approvals (00), red declines. */
  function renderChart() {
    const since = Date.now() - 3600_000;
    const counts = new Map();
    for (const t of txns) {
      if (!t.response_code || Date.parse(t.created_at) < since) continue;
      counts.set(t.response_code, (counts.get(t.response_code) || 0) + 1);
    }
    const codes = [...counts.keys()].sort();
    const max = Math.max(1, ...counts.values());
    const w = 320, h = 160, bar = codes.length ? Math.min(40, (w - 20) / codes.length - 8) : 40;
    const ns = 'http://www.w3.org/2000/svg';
    const svg = document.createElementNS(ns, 'svg');
    svg.setAttribute('viewBox', `0 0 ${w} ${h}`);
    const add = (tag, attrs, text) => {
      const n = document.createElementNS(ns, tag);
      for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
      if (text !== undefined) n.textContent = text;
      svg.append(n);
    };
    codes.forEach((c, i) => {
      const x = 10 + i * (bar + 8), bh = Math.round((counts.get(c) / max) * (h - 40));
      add('rect', { x, y: h - 20 - bh, width: bar, height: bh, class: c === '00' ? 'approved' : 'declined', 'data-code': c });
      add('text', { x: x + bar / 2, y: h - 6, 'text-anchor': 'middle' }, c);
      add('text', { x: x + bar / 2, y: h - 24 - bh, 'text-anchor': 'middle' }, String(counts.get(c)));
    });
    if (!codes.length) add('text', { x: w / 2, y: h / 2, 'text-anchor': 'middle' }, 'no answers in the last hour');
    const approved = counts.get('00') || 0;
    const declined = [...counts.entries()].filter(([c]) => c !== '00').reduce((a, [, n]) => a + n, 0);
    $('chart').setAttribute('aria-label', `last hour: ${approved} approved, ${declined} declined`);
    $('chart').replaceChildren(svg, el('p', { class: 'muted' }, `${approved} approved · ${declined} declined`));
  }

  async function loadTransactions() {
    const r = await call('GET', '/v1/transactions?limit=200');
    txns = r.items || [];
    options($('f-kind'), [...new Set(txns.map((t) => t.kind))].sort());
    options($('f-code'), [...new Set(txns.map((t) => t.response_code).filter(Boolean))].sort());
    options($('f-instrument'), [...new Set(txns.map((t) => t.instrument_kind).filter(Boolean))].sort());
    renderTable();
    renderChart();
  }

  async function loadReference() {
    const [issuers, regions, merchants] = await Promise.all([
      call('GET', '/v1/admin/issuers'), call('GET', '/v1/admin/regions'), call('GET', '/v1/admin/merchants')]);
    $('issuers').replaceChildren(...issuers.items.map((i) => el('tr', {}, el('td', {}, i.id), el('td', {}, i.name), el('td', {}, (i.bin_prefixes || []).join(', ')))));
    $('regions').replaceChildren(...regions.items.map((r) => el('tr', {}, el('td', {}, r.id), el('td', {}, r.name), el('td', {}, `${r.incentive_rate || ''}`))));
    $('merchants').replaceChildren(...merchants.items.map((m) => el('tr', {}, el('td', {}, m.id), el('td', {}, m.name), el('td', {}, m.region))));
  }

  async function load() {
    try {
      await Promise.all([loadTransactions(), loadReference()]);
      show(true);
      status($('console-status'), '');
    } catch (e) {
      if (e.status === 401 || e.status === 403) { TSP.setKey('admin', null); show(false); }
      status($('console-status'), `Could not load: ${e.message}`, false);
    }
  }

  for (const id of ['f-kind', 'f-code', 'f-instrument']) $(id).addEventListener('change', renderTable);
  $('reload').addEventListener('click', load);
  $('close-day').addEventListener('click', async () => {
    try {
      const r = await call('POST', '/v1/admin/settlements');
      status($('close-status'), `Closed: settlement ${r.id} at ${new Date(r.closed_at).toLocaleString()}.`, true);
    } catch (e) { status($('close-status'), `Not closed: ${e.message}`, false); }
  });
  $('gift').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const days = Number($('gift-days').value) || 365;
    try {
      const g = await call('POST', '/v1/admin/gift-certificates', {
        face_value: $('gift-value').value.trim(), currency: 'KRW',
        expires_at: new Date(Date.now() + days * 864e5).toISOString().replace(/\.\d{3}Z$/, 'Z'),
      });
      status($('gift-status'), `Issued. Code (shown once): ${g.code}`, true);
    } catch (e) { status($('gift-status'), `Not issued: ${e.message}`, false); }
  });
  $('signout').addEventListener('click', () => { TSP.setKey('admin', null); show(false); });
  TSP.signIn('admin', $('signin'), load);
  if (TSP.key('admin')) load(); else show(false);
  setInterval(() => { if (TSP.key('admin')) loadTransactions().catch(() => {}); }, 15_000);
})();
