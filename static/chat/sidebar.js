// The conversation list: search by title, rename in place, delete with a
// second click to confirm; plus the small JSON client the chat shares.
(function () {
  "use strict";

  var root = document.getElementById("chat");
  var list = document.getElementById("conversation-list");
  var search = document.getElementById("chat-search");
  var apiUrl = root.dataset.apiUrl;
  var csrfToken = root.dataset.csrf;

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
      var message = (data && data.error && data.error.message) || "The portal refused.";
      throw new Error(message + " (" + response.status + ")");
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

  function item(conversation) {
    var li = document.createElement("li");
    li.className = "conversation-item" + (conversation.id === currentId ? " current" : "");
    li.dataset.id = String(conversation.id);
    var link = document.createElement("a");
    link.className = "conversation-link";
    link.href = pageUrl(conversation.id);
    link.textContent = conversation.title || "New chat";
    var actions = document.createElement("span");
    actions.className = "conversation-actions";
    [["rename", "✎", "Rename"], ["delete", "✕", "Delete"]].forEach(function (spec) {
      var button = document.createElement("button");
      button.type = "button";
      button.className = "icon";
      button.dataset.action = spec[0];
      button.textContent = spec[1];
      button.title = spec[2];
      button.setAttribute("aria-label", spec[2]);
      actions.appendChild(button);
    });
    li.append(link, actions);
    return li;
  }

  function fill(conversations, query) {
    list.replaceChildren();
    conversations.forEach(function (conversation) {
      list.appendChild(item(conversation));
    });
    if (!conversations.length) {
      var empty = document.createElement("li");
      empty.className = "conversation-empty muted";
      empty.textContent = query ? "No conversation matches." : "No conversations yet.";
      list.appendChild(empty);
    }
  }

  async function refresh() {
    var query = search.value.trim();
    var data = await api("GET", apiUrl + "?q=" + encodeURIComponent(query));
    fill(data.data, query);
  }

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
    input.value = link.textContent === "New chat" ? "" : link.textContent;
    input.setAttribute("aria-label", "New title");
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
      button.textContent = "Delete?";
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

  var toggle = document.getElementById("sidebar-toggle");
  toggle.addEventListener("click", function () {
    var open = root.classList.toggle("sidebar-open");
    toggle.setAttribute("aria-expanded", open ? "true" : "false");
  });

  window.PorticoSidebar = {
    api: api,
    conversationUrl: conversationUrl,
    pageUrl: pageUrl,
    refresh: refresh,
    setCurrent: function (id) {
      currentId = id;
    },
  };
})();
