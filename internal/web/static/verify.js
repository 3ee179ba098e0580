// Candor web UI: check one line of the transparency log in the browser.
//
// The page that loads this script (/log/entries/N/verify) already says
// what the hub found. This script lets the person's own browser redo the
// check without trusting the hub's word: it fetches the inclusion proof
// from the API, recomputes the RFC 6962 / RFC 9162 root hash from the
// line's exact bytes and the proof with WebCrypto SHA-256
// (leaf = SHA-256(0x00 || line), node = SHA-256(0x01 || left || right)),
// compares it with the root hash of the signed checkpoint, and checks the
// checkpoint's Ed25519 signature (a golang.org/x/mod/sumdb/note) with the
// hub's verifier key where the browser supports Ed25519.
//
// window.CandorVerify.check is the check itself, without the page, so that
// tests (and curious people, in the console) can run it on any proof.
(function () {
  'use strict';

  function fail(text) { return new Error(text); }

  function fromBase64(s) {
    if (typeof s !== 'string') { throw fail('a hash is missing'); }
    var bin;
    try { bin = window.atob(s); } catch (e) { throw fail('a hash is not valid base64'); }
    var out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) { out[i] = bin.charCodeAt(i); }
    return out;
  }

  function toBase64(bytes) {
    var s = '';
    for (var i = 0; i < bytes.length; i++) { s += String.fromCharCode(bytes[i]); }
    return window.btoa(s);
  }

  function concat(parts) {
    var n = 0;
    parts.forEach(function (p) { n += p.length; });
    var out = new Uint8Array(n);
    var at = 0;
    parts.forEach(function (p) { out.set(p, at); at += p.length; });
    return out;
  }

  function equal(a, b) {
    if (!a || !b || a.length !== b.length) { return false; }
    for (var i = 0; i < a.length; i++) {
      if (a[i] !== b[i]) { return false; }
    }
    return true;
  }

  async function sha256(bytes) {
    return new Uint8Array(await window.crypto.subtle.digest('SHA-256', bytes));
  }

  // The RFC 6962 leaf hash of a line's exact bytes (UTF-8).
  function leafHash(line) {
    return sha256(concat([new Uint8Array([0]), new TextEncoder().encode(line)]));
  }

  function nodeHash(left, right) {
    return sha256(concat([new Uint8Array([1]), left, right]));
  }

  function half(n) { return Math.floor(n / 2); }

  // rootFromProof follows an inclusion proof from the hash of line index
  // up to the root hash of a tree of size lines (RFC 9162 section
  // 2.1.3.2). Numbers, not bit operations: sizes may pass 2^31.
  async function rootFromProof(index, size, hash, proof) {
    if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || index < 0 || index >= size) {
      throw fail('the line number is not inside the checkpoint');
    }
    var fn = index;
    var sn = size - 1;
    var r = hash;
    for (var i = 0; i < proof.length; i++) {
      if (sn === 0) { throw fail('the proof has more hashes than the log needs'); }
      var p = proof[i];
      if (p.length !== 32) { throw fail('a hash in the proof is not 32 bytes long'); }
      if (fn % 2 === 1 || fn === sn) {
        r = await nodeHash(p, r);
        while (fn % 2 === 0 && fn !== 0) { fn = half(fn); sn = half(sn); }
      } else {
        r = await nodeHash(r, p);
      }
      fn = half(fn);
      sn = half(sn);
    }
    if (sn !== 0) { throw fail('the proof has fewer hashes than the log needs'); }
    return r;
  }

  // parseKey reads a note verifier key: name+hash+base64(0x01 || key).
  // The base64 may itself hold '+'.
  async function parseKey(vkey) {
    var parts = /^([^+]+)\+([0-9a-f]{8})\+(.+)$/.exec(String(vkey || ''));
    if (!parts) { throw fail('the verifier key is not in the right form'); }
    parts = parts.slice(1);
    var raw = fromBase64(parts[2]);
    if (raw.length !== 33 || raw[0] !== 1) { throw fail('the verifier key is not an Ed25519 key'); }
    var id = (await sha256(concat([new TextEncoder().encode(parts[0] + '\n'), raw]))).slice(0, 4);
    if (toHex(id) !== parts[1]) { throw fail('the verifier key does not match its own key ID'); }
    return { name: parts[0], id: id, key: raw.slice(1) };
  }

  function toHex(bytes) {
    return Array.prototype.map.call(bytes, function (b) { return (b < 16 ? '0' : '') + b.toString(16); }).join('');
  }

  // parseCheckpoint reads a signed checkpoint note: the text (origin,
  // tree size, root hash), a blank line, then signature lines
  // "— name base64(key ID || signature)".
  function parseCheckpoint(signed) {
    signed = String(signed || '');
    var split = signed.lastIndexOf('\n\n');
    if (split < 0) { throw fail('the checkpoint is not signed'); }
    var text = signed.slice(0, split + 1);
    var lines = text.split('\n');
    if (lines.length < 4 || !/^(0|[1-9][0-9]*)$/.test(lines[1])) { throw fail('the checkpoint is not in the right form'); }
    var root = fromBase64(lines[2]);
    if (root.length !== 32) { throw fail('the checkpoint has no root hash'); }
    var sigs = [];
    signed.slice(split + 2).split('\n').forEach(function (line) {
      var m = /^\u2014 (\S+) (\S+)$/.exec(line);
      if (m) {
        try { sigs.push({ name: m[1], raw: fromBase64(m[2]) }); } catch (e) { /* not ours to read */ }
      }
    });
    return { text: text, origin: lines[0], size: Number(lines[1]), root: root, sigs: sigs };
  }

  // checkSignature says 'good', 'bad' or 'unsupported' (this browser has
  // no Ed25519 in WebCrypto).
  async function checkSignature(cp, key) {
    var sig = null;
    cp.sigs.forEach(function (s) {
      if (s.name === key.name && s.raw.length === 68 && equal(s.raw.slice(0, 4), key.id)) { sig = s.raw.slice(4); }
    });
    if (!sig) { return 'bad'; }
    var k;
    try {
      k = await window.crypto.subtle.importKey('raw', key.key, { name: 'Ed25519' }, false, ['verify']);
    } catch (e) {
      return 'unsupported';
    }
    var ok = await window.crypto.subtle.verify({ name: 'Ed25519' }, k, sig, new TextEncoder().encode(cp.text));
    return ok ? 'good' : 'bad';
  }

  // check checks a proof as the API sends it ({index, tree_size, leaf,
  // proof, checkpoint}) with the verifier key. want, when given, is what
  // the page expects: {index, leafHash (base64)}. It never throws: the
  // answer is {ok, problems, signature, size, root, computed}, or
  // {unable: true, problems} when this browser cannot do the math.
  async function check(proof, verifierKey, want) {
    var res = { ok: false, problems: [], signature: 'not checked', size: 0, root: '', computed: '' };
    if (!window.crypto || !window.crypto.subtle) {
      return unable('this browser does the math only over a secure (HTTPS) connection to the hub');
    }
    try {
      var key = await parseKey(verifierKey);
      var cp = parseCheckpoint(proof.checkpoint);
      res.size = cp.size;
      res.root = toBase64(cp.root);
      if (cp.origin !== key.name) { res.problems.push('the checkpoint is of another log than the verifier key'); }
      if (proof.tree_size !== cp.size) { res.problems.push('the proof is for a log of another size than the checkpoint'); }
      var hash = await leafHash(String(proof.leaf));
      if (want && want.index !== undefined && proof.index !== want.index) {
        res.problems.push('the hub sent line ' + proof.index + ', not line ' + want.index);
      }
      if (want && want.leafHash && toBase64(hash) !== want.leafHash) {
        res.problems.push('the line the hub sent is not the line on this page');
      }
      var path = (proof.proof || []).map(fromBase64);
      var computed = await rootFromProof(proof.index, cp.size, hash, path);
      res.computed = toBase64(computed);
      if (!equal(computed, cp.root)) {
        res.problems.push('the proof does not lead to the root hash in the checkpoint');
      }
      res.signature = await checkSignature(cp, key);
      if (res.signature === 'bad') {
        res.problems.push('the checkpoint is not signed by the verifier key');
      }
    } catch (e) {
      res.problems.push(e && e.message ? e.message : String(e));
    }
    res.ok = res.problems.length === 0;
    return res;
  }

  function unable(text) { return { ok: false, unable: true, problems: [text] }; }

  window.CandorVerify = { check: check, rootFromProof: rootFromProof, leafHash: leafHash };

  var section = document.querySelector('[data-verify]');
  var button = document.getElementById('browser-check');
  var out = document.getElementById('browser-result');
  if (!section || !button || !out || !window.fetch || !window.TextEncoder) { return; }
  var needs = document.getElementById('browser-needs-script');
  if (needs) { needs.hidden = true; }
  button.hidden = false;

  function para(parent, text, strong) {
    var p = document.createElement('p');
    if (strong) {
      var s = document.createElement('strong');
      s.textContent = strong;
      p.appendChild(s);
      p.appendChild(document.createTextNode(' '));
    }
    p.appendChild(document.createTextNode(text));
    parent.appendChild(p);
    return p;
  }

  function show(res) {
    var box = document.createElement('div');
    box.className = res.ok ? 'status-message' : 'warning';
    if (res.unable) {
      box = document.createElement('div');
      para(box, 'Your browser could not do the check: ' + res.problems[0] +
        '. This says nothing against the line. Use the check on your own computer below.');
    } else if (res.ok) {
      para(box, 'Your browser worked out the root hash from this line and the proof: ' + res.computed +
        '. It is the same as in the checkpoint of ' + res.size + ' lines.', 'Verified in your browser.');
      if (res.signature === 'good') {
        para(box, 'It also checked that the hub\u2019s key signed the checkpoint.');
      } else {
        para(box, 'This browser cannot check this kind of signature, so it did not check that the hub\u2019s key signed the checkpoint. The hub checked it.');
      }
    } else {
      var p = para(box, '', 'The check in your browser failed.');
      var tag = document.createElement('span');
      tag.className = 'warning-tag';
      tag.textContent = 'Warning:';
      p.insertBefore(document.createTextNode(' '), p.firstChild);
      p.insertBefore(tag, p.firstChild);
      var ul = document.createElement('ul');
      res.problems.forEach(function (text) {
        var li = document.createElement('li');
        li.textContent = text.charAt(0).toUpperCase() + text.slice(1) + '.';
        ul.appendChild(li);
      });
      box.appendChild(ul);
      para(box, 'Do not trust this line. Save this page and tell the person who runs your hub.');
    }
    out.replaceChildren(box);
    out.setAttribute('data-result', res.unable ? 'unable' : res.ok ? 'verified' : 'failed');
  }

  button.addEventListener('click', function () {
    button.disabled = true;
    out.removeAttribute('data-result');
    out.replaceChildren();
    para(out, 'Checking\u2026');
    var want = { index: Number(section.getAttribute('data-index')), leafHash: section.getAttribute('data-leaf-hash') };
    window.fetch(section.getAttribute('data-proof-url'), { credentials: 'same-origin', headers: { 'Accept': 'application/json' } })
      .then(function (r) {
        if (!r.ok) { throw fail('the hub did not send the proof (status ' + r.status + ')'); }
        return r.json();
      })
      .then(function (proof) { return check(proof, section.getAttribute('data-verifier-key'), want); },
        function (e) { return unable(e && e.message ? e.message : 'the hub did not answer'); })
      .then(show)
      .finally(function () { button.disabled = false; });
  });
}());
