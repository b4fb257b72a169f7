// "Choose your institution": live search over /accounts/institutions/search/,
// and this browser's last choice offered first on the next visit. Without
// JavaScript the search form still works (a results page).
(function () {
  "use strict";
  var STORE = "portico.sso.last";

  function remember(form) {
    try {
      localStorage.setItem(STORE, JSON.stringify({ id: form.dataset.provider, name: form.dataset.name }));
    } catch (e) { /* private mode: nothing remembered */ }
  }

  function startForm(choice, start, csrf, next) {
    var form = document.createElement("form");
    form.method = "post";
    form.action = start;
    form.className = "sso-start";
    form.dataset.provider = choice.id;
    form.dataset.name = choice.name;
    [["csrfmiddlewaretoken", csrf], ["provider", choice.id], ["process", "login"], ["next", next]].forEach(function (pair) {
      if (!pair[1]) return;
      var input = document.createElement("input");
      input.type = "hidden";
      input.name = pair[0];
      input.value = pair[1];
      form.appendChild(input);
    });
    var button = document.createElement("button");
    button.type = "submit";
    button.className = "sso-button";
    button.textContent = "Sign in with " + choice.name;
    form.appendChild(button);
    form.addEventListener("submit", function () { remember(form); });
    return form;
  }

  document.querySelectorAll("form.sso-start").forEach(function (form) {
    form.addEventListener("submit", function () { remember(form); });
  });

  var input = document.getElementById("institution-search");
  if (!input) return;
  var results = document.getElementById("institution-results");
  var start = input.dataset.startUrl, csrf = input.dataset.csrf, next = input.dataset.next;

  var last = null;
  try { last = JSON.parse(localStorage.getItem(STORE) || "null"); } catch (e) { last = null; }
  var lastBox = document.getElementById("institution-last");
  if (last && last.id && last.name && lastBox) {
    var already = document.querySelector('form.sso-start[data-provider="' + CSS.escape(last.id) + '"]');
    if (!already) {
      var form = startForm(last, start, csrf, next);
      form.querySelector("button").textContent = "Continue with " + last.name;
      form.querySelector("button").id = "institution-last-button";
      lastBox.appendChild(form);
      lastBox.hidden = false;
    }
  }

  var timer = null, asked = 0;
  function show(list, query) {
    results.replaceChildren();
    list.forEach(function (choice) {
      var item = document.createElement("li");
      item.appendChild(startForm(choice, start, csrf, next));
      if (choice.domains.length) {
        var domains = document.createElement("span");
        domains.className = "muted small";
        domains.textContent = choice.domains.join(" ");
        item.appendChild(domains);
      }
      results.appendChild(item);
    });
    if (!list.length && query) {
      var none = document.createElement("li");
      none.className = "empty";
      none.textContent = "No institution matches \u201c" + query + "\u201d.";
      results.appendChild(none);
    }
  }
  input.addEventListener("input", function () {
    clearTimeout(timer);
    var query = input.value.trim();
    if (!query) { show([], ""); return; }
    timer = setTimeout(function () {
      var mine = ++asked;
      fetch(input.dataset.searchUrl + "?q=" + encodeURIComponent(query), { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : { results: [] }; })
        .then(function (body) { if (mine === asked) show(body.results, query); })
        .catch(function () { /* the Search button still works */ });
    }, 150);
  });
})();
