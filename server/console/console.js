// exportd console: a token pasted by the person using it, the exports it may
// see (live while any runs), a create form, cancel and download. Everything
// goes through the public API of this origin with the token as a bearer
// header; the token lives in sessionStorage only (gone when the tab closes,
// never in local storage or a cookie). No framework, no inline code: the page's
// Content-Security-Policy is default-src 'self'.
'use strict';

(() => {
  const API = '/operations-activity-exports';
  const TOKEN_KEY = 'exportd.console.token';
  const PAGE_SIZE = 20;
  const POLL_MS = 2000; // while an export is pending or running, and the tab is visible
  const CREATE_WAIT_S = 5; // Prefer: wait=N on create: small exports come back ready
  // The 17 columns of SPEC §3, in file order.
  const COLUMNS = ['occurred_at_utc', 'activity_id', 'operation_id', 'family', 'status', 'enterprise_ref',
    'client_ref', 'account_ref', 'counterparty_ref', 'currency', 'amount', 'fee_currency', 'fee_amount',
    'settled_at_utc', 'initiated_by', 'failure_reason', 'reference'];
  const LIVE = new Set(['pending', 'running']);
  // The form control that a details.field of a 400 names.
  const FIELD_INPUTS = {
    'format': 'format', 'compression': 'compression', 'columns': 'columns', 'time_zone': 'time-zone',
    'csv_bom': 'csv-bom', 'filter_criteria.date_from_utc': 'date-from', 'filter_criteria.date_to_utc': 'date-to',
    'requested_scope': 'scope-ref', 'requested_scope.kind': 'scope-kind', 'requested_scope.ref': 'scope-ref',
  };

  const $ = (id) => document.getElementById(id);
  const numberFormat = new Intl.NumberFormat('en-US');

  // The exports shown, newest first: id → resource, and their rows.
  let order = [];
  const byId = new Map();
  const rows = new Map();
  let nextPageToken = null;
  let pollTimer = 0;
  let polling = false;

  class ApiError extends Error {
    constructor(status, envelope, requestId) {
      const env = envelope && typeof envelope === 'object' ? envelope : {};
      super(typeof env.message === 'string' && env.message ? env.message : `HTTP ${status}`);
      this.status = status;
      this.code = typeof env.code === 'string' ? env.code : '';
      const d = env.details && typeof env.details === 'object' ? env.details : {};
      this.reason = typeof d.reason === 'string' ? d.reason : '';
      this.field = typeof d.field === 'string' ? d.field : '';
      this.retryAfterMs = Number.isInteger(d.retry_after_ms) ? d.retry_after_ms : null;
      this.requestId = requestId || '';
    }
  }

  function token() {
    return sessionStorage.getItem(TOKEN_KEY) || '';
  }

  // api calls the API with the bearer token; it resolves to the Response of
  // a 2xx and rejects with an ApiError otherwise.
  async function api(method, path, { body, headers } = {}) {
    const h = Object.assign({ 'Authorization': 'Bearer ' + token() }, headers || {});
    const init = { method, headers: h, cache: 'no-store', credentials: 'omit', redirect: 'error' };
    if (body !== undefined) {
      h['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let resp;
    try {
      resp = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, { code: 'network_error', message: 'The API could not be reached.' }, '');
    }
    if (resp.ok) {
      return resp;
    }
    let envelope = null;
    try {
      envelope = await resp.json();
    } catch (e) {
      envelope = null;
    }
    throw new ApiError(resp.status, envelope, resp.headers.get('X-Request-Id'));
  }

  // --- messages -------------------------------------------------------------

  function setStatus(text) {
    $('status').textContent = text;
  }

  function clearError() {
    $('error').hidden = true;
    $('error-message').textContent = '';
    $('error-details').replaceChildren();
    for (const el of document.querySelectorAll('[aria-invalid="true"]')) {
      el.removeAttribute('aria-invalid');
    }
  }

  // errorFieldTarget is the control that the shown refusal's details.field names.
  let errorFieldTarget = null;

  function showError(what, err) {
    const box = $('error');
    const e = err instanceof ApiError ? err : new ApiError(0, { message: String(err && err.message || err) }, '');
    $('error-title').textContent = e.status ? `${what} refused (HTTP ${e.status})` : `${what} failed`;
    $('error-message').textContent = e.message;
    const dl = $('error-details');
    dl.replaceChildren();
    const add = (term, value) => {
      if (value === '' || value === null || value === undefined) {
        return;
      }
      const dt = document.createElement('dt');
      dt.textContent = term;
      const dd = document.createElement('dd');
      const code = document.createElement('code');
      code.textContent = String(value);
      dd.append(code);
      dl.append(dt, dd);
    };
    add('code', e.code);
    add('reason', e.reason);
    add('field', e.field);
    if (e.retryAfterMs !== null) {
      add('retry after', `${Math.ceil(e.retryAfterMs / 1000)} s`);
    }
    if (e.status === 401) {
      add('hint', 'the token is missing, expired or not trusted by this server: paste another');
    }
    add('request id', e.requestId);
    const input = FIELD_INPUTS[e.field] && $(FIELD_INPUTS[e.field]);
    const go = $('error-field');
    go.hidden = !input;
    errorFieldTarget = input && (input.id === 'columns' ? $('col-occurred_at_utc') : input);
    if (input) {
      input.setAttribute('aria-invalid', 'true');
      go.textContent = `Go to ${e.field}`;
    }
    box.hidden = false;
    // The box is at the top of the page: bring it into view (a person may
    // have pressed Create at the bottom of a phone's screen). Focus stays.
    box.scrollIntoView({ block: 'nearest' });
  }

  // --- token ----------------------------------------------------------------

  // claims reads a JWT's payload for display only (the server verifies it).
  function claims(jwt) {
    const parts = jwt.split('.');
    if (parts.length !== 3) {
      return null;
    }
    try {
      const b64 = parts[1].replace(/-/g, '+').replace(/_/g, '/');
      const bin = atob(b64 + '='.repeat((4 - b64.length % 4) % 4));
      const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
      const c = JSON.parse(new TextDecoder().decode(bytes));
      return c && typeof c === 'object' ? c : null;
    } catch (e) {
      return null;
    }
  }

  function kindOf(ref) {
    if (ref.startsWith('enterprises/')) return 'enterprise';
    if (ref.startsWith('clients/')) return 'client';
    if (ref.startsWith('client-accounts/')) return 'client_account';
    return '';
  }

  function showToken() {
    const t = token();
    const info = $('token-info');
    if (!t) {
      info.textContent = 'No token yet.';
      return;
    }
    const c = claims(t);
    if (!c) {
      info.textContent = 'Token set (its claims could not be read; the server will judge it).';
      return;
    }
    const scopes = Array.isArray(c.scopes) ? c.scopes.map((s) => s && s.target
      ? `${s.target}${s.extent === 'subtree' ? ' (subtree)' : ''}` : '?') : [];
    const caps = Array.isArray(c.capabilities) ? c.capabilities.join(', ') : '';
    const exp = Number.isFinite(c.exp) ? new Date(c.exp * 1000).toISOString().replace('.000Z', 'Z') : '?';
    info.textContent = `Token set for ${c.sub || '?'}; capabilities: ${caps || 'none'}; scopes: ${scopes.join(', ') || 'none'}; expires ${exp}.`;
    const ref = $('scope-ref');
    if (!ref.value && scopes.length && c.scopes[0] && typeof c.scopes[0].target === 'string') {
      ref.value = c.scopes[0].target;
      const kind = kindOf(ref.value);
      if (kind) {
        $('scope-kind').value = kind;
      }
    }
  }

  function useToken(ev) {
    ev.preventDefault();
    clearError();
    const input = $('token');
    const t = input.value.trim().replace(/^Bearer\s+/i, '');
    if (!t) {
      showError('Token', new ApiError(0, { message: 'Paste a token first.' }, ''));
      input.focus();
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, t);
    input.value = '';
    showToken();
    setStatus('Token set. Loading its exports…');
    loadFirstPage();
  }

  function forgetToken() {
    sessionStorage.removeItem(TOKEN_KEY);
    $('token').value = '';
    stopPolling();
    order = [];
    byId.clear();
    rows.clear();
    nextPageToken = null;
    renderList();
    clearError();
    showToken();
    setStatus('Token forgotten.');
  }

  // --- list and live status -------------------------------------------------

  async function loadFirstPage() {
    if (!token()) {
      return;
    }
    try {
      const page = await (await api('GET', `${API}?page_size=${PAGE_SIZE}`)).json();
      order = [];
      byId.clear();
      addItems(page.items);
      nextPageToken = page.next_page_token || null;
      renderList();
      setStatus(order.length ? `${order.length} export${order.length === 1 ? '' : 's'} listed.` : 'No exports yet.');
    } catch (e) {
      showError('Listing exports', e);
    }
    schedulePoll();
  }

  async function loadMore() {
    if (!nextPageToken) {
      return;
    }
    try {
      const q = `${API}?page_size=${PAGE_SIZE}&page_token=${encodeURIComponent(nextPageToken)}`;
      const page = await (await api('GET', q)).json();
      const before = order.length;
      addItems(page.items);
      nextPageToken = page.next_page_token || null;
      renderList();
      setStatus(`${order.length - before} more listed.`);
    } catch (e) {
      showError('Listing exports', e);
    }
    schedulePoll();
  }

  function addItems(items) {
    for (const x of Array.isArray(items) ? items : []) {
      if (!byId.has(x.id)) {
        order.push(x.id);
      }
      byId.set(x.id, x);
    }
  }

  // upsert puts a resource at the top (new) or in place (known).
  function upsert(x) {
    if (!byId.has(x.id)) {
      order.unshift(x.id);
    }
    byId.set(x.id, x);
    renderList();
  }

  function stopPolling() {
    clearTimeout(pollTimer);
    pollTimer = 0;
  }

  // schedulePoll polls again in POLL_MS while something listed is live and
  // the tab is visible; otherwise nothing is scheduled.
  function schedulePoll() {
    stopPolling();
    if (polling || document.hidden || !token() || !order.some((id) => LIVE.has(byId.get(id).status))) {
      return;
    }
    pollTimer = setTimeout(poll, POLL_MS);
  }

  // poll re-reads each live export, one request at a time.
  async function poll() {
    pollTimer = 0;
    polling = true;
    try {
      for (const id of order.filter((i) => LIVE.has(byId.get(i).status))) {
        if (!token()) {
          break; // forgotten meanwhile
        }
        const x = await (await api('GET', `${API}/${encodeURIComponent(id)}`)).json();
        const cur = byId.get(id);
        if (!cur) {
          continue; // forgotten or refreshed away meanwhile
        }
        const was = cur.status;
        byId.set(id, x);
        renderRow(id);
        if (was !== x.status && !LIVE.has(x.status)) {
          setStatus(announce(x));
        }
      }
    } catch (e) {
      polling = false;
      if (e instanceof ApiError && (e.status === 429 || e.status === 503) && e.retryAfterMs !== null) {
        // Rate limited or draining: try again when the server says.
        setStatus(`Status refresh delayed ${Math.ceil(e.retryAfterMs / 1000)} s by the server.`);
        pollTimer = setTimeout(poll, Math.max(e.retryAfterMs, POLL_MS));
        return;
      }
      showError('Refreshing status', e);
      return; // stop: Refresh starts again
    }
    polling = false;
    schedulePoll();
  }

  function announce(x) {
    const short = x.id.slice(0, 8);
    switch (x.status) {
      case 'ready':
        return `Export ${short} is ready: ${numberFormat.format(x.row_count)} rows, ${bytes(x.byte_size)}.`;
      case 'failed':
        return `Export ${short} failed: ${x.failure_reason || 'unknown reason'}.`;
      default:
        return `Export ${short} is ${x.status}.`;
    }
  }

  // --- rendering ------------------------------------------------------------

  function bytes(n) {
    if (!Number.isFinite(n)) return '';
    if (n < 1024) return `${n} B`;
    const units = ['KiB', 'MiB', 'GiB', 'TiB'];
    let v = n / 1024;
    let i = 0;
    for (; v >= 1024 && i < units.length - 1; i++) v /= 1024;
    return `${v.toFixed(1)} ${units[i]}`;
  }

  // utc shows a timestamp to the second; exact keeps a non-zero fraction
  // (a range's end is often ...59.999).
  function utc(ts, exact) {
    if (typeof ts !== 'string') return '';
    return ts.replace('T', ' ').replace(exact ? /\.0+Z$/ : /\.\d+Z$/, 'Z');
  }

  function cell(label, cls) {
    const td = document.createElement('td');
    td.dataset.label = label;
    if (cls) td.className = cls;
    return td;
  }

  function newRow(id) {
    const tr = document.createElement('tr');
    tr.dataset.id = id;
    const created = cell('Created');
    const scope = cell('Scope', 'ref');
    const range = cell('Range');
    const format = cell('Format');
    const status = cell('Status', 'status');
    const rowCount = cell('Rows', 'num rows');
    const size = cell('Size', 'num size');
    const actions = cell('Actions', 'actions');
    const dl = document.createElement('button');
    dl.type = 'button';
    dl.className = 'download';
    dl.textContent = 'Download';
    dl.addEventListener('click', () => download(id, dl));
    const cancel = document.createElement('button');
    cancel.type = 'button';
    cancel.className = 'cancel secondary';
    cancel.textContent = 'Cancel';
    cancel.addEventListener('click', () => cancelExport(id, cancel));
    actions.append(dl, cancel);
    tr.append(created, scope, range, format, status, rowCount, size, actions);
    return tr;
  }

  function renderRow(id) {
    const x = byId.get(id);
    let tr = rows.get(id);
    if (!tr) {
      tr = newRow(id);
      rows.set(id, tr);
    }
    tr.dataset.status = x.status;
    const [created, scope, range, format, status, rowCount, size, actions] = tr.children;
    created.textContent = utc(x.generated_at_utc);
    scope.textContent = x.requested_scope ? x.requested_scope.ref : '';
    scope.title = x.requested_scope ? x.requested_scope.kind : '';
    const f = x.filter_criteria || {};
    range.textContent = `${utc(f.date_from_utc, true)} → ${utc(f.date_to_utc, true)}`;
    format.textContent = x.compression && x.compression !== 'none' ? `${x.format} + ${x.compression}` : x.format;
    const badge = document.createElement('span');
    badge.className = `badge badge-${x.status}`;
    badge.textContent = x.status;
    status.replaceChildren(badge);
    if (x.failure_reason) {
      const why = document.createElement('span');
      why.className = 'why';
      why.textContent = x.failure_reason;
      status.append(' ', why);
    }
    for (const [td, n, text] of [[rowCount, x.row_count, numberFormat.format(x.row_count)], [size, x.byte_size, bytes(x.byte_size)]]) {
      const d = document.createElement('data');
      d.value = String(n);
      d.textContent = text;
      if (td === size) d.title = `${numberFormat.format(n)} bytes`;
      td.replaceChildren(d);
    }
    const [dl, cancel] = actions.children;
    dl.hidden = x.status !== 'ready';
    dl.setAttribute('aria-label', `Download export ${x.id}`);
    cancel.hidden = !LIVE.has(x.status);
    cancel.setAttribute('aria-label', `Cancel export ${x.id}`);
    return tr;
  }

  function renderList() {
    const body = $('exports-body');
    const keep = new Set(order);
    for (const id of rows.keys()) {
      if (!keep.has(id)) rows.delete(id);
    }
    // Rows are updated in place and only moved when the order changed, so
    // that keyboard focus on a button survives a status refresh.
    let at = body.firstElementChild;
    for (const id of order) {
      const tr = renderRow(id);
      if (tr !== at) {
        body.insertBefore(tr, at);
      } else {
        at = at.nextElementSibling;
      }
    }
    while (at) {
      const next = at.nextElementSibling;
      at.remove();
      at = next;
    }
    $('exports').hidden = order.length === 0;
    $('exports-empty').hidden = order.length !== 0;
    $('exports-empty').textContent = token() ? 'No exports yet.' : 'Use a token to see its exports.';
    $('more').hidden = !nextPageToken;
  }

  // --- actions --------------------------------------------------------------

  async function busy(button, fn) {
    button.disabled = true;
    button.setAttribute('aria-busy', 'true');
    try {
      await fn();
    } finally {
      button.disabled = false;
      button.removeAttribute('aria-busy');
    }
  }

  function filename(resp, x) {
    const m = /filename="([^"]+)"/.exec(resp.headers.get('Content-Disposition') || '');
    return m ? m[1] : `operations-activity-${x.id}`;
  }

  async function sha256Hex(buf) {
    const d = new Uint8Array(await crypto.subtle.digest('SHA-256', buf));
    return Array.from(d, (b) => b.toString(16).padStart(2, '0')).join('');
  }

  // download fetches the file with the bearer header (a plain link cannot
  // carry it), checks its SHA-256 against the resource's checksum when the
  // browser offers WebCrypto here (secure contexts: https or loopback), and
  // hands it to the browser's downloads through an object URL. The file is
  // held in memory meanwhile.
  async function download(id, button) {
    clearError();
    const x = byId.get(id);
    await busy(button, async () => {
      try {
        setStatus(`Downloading export ${id.slice(0, 8)}…`);
        const resp = await api('GET', x.download_path || `${API}/${encodeURIComponent(id)}/download`);
        const name = filename(resp, x);
        const blob = await resp.blob();
        let verified = 'checksum not verified (no WebCrypto on this origin)';
        if (window.crypto && crypto.subtle) {
          const sum = await sha256Hex(await blob.arrayBuffer());
          if (sum !== x.checksum_sha256) {
            showError('Download', new ApiError(0, { message: `The downloaded file's SHA-256 (${sum}) is not the export's checksum (${x.checksum_sha256}); it was not saved.` }, ''));
            setStatus('');
            return;
          }
          verified = 'SHA-256 verified';
        }
        const url = URL.createObjectURL(blob);
        const a = document.createElement('a');
        a.href = url;
        a.download = name;
        a.hidden = true;
        document.body.append(a);
        a.click();
        a.remove();
        setTimeout(() => URL.revokeObjectURL(url), 60000);
        setStatus(`Saved ${name} (${numberFormat.format(blob.size)} bytes, ${verified}).`);
      } catch (e) {
        setStatus('');
        showError('Download', e);
      }
    });
  }

  async function cancelExport(id, button) {
    clearError();
    await busy(button, async () => {
      try {
        const x = await (await api('POST', `${API}/${encodeURIComponent(id)}/cancel`)).json();
        upsert(x);
        setStatus(announce(x));
      } catch (e) {
        showError('Cancel', e);
      }
    });
    schedulePoll();
  }

  // rangeBound turns a day (YYYY-MM-DD) into its first or last millisecond
  // in UTC; anything else goes to the API as typed (it says what is wrong).
  function rangeBound(v, end) {
    const s = v.trim();
    if (/^\d{4}-\d{2}-\d{2}$/.test(s)) {
      return end ? `${s}T23:59:59.999Z` : `${s}T00:00:00Z`;
    }
    return s;
  }

  function randomKey() {
    const b = crypto.getRandomValues(new Uint8Array(16));
    return 'console-' + Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  }

  function createBody() {
    const format = $('format').value;
    const body = {
      format,
      filter_criteria: {
        date_from_utc: rangeBound($('date-from').value, false),
        date_to_utc: rangeBound($('date-to').value, true),
      },
      requested_scope: { kind: $('scope-kind').value, ref: $('scope-ref').value.trim() },
      compression: $('compression').value,
    };
    const cols = COLUMNS.filter((c) => $(`col-${c}`).checked);
    if (cols.length !== COLUMNS.length) {
      body.columns = cols; // an empty list goes too: the API refuses it with details.field
    }
    const tz = $('time-zone').value.trim();
    if (format !== 'parquet' && tz && tz !== 'UTC') {
      body.time_zone = tz;
    }
    if (format === 'csv' && $('csv-bom').checked) {
      body.csv_bom = true;
    }
    return body;
  }

  // pendingKey is the Idempotency-Key of the body last submitted: sending
  // the same form twice (a double click, a retry after a network error)
  // gives back the same export, a changed form a new one.
  let pendingKey = { body: '', key: '' };

  async function create(ev) {
    ev.preventDefault();
    clearError();
    if (!token()) {
      showError('Create', new ApiError(0, { message: 'Paste a token first.' }, ''));
      $('token').focus();
      return;
    }
    const body = createBody();
    const text = JSON.stringify(body);
    if (pendingKey.body !== text) {
      pendingKey = { body: text, key: randomKey() };
    }
    await busy($('create'), async () => {
      try {
        setStatus('Creating the export…');
        const resp = await api('POST', API, {
          body, headers: { 'Idempotency-Key': pendingKey.key, 'Prefer': `wait=${CREATE_WAIT_S}` },
        });
        const x = await resp.json();
        pendingKey = { body: '', key: '' };
        upsert(x);
        setStatus(`Export ${x.id.slice(0, 8)} created: ${announce(x)}`);
      } catch (e) {
        setStatus('');
        showError('Create', e);
      }
    });
    schedulePoll();
  }

  function formatChanged() {
    const format = $('format').value;
    const tz = $('time-zone');
    tz.disabled = format === 'parquet';
    if (tz.disabled) tz.value = 'UTC';
    const bom = $('csv-bom');
    bom.disabled = format !== 'csv';
    if (bom.disabled) bom.checked = false;
  }

  // --- start ----------------------------------------------------------------

  function buildForm() {
    const list = $('columns');
    for (const c of COLUMNS) {
      const wrap = document.createElement('div');
      wrap.className = 'check';
      const box = document.createElement('input');
      box.type = 'checkbox';
      box.id = `col-${c}`;
      box.name = 'columns';
      box.value = c;
      box.checked = true;
      const label = document.createElement('label');
      label.htmlFor = box.id;
      label.textContent = c;
      wrap.append(box, label);
      list.append(wrap);
    }
    const zones = $('time-zones');
    const names = typeof Intl.supportedValuesOf === 'function' ? Intl.supportedValuesOf('timeZone') : [];
    for (const z of ['UTC', ...names.filter((n) => n !== 'UTC')]) {
      const o = document.createElement('option');
      o.value = z;
      zones.append(o);
    }
    $('columns-all').addEventListener('click', () => COLUMNS.forEach((c) => { $(`col-${c}`).checked = true; }));
    $('columns-none').addEventListener('click', () => COLUMNS.forEach((c) => { $(`col-${c}`).checked = false; }));
    $('format').addEventListener('change', formatChanged);
    formatChanged();
  }

  function start() {
    buildForm();
    $('token-form').addEventListener('submit', useToken);
    $('token-forget').addEventListener('click', forgetToken);
    $('create-form').addEventListener('submit', create);
    $('refresh').addEventListener('click', () => { clearError(); loadFirstPage(); });
    $('more').addEventListener('click', loadMore);
    $('error-field').addEventListener('click', () => errorFieldTarget && errorFieldTarget.focus());
    document.addEventListener('visibilitychange', schedulePoll);
    showToken();
    renderList();
    if (token()) {
      loadFirstPage();
    }
  }

  start();
})();
