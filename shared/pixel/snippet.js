/* PackCloud page-view snippet. Embed with:
 *   <script async src="https://<deployment>/api/px/snippet.js?tenant=TENANT&dataset=DATASET"></script>
 * It sends one page view through the tracking pixel. It honours Global Privacy Control and Do Not
 * Track, sets no third-party cookie, and keeps a first-party visitor id (cookie "pc_vid" on the
 * site's own domain) only when the dataset declares a "visitor" field. The cookie holds the id and its
 * creation time; its expiry is set once, at creation, to the dataset's retention, and never extended.
 *
 * Consent: with data-consent="required" on the script tag it sends nothing and reads or sets no cookie
 * until the page calls packcloud("consent", true); with data-consent="visitor" it sends page views
 * without a visitor id until then. packcloud("consent", false) withdraws: the cookie is deleted and
 * nothing more is sent. Calls made before the script has loaded wait in this queue (put it first):
 *   <script>window.packcloud=window.packcloud||function(){(packcloud.q=packcloud.q||[]).push(arguments)};</script>
 */
(function () {
  "use strict";
  var config = /*CONFIG*/{};
  var DAY_SECONDS = 86400;
  var script = document.currentScript;
  var mode = script ? script.getAttribute("data-consent") || "none" : "none";
  if (mode !== "none" && mode !== "visitor") mode = "required"; // a value not understood holds back everything
  var secure = location.protocol === "https:" ? "; Secure" : "";
  var nav = window.navigator || {};

  function nowSeconds() { return Math.floor(Date.now() / 1000); }

  function forgetVisitor() {
    if (/(?:^|;\s*)pc_vid=/.test(document.cookie)) {
      document.cookie = "pc_vid=; Max-Age=0; Path=/; SameSite=Lax" + secure;
    }
  }

  // The cookie's value is "<id>.<creation, Unix seconds>": an id older than the retention (or from an older
  // snippet, without its creation time) is replaced, never renewed, so one id never links visits for longer.
  function currentVisitor() {
    var match = document.cookie.match(/(?:^|;\s*)pc_vid=([0-9a-f]{32})\.([0-9]{1,12})(?:;|$)/);
    if (!match) return null;
    var age = nowSeconds() - parseInt(match[2], 10);
    return age >= -DAY_SECONDS && age < config.visitorDays * DAY_SECONDS ? match[1] : null;
  }

  function newVisitor() {
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    var id = Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
    document.cookie = "pc_vid=" + id + "." + nowSeconds() + "; Max-Age=" + config.visitorDays * DAY_SECONDS +
      "; Path=/; SameSite=Lax" + secure;
    return id;
  }

  function visitorId() { return currentVisitor() || newVisitor(); }

  function wants(name) { return config.send.indexOf(name) !== -1; }

  function withoutQuery(url) { return config.keepUrlQuery ? url : url.split(/[?#]/)[0]; }

  function send(withVisitor) {
    var params = [];
    function add(name, value) { if (value) params.push(name + "=" + encodeURIComponent(value)); }
    if (wants("page_url")) add("page_url", withoutQuery(location.href));
    if (wants("referrer")) add("referrer", withoutQuery(document.referrer));
    if (wants("title")) add("title", document.title);
    if (withVisitor && wants("visitor")) add("visitor", visitorId());
    params.push("_=" + Date.now());
    var image = new Image(1, 1);
    // The pixel counts a hit only when the browser names the page's site. The image's own policy wins over
    // the page's, so even a site with "Referrer-Policy: no-referrer" sends its origin, and never more.
    image.referrerPolicy = "strict-origin";
    image.src = config.endpoint + "?" + params.join("&");
  }

  if (!config.enabled) return;
  if (nav.globalPrivacyControl === true || nav.doNotTrack === "1" || window.doNotTrack === "1") {
    forgetVisitor(); // an objection to tracking: no id either
    return;
  }

  var sent = false;
  function onConsent(given) {
    if (!given) {
      forgetVisitor();
      if (!sent && mode === "visitor") { // refused the id, not the page view
        sent = true;
        send(false);
      }
    } else if (!sent) {
      sent = true;
      send(true);
    } else if (wants("visitor")) {
      visitorId(); // the page view went without an id; the next ones carry it
    }
  }

  // window.packcloud: the command queue that pages fill before the script loads, shared by every snippet
  // on the page (one per dataset), each of which learns the consent given or withdrawn.
  var api = window.packcloud;
  if (typeof api !== "function" || !api.snippets) {
    var queued = (api && api.q) || [];
    api = function (command, value) {
      if (command !== "consent") return;
      api.consent = value === true;
      for (var i = 0; i < api.snippets.length; i++) api.snippets[i](api.consent);
    };
    api.snippets = [];
    api.consent = null;
    window.packcloud = api;
    for (var i = 0; i < queued.length; i++) api.apply(null, queued[i]);
  }
  api.snippets.push(onConsent);

  if (api.consent !== null) {
    onConsent(api.consent);
  } else if (mode !== "required") {
    sent = true;
    send(mode === "none");
  }
})();
