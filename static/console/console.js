/* Gongdan console: small progressive enhancements (pages work without them). */
(function () {
  "use strict";
  // <form data-confirm="确定删除？">, or <button data-confirm="..."> in a form with several buttons (asked for the
  // button that was pressed): ask before destructive actions
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var button = event.submitter;
    var text = (button && button.getAttribute && button.getAttribute("data-confirm")) ||
      (form && form.getAttribute && form.getAttribute("data-confirm"));
    if (text && !window.confirm(text)) { event.preventDefault(); }
  }, true);
  // <select data-autosubmit>: filter bars apply on change
  document.addEventListener("change", function (event) {
    var el = event.target;
    if (el && el.hasAttribute && el.hasAttribute("data-autosubmit") && el.form) { el.form.submit(); }
  });
})();
