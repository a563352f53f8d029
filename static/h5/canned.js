// 快捷回复: a tap inserts the reply's text (placeholders already filled by the server) at the cursor of the reply
// box, keeping what the agent typed; the "input" event lets app.js keep the draft.
(function () {
  "use strict";
  var box = document.querySelector(".reply-text");
  if (!box) { return; }
  // an untouched box reports its cursor at 0 in some browsers: append after a restored draft instead
  var touched = false;
  box.addEventListener("focus", function () { touched = true; });
  document.querySelectorAll("[data-canned]").forEach(function (b) {
    b.addEventListener("click", function () {
      var text = b.getAttribute("data-canned") || "";
      var start = !touched || box.selectionStart == null ? box.value.length : box.selectionStart;
      var end = box.selectionEnd == null ? start : box.selectionEnd;
      box.value = box.value.slice(0, start) + text + box.value.slice(end);
      box.selectionStart = box.selectionEnd = start + text.length;
      box.dispatchEvent(new Event("input", { bubbles: true }));
      box.focus();
      var details = b.closest("details");
      if (details) { details.open = false; }
    });
  });
})();
