/* PackCloud page-view snippet. Embed with:
 *   <script async src="https://<deployment>/api/px/snippet.js?tenant=TENANT&dataset=DATASET"></script>
 * It sends a page view through the tracking pixel on load and on every new page of a single-page application
 * (history.pushState, replaceState to another path, popstate; the same page twice in a row counts once). It
 * honours Global Privacy Control and Do Not Track (then it sends nothing at all), sets no third-party cookie,
 * and keeps a first-party visitor id (cookie "pc_vid" on the site's own domain) only when the dataset declares
 * a "visitor" field. The cookie holds the id and its creation time; its expiry is set once, at creation, to
 * the dataset's retention, and never extended. Hits go with navigator.sendBeacon, or as an image without it.
 *
 * Custom events: packcloud("event", "signup", {plan: "pro"}); only events the dataset declares are sent, and
 * the pixel keeps only their declared properties. data-outbound-links on the script tag sends an "outbound"
 * event for clicks on links to other sites, data-file-downloads (optionally a list: "pdf,zip") a "download"
 * event for links to files; each with the link as property "url".
 *
 * Consent: with data-consent="required" on the script tag it sends nothing and reads or sets no cookie
 * until the page calls packcloud("consent", true); with data-consent="visitor" it sends page views
 * without a visitor id until then. packcloud("consent", false) withdraws: the cookie is deleted and
 * nothing more is sent. Calls made before the script has loaded wait in this queue (put it first):
 *   <script>window.packcloud=window.packcloud||function(){(packcloud.q=packcloud.q||[]).push(arguments)};</script>
 *
 * Privacy notice: any element with a data-packcloud-notice attribute (empty, or "TENANT/DATASET" when a page
 * has several snippets) gets the dataset's notice as its href, whatever the visitor chose.
 */
(function () {
  "use strict";
  var config = /*CONFIG*/{};
  var DAY_SECONDS = 86400;
  var script = document.currentScript;
  function attribute(name) { return script ? script.getAttribute(name) : null; }
  var mode = attribute("data-consent") || "none";
  if (mode !== "none" && mode !== "visitor") mode = "required"; // a value not understood holds back everything
  var secure = location.protocol === "https:" ? "; Secure" : "";
  var nav = window.navigator || {};

  if (!config.enabled) return;

  // Information, not tracking: the notice links are set under GPC, DNT and before consent alike.
  function noticeLinks() {
    var links = document.querySelectorAll("[data-packcloud-notice]");
    for (var i = 0; i < links.length; i++) {
      var wanted = links[i].getAttribute("data-packcloud-notice");
      if (!wanted || config.notice.split("/notice/")[1] === wanted) links[i].setAttribute("href", config.notice);
    }
  }
  noticeLinks();
  document.addEventListener("DOMContentLoaded", noticeLinks);

  function nowSeconds() { return Math.floor(Date.now() / 1000); }

  function forgetVisitor() {
    if (/(?:^|;\s*)pc_vid=/.test(document.cookie)) {
      document.cookie = "pc_vid=; Max-Age=0; Path=/; SameSite=Lax" + secure;
    }
  }

  if (nav.globalPrivacyControl === true || nav.doNotTrack === "1" || window.doNotTrack === "1") {
    forgetVisitor(); // an objection to tracking: no id, no page view, no event
    return;
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

  var api = window.packcloud;
  var first = typeof api !== "function" || !api.snippets;

  // 0: send nothing; 1: send without the visitor id; 2: send with it.
  function allowed() {
    if (api.consent === true) return 2;
    if (mode === "visitor") return 1;
    return api.consent === false || mode === "required" ? 0 : 2;
  }

  var referrer = document.referrer;
  var shown = null; // the page whose view was sent last: its URL, and the key that tells one page from another

  function send(data) {
    var level = allowed();
    if (!level) return;
    if (wants("page_url")) data.page_url = withoutQuery(location.href);
    if (wants("referrer")) data.referrer = withoutQuery(referrer);
    if (wants("title")) data.title = document.title;
    if (level > 1 && wants("visitor")) data.visitor = visitorId();
    // A beacon outlives the page (an outbound click); the pixel takes the same parameters as a JSON body.
    if (nav.sendBeacon && nav.sendBeacon(config.endpoint, JSON.stringify(data))) return;
    var params = ["_=" + Date.now()];
    for (var name in data) if (data[name]) params.push(encodeURIComponent(name) + "=" + encodeURIComponent(data[name]));
    var image = new Image(1, 1);
    // The pixel counts a hit only when the browser names the page's site. The image's own policy wins over
    // the page's, so even a site with "Referrer-Policy: no-referrer" sends its origin, and never more.
    image.referrerPolicy = "strict-origin";
    image.src = config.endpoint + "?" + params.join("&");
  }

  function pageView() {
    var page = withoutQuery(location.href.split("#")[0]);
    if (!allowed() || (shown && shown[1] === page)) return;
    if (shown) referrer = shown[0]; // a page of a single-page application was reached from the previous one
    shown = [location.href, page];
    send({});
  }

  function track(name, properties) {
    if (config.events.indexOf(name) === -1) return; // not declared: the pixel would not keep it
    var data = {event: name};
    for (var key in properties) {
      if (Object.prototype.hasOwnProperty.call(properties, key)) data["p." + key] = String(properties[key]);
    }
    send(data);
  }

  function onConsent(given) {
    if (!given) forgetVisitor();
    else if (wants("visitor")) visitorId(); // for this page view, or, already sent without it, the next ones
    pageView();
  }

  ["pushState", "replaceState"].forEach(function (method) {
    var original = history[method];
    history[method] = function () {
      var result = original.apply(this, arguments);
      pageView();
      return result;
    };
  });
  window.addEventListener("popstate", pageView);

  var outbound = attribute("data-outbound-links") !== null;
  var files = attribute("data-file-downloads");
  // Letters, digits and commas only: the list becomes a pattern, which a stray character must not break.
  var extensions = (files || "pdf,zip,docx,xlsx,pptx,csv,txt,rtf,odt,ods,7z,rar,gz,dmg,exe,msi,mp3,mp4,mov,wav")
    .replace(/[^\w,]/g, "").split(",").join("|");
  function onClick(event) {
    var link = event.target.closest && event.target.closest("a[href]");
    if (!link || !/^https?:$/.test(link.protocol)) return;
    var url = { url: withoutQuery(link.href) };
    if (files !== null && (link.hasAttribute("download") || new RegExp("\\.(" + extensions + ")$", "i").test(link.pathname))) {
      track("download", url);
    } else if (outbound && link.host !== location.host) {
      track("outbound", url);
    }
  }
  document.addEventListener("click", onClick);
  document.addEventListener("auxclick", onClick);

  // window.packcloud: the command queue that pages fill before the script loads, shared by every snippet
  // on the page (one per dataset). It keeps the consent given or withdrawn, and the calls made so far (100 at
  // most), so that a snippet that loads later still sends the events called before it.
  if (first) {
    var queued = (api && api.q) || [];
    api = function (command, value) {
      if (api.q.length < 100) api.q.push(arguments);
      if (command === "consent") api.consent = value === true;
      for (var i = 0; i < api.snippets.length; i++) api.snippets[i].apply(null, arguments);
    };
    api.snippets = [];
    api.consent = null;
    api.q = [];
    window.packcloud = api;
    for (var i = 0; i < queued.length; i++) {
      if (queued[i][0] === "consent") api.consent = queued[i][1] === true;
      api.q.push(queued[i]);
    }
  }
  function command(name, value, properties) {
    if (name === "consent") onConsent(api.consent);
    if (name === "event" && typeof value === "string") track(value, properties || {});
  }
  api.snippets.push(command);
  if (api.consent === false) forgetVisitor();
  pageView();
  for (var j = 0; j < api.q.length; j++) if (api.q[j][0] === "event") command.apply(null, api.q[j]);
})();
