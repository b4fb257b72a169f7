// The "‹ k/n ›" switcher on a message with siblings: the other answers to
// the same question (Regenerate) or the other versions of a question (Edit).
// Nothing is thrown away: switching shows that branch, and the server stores
// the choice (PATCH active_message), so a reload shows the same branch.
(function () {
  "use strict";

  var el = window.PorticoMessages.el;
  var gettext = window.gettext;

  function arrow(text, label, target, onSwitch) {
    var button = el("button", "link", text);
    button.type = "button";
    button.setAttribute("aria-label", label);
    button.disabled = target === undefined;
    button.addEventListener("click", function () {
      onSwitch(target);
    });
    return button;
  }

  // Adds the switcher at the start of `view`'s footer when it has siblings.
  function switcher(view, onSwitch) {
    var ids = view.message.siblings || [];
    var k = ids.indexOf(view.message.id);
    if (ids.length < 2 || k < 0) {
      return;
    }
    var box = el("span", "branch");
    box.dataset.act = "branch";
    box.append(
      arrow("‹", gettext("Previous version"), ids[k - 1], onSwitch),
      el("span", "branch-count", k + 1 + "/" + ids.length),
      arrow("›", gettext("Next version"), ids[k + 1], onSwitch)
    );
    view.meta.insertBefore(box, view.meta.firstChild);
  }

  window.PorticoBranches = { switcher: switcher };
})();
