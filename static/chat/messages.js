// How one message looks: its body (plain text for the user, rendered and
// sanitised Markdown for the model, see render.js, after a reasoning model's
// thinking in a closed "Thought for N s" section, as plain text) and its
// footer (how it ended, the model, token usage, copy); how much of the model's
// context a conversation uses. Shared helpers for the chat's scripts.
(function () {
  "use strict";

  var Render = window.PorticoRender;
  // Django's JavaScriptCatalog (/jsi18n/, loaded first) in the page's language.
  var gettext = window.gettext;
  var ngettext = window.ngettext;
  var interpolate = window.interpolate;

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) {
      node.className = className;
    }
    if (text !== undefined) {
      node.textContent = text;
    }
    return node;
  }

  function copyText(text, button) {
    function done(label) {
      var original = button.dataset.label || button.textContent;
      button.dataset.label = original;
      button.textContent = label;
      window.setTimeout(function () {
        button.textContent = original;
      }, 1500);
    }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(
        function () {
          done(gettext("Copied"));
        },
        function () {
          done(gettext("Copy failed"));
        }
      );
    } else {
      done(gettext("Copy failed"));
    }
  }

  function formatNumber(n) {
    return Number(n).toLocaleString(document.documentElement.lang || "en");
  }

  function usageText(message) {
    if (message.prompt_tokens == null && message.completion_tokens == null) {
      return "";
    }
    return interpolate(gettext("%(in)s in · %(out)s out"), {
      in: formatNumber(message.prompt_tokens || 0),
      out: formatNumber(message.completion_tokens || 0),
    }, true);
  }

  function endingText(reason) {
    return {
      client_disconnect: gettext("Stopped"),
      length: gettext("Cut at the length limit"),
      backend_error: gettext("Broke off"),
      error: gettext("Broke off"),
    }[reason] || "";
  }

  // A failed turn's label, by the kind of failure (stream.js ChatError): only
  // an answer that broke off mid-stream says "Broke off".
  var FAILURE_LABELS = {
    rate_limit: gettext("Rate limited"),
    quota: gettext("Quota used up"),
    busy: gettext("Model busy"),
    unavailable: gettext("Model unavailable"),
    context: gettext("Too long for the model"),
    auth: gettext("Logged out"),
    invalid: gettext("Not sent"),
    network: gettext("Not sent"),
    server: gettext("Failed"),
    broke: gettext("Broke off"),
  };

  function ending(message) {
    if (message.error_kind) {
      return FAILURE_LABELS[message.error_kind] || gettext("Failed");
    }
    return endingText(message.finish_reason);
  }

  // "Retrying in N s…" after `box`'s text, counting down each second; at zero
  // `done` runs. Returns a function that cancels it.
  function countdown(box, seconds, done) {
    var left = seconds;
    var span = el("span", "countdown");
    box.append(" ", span);
    function show() {
      span.textContent = interpolate(gettext("Retrying in %s s…"), [left]);
    }
    show();
    var timer = window.setInterval(function () {
      left -= 1;
      if (left > 0) {
        show();
        return;
      }
      window.clearInterval(timer);
      span.textContent = gettext("Retrying…");
      done();
    }, 1000);
    return function () {
      window.clearInterval(timer);
      span.remove();
    };
  }

  // The note above the part of the conversation the model was sent, when its
  // oldest messages no longer fit the context window (chat.turns.history_fit).
  function contextNote(pane, views, context) {
    pane.querySelectorAll(".context-note").forEach(function (note) {
      note.remove();
    });
    var n = context ? context.trimmed : 0;
    if (!n || !views[n]) {
      return;
    }
    var text = interpolate(ngettext(
      "%s earlier message is not sent to the model: the conversation no longer fits in its context window.",
      "%s earlier messages are not sent to the model: the conversation no longer fits in its context window.",
      n
    ), [n]);
    var note = el("p", "context-note muted", text);
    note.setAttribute("role", "note");
    pane.insertBefore(note, views[n].node);
  }

  // "Uses ~60% of the model's context" (hidden when unknown).
  function contextMeter(node, context) {
    if (!context || !context.window || !context.tokens) {
      node.hidden = true;
      return;
    }
    var share = Math.min(100, Math.round((100 * context.tokens) / context.window));
    node.textContent = interpolate(gettext("Uses ~%(share)s of the model's context"), {
      share: share + "%",
    }, true);
    node.title = interpolate(gettext("About %(used)s of %(window)s tokens"), {
      used: formatNumber(context.tokens),
      window: formatNumber(context.window),
    }, true);
    node.classList.toggle("full", share >= 75);
    node.hidden = false;
  }

  function decorateCode(body) {
    body.querySelectorAll(".code-block").forEach(function (block) {
      var head = el("div", "code-head");
      head.appendChild(el("span", "code-lang", block.dataset.lang || "text"));
      var button = el("button", "copy-code link", gettext("Copy code"));
      button.type = "button";
      button.addEventListener("click", function () {
        copyText(block.querySelector("code").textContent, button);
      });
      head.appendChild(button);
      block.insertBefore(head, block.firstChild);
    });
  }

  function thoughtFor(seconds) {
    return interpolate(gettext("Thought for %s s"), [Math.max(1, Math.round(seconds))]);
  }

  // The thinking's <details>: made once per view and updated in place, so a
  // reader who opens it while it streams keeps it open. Closed by default.
  // textContent only: thinking is shown as the model wrote it, never as markup.
  function thinking(view) {
    if (!view.thinking) {
      var details = el("details", "thinking");
      details.append(el("summary", "thinking-summary"), el("div", "thinking-text"));
      view.thinking = details;
    }
    var message = view.message;
    var summary = gettext("Thoughts");
    if (message.reasoning_seconds != null) {
      summary = thoughtFor(message.reasoning_seconds);
    } else if (view.streaming) {
      summary = gettext("Thinking…");
    }
    view.thinking.classList.toggle("live", view.streaming && message.reasoning_seconds == null);
    view.thinking.firstChild.textContent = summary;
    view.thinking.lastChild.textContent = message.reasoning;
    return view.thinking;
  }

  // Collects a streaming answer's thinking and times it: from its first piece
  // to the answer's first text (or the end of the stream, when none came).
  function reasoningTimer(message) {
    var started = null;
    return {
      thought: function (text) {
        if (started === null) {
          started = window.performance.now();
        }
        message.reasoning = (message.reasoning || "") + text;
      },
      answered: function () {
        if (started !== null && message.reasoning_seconds == null) {
          message.reasoning_seconds = (window.performance.now() - started) / 1000;
        }
      },
    };
  }

  function fillBody(view) {
    var message = view.message;
    if (message.role === "user") {
      view.body.replaceChildren(el("div", "user-text", message.content));
      (message.images || []).forEach(function (url) {
        var img = el("img", "attached");
        img.src = url;
        img.alt = gettext("attached image");
        view.body.appendChild(img);
      });
    } else {
      var answer = Render.markdown(message.content);
      if (message.reasoning) {
        view.body.replaceChildren(thinking(view), answer);
      } else {
        view.body.replaceChildren(answer);
      }
      decorateCode(view.body);
    }
  }

  function fillMeta(view) {
    var message = view.message;
    view.meta.replaceChildren();
    var facts = [ending(message), message.model, usageText(message)];
    facts.filter(Boolean).forEach(function (fact) {
      view.meta.appendChild(el("span", "fact", fact));
    });
    var copy = el("button", "link", gettext("Copy"));
    copy.type = "button";
    copy.dataset.act = "copy";
    copy.hidden = !message.content; // nothing to copy yet
    copy.addEventListener("click", function () {
      copyText(message.content, copy);
    });
    view.meta.appendChild(copy);
  }

  window.PorticoMessages = {
    el: el,
    copyText: copyText,
    formatNumber: formatNumber,
    fillBody: fillBody,
    fillMeta: fillMeta,
    reasoningTimer: reasoningTimer,
    countdown: countdown,
    contextNote: contextNote,
    contextMeter: contextMeter,
  };
})();
