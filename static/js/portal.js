/* RefundPortal: progressive enhancement only. Every page works without this file.
 *
 * 1. Live countdowns: any element with a `data-deadline` ISO instant.
 * 2. Upload progress: a multipart form marked `data-upload-progress` is sent with XHR so the
 *    person sees how far the upload got; the server's answer (redirect or page) is shown as if
 *    the form had been submitted normally.
 * 3. Print buttons: a `data-print` button (hidden until this file runs) prints the page. The
 *    Content-Security-Policy refuses inline handlers (onclick="…"), so the handler lives here.
 */
(function () {
  "use strict";

  function span(ms) {
    var s = Math.floor(Math.abs(ms) / 1000);
    var d = Math.floor(s / 86400); s -= d * 86400;
    var h = Math.floor(s / 3600); s -= h * 3600;
    var m = Math.floor(s / 60); s -= m * 60;
    if (d) return d + " d " + h + " h";
    if (h) return h + " h " + m + " min";
    if (m) return m + " min " + (s < 10 ? "0" : "") + s + " s";
    return s + " s";
  }

  function tick() {
    var now = Date.now();
    var nodes = document.querySelectorAll("[data-deadline]");
    for (var i = 0; i < nodes.length; i++) {
      var el = nodes[i];
      var at = Date.parse(el.getAttribute("data-deadline"));
      if (isNaN(at)) continue;
      var left = at - now;
      el.textContent = left > 0 ? span(left) + " left" : "ended " + span(left) + " ago";
      el.classList.toggle("countdown--passed", left <= 0);
    }
  }

  function progressFor(form) {
    var box = form.querySelector(".upload-progress");
    if (!box) {
      box = document.createElement("div");
      box.className = "upload-progress";
      box.innerHTML = '<progress max="100" value="0"></progress><span aria-live="polite"></span>';
      var actions = form.querySelector(".actions") || form;
      actions.parentNode.insertBefore(box, actions);
    }
    return box;
  }

  function hasFiles(form) {
    var inputs = form.querySelectorAll('input[type="file"]');
    for (var i = 0; i < inputs.length; i++) {
      if (inputs[i].files && inputs[i].files.length) return true;
    }
    return false;
  }

  function showResponse(xhr) {
    // Show the server's answer as the browser would have: the page after the redirect (with
    // its success banner, which that request consumed) or the form again with its errors.
    var target = xhr.responseURL;
    document.open();
    document.write(xhr.responseText);
    document.close();
    if (target && window.history && history.replaceState) history.replaceState(null, "", target);
  }

  function enhanceUpload(form) {
    form.addEventListener("submit", function (event) {
      if (!window.FormData || !hasFiles(form)) return; // plain submit, nothing to show
      event.preventDefault();
      var box = progressFor(form);
      var bar = box.querySelector("progress");
      var label = box.querySelector("span");
      var buttons = form.querySelectorAll('button[type="submit"], input[type="submit"]');
      var data = new FormData(form);
      var submitter = event.submitter;
      if (submitter && submitter.name) data.append(submitter.name, submitter.value);
      for (var i = 0; i < buttons.length; i++) buttons[i].disabled = true;
      box.classList.add("is-active");
      label.textContent = "Uploading… 0%";

      var xhr = new XMLHttpRequest();
      xhr.open((form.getAttribute("method") || "post").toUpperCase(), form.action);
      xhr.setRequestHeader("X-Requested-With", "XMLHttpRequest");
      xhr.upload.addEventListener("progress", function (e) {
        if (!e.lengthComputable) return;
        var pct = Math.round((e.loaded / e.total) * 100);
        bar.value = pct;
        label.textContent = pct < 100 ? "Uploading… " + pct + "%" : "Checking the files…";
      });
      xhr.addEventListener("load", function () { showResponse(xhr); });
      xhr.addEventListener("error", function () {
        for (var j = 0; j < buttons.length; j++) buttons[j].disabled = false;
        label.textContent = "The upload failed (connection lost). Nothing was lost: try again.";
      });
      xhr.send(data);
    });
  }

  function enablePrint(button) {
    button.hidden = false;
    button.addEventListener("click", function () { window.print(); });
  }

  function start() {
    tick();
    var printers = document.querySelectorAll("[data-print]");
    for (var p = 0; p < printers.length; p++) enablePrint(printers[p]);
    if (document.querySelector("[data-deadline]")) window.setInterval(tick, 1000);
    var forms = document.querySelectorAll("form[data-upload-progress]");
    for (var i = 0; i < forms.length; i++) enhanceUpload(forms[i]);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
