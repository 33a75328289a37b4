// Quiver console: small behaviours every page may use, without inline script (the pages'
// Content-Security-Policy allows scripts from this server only).
(function () {
  "use strict";
  // A range input shows its value in the <output for=...> that names it.
  document.addEventListener("input", function (event) {
    var input = event.target;
    if (!input || input.type !== "range" || !input.id) return;
    var shown = document.querySelector('output[for="' + input.id + '"]');
    if (shown) shown.textContent = input.value;
  });
})();
