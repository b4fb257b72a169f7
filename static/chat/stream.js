// The chat's streaming call: POST to the browser door with the session cookie
// and the CSRF token, read Server-Sent Events from the response body, and turn
// every refusal or failure into a sentence a researcher can act on.
(function () {
  "use strict";

  // Django's JavaScriptCatalog (/jsi18n/, loaded first) in the page's language.
  var gettext = window.gettext;
  var interpolate = window.interpolate;
  var lang = document.documentElement.lang || "en";

  // A failed turn, in words, with what the page may do about it: `retry` is
  // "manual" (a Retry button), "auto" (a countdown of `wait` seconds, then
  // the page sends again by itself) or "none" (retrying cannot help).
  function ChatError(message, kind, retry, wait) {
    this.message = message;
    this.kind = kind || "error";
    this.retry = retry || "manual";
    this.wait = wait || null;
  }

  // "2nd" in English; Hungarian, Estonian and German write "2.".
  function ordinal(n) {
    if (lang.slice(0, 2) !== "en") {
      return n + ".";
    }
    var tens = n % 100;
    var suffix = "th";
    if (tens < 11 || tens > 13) {
      suffix = { 1: "st", 2: "nd", 3: "rd" }[n % 10] || "th";
    }
    return n + suffix;
  }

  function seconds(headers) {
    var value = headers && headers.get("retry-after");
    var number = value ? parseInt(value, 10) : NaN;
    return isNaN(number) ? null : Math.max(1, number);
  }

  function number(headers, name) {
    var value = headers && headers.get(name);
    var parsed = value ? parseInt(value, 10) : NaN;
    return isNaN(parsed) ? null : parsed;
  }

  // What the portal sent of the conversation (chat.turns.ContextFit), from the
  // headers of the answer or the refusal; null when it did not say.
  function contextOf(headers) {
    var window_ = number(headers, "x-chat-context-window");
    if (window_ === null) {
      return null;
    }
    return {
      trimmed: number(headers, "x-chat-trimmed") || 0,
      sent: number(headers, "x-chat-sent") || 0,
      tokens: number(headers, "x-chat-context-tokens") || 0,
      window: window_,
    };
  }

  // The proxy's context refusal, worded for the case: one message too long
  // for the model, or a conversation that does not fit even trimmed.
  function tooLong(message, context) {
    var figures = /maximum context length is (\d+) tokens.*?(\d+) tokens/.exec(message);
    var window_ = figures ? Number(figures[1]) : context && context.window;
    var tokens = figures ? Number(figures[2]) : context && context.tokens;
    var format = function (n) {
      return Number(n).toLocaleString(lang);
    };
    if (context && context.sent > 1) {
      return new ChatError(window_
        ? interpolate(gettext("This conversation no longer fits in the model's context window (%(window)s tokens). Start a new chat, or pick a model with a longer context."),
          { window: format(window_) }, true)
        : gettext("This conversation no longer fits in the model's context window. Start a new chat, or pick a model with a longer context."),
        "context", "none");
    }
    return new ChatError(tokens && window_
      ? interpolate(gettext("Your message is longer than this model can read (about %(tokens)s tokens; the model reads %(window)s). Shorten it or pick a model with a longer context."),
        { tokens: format(tokens), window: format(window_) }, true)
      : gettext("Your message is longer than this model can read. Shorten it or pick a model with a longer context."),
      "context", "none");
  }

  // An error answer ({"error": {message, code, type}}) as a ChatError.
  function friendly(status, body, headers) {
    var error = (body && body.error) || {};
    var code = error.code || "";
    var message = typeof error.message === "string" ? error.message : "";
    var wait = seconds(headers);
    if (code === "insufficient_quota" || error.type === "insufficient_quota") {
      return new ChatError(gettext("Your token quota is used up.") + " " + message, "quota", "none");
    }
    if (status === 429) {
      return new ChatError(gettext("You are over your rate limit (requests or tokens per minute)."),
        "rate_limit", "auto", wait || 10);
    }
    if (code === "context_length_exceeded") {
      return tooLong(message, contextOf(headers));
    }
    if (status === 503 && code === "model_busy") {
      return new ChatError(gettext("This model is busy: too many people are waiting. Or pick another model."), "busy", wait ? "auto" : "manual", wait);
    }
    if (code === "model_not_found" || code === "model_unavailable" || status === 502 ||
        status === 503 || status === 504) {
      var auto = status === 503 && wait;
      var text = status === 502 || status === 504
        ? gettext("The model's server did not answer properly.")
        : (code === "model_not_found" && message) || gettext("This model is unavailable right now.");
      if (!/pick another/i.test(text)) {
        text += " " + (auto ? gettext("Pick another model, or wait.") : gettext("Pick another model, then Retry."));
      }
      return new ChatError(text, "unavailable", auto ? "auto" : "manual", auto ? wait : null);
    }
    if (status === 401) {
      return new ChatError(gettext("You are logged out. Reload the page to log in again."), "auth",
        "none");
    }
    if (status === 413) {
      return new ChatError(gettext("This message is too large to send (images count). Use smaller images, or start a new chat."),
        "invalid", "none");
    }
    if (status === 404 && code === "conversation_not_found") {
      return new ChatError(gettext("This conversation no longer exists."), "invalid", "none");
    }
    if (status >= 400 && status < 500 && message) {
      return new ChatError(message, "invalid", "none");
    }
    return new ChatError(interpolate(gettext("Something went wrong on the portal's side (%s). Try again in a moment."),
      [status]), "server");
  }

  function midStreamError(error) {
    var message = error && typeof error.message === "string" ? error.message : "";
    return new ChatError(interpolate(gettext("The answer broke off: %(reason)s Retry to try again."),
      { reason: message || gettext("the model's server failed.") }, true), "broke");
  }

  // Run one call. `handlers`: onContext(context) (what was sent of the
  // conversation, see contextOf), onWaiting(place, text), onReasoning(text) (a
  // reasoning model's thinking), onDelta(text) (the answer), onUsage(usage),
  // onFinish(reason) (the model's finish_reason, e.g. "length").
  // Resolves to {stopped: bool}; rejects with a ChatError (with `context`).
  async function run(url, csrfToken, payload, signal, handlers) {
    var response;
    try {
      response = await fetch(url, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken },
        body: JSON.stringify(payload),
        signal: signal,
      });
    } catch (error) {
      if (error && error.name === "AbortError") {
        return { stopped: true };
      }
      throw new ChatError(gettext("Could not reach the portal. Check your connection and try again."),
        "network");
    }
    var context = contextOf(response.headers);
    if (context && response.ok) {
      handlers.onContext(context);
    }
    if (!response.ok) {
      var body = null;
      try {
        body = await response.json();
      } catch (error) {
        body = null;
      }
      // Refused before anything was relayed: the portal recorded nothing of
      // this turn, so the page must send it again rather than regenerate.
      var refusal = friendly(response.status, body, response.headers);
      refusal.refused = true;
      refusal.context = context;
      throw refusal;
    }
    var reader = response.body.getReader();
    var decoder = new TextDecoder();
    var buffer = "";
    try {
      for (;;) {
        var chunk = await reader.read();
        if (chunk.done) {
          break;
        }
        buffer += decoder.decode(chunk.value, { stream: true });
        var lines = buffer.split("\n");
        buffer = lines.pop();
        lines.forEach(function (line) {
          handleLine(line.replace(/\r$/, ""), handlers);
        });
      }
    } catch (error) {
      if (error instanceof ChatError) {
        throw error;
      }
      if (error && error.name === "AbortError") {
        return { stopped: true };
      }
      throw new ChatError(gettext("The connection broke off before the answer was complete. Retry to try again."),
        "broke");
    }
    if (buffer) {
      handleLine(buffer, handlers);
    }
    return { stopped: false };
  }

  function handleLine(line, handlers) {
    if (line.charAt(0) === ":") {
      // The proxy's queue reports: ": waiting for 'MODEL', position N in line".
      var match = /position (\d+) in line/.exec(line);
      if (match) {
        var place = parseInt(match[1], 10);
        handlers.onWaiting(place, interpolate(gettext("Waiting for a free slot: %s in line…"), [ordinal(place)]));
      }
      return;
    }
    if (line.indexOf("data:") !== 0) {
      return;
    }
    var data = line.slice(5).trim();
    if (!data || data === "[DONE]") {
      return;
    }
    var event;
    try {
      event = JSON.parse(data);
    } catch (error) {
      return;
    }
    if (event.error) {
      throw midStreamError(event.error);
    }
    (event.choices || []).forEach(function (choice) {
      var delta = (choice && choice.delta) || {};
      // llama.cpp and vLLM: reasoning_content; newer vLLM: reasoning.
      var thought = delta.reasoning_content || delta.reasoning;
      if (typeof thought === "string" && thought) {
        handlers.onReasoning(thought);
      }
      var content = delta.content;
      if (typeof content === "string" && content) {
        handlers.onDelta(content);
      }
      if (choice && typeof choice.finish_reason === "string" && choice.finish_reason) {
        handlers.onFinish(choice.finish_reason);
      }
    });
    if (event.usage) {
      handlers.onUsage(event.usage);
    }
  }

  window.PorticoStream = { run: run, ChatError: ChatError, ordinal: ordinal };
})();
