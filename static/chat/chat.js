// The chat page: messages, the composer, the model picker and settings.
// Conversations are stored by the server; this script shows them and sends
// one turn at a time through the browser door (stream.js).
(function () {
  "use strict";

  var Stream = window.PorticoStream;
  var Sidebar = window.PorticoSidebar;
  var Messages = window.PorticoMessages;
  var el = Messages.el;
  var fillBody = Messages.fillBody;
  var fillMeta = Messages.fillMeta;
  var formatNumber = Messages.formatNumber;
  // Django's JavaScriptCatalog (/jsi18n/, loaded first) in the page's language.
  var gettext = window.gettext;
  var interpolate = window.interpolate;

  var root = document.getElementById("chat");
  var state = JSON.parse(document.getElementById("chat-state").textContent);
  var models = state.models;
  var conversation = state.conversation; // null until the first message
  var messages = conversation ? conversation.messages : [];
  // A send or edit the portal refused before answering (nothing was stored):
  // Retry sends it again.
  var unsent = null;
  // What the last turn sent of the conversation (chat.turns.ContextFit), and
  // a pending automatic retry (a rate limit's countdown) to cancel.
  var context = state.context;
  var cancelRetry = null;

  var pane = document.getElementById("messages");
  var emptyNote = document.getElementById("chat-empty");
  var form = document.getElementById("composer");
  var prompt = document.getElementById("prompt");
  var sendButton = document.getElementById("send");
  var stopButton = document.getElementById("stop");
  var picker = document.getElementById("model-picker");
  var modelInfo = document.getElementById("model-info");
  var systemPrompt = document.getElementById("system-prompt");
  var temperature = document.getElementById("temperature");
  // Which project a conversation bills (absent when the user is in none).
  var bills = document.getElementById("bills");
  var recommended = document.getElementById("recommended");
  var noticeBox = document.getElementById("notice");
  var editBanner = document.getElementById("edit-banner");
  var contextMeter = document.getElementById("context-meter");

  var busy = false;
  var editing = null; // the index of the question being edited
  var controller = null;
  var settingsSaved = Promise.resolve();

  // -- small helpers --------------------------------------------------------

  function notice(text) {
    noticeBox.textContent = text || "";
    noticeBox.hidden = !text;
  }

  function modelById(id) {
    return models.find(function (model) {
      return model.id === id;
    });
  }

  function currentModel() {
    return modelById(picker.value);
  }

  // -- messages -------------------------------------------------------------

  var views = [];

  function addView(message) {
    var node = el("article", "msg " + message.role);
    node.appendChild(el("div", "msg-role", message.role === "user" ? gettext("You") : gettext("Assistant")));
    var body = el("div", "msg-body");
    var meta = el("div", "msg-meta");
    node.append(body, meta);
    var view = { message: message, node: node, body: body, meta: meta };
    fillBody(view);
    fillMeta(view);
    pane.appendChild(node);
    views.push(view);
    emptyNote.hidden = true;
    return view;
  }

  function refreshActions() {
    views.forEach(function (view) {
      view.meta.querySelectorAll("[data-act=regenerate],[data-act=edit],[data-act=branch]").forEach(function (b) {
        b.remove();
      });
    });
    if (busy || !views.length) {
      return;
    }
    var last = views[views.length - 1];
    var label = gettext("Regenerate");
    if (last.message.role === "user") {
      label = gettext("Answer");
    } else if (!last.message.content || last.message.error ||
        /error$/.test(last.message.finish_reason || "")) {
      label = gettext("Retry");
    }
    if (last.message.retry === "none") {
      label = ""; // retrying cannot help (quota, too long): no button
    }
    if (label) {
      var action = el("button", "link", label);
      action.type = "button";
      action.dataset.act = "regenerate";
      action.addEventListener("click", regenerate);
      last.meta.appendChild(action);
    }
    // Any question stored can be edited (a new branch beside it).
    var lastUser = lastUserIndex();
    views.forEach(function (view, i) {
      window.PorticoBranches.switcher(view, switchBranch);
      if (view.message.role === "user" && (view.message.id || i === lastUser)) {
        var edit = el("button", "link", gettext("Edit"));
        edit.type = "button";
        edit.dataset.act = "edit";
        edit.addEventListener("click", function () {
          startEdit(i);
        });
        view.meta.appendChild(edit);
      }
    });
  }

  // Shows the branch through message `id` (stored, so a reload shows it).
  async function switchBranch(id) {
    if (busy || !conversation) {
      return;
    }
    stopEditing();
    try {
      await Sidebar.api("PATCH", Sidebar.conversationUrl(conversation.id), { active_message: id });
      var data = await Sidebar.api("GET", Sidebar.conversationUrl(conversation.id));
    } catch (error) {
      notice(interpolate(gettext("Could not switch to that version: %s"), [error.message]));
      return;
    }
    stopRetry();
    unsent = null; // a refused turn belonged to the branch left
    dropViewsAfter(-1);
    data.messages.forEach(addView);
    context = null; // measured for the other branch
    showContext();
    refreshActions();
    root.dataset.switches = String(Number(root.dataset.switches || 0) + 1);
  }

  // After a turn: the stored ids and siblings of the messages shown (the
  // answer is stored just after the stream ends, so this may look again).
  async function syncBranches(attempt) {
    var data = await Sidebar.api("GET", Sidebar.conversationUrl(conversation.id));
    var last = data.messages[data.messages.length - 1];
    if (busy || data.messages.length !== views.length || !last ||
        last.content !== views[views.length - 1].message.content) {
      if (attempt < 10 && !busy) {
        window.setTimeout(function () {
          syncBranches(attempt + 1).catch(function () {});
        }, 200);
      }
      return;
    }
    data.messages.forEach(function (message, i) {
      views[i].message.id = message.id;
      views[i].message.parent = message.parent;
      views[i].message.siblings = message.siblings;
    });
    refreshActions();
    root.dataset.synced = String(Number(root.dataset.synced || 0) + 1);
  }

  function dropViewsAfter(index) {
    views.splice(index + 1).forEach(function (view) {
      view.node.remove();
    });
  }

  function lastUserIndex() {
    for (var i = views.length - 1; i >= 0; i--) {
      if (views[i].message.role === "user") {
        return i;
      }
    }
    return -1;
  }

  var follow = window.PorticoFollow(pane, document.getElementById("jump-latest"));

  function scrollDown(force) {
    if (force) {
      follow.reset();
    } else {
      follow.down();
    }
  }

  // -- the model picker and settings ---------------------------------------

  function showModel() {
    var model = currentModel();
    if (!model) {
      modelInfo.textContent = "";
      recommended.textContent = "";
      return;
    }
    var window_ = interpolate(gettext("%s-token context"), [formatNumber(model.context_window)]);
    var caps = model.capabilities.filter(function (c) {
      return c !== "completions";
    });
    modelInfo.textContent = window_ + " · " + caps.join(", ") +
      (model.readiness ? " · " + model.readiness : "");
    var params = Object.keys(model.recommended).map(function (name) {
      return name + " " + model.recommended[name];
    });
    recommended.textContent = params.length
      ? interpolate(gettext("Recommended for this model: %s. Used unless you set a temperature."),
        [params.join(", ")])
      : gettext("No recommended parameters for this model: the server's defaults apply.");
    temperature.placeholder = model.recommended.temperature !== undefined
      ? interpolate(gettext("recommended %s"), [model.recommended.temperature])
      : gettext("model default");
    document.getElementById("attach").classList.toggle(
      "unavailable", !model.capabilities.includes("vision")
    );
    if (images.list().length && !model.capabilities.includes("vision")) {
      notice(interpolate(gettext("%(model)s cannot read images. Pick a model marked 'vision', or remove the images."), { model: model.name }, true));
    } else {
      notice("");
    }
  }

  function saveSettings(changes) {
    if (!conversation) {
      return;
    }
    settingsSaved = settingsSaved
      .then(function () {
        return Sidebar.api("PATCH", Sidebar.conversationUrl(conversation.id), changes);
      })
      .catch(function (error) {
        notice(interpolate(gettext("Could not save the settings: %s"), [error.message]));
      });
  }

  function temperatureValue() {
    var raw = temperature.value.trim();
    if (!raw) {
      return null;
    }
    var value = Number(raw);
    return isNaN(value) ? null : Math.min(2, Math.max(0, value));
  }

  function saveModel() {
    if (conversation && conversation.model !== picker.value) {
      conversation.model = picker.value;
      saveSettings({ model: picker.value });
    }
  }

  picker.addEventListener("change", function () {
    showModel();
    saveModel();
  });
  systemPrompt.addEventListener("change", function () {
    saveSettings({ system_prompt: systemPrompt.value });
  });
  temperature.addEventListener("change", function () {
    saveSettings({ temperature: temperatureValue() });
  });
  if (bills) {
    bills.addEventListener("change", function () {
      saveSettings({ project: bills.value ? Number(bills.value) : null });
    });
  }

  var images = window.PorticoAttachments({
    notice: notice,
    currentModel: currentModel,
    changed: showModel,
  });

  // -- sending --------------------------------------------------------------

  function setBusy(value) {
    busy = value;
    sendButton.hidden = value;
    stopButton.hidden = !value;
    // Screen readers hear the answer once it is complete, not every token.
    pane.setAttribute("aria-busy", value ? "true" : "false");
    picker.disabled = value || !models.length;
    refreshActions();
  }

  async function ensureConversation() {
    if (conversation) {
      return conversation;
    }
    var body = { model: picker.value, system_prompt: systemPrompt.value };
    var t = temperatureValue();
    if (t !== null) {
      body.temperature = t;
    }
    if (bills && bills.value) {
      body.project = Number(bills.value);
    }
    conversation = await Sidebar.api("POST", root.dataset.apiUrl, body);
    Sidebar.setCurrent(conversation.id);
    Sidebar.added(conversation, prompt.value);
    window.history.replaceState(null, "", Sidebar.pageUrl(conversation.id));
    return conversation;
  }

  function showContext() {
    Messages.contextNote(pane, views, context);
    if (contextMeter) {
      Messages.contextMeter(contextMeter, context);
    }
  }

  function stopRetry() {
    if (cancelRetry) {
      cancelRetry();
      cancelRetry = null;
    }
  }

  async function runTurn(payload, answerView) {
    stopRetry();
    unsent = null;
    controller = new AbortController();
    setBusy(true);
    var message = answerView.message;
    var timer = Messages.reasoningTimer(message);
    answerView.streaming = true;
    var pending = false;
    function paint() {
      if (pending) {
        return;
      }
      pending = true;
      window.requestAnimationFrame(function () {
        pending = false;
        if (!answerView.streaming) {
          return; // the turn has ended and painted its last state (and error)
        }
        fillBody(answerView);
        scrollDown();
      });
    }
    answerView.body.replaceChildren(el("p", "waiting muted", gettext("Waiting for the model…")));
    try {
      var result = await Stream.run(root.dataset.streamUrl, root.dataset.csrf, payload,
        controller.signal, {
          onContext: function (sent) {
            context = sent;
            showContext();
          },
          onFinish: function (reason) {
            message.finish_reason = reason;
            fillMeta(answerView);
          },
          onWaiting: function (place, text) {
            if (!message.content && !message.reasoning) {
              answerView.body.replaceChildren(el("p", "waiting muted", text));
            }
          },
          onReasoning: function (text) {
            timer.thought(text);
            paint();
          },
          onDelta: function (text) {
            timer.answered();
            message.content += text;
            paint();
          },
          onUsage: function (usage) {
            message.prompt_tokens = usage.prompt_tokens;
            message.completion_tokens = usage.completion_tokens;
            if (context && usage.prompt_tokens) {
              context.tokens = usage.prompt_tokens + (usage.completion_tokens || 0);
              showContext();
            }
          },
        });
      message.finish_reason = result.stopped ? "client_disconnect"
        : message.finish_reason || "stop";
    } catch (error) {
      var known = error instanceof Stream.ChatError;
      var text = known ? error.message
        : gettext("Something went wrong in this page. Reload it and try again.");
      message.finish_reason = "error";
      message.error = text;
      message.error_kind = known ? error.kind : "server";
      message.retry = known ? error.retry : "manual";
      message.retry_wait = known ? error.wait : null;
      if (known && error.context) {
        context = error.context;
        showContext();
      }
      if (error.refused && payload.action !== "regenerate") {
        unsent = payload;
      }
    }
    timer.answered();
    answerView.streaming = false;
    fillBody(answerView);
    fillMeta(answerView);
    if (message.error) {
      var box = el("p", "msg-error", message.error);
      box.setAttribute("role", "alert");
      answerView.body.appendChild(box);
      answerView.node.classList.add("failed");
      if (message.retry === "auto") {
        cancelRetry = Messages.countdown(box, message.retry_wait || 10, function () {
          cancelRetry = null;
          regenerate();
        });
      }
    }
    controller = null;
    setBusy(false);
    // Counted for the browser tests: a turn has ended when this moves.
    root.dataset.turns = String(Number(root.dataset.turns || 0) + 1);
    scrollDown();
    Sidebar.settled(conversation.id, Boolean(message.content || message.reasoning));
    Sidebar.refresh().catch(function () {});
    if (!message.error) {
      syncBranches(0).catch(function () {});
    }
  }

  async function send() {
    if (busy) {
      return;
    }
    var text = prompt.value;
    var model = currentModel();
    if (!model) {
      notice(gettext("Pick a model first."));
      return;
    }
    var attached = images.list();
    if (!text.trim() && !attached.length) {
      return;
    }
    if (attached.length && !model.capabilities.includes("vision")) {
      notice(interpolate(gettext("%(model)s cannot read images. Pick a model marked 'vision', or remove the images."), { model: model.name }, true));
      return;
    }
    notice("");
    try {
      await ensureConversation();
      saveModel();
      await settingsSaved;
    } catch (error) {
      notice(interpolate(gettext("Could not start the conversation: %s"), [error.message]));
      return;
    }
    var payload = { conversation: conversation.id, action: editing !== null ? "edit" : "send", content: text };
    if (editing !== null) {
      var index = editing;
      var old = views[index].message;
      if (old.id) {
        payload.message = old.id; // a new version beside it; the old one stays
      }
      views[index].message = { role: "user", content: text, images: old.images || [] };
      fillBody(views[index]);
      fillMeta(views[index]);
      dropViewsAfter(index);
      stopEditing();
    } else {
      payload.images = attached;
      addView({ role: "user", content: text, images: attached });
      images.clear();
    }
    prompt.value = "";
    autosize();
    var answer = addView({ role: "assistant", content: "", model: model.id });
    scrollDown(true);
    await runTurn(payload, answer);
  }

  async function regenerate() {
    if (busy || !conversation) {
      return;
    }
    saveModel();
    await settingsSaved;
    var index = lastUserIndex();
    if (index < 0) {
      return;
    }
    dropViewsAfter(index);
    var model = currentModel();
    var answer = addView({ role: "assistant", content: "", model: model ? model.id : "" });
    await runTurn(unsent || { conversation: conversation.id, action: "regenerate" }, answer);
  }

  function startEdit(index) {
    if (busy || index < 0) {
      return;
    }
    stopRetry();
    editing = index;
    editBanner.hidden = false;
    prompt.value = views[index].message.content;
    autosize();
    prompt.focus();
  }

  function stopEditing() {
    editing = null;
    editBanner.hidden = true;
  }

  document.getElementById("edit-cancel").addEventListener("click", function () {
    stopEditing();
    prompt.value = "";
    autosize();
  });

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    send();
  });

  stopButton.addEventListener("click", function () {
    if (controller) {
      controller.abort();
    }
  });

  // Esc stops the answer (unless the drawer or a rename used it, sidebar.js).
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && controller && !event.defaultPrevented) {
      event.preventDefault();
      controller.abort();
    }
  });

  // On a touch keyboard Enter types a line break; only the Send button sends.
  var touchKeyboard = window.matchMedia("(pointer: coarse)").matches;
  prompt.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing &&
        !touchKeyboard) {
      event.preventDefault();
      send();
    }
  });

  function autosize() {
    prompt.style.height = "auto";
    prompt.style.height = Math.min(prompt.scrollHeight, 240) + "px";
  }
  prompt.addEventListener("input", autosize);

  // -- start ----------------------------------------------------------------

  if (conversation) {
    Sidebar.setCurrent(conversation.id);
    if (conversation.model && !modelById(conversation.model)) {
      notice(interpolate(gettext(
        "This conversation's model (%s) is not available now. Pick another one to continue."
      ), [conversation.model]));
    } else if (conversation.model) {
      picker.value = conversation.model;
    }
    systemPrompt.value = conversation.system_prompt || "";
    temperature.value = conversation.temperature == null ? "" : conversation.temperature;
    if (bills) {
      bills.value = conversation.project == null ? "" : String(conversation.project);
    }
  }
  messages.forEach(addView);
  showContext();
  refreshActions();
  showModel();
  scrollDown(true);
  if (!prompt.disabled) {
    prompt.focus();
  }
  root.classList.add("ready");

  window.PorticoChat = { notice: notice };
})();
