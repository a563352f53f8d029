/* Gongdan H5: small progressive enhancements; every page works without this file. */
(function () {
  "use strict";
  function pad(n) { return n; }
  function duration(ms) {
    var m = Math.max(0, Math.floor(ms / 60000)), d = Math.floor(m / 1440), h = Math.floor((m % 1440) / 60);
    if (d) { return d + "天" + h + "小时"; }
    if (h) { return h + "小时" + pad(m % 60) + "分"; }
    return (m % 60) + "分";
  }
  // SLA countdowns tick without reloading the list.
  function tick() {
    var now = Date.now();
    document.querySelectorAll(".sla[data-due]").forEach(function (el) {
      var left = Date.parse(el.getAttribute("data-due")) - now, name = el.getAttribute("data-name") || "";
      el.textContent = left < 0 ? name + "超时 " + duration(-left) : name + "剩 " + duration(left);
      el.classList.toggle("sla-over", left < 0);
    });
  }
  tick();
  setInterval(tick, 30000);

  // Quick replies fill the reply box.
  document.querySelectorAll("[data-quick]").forEach(function (b) {
    b.addEventListener("click", function () {
      var box = document.querySelector(".reply-text");
      if (box) { box.value = b.getAttribute("data-quick"); box.focus(); }
    });
  });

  // Keep a draft of the reply box across reloads (belt and braces next to the server keeping it on conflicts).
  var box = document.querySelector(".reply-text");
  var form = document.getElementById("act");
  if (box && form && window.sessionStorage) {
    var key = "gd-draft:" + location.pathname;
    if (!box.value && sessionStorage.getItem(key)) { box.value = sessionStorage.getItem(key); }
    box.addEventListener("input", function () { sessionStorage.setItem(key, box.value); });
    form.addEventListener("submit", function () { sessionStorage.removeItem(key); });
  }

  // Inside WeCom: JS-SDK config, the chat sidebar's current contact, native image preview.
  if (!window.wx || !/wxwork/i.test(navigator.userAgent)) { return; }
  var url = location.href.split("#")[0];
  fetch("/h5/jssdk?url=" + encodeURIComponent(url), { credentials: "same-origin" })
    .then(function (r) { return r.json(); })
    .then(function (sig) {
      if (!sig.config) { return; }
      wx.config(sig.config);
      wx.ready(function () {
        var a = sig.agentConfig;
        a.success = function () {
          var field = document.getElementById("external_userid");
          if (field && !field.value) {
            wx.invoke("getCurExternalContact", {}, function (res) {
              if (res.err_msg === "getCurExternalContact:ok" && res.userId) {
                field.value = res.userId;
                document.getElementById("contact-form").submit();
              }
            });
          }
        };
        wx.agentConfig(a);
      });
      document.querySelectorAll(".media-link").forEach(function (link) {
        link.addEventListener("click", function (e) {
          e.preventDefault();
          var urls = Array.prototype.map.call(document.querySelectorAll(".media-link"), function (l) { return l.href; });
          wx.previewImage({ current: link.href, urls: urls });
        });
      });
    })
    .catch(function () { /* the page keeps working without the SDK */ });
})();
