// The chat's streaming call: POST to the browser door with the session cookie
// and the CSRF token, read Server-Sent Events from the response body, and turn
// every refusal or failure into a sentence a researcher can act on.
(function () {
  "use strict";

  function ChatError(message, kind) {
    this.message = message;
    this.kind = kind || "error";
  }

  function ordinal(n) {
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

  function later(wait) {
    return wait ? " Try again in " + wait + " s." : " Try again in a moment.";
  }

  // An error answer ({"error": {message, code, type}}) as a friendly sentence.
  function friendly(status, body, headers) {
    var error = (body && body.error) || {};
    var code = error.code || "";
    var message = typeof error.message === "string" ? error.message : "";
    var wait = seconds(headers);
    if (status === 429 && (code === "insufficient_quota" || error.type === "insufficient_quota")) {
      return new ChatError("Your token quota is used up. " + message, "quota");
    }
    if (status === 429) {
      return new ChatError(
        "You are over your rate limit (requests or tokens per minute)." + later(wait),
        "rate_limit"
      );
    }
    if (status === 503 && code === "model_busy") {
      return new ChatError("This model is busy: too many people are waiting." + later(wait) +
        " Or pick another model.", "busy");
    }
    if (status === 503) {
      return new ChatError("This model is unavailable right now." + later(wait), "busy");
    }
    if (status === 502 || status === 504) {
      return new ChatError("The model's server did not answer properly." + later(wait), "backend");
    }
    if (status === 401) {
      return new ChatError("You are logged out. Reload the page to log in again.", "auth");
    }
    if (status === 413) {
      return new ChatError("This message is too large to send (images count). Use smaller " +
        "images, or start a new chat.", "invalid");
    }
    if (code === "context_length_exceeded") {
      return new ChatError("This conversation no longer fits in the model's context window. " +
        "Start a new chat, or pick a model with a larger window.", "invalid");
    }
    if (status === 404 && code === "conversation_not_found") {
      return new ChatError("This conversation no longer exists.", "invalid");
    }
    if (status >= 400 && status < 500 && message) {
      return new ChatError(message, "invalid");
    }
    return new ChatError("Something went wrong on the portal's side (" + status + ")." +
      " Try again in a moment.", "server");
  }

  function midStreamError(error) {
    var message = error && typeof error.message === "string" ? error.message : "";
    return new ChatError("The answer broke off: " + (message || "the model's server failed.") +
      " Regenerate to try again.", "backend");
  }

  // Run one call. `handlers`: onWaiting(place, text), onReasoning(text) (a
  // reasoning model's thinking), onDelta(text) (the answer), onUsage(usage).
  // Resolves to {stopped: bool}; rejects with a ChatError.
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
      throw new ChatError("Could not reach the portal. Check your connection and try again.",
        "network");
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
      throw new ChatError("The connection broke off before the answer was complete." +
        " Regenerate to try again.", "network");
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
        handlers.onWaiting(place, "Waiting for a free slot: " + ordinal(place) + " in line…");
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
    });
    if (event.usage) {
      handlers.onUsage(event.usage);
    }
  }

  window.PorticoStream = { run: run, ChatError: ChatError, ordinal: ordinal };
})();
