/* Repair tools and channel pages: tick-all, copy a snippet or a secret (console.js asks the data-confirm questions).
   Pages work without it. */
(function () {
  "use strict";
  // <input type="checkbox" data-check-all="ids">: tick or untick every checkbox named "ids"
  document.addEventListener("change", function (event) {
    var box = event.target;
    var name = box && box.getAttribute && box.getAttribute("data-check-all");
    if (!name) { return; }
    var boxes = document.querySelectorAll("input[type=checkbox][name='" + name + "']");
    for (var i = 0; i < boxes.length; i++) { boxes[i].checked = box.checked; }
  });
  // <button data-copy="#id">: copy the element's text
  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("[data-copy]") : null;
    if (!button) { return; }
    var source = document.querySelector(button.getAttribute("data-copy"));
    if (!source) { return; }
    var text = source.value !== undefined ? source.value : source.textContent;
    var done = function () { button.textContent = "已复制"; };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { source.select && source.select(); });
    } else if (source.select) {
      source.select();
      try { document.execCommand("copy"); done(); } catch (e) { /* the text stays selected for Ctrl+C */ }
    }
  });
})();
