// reelgate studio: toasts, drag-and-drop image uploads (checked here, then again by the server), prompt counter.
(function () {
  "use strict";
  var ALLOWED = ["image/png", "image/jpeg", "image/webp"];

  function csrf() { return document.body.getAttribute("data-csrf") || ""; }

  // Toasts: dismissible, and they leave by themselves (errors stay longer so they can be read).
  function armToasts(root) {
    (root || document).querySelectorAll(".toast:not([data-armed])").forEach(function (el) {
      el.setAttribute("data-armed", "1");
      var wait = el.classList.contains("error") ? 12000 : 6000;
      setTimeout(function () { el.remove(); }, wait);
    });
  }

  function showToast(message, kind, retryForm) {
    var box = document.createElement("div");
    box.className = "toast " + (kind || "success");
    box.setAttribute("role", kind === "error" ? "alert" : "status");
    var p = document.createElement("p");
    p.textContent = message; // textContent: messages are never parsed as HTML
    box.appendChild(p);
    var actions = document.createElement("div");
    actions.className = "toast-actions";
    if (retryForm) {
      var retry = document.createElement("button");
      retry.type = "button"; retry.className = "btn small"; retry.textContent = "Retry";
      retry.setAttribute("data-retry-form", retryForm);
      actions.appendChild(retry);
    }
    var close = document.createElement("button");
    close.type = "button"; close.className = "toast-close"; close.textContent = "×";
    close.setAttribute("aria-label", "Dismiss");
    actions.appendChild(close);
    box.appendChild(actions);
    document.getElementById("toasts").appendChild(box);
    armToasts();
  }

  document.addEventListener("click", function (event) {
    var close = event.target.closest(".toast-close");
    if (close) { close.closest(".toast").remove(); return; }
    var retry = event.target.closest("[data-retry-form]");
    if (retry) {
      var form = document.getElementById(retry.getAttribute("data-retry-form"));
      retry.closest(".toast").remove();
      if (form) { form.requestSubmit(); }
      return;
    }
    var clear = event.target.closest(".dropzone-clear");
    if (clear) { resetZone(clear.closest(".dropzone")); return; }
    var copy = event.target.closest("[data-copy-from]");
    if (copy) { copyText(copy); }
  });

  // A text generation's Copy button: the text as shown on its card, put on the clipboard.
  function copyText(button) {
    var source = document.getElementById(button.getAttribute("data-copy-from"));
    if (!source) { showToast("The text has not loaded yet.", "error"); return; }
    if (!navigator.clipboard) { showToast("This browser does not allow copying from the page.", "error"); return; }
    navigator.clipboard.writeText(source.textContent).then(function () {
      button.textContent = "Copied";
      showToast("Text copied to the clipboard.", "success");
    }, function () {
      showToast("The browser refused to copy the text.", "error");
    });
  }

  // Uploads go to the same endpoint the API offers; the server checks the bytes, not the name.
  function resetZone(zone) {
    var hidden = zone.querySelector("[data-upload-id]");
    hidden.value = "";
    var img = zone.querySelector(".preview");
    img.hidden = true; img.removeAttribute("src");
    zone.querySelector(".dropzone-clear").hidden = true;
    zone.classList.remove("has-image");
    zone.querySelector("input[type=file]").value = "";
    hidden.dispatchEvent(new Event("change", { bubbles: true }));
  }

  function uploadInto(zone, file) {
    var max = parseInt(zone.getAttribute("data-max-bytes"), 10) || 10485760;
    if (ALLOWED.indexOf(file.type) < 0) {
      showToast("“" + file.name + "” is not a PNG, JPEG or WebP image.", "error");
      return;
    }
    if (file.size > max) {
      showToast("“" + file.name + "” is larger than " + Math.round(max / 1048576) + " MB.", "error");
      return;
    }
    var body = new FormData();
    body.append("file", file, file.name);
    zone.classList.add("uploading");
    fetch("/api/v1/uploads", { method: "POST", body: body, credentials: "same-origin", headers: { "X-CSRF-Token": csrf() } })
      .then(function (response) {
        return response.json().then(function (data) { return { ok: response.ok, data: data }; });
      })
      .then(function (result) {
        zone.classList.remove("uploading");
        if (!result.ok) {
          var message = (result.data && result.data.error && result.data.error.message) || "The image could not be uploaded.";
          showToast(message, "error");
          return;
        }
        var hidden = zone.querySelector("[data-upload-id]");
        hidden.value = result.data.id;
        var img = zone.querySelector(".preview");
        img.src = URL.createObjectURL(file);
        img.hidden = false;
        zone.classList.add("has-image");
        zone.querySelector(".dropzone-clear").hidden = false;
        hidden.dispatchEvent(new Event("change", { bubbles: true }));
        showToast("Image added (" + result.data.width + "×" + result.data.height + ").", "success");
      })
      .catch(function () {
        zone.classList.remove("uploading");
        showToast("The upload failed; check your connection and try again.", "error");
      });
  }

  document.addEventListener("dragover", function (event) {
    var zone = event.target.closest && event.target.closest(".dropzone");
    if (zone) { event.preventDefault(); zone.classList.add("dragging"); }
  });
  document.addEventListener("dragleave", function (event) {
    var zone = event.target.closest && event.target.closest(".dropzone");
    if (zone) { zone.classList.remove("dragging"); }
  });
  document.addEventListener("drop", function (event) {
    var zone = event.target.closest && event.target.closest(".dropzone");
    if (!zone) { return; }
    event.preventDefault();
    zone.classList.remove("dragging");
    var files = event.dataTransfer && event.dataTransfer.files;
    if (files && files.length) { uploadInto(zone, files[0]); }
  });
  document.addEventListener("change", function (event) {
    var input = event.target;
    if (input.type === "file" && input.closest(".dropzone") && input.files.length) {
      uploadInto(input.closest(".dropzone"), input.files[0]);
    }
  });

  // A changed setting re-prices (typing a prompt does not): the estimate listens for "settings-changed".
  // Done here rather than as an htmx trigger filter, which htmx would have to eval.
  document.addEventListener("change", function (event) {
    var panel = document.getElementById("settings-panel");
    if (panel && panel.contains(event.target) && event.target.tagName !== "TEXTAREA") {
      document.body.dispatchEvent(new CustomEvent("settings-changed"));
    }
  });

  document.addEventListener("input", function (event) {
    var counter = document.querySelector('[data-counter-for="' + event.target.id + '"]');
    if (counter) { counter.textContent = String(event.target.value.length); }
  });

  // The estimate says whether the (stable) Generate button may be used, and what it costs.
  function applyEstimate() {
    var state = document.getElementById("estimate-state");
    var button = document.getElementById("generate-button");
    if (!state || !button) { return; }
    button.disabled = state.getAttribute("data-can-generate") !== "true";
    button.textContent = state.getAttribute("data-label");
  }

  document.addEventListener("htmx:afterSettle", function (event) {
    armToasts();
    if (event.target && event.target.id === "estimate") { applyEstimate(); }
  });
  document.addEventListener("htmx:oobAfterSwap", function () { armToasts(); });
  // A request that failed at the network or server level still tells the user, with a retry.
  document.addEventListener("htmx:sendError", function () { showToast("The server could not be reached.", "error"); });
  document.addEventListener("htmx:responseError", function (event) {
    var message = "Something went wrong (" + event.detail.xhr.status + ").";
    try { message = JSON.parse(event.detail.xhr.responseText).error.message || message; } catch (e) { /* not JSON */ }
    showToast(message, "error");
  });
  document.addEventListener("DOMContentLoaded", function () { armToasts(); });
})();
