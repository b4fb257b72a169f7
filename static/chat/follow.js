// Following a streaming answer: the message pane keeps to the bottom while the
// reader is there, and stops when they scroll up to read earlier text; "Jump
// to latest" brings them back and resumes following.
(function () {
  "use strict";

  var NEAR = 48; // px from the bottom that still counts as "at the bottom"

  window.PorticoFollow = function (pane, button) {
    var following = true;

    function atBottom() {
      return pane.scrollHeight - pane.scrollTop - pane.clientHeight <= NEAR;
    }

    function toBottom() {
      pane.scrollTop = pane.scrollHeight;
      following = true;
      button.hidden = true;
    }

    // Scrolling the reader did (wheel, touch, keys, scrollbar) decides; the
    // pane's own scrolls end at the bottom, which keeps following on.
    pane.addEventListener("scroll", function () {
      following = atBottom();
      button.hidden = following;
    }, { passive: true });

    button.addEventListener("click", function () {
      toBottom();
    });

    return {
      // New text arrived: keep up with it unless the reader scrolled away.
      down: function () {
        if (following) {
          toBottom();
        } else {
          button.hidden = atBottom();
        }
      },
      // The reader sent something or opened a conversation: go to the end.
      reset: toBottom,
      following: function () {
        return following;
      },
    };
  };
})();
