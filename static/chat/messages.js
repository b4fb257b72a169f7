// How one message looks: its body (plain text for the user, rendered and
// sanitised Markdown for the model, see render.js, after a reasoning model's
// thinking in a closed "Thought for N s" section, as plain text) and its
// footer (how it ended, the model, token usage, copy); how much of the model's
// context a conversation uses. Shared helpers for the chat's scripts.
(function () {
  "use strict";

  var Render = window.PorticoRender;

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
          done("Copied");
        },
        function () {
          done("Copy failed");
        }
      );
    } else {
      done("Copy failed");
    }
  }

  function formatNumber(n) {
    return Number(n).toLocaleString("en");
  }

  function usageText(message) {
    if (message.prompt_tokens == null && message.completion_tokens == null) {
      return "";
    }
    return formatNumber(message.prompt_tokens || 0) + " in · " +
      formatNumber(message.completion_tokens || 0) + " out";
  }

  function endingText(reason) {
    return {
      client_disconnect: "Stopped",
      length: "Cut at the length limit",
      backend_error: "Broke off",
      error: "Broke off",
    }[reason] || "";
  }

  // A failed turn's label, by the kind of failure (stream.js ChatError): only
  // an answer that broke off mid-stream says "Broke off".
  var FAILURE_LABELS = {
    rate_limit: "Rate limited",
    quota: "Quota used up",
    busy: "Model busy",
    unavailable: "Model unavailable",
    context: "Too long for the model",
    auth: "Logged out",
    invalid: "Not sent",
    network: "Not sent",
    server: "Failed",
    broke: "Broke off",
  };

  function ending(message) {
    if (message.error_kind) {
      return FAILURE_LABELS[message.error_kind] || "Failed";
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
      span.textContent = "Retrying in " + left + " s…";
    }
    show();
    var timer = window.setInterval(function () {
      left -= 1;
      if (left > 0) {
        show();
        return;
      }
      window.clearInterval(timer);
      span.textContent = "Retrying…";
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
    var text = n === 1 ? "1 earlier message is not sent to the model"
      : n + " earlier messages are not sent to the model";
    var note = el("p", "context-note muted", text +
      ": the conversation no longer fits in its context window.");
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
    node.textContent = "Uses ~" + share + "% of the model's context";
    node.title = "About " + formatNumber(context.tokens) + " of " +
      formatNumber(context.window) + " tokens";
    node.classList.toggle("full", share >= 75);
    node.hidden = false;
  }

  function decorateCode(body) {
    body.querySelectorAll(".code-block").forEach(function (block) {
      var head = el("div", "code-head");
      head.appendChild(el("span", "code-lang", block.dataset.lang || "text"));
      var button = el("button", "copy-code link", "Copy code");
      button.type = "button";
      button.addEventListener("click", function () {
        copyText(block.querySelector("code").textContent, button);
      });
      head.appendChild(button);
      block.insertBefore(head, block.firstChild);
    });
  }

  function thoughtFor(seconds) {
    return "Thought for " + Math.max(1, Math.round(seconds)) + " s";
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
    var summary = "Thoughts";
    if (message.reasoning_seconds != null) {
      summary = thoughtFor(message.reasoning_seconds);
    } else if (view.streaming) {
      summary = "Thinking…";
    }
    view.thinking.classList.toggle("live", summary === "Thinking…");
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
        img.alt = "attached image";
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
    var copy = el("button", "link", "Copy");
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
