// Copy buttons: <button data-copy-target="ID"> copies the text of element #ID.
// A static file (no inline script), so that a strict Content-Security-Policy can
// forbid inline code.
(function () {
  "use strict";

  function selectText(element) {
    var range = document.createRange();
    range.selectNodeContents(element);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  function fallbackCopy(element) {
    selectText(element);
    try {
      return document.execCommand("copy");
    } catch (error) {
      return false;
    }
  }

  function announce(button, text) {
    var original = button.dataset.label || button.textContent;
    button.dataset.label = original;
    button.textContent = text;
    window.setTimeout(function () {
      button.textContent = original;
    }, 2000);
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy-target]");
    if (!button) {
      return;
    }
    var element = document.getElementById(button.getAttribute("data-copy-target"));
    if (!element) {
      return;
    }
    var text = element.textContent;
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(
        function () {
          announce(button, "Copied");
        },
        function () {
          announce(button, fallbackCopy(element) ? "Copied" : "Press Ctrl+C");
        }
      );
    } else {
      announce(button, fallbackCopy(element) ? "Copied" : "Press Ctrl+C");
    }
  });
})();
