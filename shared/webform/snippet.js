/* PackCloud web-form snippet. Write the form so it works on its own, then enhance it:
 *   <form method="post" action="https://<deployment>/api/forms/TENANT/DATASET"
 *         data-packcloud-form="TENANT/DATASET"> ... </form>
 *   <script async src="https://<deployment>/api/forms/snippet.js"></script>
 * With the script, the form is sent with fetch (one submission id per submission, so a retry is stored
 * once), field errors from a 422 are shown next to their fields, and success goes to the dataset's
 * redirect_url or shows a thank-you note. Without it, the browser's plain post still works: PackCloud
 * answers with a redirect. The form fires "packcloud:submitted" (detail: id, dropped_fields) on success.
 * It also shows a "How we use your data" link to the dataset's public notice (…/api/notice/TENANT/DATASET):
 * inside an element marked data-packcloud-notice, else right after the consent checkbox (the checkbox marked
 * data-packcloud-consent, or named "consent"), else under the form; data-packcloud-notice="off" on the form
 * leaves it out (for a page that links the notice itself).
 */
(function () {
  "use strict";
  var config = /*CONFIG*/{};
  var ID = /^([a-z0-9][a-z0-9-]{1,62})\/([a-z0-9][a-z0-9-]{1,62})$/;

  function newSubmissionId() {
    if (window.crypto && window.crypto.randomUUID) return window.crypto.randomUUID();
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  function status(form, text, kind) {
    var box = form.querySelector("[data-packcloud-status]");
    if (!box) {
      box = document.createElement("p");
      box.setAttribute("data-packcloud-status", "");
      box.setAttribute("role", "status");
      form.appendChild(box);
    }
    box.textContent = text;
    box.className = "packcloud-status packcloud-" + kind;
  }

  function clearErrors(form) {
    Array.prototype.forEach.call(form.querySelectorAll(".packcloud-error"), function (node) { node.remove(); });
    Array.prototype.forEach.call(form.querySelectorAll("[aria-invalid]"), function (node) {
      node.removeAttribute("aria-invalid");
    });
  }

  function showErrors(form, errors) {
    errors.forEach(function (error) {
      var message = document.createElement("span");
      message.className = "packcloud-error";
      message.setAttribute("data-field", error.field);
      message.textContent = error.reason;
      var input = form.elements.namedItem(error.field);
      if (input && input.length !== undefined && !input.tagName) input = input[input.length - 1];
      if (input && input.parentNode) {
        input.setAttribute("aria-invalid", "true");
        input.parentNode.insertBefore(message, input.nextSibling);
      } else {
        form.appendChild(message);
      }
    });
    var first = form.querySelector("[aria-invalid]");
    if (first && first.focus) first.focus();
  }

  function noticeLink(form, tenant, dataset) {
    if (form.getAttribute("data-packcloud-notice") === "off" || form.querySelector(".packcloud-notice-link")) return;
    var link = document.createElement("a");
    link.href = config.endpoint.replace(/\/forms$/, "/notice") + "/" + tenant + "/" + dataset;
    link.className = "packcloud-notice-link";
    link.target = "_blank";  // a new tab: what was typed into the form stays
    link.rel = "noopener";
    link.textContent = "How we use your data";
    var slot = form.querySelector("[data-packcloud-notice]");
    var consent = form.querySelector("input[type=checkbox][data-packcloud-consent]") ||
      form.querySelector("input[type=checkbox][name=consent]");
    if (slot) {
      slot.appendChild(link);
    } else if (consent) {
      var after = (consent.labels && consent.labels[0]) || consent;
      var box = document.createElement("span");
      box.className = "packcloud-notice";
      box.appendChild(link);
      after.parentNode.insertBefore(box, after.nextSibling);
    } else {
      var line = document.createElement("p");
      line.className = "packcloud-notice";
      line.appendChild(link);
      form.appendChild(line);
    }
  }

  function enhance(form) {
    var match = ID.exec(form.getAttribute("data-packcloud-form") || "");
    if (!match || form.getAttribute("data-packcloud-ready")) return;
    form.setAttribute("data-packcloud-ready", "true");
    noticeLink(form, match[1], match[2]);
    var endpoint = config.endpoint + "/" + match[1] + "/" + match[2];
    var submission = newSubmissionId();
    var busy = false;

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      if (busy) return;
      busy = true;
      clearErrors(form);
      var body = new URLSearchParams();
      new FormData(form).forEach(function (value, name) {
        if (typeof value === "string") body.append(name, value);
      });
      fetch(endpoint, {
        method: "POST",
        mode: "cors",
        credentials: "omit",
        headers: { "Accept": "application/json", "Idempotency-Key": submission },
        body: body
      }).then(function (response) {
        return response.json().catch(function () { return {}; }).then(function (answer) {
          return { status: response.status, answer: answer };
        });
      }).then(function (result) {
        busy = false;
        var answer = result.answer || {};
        if (result.status === 201) {
          submission = newSubmissionId();
          if (answer.dropped_fields && answer.dropped_fields.length && window.console) {
            window.console.warn("PackCloud dropped fields this form does not declare:", answer.dropped_fields);
          }
          form.setAttribute("data-packcloud-state", "sent");
          form.dispatchEvent(new CustomEvent("packcloud:submitted", {
            bubbles: true, detail: { id: answer.id, dropped_fields: answer.dropped_fields || [] }
          }));
          if (answer.redirect_url) {
            window.location.assign(answer.redirect_url);
          } else {
            form.reset();
            status(form, form.getAttribute("data-packcloud-thanks") || "Thank you, your message was sent.", "sent");
          }
        } else if (result.status === 422) {
          form.setAttribute("data-packcloud-state", "invalid");
          showErrors(form, answer.errors || []);
          status(form, "Please check the marked fields.", "invalid");
        } else {
          form.setAttribute("data-packcloud-state", "failed");
          status(form, answer.detail || "The form could not be sent, please try again.", "failed");
        }
      }, function () {
        busy = false;  // the same submission id goes with the retry, so it is stored once
        form.setAttribute("data-packcloud-state", "failed");
        status(form, "The form could not be sent, please try again.", "failed");
      });
    });
  }

  function enhanceAll() {
    Array.prototype.forEach.call(document.querySelectorAll("form[data-packcloud-form]"), enhance);
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", enhanceAll);
  } else {
    enhanceAll();
  }
})();
