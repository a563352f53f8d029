/* The staff ticket page's live link to a web chat (h5/ticket_live.py): shows the visitor typing, their new
 * messages and 客户已读 under our replies; tells the widget when staff type (客服正在输入…) and read (已读). */
(function () {
  "use strict";
  var box = document.getElementById("live-chat");
  if (!box || !window.WebSocket) { return; }
  var timeline = document.querySelector("ol.timeline");
  var typing = box.querySelector(".live-typing");
  var textarea = document.querySelector("textarea.reply-text");
  var ws = null, retry = 0, opened = false, typingTimer = null, lastTyping = 0;
  var visitorRead = Number(box.getAttribute("data-visitor-read") || 0);

  function markRead(upTo) {
    if (upTo > visitorRead) { visitorRead = upTo; }
    var rows = document.querySelectorAll("li.tl-out[data-id]");
    for (var i = 0; i < rows.length; i++) {
      if (Number(rows[i].getAttribute("data-id")) <= visitorRead && !rows[i].querySelector(".read-mark")) {
        var mark = document.createElement("div");
        mark.className = "read-mark";
        mark.textContent = "客户已读";
        rows[i].appendChild(mark);
      }
    }
  }

  function latestIn() {
    var rows = document.querySelectorAll("li.tl-in[data-id]"), top = 0;
    for (var i = 0; i < rows.length; i++) { top = Math.max(top, Number(rows[i].getAttribute("data-id"))); }
    return top;
  }

  function sendRead() {
    var top = latestIn();
    if (top && ws && ws.readyState === 1 && document.visibilityState !== "hidden") {
      ws.send(JSON.stringify({type: "read", id: top}));
    }
  }

  function addMessage(f) {
    if (!timeline || document.querySelector("li.tl[data-id='" + Number(f.id) + "']")) { return; }
    var li = document.createElement("li");
    li.className = "tl tl-in tl-live";
    li.setAttribute("data-id", String(Number(f.id)));
    var head = document.createElement("div");
    head.className = "tl-head";
    head.textContent = "客户 · 网页咨询 · 刚刚";
    var bubble = document.createElement("div");
    bubble.className = "bubble";
    bubble.textContent = f.text || "[消息]";
    li.appendChild(head); li.appendChild(bubble);
    timeline.appendChild(li);
    typing.hidden = true;
    sendRead();
  }

  function connect() {
    ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + box.getAttribute("data-url"));
    ws.onopen = function () { retry = 0; opened = true; sendRead(); };
    ws.onmessage = function (ev) {
      var f;
      try { f = JSON.parse(ev.data); } catch (e) { return; }
      if (f.type === "state") {
        markRead(Number(f.visitor || 0));
      } else if (f.type === "typing") {
        typing.hidden = false;
        clearTimeout(typingTimer);
        typingTimer = setTimeout(function () { typing.hidden = true; }, 4000);
      } else if (f.type === "read") {
        markRead(Number(f.id || 0));
      } else if (f.type === "message") {
        addMessage(f);
      }
    };
    ws.onclose = function (ev) {
      // refused before it opened (the login ended, the ticket is out of reach): stop after a few tries
      if (!opened && retry >= 3) { return; }
      retry = Math.min(retry + 1, 6);
      setTimeout(connect, 500 * Math.pow(2, retry - 1));
    };
  }

  if (textarea) {
    textarea.addEventListener("input", function () {
      var now = Date.now();
      if (ws && ws.readyState === 1 && now - lastTyping > 3000) {
        lastTyping = now;
        ws.send(JSON.stringify({type: "typing"}));
      }
    });
  }
  document.addEventListener("visibilitychange", sendRead);
  markRead(visitorRead);
  connect();
})();
