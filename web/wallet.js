// The pay-app demo: the requestor's instruments as tiles, adding cards, gift certificates and local
// wallets, verifying a card the issuer stepped up (a one-time code by SMS or the issuer's app, read
// off the simulated phone), charging a wallet, and paying with a one-time token shown as a barcode
// and a QR code.
'use strict';

(() => {
  const { api, el, status } = TSP;
  const $ = (id) => document.getElementById(id);
  const call = (method, path, body) => api('app', method, path, body);
  let watch = null;

  function show(signedIn) {
    $('signin').classList.toggle('hidden', signedIn);
    $('wallet').classList.toggle('hidden', !signedIn);
    $('signout').classList.toggle('hidden', !signedIn);
  }

  const kindName = { card: 'Card', gift: 'Gift certificate', local: 'Local currency' };

  async function tile(ins) {
    const title = ins.type === 'card' ? ins.masked_pan : ins.type === 'gift' ? 'Gift certificate' : (ins.region || 'Local wallet');
    const meta = ins.card_metadata;
    const body = el('div', { class: 'tile', 'data-instrument': ins.id, 'data-type': ins.type },
      // The issuer's card art for its product (docs/instruments.md "Card metadata").
      meta ? el('img', { class: 'art', src: meta.card_art_url, alt: `${meta.product_name} card`, width: 428, height: 270 }) : '',
      el('div', { class: 'kind' }, kindName[ins.type] || ins.type,
        meta ? ` · ${meta.product_name}` : (ins.type === 'card' && ins.issuer_id ? ` · ${ins.issuer_id}` : '')),
      el('div', { class: 'number' }, title),
      meta && meta.terms_url ? el('a', { class: 'terms', href: meta.terms_url, rel: 'noopener' }, `${meta.issuer_name} terms`) : '');
    if (ins.status === 'pending_verification') body.append(verifier(ins));
    else if (ins.status !== 'active') body.append(el('div', { class: 'muted' }, ins.status));
    if (ins.type !== 'card') {
      try {
        const b = await call('GET', `/v1/instruments/${ins.id}/balance`);
        const line = ins.type === 'local'
          ? `${b.principal} + bonus ${b.bonus} ${b.currency}`
          : `${b.principal} ${b.currency}`;
        body.append(el('div', { class: 'balance', 'data-testid': 'balance' }, line));
      } catch (e) {
        body.append(el('div', { class: 'muted' }, `balance unavailable (${e.code || e.status})`));
      }
    }
    const row = el('div', { class: 'row' });
    if (ins.status === 'active') {
      row.append(el('button', { type: 'button', onclick: () => pay(ins, title), 'aria-label': `Pay with ${title}` }, 'Pay'));
    }
    if (ins.type === 'local' && ins.status === 'active') {
      const id = `charge-${ins.id}`;
      const form = el('form', { class: 'charge' },
        el('label', { for: id }, 'Charge amount (KRW)'),
        el('input', { id, inputmode: 'numeric', required: true }),
        el('button', { type: 'submit' }, 'Charge'));
      form.addEventListener('submit', async (ev) => {
        ev.preventDefault();
        try {
          await call('POST', `/v1/instruments/${ins.id}/charge`, { amount: form.querySelector('input').value.trim() });
          status($('wallet-status'), 'Charged.', true);
          await refresh();
        } catch (e) { status($('wallet-status'), `Charge refused: ${e.message}`, false); }
      });
      body.append(form);
    }
    body.append(row);
    return body;
  }

  // Step-up (docs/instruments.md "Step-up verification"): the issuer sends a one-time code by a way
  // the user picks; the user types it in. The demo's issuer is the simulator, whose "phone" shows the
  // messages it sent.
  function verifier(ins) {
    const v = ins.verification || { methods: [] };
    const box = el('div', { class: 'verify', 'data-testid': 'verify' },
      el('p', {}, 'Your bank asks you to confirm this card. Where should it send a code?'));
    const phone = el('div', { class: 'phone hidden', 'data-testid': 'phone', 'aria-live': 'polite' });
    const showPhone = async () => {
      try {
        const m = await call('GET', `/v1/issuer-sim/messages?instrument_id=${ins.id}`);
        const last = (m.items || []).slice(-1)[0];
        if (!last) return;
        phone.replaceChildren(el('div', { class: 'kind' }, `Simulated phone · ${last.destination}`), el('p', {}, last.text));
        phone.classList.remove('hidden');
      } catch { /* not the simulator: the code arrives on the real phone */ }
    };
    const sendRow = el('div', { class: 'row' });
    for (const m of v.methods) {
      const label = m.method === 'sms' ? `Text ${m.destination}` : `Notify ${m.destination}`;
      sendRow.append(el('button', { type: 'button', class: 'secondary', onclick: async () => {
        try {
          const sent = await call('POST', `/v1/instruments/${ins.id}/verification`, { method: m.method });
          status($('wallet-status'), `Code sent to ${sent.destination}.`, true);
          await showPhone();
          box.querySelector('input').focus();
        } catch (e) { status($('wallet-status'), `No code sent: ${e.message}`, false); }
      } }, label));
    }
    const id = `code-${ins.id}`;
    const form = el('form', { class: 'charge' },
      el('label', { for: id }, 'Verification code'),
      el('input', { id, inputmode: 'numeric', autocomplete: 'one-time-code', pattern: '[0-9]{6}', maxlength: 6, required: true }),
      el('button', { type: 'submit' }, 'Verify'));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      try {
        await call('POST', `/v1/instruments/${ins.id}/verify`, { code: form.querySelector('input').value.trim() });
        status($('wallet-status'), 'Card verified.', true);
        await refresh();
      } catch (e) { status($('wallet-status'), `Not verified: ${e.message}`, false); }
    });
    box.append(sendRow, phone, form);
    showPhone();
    return box;
  }

  async function refresh() {
    try {
      const list = await call('GET', '/v1/instruments');
      const tiles = await Promise.all((list.items || []).map(tile));
      $('tiles').replaceChildren(...(tiles.length ? tiles : [el('p', { class: 'muted' }, 'No instruments yet: add one below.')]));
      show(true);
    } catch (e) {
      if (e.status === 401) { TSP.setKey('app', null); show(false); status($('wallet-status'), ''); return; }
      status($('wallet-status'), `Could not load: ${e.message}`, false);
    }
  }

  async function image(ref, format, img) {
    const blob = await call('GET', `/v1/tokens/${ref}/code?format=${format}`);
    if (img.src.startsWith('blob:')) URL.revokeObjectURL(img.src);
    img.src = URL.createObjectURL(blob);
  }

  async function pay(ins, title) {
    clearInterval(watch);
    try {
      const t = await call('POST', '/v1/tokens', { instrument_id: ins.id });
      $('pay').classList.remove('hidden');
      $('pay-for').textContent = `Paying with ${title}`;
      $('pay-token').textContent = t.token.replace(/(\d{4})(?=\d)/g, '$1 ');
      $('pay-token').dataset.token = t.token;
      status($('pay-state'), 'Show this to the terminal.');
      await Promise.all([image(t.token_ref, 'code128', $('pay-barcode')), image(t.token_ref, 'qr', $('pay-qr'))]);
      const ends = Date.parse(t.expires_at);
      const tick = async () => {
        const left = Math.max(0, Math.round((ends - Date.now()) / 1000));
        $('pay-countdown').textContent = `${Math.floor(left / 60)}:${String(left % 60).padStart(2, '0')} left`;
        const s = await call('GET', `/v1/tokens/${t.token_ref}`).catch(() => null);
        const state = s && s.status;
        if (state === 'consumed' || state === 'expired' || left === 0 || (state && state !== 'active')) {
          clearInterval(watch);
          const used = state === 'consumed';
          status($('pay-state'), used ? 'Used: the payment went through.' : state === 'expired' || left === 0 ? 'Expired: ask for a new one.' : `No longer usable (${state}).`, used);
          $('pay').dataset.state = state || 'expired';
          $('pay-countdown').textContent = '';
          for (const img of [$('pay-barcode'), $('pay-qr')]) img.removeAttribute('src');
          await refresh();
        }
      };
      $('pay').dataset.state = 'active';
      await tick();
      watch = setInterval(tick, 1000);
      $('pay').scrollIntoView({ block: 'start' });
    } catch (e) { status($('wallet-status'), `No token: ${e.message}`, false); }
  }

  function adder(formId, body) {
    $(formId).addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const form = $(formId);
      try {
        await call('POST', '/v1/instruments', body());
        form.reset();
        status($('wallet-status'), 'Added.', true);
        await refresh();
      } catch (e) { status($('wallet-status'), `Not added: ${e.message}`, false); }
    });
  }

  adder('add-card', () => ({ type: 'card', pan: $('card-pan').value.replace(/\s+/g, ''), expiry: $('card-expiry').value.trim() }));
  adder('add-gift', () => ({ type: 'gift', code: $('gift-code').value.trim() }));
  adder('add-local', () => ({ type: 'local', region: $('local-region').value.trim() }));
  $('pay-close').addEventListener('click', () => { clearInterval(watch); $('pay').classList.add('hidden'); });
  $('signout').addEventListener('click', () => { TSP.setKey('app', null); show(false); });
  TSP.signIn('app', $('signin'), refresh);
  if (TSP.key('app')) refresh(); else show(false);
})();
