// 快捷回复: a tap inserts the reply's text (placeholders already filled by the server) at the cursor of the reply
// box, keeping what the agent typed; the "input" event lets app.js keep the draft.
// Typing a reply's shortcut (e.g. "/fp") as a word of its own, then a space, Enter or Tab, swaps it for the
// reply's text; a word starting with "/" or "#" offers the replies whose shortcut begins with it.
(function () {
  "use strict";
  var box = document.querySelector(".reply-text");
  if (!box) { return; }
  // an untouched box reports its cursor at 0 in some browsers: append after a restored draft instead
  var touched = false;
  box.addEventListener("focus", function () { touched = true; });

  function insert(text, start, end) {
    box.value = box.value.slice(0, start) + text + box.value.slice(end);
    box.selectionStart = box.selectionEnd = start + text.length;
    box.dispatchEvent(new Event("input", { bubbles: true }));
    box.focus();
  }

  var chips = Array.prototype.slice.call(document.querySelectorAll("[data-canned]"));
  chips.forEach(function (b) {
    b.addEventListener("click", function () {
      var text = b.getAttribute("data-canned") || "";
      var start = !touched || box.selectionStart == null ? box.value.length : box.selectionStart;
      var end = box.selectionEnd == null ? start : box.selectionEnd;
      insert(text, start, end);
      var details = b.closest("details");
      if (details) { details.open = false; }
    });
  });

  // shortcuts the server saved with or without the leading "/" (the form allows both): typed, they always start
  // with "/" or "#", so an ordinary word never expands
  var shortcuts = chips.filter(function (b) { return b.getAttribute("data-shortcut"); }).map(function (b) {
    var key = b.getAttribute("data-shortcut");
    return { key: /^[\/#]/.test(key) ? key : "/" + key, text: b.getAttribute("data-canned") || "",
             title: b.getAttribute("data-title") || "" };
  }).sort(function (a, b) { return a.key < b.key ? -1 : a.key > b.key ? 1 : 0; });
  if (!shortcuts.length) { return; }

  // the word that ends at the cursor (start of the box or after whitespace), when it starts with "/" or "#"
  function wordAt(end) {
    var before = box.value.slice(0, end), m = /(^|\s)([\/#][A-Za-z0-9_-]*)$/.exec(before);
    return m ? { word: m[2], start: end - m[2].length } : null;
  }
  function find(word) {
    var exact = shortcuts.filter(function (s) { return s.key === word; });
    if (exact.length) { return exact[0]; }
    // a phone keyboard may capitalise the first letter
    var lower = shortcuts.filter(function (s) { return s.key.toLowerCase() === word.toLowerCase(); });
    return lower.length === 1 ? lower[0] : null;
  }
  // swap the shortcut ending at ``end`` (and what follows it up to ``through``, the key that triggered it)
  function expand(end, through) {
    var at = wordAt(end);
    var s = at && find(at.word);
    if (!s) { return false; }
    insert(s.text, at.start, through);
    hide();
    return true;
  }

  var list = document.createElement("div");
  list.id = "canned-suggest";
  list.className = "quick canned-suggest";
  list.setAttribute("aria-label", "快捷键");
  list.hidden = true;
  box.parentNode.insertBefore(list, box.nextSibling);
  function hide() { list.hidden = true; list.textContent = ""; }
  function suggest() {
    var at = box.selectionStart === box.selectionEnd ? wordAt(box.selectionStart) : null;
    var found = at ? shortcuts.filter(function (s) {
      return s.key.toLowerCase().indexOf(at.word.toLowerCase()) === 0;
    }) : [];
    if (!found.length) { hide(); return; }
    list.textContent = "";
    found.forEach(function (s) {
      var b = document.createElement("button");
      b.type = "button";
      b.className = "chip";
      b.textContent = s.key + " " + s.title;
      // mousedown keeps the focus (and the cursor) in the box until the click
      b.addEventListener("mousedown", function (e) { e.preventDefault(); });
      b.addEventListener("click", function () {
        var now = wordAt(box.selectionStart);
        if (now) { insert(s.text, now.start, box.selectionStart); }
        hide();
      });
      list.appendChild(b);
    });
    list.hidden = false;
  }

  box.addEventListener("keydown", function (e) {
    if ((e.key === "Tab" || e.key === "Enter") && !e.shiftKey && !e.isComposing &&
        box.selectionStart === box.selectionEnd && expand(box.selectionStart, box.selectionStart)) {
      e.preventDefault();
    } else if (e.key === "Escape") {
      hide();
    }
  });
  // a typed space (or a phone keyboard's Enter, which sends no usable keydown) arrives as input: expand what
  // precedes it; deleting back to just after a space does not count
  box.addEventListener("input", function (e) {
    var end = box.selectionStart;
    var typed = e.inputType === "insertLineBreak" || e.inputType === "insertParagraph" ||
      (e.inputType === "insertText" && /^\s$/.test(e.data || ""));
    if (typed && box.selectionStart === box.selectionEnd && end > 0 && expand(end - 1, end)) {
      return;
    }
    suggest();
  });
  box.addEventListener("blur", function () { setTimeout(hide, 200); });
})();
