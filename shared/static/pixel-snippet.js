/* PackCloud page-view snippet. Embed with:
 *   <script async src="https://<deployment>/api/px/snippet.js?tenant=TENANT&dataset=DATASET"></script>
 * It sends one page view through the tracking pixel. It honours Global Privacy Control and Do Not
 * Track, sets no third-party cookie, and keeps a first-party visitor id (cookie "pc_vid" on the
 * site's own domain, for the dataset's retention) only when the dataset declares a "visitor" field.
 */
(function () {
  "use strict";
  var config = /*CONFIG*/{};
  if (!config.enabled) return;
  var nav = window.navigator || {};
  if (nav.globalPrivacyControl === true || nav.doNotTrack === "1" || window.doNotTrack === "1") return;

  function wants(name) { return config.send.indexOf(name) !== -1; }

  function visitorId() {
    var match = document.cookie.match(/(?:^|;\s*)pc_vid=([0-9a-f]{32})/);
    var id = match ? match[1] : null;
    if (!id) {
      var bytes = new Uint8Array(16);
      window.crypto.getRandomValues(bytes);
      id = Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
    }
    var secure = location.protocol === "https:" ? "; Secure" : "";
    document.cookie = "pc_vid=" + id + "; Max-Age=" + config.visitorDays * 86400 + "; Path=/; SameSite=Lax" + secure;
    return id;
  }

  var params = [];
  function add(name, value) { if (value) params.push(name + "=" + encodeURIComponent(value)); }
  if (wants("page_url")) add("page_url", location.href);
  if (wants("referrer")) add("referrer", document.referrer);
  if (wants("title")) add("title", document.title);
  if (wants("visitor")) add("visitor", visitorId());
  params.push("_=" + Date.now());

  var image = new Image(1, 1);
  image.referrerPolicy = "strict-origin-when-cross-origin";
  image.src = config.endpoint + "?" + params.join("&");
})();
