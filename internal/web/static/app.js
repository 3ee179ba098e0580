// Candor web UI: small improvements on pages that work without it.
// - Copy buttons for a new credential and the test command.
// - Live updates of a device's readings, when the person turns them on.
// - Focus moves to the error summary after a form was refused.
(function () {
  'use strict';

  var announcer = document.getElementById('announce');
  function announce(text) {
    if (!announcer) { return; }
    announcer.textContent = '';
    window.setTimeout(function () { announcer.textContent = text; }, 50);
  }

  // Copy: the Clipboard API where the page is a secure context; else
  // select the text and use the older copy command.
  function copyFrom(el) {
    var text = el.textContent;
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    return new Promise(function (resolve, reject) {
      var range = document.createRange();
      range.selectNodeContents(el);
      var sel = window.getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
      var ok = false;
      try { ok = document.execCommand('copy'); } catch (e) { ok = false; }
      if (ok) { resolve(); } else { reject(new Error('copy refused')); }
    });
  }

  Array.prototype.forEach.call(document.querySelectorAll('button[data-copy]'), function (btn) {
    var target = document.getElementById(btn.getAttribute('data-copy'));
    if (!target) { return; }
    var label = btn.textContent;
    btn.hidden = false;
    btn.addEventListener('click', function () {
      copyFrom(target).then(function () {
        btn.textContent = 'Copied';
        announce('Copied.');
        window.setTimeout(function () { btn.textContent = label; }, 3000);
      }, function () {
        announce('The text is selected. Press Control and C to copy it.');
      });
    });
  });

  // Live updates of readings: off until the person turns them on, so
  // nothing on the page changes by itself unasked.
  var live = document.querySelector('[data-live]');
  var body = document.getElementById('data-body');
  if (live && body && window.fetch && window.DOMParser) {
    var wrap = document.createElement('p');
    wrap.className = 'check';
    var box = document.createElement('input');
    box.type = 'checkbox';
    box.id = 'live-updates';
    var lab = document.createElement('label');
    lab.htmlFor = 'live-updates';
    lab.textContent = 'Show new readings as they arrive (every 10 seconds)';
    wrap.appendChild(box);
    wrap.appendChild(lab);
    body.parentNode.insertBefore(wrap, body);

    var timer = null;
    var refresh = function () {
      if (document.hidden) { return; }
      fetch(window.location.pathname, { credentials: 'same-origin', headers: { 'Accept': 'text/html' } })
        .then(function (r) {
          if (!r.ok) { throw new Error('status ' + r.status); }
          return r.text();
        })
        .then(function (html) {
          var doc = new DOMParser().parseFromString(html, 'text/html');
          var fresh = doc.getElementById('data-body');
          var current = document.getElementById('data-body');
          if (fresh && current) {
            current.replaceWith(document.importNode(fresh, true));
          }
        })
        .catch(function () {
          stop();
          box.checked = false;
          announce('Live updates stopped: the hub did not answer.');
        });
    };
    var stop = function () {
      if (timer !== null) { window.clearInterval(timer); timer = null; }
    };
    box.addEventListener('change', function () {
      if (box.checked) {
        refresh();
        timer = window.setInterval(refresh, 10000);
        announce('Live updates are on.');
      } else {
        stop();
        announce('Live updates are off.');
      }
    });
  }

  var summary = document.querySelector('.error-summary');
  if (summary) { summary.focus(); }
}());
