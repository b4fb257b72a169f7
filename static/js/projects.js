// Settings > Projects: ask before a form with data-confirm is sent (removing a
// member), and print the monthly report from its button. A static file (no
// inline script), so that a strict Content-Security-Policy can forbid inline
// code.
(function () {
  "use strict";

  document.addEventListener("submit", function (event) {
    var form = event.target.closest("form[data-confirm]");
    if (form && !window.confirm(form.getAttribute("data-confirm"))) {
      event.preventDefault();
    }
  });

  document.addEventListener("click", function (event) {
    if (event.target.closest("[data-print]")) {
      window.print();
    }
  });
})();
