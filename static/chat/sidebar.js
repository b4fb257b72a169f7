// The conversation list: grouped by day, searched by title and message text,
// renamed in place, deleted with a second click to confirm, exported from its
// menu; the phone drawer and the page's shortcuts; plus the small JSON client
// the chat shares.
(function () {
  "use strict";

  var root = document.getElementById("chat");
  var list = document.getElementById("conversation-list");
  var search = document.getElementById("chat-search");
  var apiUrl = root.dataset.apiUrl;
  var csrfToken = root.dataset.csrf;
  // Django's JavaScriptCatalog (/jsi18n/, loaded first) in the page's language.
  var gettext = window.gettext;
  var NEW_CHAT = gettext("New chat");

  async function api(method, url, body) {
    var options = {
      method: method,
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken, Accept: "application/json" },
    };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    var response = await fetch(url, options);
    if (response.status === 204) {
      return null;
    }
    var data = null;
    try {
      data = await response.json();
    } catch (error) {
      data = null;
    }
    if (!response.ok) {
      var message = (data && data.error && data.error.message) || gettext("The portal refused.");
      // "Invalid input." alone says nothing: a field's own message does.
      var fields = (data && data.error && data.error.fields) || {};
      var first = Object.keys(fields).map(function (name) {
        return [].concat(fields[name])[0];
      })[0];
      throw new Error(typeof first === "string" ? first : message + " (" + response.status + ")");
    }
    return data;
  }

  function conversationUrl(id) {
    return apiUrl + id + "/";
  }

  function pageUrl(id) {
    return "/chat/" + id + "/";
  }

  var currentId = null;
  var shown = []; // the conversations listed now: {id, title, updated_at}

  // The list's groups, in the browser's time zone: Today, Yesterday, Last 7
  // days, Older (by last activity).
  function groupOf(updatedAt) {
    var day = new Date(updatedAt);
    var today = new Date();
    today.setHours(0, 0, 0, 0);
    day.setHours(0, 0, 0, 0);
    var days = Math.round((today - day) / 86400000);
    if (days <= 0) {
      return gettext("Today");
    }
    if (days === 1) {
      return gettext("Yesterday");
    }
    return days < 7 ? gettext("Last 7 days") : gettext("Older");
  }

  function iconButton(action, icon, label) {
    var button = document.createElement("button");
    button.type = "button";
    button.className = "icon";
    button.dataset.action = action;
    button.textContent = icon;
    button.title = label;
    button.setAttribute("aria-label", label);
    return button;
  }

  // The conversation's menu: its exports (downloads).
  function menu(conversation) {
    var details = document.createElement("details");
    details.className = "conversation-menu";
    var summary = document.createElement("summary");
    summary.textContent = "⋯";
    summary.title = gettext("More");
    summary.setAttribute("aria-label", gettext("More for this conversation"));
    var panel = document.createElement("div");
    panel.className = "conversation-menu-panel";
    [["md", gettext("Export as Markdown")], ["json", gettext("Export as JSON")]].forEach(function (spec) {
      var link = document.createElement("a");
      link.href = conversationUrl(conversation.id) + "export." + spec[0];
      link.setAttribute("download", "");
      link.dataset.export = spec[0];
      link.textContent = spec[1];
      // A download leaves the page where it was: close the menu behind it.
      link.addEventListener("click", function () { details.open = false; });
      panel.appendChild(link);
    });
    details.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && details.open) {
        event.stopPropagation();
        details.open = false;
        summary.focus();
      }
    });
    details.append(summary, panel);
    return details;
  }

  function item(conversation) {
    var li = document.createElement("li");
    li.className = "conversation-item" + (conversation.id === currentId ? " current" : "");
    li.dataset.id = String(conversation.id);
    var link = document.createElement("a");
    link.className = "conversation-link";
    link.href = pageUrl(conversation.id);
    link.textContent = conversation.title || NEW_CHAT;
    link.title = conversation.title || NEW_CHAT;
    var actions = document.createElement("span");
    actions.className = "conversation-actions";
    actions.append(iconButton("rename", "✎", gettext("Rename")), iconButton("delete", "✕", gettext("Delete")),
      menu(conversation));
    li.append(link, actions);
    return li;
  }

  function fill(conversations, query) {
    shown = conversations;
    list.replaceChildren();
    var group = null;
    conversations.forEach(function (conversation) {
      var name = groupOf(conversation.updated_at);
      if (name !== group) {
        group = name;
        var heading = document.createElement("li");
        heading.className = "conversation-group";
        heading.setAttribute("role", "presentation");
        heading.textContent = name;
        list.appendChild(heading);
      }
      list.appendChild(item(conversation));
    });
    if (!conversations.length) {
      var empty = document.createElement("li");
      empty.className = "conversation-empty muted";
      empty.textContent = query ? gettext("No conversation matches.") : gettext("No conversations yet.");
      list.appendChild(empty);
    }
  }

  // Conversations listed here before the server lists them: their first turn
  // is streaming, or has just been answered and the answer is being stored.
  var pending = {};

  async function refresh() {
    var query = search.value.trim();
    var data = await api("GET", apiUrl + "?q=" + encodeURIComponent(query));
    var found = data.data;
    found.forEach(function (c) {
      delete pending[c.id];
    });
    if (!query) {
      var early = Object.keys(pending).map(function (id) {
        return pending[id];
      });
      found = early.concat(found);
    }
    fill(found, query);
  }

  // The first turn of a conversation listed by added() has ended: one that
  // got no answer is not listed (the server hides it too).
  function settled(id, answered) {
    if (!answered) {
      delete pending[id];
    }
  }

  // A conversation whose first turn has just started: listed at once, under
  // Today, titled from the first line (the server lists it once its first
  // answer is stored).
  function added(conversation, text) {
    var firstLine = (text || "").split("\n").map(function (line) {
      return line.trim();
    }).filter(Boolean)[0] || "";
    var entry = {
      id: conversation.id,
      title: conversation.title || firstLine || NEW_CHAT,
      updated_at: new Date().toISOString(),
    };
    pending[entry.id] = entry;
    fill([entry].concat(shown.filter(function (c) {
      return c.id !== entry.id;
    })), search.value.trim());
  }

  // The server-rendered list, grouped and given its menus.
  fill(Array.prototype.map.call(list.querySelectorAll(".conversation-item"), function (li) {
    if (li.classList.contains("current")) {
      currentId = Number(li.dataset.id);
    }
    return {
      id: Number(li.dataset.id),
      title: li.dataset.title,
      updated_at: li.dataset.updated,
    };
  }), "");

  var searchTimer = null;
  search.addEventListener("input", function () {
    window.clearTimeout(searchTimer);
    searchTimer = window.setTimeout(function () {
      refresh().catch(function () {});
    }, 200);
  });

  function startRename(li) {
    var link = li.querySelector(".conversation-link");
    var input = document.createElement("input");
    input.type = "text";
    input.className = "rename-input";
    input.value = link.textContent === NEW_CHAT ? "" : link.textContent;
    input.setAttribute("aria-label", gettext("New title"));
    input.maxLength = 200;
    link.hidden = true;
    li.insertBefore(input, link);
    input.focus();
    input.select();
    var done = false;
    async function finish(save) {
      if (done) {
        return;
      }
      done = true;
      var title = input.value.trim();
      if (save && title) {
        try {
          await api("PATCH", conversationUrl(li.dataset.id), { title: title });
          link.textContent = title;
          shown.forEach(function (c) {
            if (String(c.id) === li.dataset.id) {
              c.title = title;
            }
          });
        } catch (error) {
          window.PorticoChat.notice(error.message);
        }
      }
      input.remove();
      link.hidden = false;
    }
    input.addEventListener("keydown", function (event) {
      if (event.key === "Enter") {
        event.preventDefault();
        finish(true);
      } else if (event.key === "Escape") {
        event.preventDefault(); // not the drawer's or the stream's Esc
        finish(false);
      }
    });
    input.addEventListener("blur", function () {
      finish(true);
    });
  }

  async function confirmDelete(li, button) {
    if (button.dataset.armed !== "yes") {
      button.dataset.armed = "yes";
      button.textContent = gettext("Delete?");
      button.classList.add("armed");
      window.setTimeout(function () {
        button.dataset.armed = "";
        button.textContent = "✕";
        button.classList.remove("armed");
      }, 4000);
      return;
    }
    var id = Number(li.dataset.id);
    try {
      await api("DELETE", conversationUrl(id));
    } catch (error) {
      window.PorticoChat.notice(error.message);
      return;
    }
    delete pending[id];
    li.remove();
    if (id === currentId) {
      window.location.assign(root.dataset.homeUrl);
    }
  }

  list.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-action]");
    if (!button) {
      return;
    }
    var li = button.closest(".conversation-item");
    if (button.dataset.action === "rename") {
      startRename(li);
    } else {
      confirmDelete(li, button);
    }
  });

  // The drawer (phones): a backdrop and a close button close it, and so
  // does Esc; focus goes back to the toggle that opened it.
  var toggle = document.getElementById("sidebar-toggle");
  var backdrop = document.getElementById("sidebar-backdrop");
  var closeButton = document.getElementById("sidebar-close");

  function drawerOpen() {
    return root.classList.contains("sidebar-open");
  }

  function setDrawer(open, focusAfter) {
    root.classList.toggle("sidebar-open", open);
    toggle.setAttribute("aria-expanded", open ? "true" : "false");
    backdrop.hidden = !open;
    if (open && focusAfter !== false) {
      search.focus();
    } else if (!open && focusAfter !== false) {
      toggle.focus();
    }
  }

  toggle.addEventListener("click", function () {
    setDrawer(!drawerOpen());
  });
  backdrop.addEventListener("click", function () {
    setDrawer(false);
  });
  closeButton.addEventListener("click", function () {
    setDrawer(false);
  });

  function isPhone() {
    return window.getComputedStyle(toggle).display !== "none";
  }

  // Esc closes the drawer; Ctrl/Cmd+Shift+O starts a new chat; Ctrl/Cmd+K
  // searches. Registered before chat.js's handler, which skips an Esc used here.
  document.addEventListener("keydown", function (event) {
    var mod = event.ctrlKey || event.metaKey;
    if (event.key === "Escape" && drawerOpen() && !event.defaultPrevented) {
      event.preventDefault();
      setDrawer(false);
    } else if (mod && event.shiftKey && (event.key === "O" || event.key === "o")) {
      event.preventDefault();
      window.location.assign(root.dataset.homeUrl);
    } else if (mod && !event.shiftKey && (event.key === "k" || event.key === "K")) {
      event.preventDefault();
      if (isPhone() && !drawerOpen()) {
        setDrawer(true, false);
      }
      search.focus();
      search.select();
    }
  });

  window.PorticoSidebar = {
    api: api,
    conversationUrl: conversationUrl,
    pageUrl: pageUrl,
    refresh: refresh,
    added: added,
    settled: settled,
    setCurrent: function (id) {
      currentId = id;
      list.querySelectorAll(".conversation-item").forEach(function (li) {
        li.classList.toggle("current", Number(li.dataset.id) === id);
      });
    },
  };
})();
