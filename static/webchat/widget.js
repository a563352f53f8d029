/* Gongdan web chat widget. Embed:
 *   <script src="https://desk.example.com/static/webchat/widget.js" data-site="KEY" async></script>
 * Talks to the desk over WebSocket /webchat/ws?site=KEY; the visitor id the server signs is kept in localStorage,
 * and on reconnect the widget asks for the messages after the last id it saw. */
(function () {
  "use strict";
  var script = document.currentScript || document.querySelector("script[data-site][src*='webchat/widget.js']");
  if (!script || window.__gongdanWebchat) { return; }
  window.__gongdanWebchat = true;
  var site = script.getAttribute("data-site") || "";
  var src = new URL(script.src, location.href);
  var wsUrl = (src.protocol === "https:" ? "wss://" : "ws://") + src.host + "/webchat/ws?site=" + encodeURIComponent(site);
  var store = "gongdan-webchat:" + site;
  var saved = {};
  try { saved = JSON.parse(localStorage.getItem(store) || "{}") || {}; } catch (e) { saved = {}; }
  function save() { try { localStorage.setItem(store, JSON.stringify(saved)); } catch (e) { /* private mode */ } }

  var css = document.createElement("link");
  css.rel = "stylesheet";
  css.href = src.href.replace(/widget\.js(\?.*)?$/, "widget.css");
  document.head.appendChild(css);

  function el(tag, cls, text) {
    var n = document.createElement(tag);
    if (cls) { n.className = cls; }
    if (text !== undefined) { n.textContent = text; }
    return n;
  }

  var root = el("div", "gdwc");
  var launcher = el("button", "gdwc-launcher", "在线咨询");
  launcher.type = "button";
  launcher.setAttribute("aria-label", "打开在线咨询");
  var panel = el("div", "gdwc-panel");
  panel.setAttribute("role", "dialog");
  panel.setAttribute("aria-label", "在线咨询");
  var head = el("div", "gdwc-head");
  var title = el("span", "gdwc-title", "在线咨询");
  var status = el("span", "gdwc-status", "连接中…");
  var close = el("button", "gdwc-close", "×");
  close.type = "button";
  close.setAttribute("aria-label", "关闭");
  var recover = el("button", "gdwc-link gdwc-recover", "找回记录");
  recover.type = "button";
  recover.setAttribute("aria-label", "验证邮箱，找回以往的咨询记录");
  head.appendChild(title); head.appendChild(status); head.appendChild(recover); head.appendChild(close);
  var list = el("div", "gdwc-list");
  list.setAttribute("aria-live", "polite");
  var typing = el("div", "gdwc-typing", "客服正在输入…");
  var notice = el("div", "gdwc-notice");

  // the pre-chat form (optional) and the offline form share the fields
  var form = el("form", "gdwc-form");
  var formIntro = el("p", "gdwc-intro", "留下称呼和联系方式，方便我们联系您（可跳过）");
  var nameIn = el("input"); nameIn.name = "name"; nameIn.placeholder = "您的称呼"; nameIn.maxLength = 64;
  var contactIn = el("input"); contactIn.name = "contact"; contactIn.placeholder = "手机号或邮箱"; contactIn.maxLength = 128;
  var textIn = el("textarea"); textIn.name = "text"; textIn.placeholder = "请描述您的问题"; textIn.maxLength = 2000;
  var formOk = el("button", "gdwc-primary", "开始咨询"); formOk.type = "submit";
  var formSkip = el("button", "gdwc-link", "跳过"); formSkip.type = "button";
  form.appendChild(formIntro); form.appendChild(nameIn); form.appendChild(contactIn); form.appendChild(textIn);
  form.appendChild(formOk); form.appendChild(formSkip);

  // proving an e-mail address (or, where the desk sends SMS, a mobile number) brings back the visitor's earlier
  // conversations (the same customer)
  var verify = el("form", "gdwc-form gdwc-verify");
  var verifyIntro = el("p", "gdwc-intro", "验证邮箱后，可找回您以往的咨询记录");
  var verifyMail = el("input"); verifyMail.name = "verify_contact"; verifyMail.placeholder = "您的邮箱"; verifyMail.maxLength = 128;
  var verifySend = el("button", "gdwc-link", "发送验证码"); verifySend.type = "button";
  var verifyCode = el("input"); verifyCode.name = "verify_code"; verifyCode.placeholder = "验证码"; verifyCode.maxLength = 12;
  verifyCode.inputMode = "numeric"; verifyCode.autocomplete = "one-time-code";
  var verifyOk = el("button", "gdwc-primary", "验证"); verifyOk.type = "submit";
  var verifyBack = el("button", "gdwc-link", "返回"); verifyBack.type = "button";
  verify.appendChild(verifyIntro); verify.appendChild(verifyMail); verify.appendChild(verifySend);
  verify.appendChild(verifyCode); verify.appendChild(verifyOk); verify.appendChild(verifyBack);

  var bar = el("form", "gdwc-bar");
  var input = el("textarea", "gdwc-input");
  input.rows = 1; input.maxLength = 2000; input.placeholder = "请输入消息，回车发送";
  var send = el("button", "gdwc-primary", "发送"); send.type = "submit";
  bar.appendChild(input); bar.appendChild(send);

  panel.appendChild(head); panel.appendChild(notice); panel.appendChild(list); panel.appendChild(typing);
  panel.appendChild(form); panel.appendChild(verify); panel.appendChild(bar);
  root.appendChild(panel); root.appendChild(launcher);
  document.body.appendChild(root);

  // botOn: the site's bot answers, so with nobody on duty the chat stays open and the 留言 form is offered on demand
  var ws = null, ready = false, online = true, botOn = false, mode = "chat", retry = 0, typingTimer = null, lastTyping = 0;
  var seen = {};
  var pending = {};
  // a fresh page shows the whole recent conversation (last id 0); a reconnect asks only for what it missed
  var lastId = 0;
  // the newest message from our side the visitor has on screen (told to staff as read when the panel opens)
  var lastTheirs = 0;

  function show(which) {
    mode = which;
    form.style.display = which === "chat" || which === "verify" ? "none" : "";
    verify.style.display = which === "verify" ? "" : "none";
    bar.style.display = which === "chat" ? "" : "none";
    textIn.style.display = which === "offline" ? "" : "none";
    formSkip.style.display = which === "prechat" || (which === "offline" && botOn) ? "" : "none";
    formSkip.textContent = which === "offline" ? "返回对话" : "跳过";
    formOk.textContent = which === "offline" ? "提交留言" : "开始咨询";
  }

  function scroll() { list.scrollTop = list.scrollHeight; }

  function addMessage(m) {
    if (m.id && seen[m.id]) { return; }
    var mine = m.direction === "in";
    var row = el("div", "gdwc-msg " + (mine ? "gdwc-mine" : "gdwc-theirs"));
    row.appendChild(el("div", "gdwc-bubble", m.text || "[消息]"));
    if (mine) { row.appendChild(el("div", "gdwc-state", m.id ? "已送达" : "发送中")); }
    list.appendChild(row);
    if (m.id) {
      seen[m.id] = row;
      if (m.id > lastId) { lastId = m.id; }
      if (!mine && m.id > lastTheirs) { lastTheirs = m.id; }
      if (!mine && ready && panel.classList.contains("gdwc-open")) { ws.send(JSON.stringify({type: "read", id: m.id})); }
    }
    scroll();
    return row;
  }

  function offlineText(opensAt) {
    return opensAt ? "客服暂时不在线，我们将于 " + opensAt + " 上班。请留言，我们上班后尽快回复您。"
                   : "客服暂时不在线，请留言，我们会尽快回复您。";
  }

  function say(text) { notice.textContent = text || ""; notice.style.display = text ? "" : "none"; }

  function connect() {
    status.textContent = "连接中…";
    ws = new WebSocket(wsUrl);
    ws.onopen = function () {
      retry = 0;
      ws.send(JSON.stringify({type: "hello", visitor: saved.visitor || "", last_id: lastId,
                              name: saved.name || "", contact: saved.contact || ""}));
    };
    ws.onmessage = function (ev) {
      var f;
      try { f = JSON.parse(ev.data); } catch (e) { return; }
      if (f.type === "welcome") {
        ready = true;
        saved.visitor = f.visitor; save();
        online = f.online;
        botOn = !!f.bot;
        if (f.site) { title.textContent = f.site; }
        if (f.verify_sms) {
          verifyIntro.textContent = "验证手机号或邮箱后，可找回您以往的咨询记录";
          verifyMail.placeholder = "您的手机号或邮箱";
          recover.setAttribute("aria-label", "验证手机号或邮箱，找回以往的咨询记录");
        }
        // messages sent while the connection dropped go again (the server keeps one per client id)
        Object.keys(pending).forEach(function (cid) {
          ws.send(JSON.stringify({type: "message", text: pending[cid].getAttribute("data-text"), client_id: cid}));
        });
        status.textContent = online ? "在线" : botOn ? "智能助手" : "离线";
        if (!online && botOn) {
          // the bot answers now; asking for a person (or what it cannot answer) brings the 留言 form
          if (mode !== "offline") {
            say((f.opens_at ? "客服暂时不在线，我们将于 " + f.opens_at + " 上班。" : "客服暂时不在线。") +
                "智能助手可以现在为您解答，需要人工客服时可以留言。");
            show("chat");
          }
        } else if (!online) {
          say(offlineText(f.opens_at));
          show("offline");
        } else {
          say("");
          show(saved.prechat ? "chat" : "prechat");
        }
      } else if (f.type === "message") {
        typing.style.display = "none";
        addMessage(f);
      } else if (f.type === "ack") {
        var row = pending[f.client_id];
        delete pending[f.client_id];
        if (row && !seen[f.id]) {
          seen[f.id] = row;
          row.querySelector(".gdwc-state").textContent = "已送达";
          if (f.id > lastId) { lastId = f.id; }
        } else if (row) { row.parentNode.removeChild(row); }
      } else if (f.type === "typing") {
        typing.style.display = "block";  // the stylesheet hides it by default
        clearTimeout(typingTimer);
        typingTimer = setTimeout(function () { typing.style.display = "none"; }, 4000);
      } else if (f.type === "read") {
        Object.keys(seen).forEach(function (id) {
          var s = seen[id].querySelector(".gdwc-state");
          if (s && Number(id) <= f.id) { s.textContent = "已读"; }
        });
      } else if (f.type === "leave_message") {
        // nobody is on duty to take over: the message was not kept, the 留言 form takes it (with what came before)
        var asked = pending[f.client_id];
        delete pending[f.client_id];
        if (asked) { asked.removeChild(asked.querySelector(".gdwc-state")); }
        if (f.text) { textIn.value = f.text; }
        if (!nameIn.value) { nameIn.value = saved.name || ""; }
        if (!contactIn.value) { contactIn.value = saved.contact || ""; }
        say(offlineText(f.opens_at));
        show("offline");
      } else if (f.type === "offline_ok") {
        show("chat");
        // with the bot on, the visitor may go on writing (onto the new ticket)
        if (!botOn) { bar.style.display = "none"; }
        say("留言已提交，工单号 " + f.ticket + "。" + (f.opens_at ? "我们将于 " + f.opens_at + " 上班后尽快联系您。" : "我们会尽快联系您。"));
      } else if (f.type === "verify_sent") {
        say("验证码已发送至 " + f.to + (f.by === "phone" ? "，请查收短信" : "，请查收邮件"));
      } else if (f.type === "verify_ok") {
        // the conversation comes again, now with the earlier one of the same customer
        list.textContent = ""; seen = {}; lastId = 0; lastTheirs = 0;
        say("验证成功，已为您找回以往的咨询记录");
        show("chat");
      } else if (f.type === "error") {
        say(f.message);
      }
    };
    ws.onclose = function () {
      ready = false;
      status.textContent = "重新连接中…";
      retry = Math.min(retry + 1, 6);
      setTimeout(connect, 500 * Math.pow(2, retry - 1));
    };
  }

  function open() {
    panel.classList.add("gdwc-open");
    launcher.style.display = "none";
    if (!ws) { connect(); }
    else if (ready && lastTheirs) { ws.send(JSON.stringify({type: "read", id: lastTheirs})); }
    setTimeout(function () { input.focus(); }, 0);
  }
  launcher.addEventListener("click", open);
  close.addEventListener("click", function () { panel.classList.remove("gdwc-open"); launcher.style.display = ""; });

  form.addEventListener("submit", function (e) {
    e.preventDefault();
    saved.name = nameIn.value.trim(); saved.contact = contactIn.value.trim(); saved.prechat = true; save();
    if (mode === "offline") {
      if (!ready) { say("网络连接中，请稍后再试"); return; }
      ws.send(JSON.stringify({type: "offline", name: saved.name, contact: saved.contact, text: textIn.value.trim()}));
    } else {
      // a socket that is not ready yet says hello with the saved name and contact
      if (ready) { ws.send(JSON.stringify({type: "profile", name: saved.name, contact: saved.contact})); }
      show("chat");
    }
  });
  formSkip.addEventListener("click", function () {
    if (mode === "offline") { say(""); show("chat"); return; }
    saved.prechat = true; save(); show("chat");
  });
  recover.addEventListener("click", function () { say(""); show(mode === "verify" ? "chat" : "verify"); });
  verifyBack.addEventListener("click", function () { say(""); show("chat"); });
  verifySend.addEventListener("click", function () {
    if (!ready) { say("网络连接中，请稍后再试"); return; }
    ws.send(JSON.stringify({type: "verify_start", contact: verifyMail.value.trim()}));
  });
  verify.addEventListener("submit", function (e) {
    e.preventDefault();
    if (!ready) { say("网络连接中，请稍后再试"); return; }
    ws.send(JSON.stringify({type: "verify_code", code: verifyCode.value.trim()}));
  });

  var counter = 0;
  bar.addEventListener("submit", function (e) {
    e.preventDefault();
    var text = input.value.trim();
    if (!text) { return; }
    if (!ready) { say("网络连接中，请稍后再试"); return; }
    var cid = Date.now().toString(36) + "-" + (counter++);
    pending[cid] = addMessage({direction: "in", text: text});
    pending[cid].setAttribute("data-text", text);
    ws.send(JSON.stringify({type: "message", text: text, client_id: cid}));
    input.value = "";
    say("");
  });
  input.addEventListener("keydown", function (e) {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); bar.requestSubmit ? bar.requestSubmit() : send.click(); }
  });
  input.addEventListener("input", function () {
    var now = Date.now();
    if (ready && now - lastTyping > 3000) { lastTyping = now; ws.send(JSON.stringify({type: "typing"})); }
  });
  show("chat");
  say("");
  if (saved.visitor) { open(); panel.classList.remove("gdwc-open"); launcher.style.display = ""; }
})();
