// The demo terminal: a token and an amount, paid over the service's own ISO 8583 client
// (`POST /v1/terminal/payments`), the answer's DE39 shown in words.
'use strict';

(() => {
  const { api, status } = TSP;
  const $ = (id) => document.getElementById(id);

  function show(signedIn) {
    $('signin').classList.toggle('hidden', signedIn);
    $('sale').classList.toggle('hidden', !signedIn);
    $('signout').classList.toggle('hidden', !signedIn);
  }

  $('sale').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const body = {
      token: $('token').value.replace(/\s+/g, ''),
      amount: $('amount').value.trim(),
      merchant_id: $('merchant').value.trim(),
    };
    $('result').classList.remove('hidden');
    try {
      const a = await api('terminal', 'POST', '/v1/terminal/payments', body);
      $('result-code').textContent = a.response_code;
      status($('result-words'), a.meaning.charAt(0).toUpperCase() + a.meaning.slice(1), a.approved);
      $('result-detail').textContent = a.approved ? `${a.amount} KRW · approval ${a.auth_code || ''} · STAN ${a.stan}` : `STAN ${a.stan || ''}`;
      if (a.approved) $('token').value = '';
    } catch (e) {
      if (e.status === 401) { TSP.setKey('terminal', null); show(false); }
      $('result-code').textContent = '—';
      status($('result-words'), `Not sent: ${e.message}`, false);
      $('result-detail').textContent = '';
    }
  });
  $('signout').addEventListener('click', () => { TSP.setKey('terminal', null); show(false); });
  TSP.signIn('terminal', $('signin'), () => show(true));
  show(Boolean(TSP.key('terminal')));
})();
