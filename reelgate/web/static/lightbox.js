// reelgate studio: the image viewer. A click on a link marked data-lightbox opens the picture full size in the
// page's <dialog id="lightbox">; arrows (keys or buttons) move through every such link on the page, in page order,
// and Esc, the close button or a click outside the picture closes it. Without script the link opens the file.
(function () {
  "use strict";

  var opener = null; // the link that opened the viewer: focus goes back to it on close
  var links = [];
  var index = 0;

  function dialog() { return document.getElementById("lightbox"); }

  function withQuery(url, query) { return url + (url.indexOf("?") < 0 ? "?" : "&") + query; }

  function show(i) {
    var box = dialog();
    index = (i + links.length) % links.length;
    var link = links[index];
    var source = link.getAttribute("href");
    var img = box.querySelector("#lightbox-image");
    var thumb = link.querySelector("img");
    img.src = source;
    img.alt = thumb ? thumb.alt : "";
    box.querySelector("#lightbox-caption").textContent = link.getAttribute("data-caption") || "";
    box.querySelector("#lightbox-count").textContent = (index + 1) + " of " + links.length;
    box.querySelector("#lightbox-png").href = withQuery(source, "download=true&format=png");
    box.querySelector("#lightbox-webp").href = withQuery(source, "download=true&format=webp");
    var alone = links.length < 2;
    box.querySelector("#lightbox-prev").hidden = alone;
    box.querySelector("#lightbox-next").hidden = alone;
  }

  function open(link) {
    var box = dialog();
    // Read the links now: htmx may have added cards or tiles since the page loaded.
    links = Array.prototype.slice.call(document.querySelectorAll("a[data-lightbox]"));
    opener = link;
    show(links.indexOf(link));
    box.showModal();
    box.querySelector("#lightbox-close").focus();
  }

  function close() {
    var box = dialog();
    if (box.open) { box.close(); }
  }

  document.addEventListener("click", function (event) {
    var box = dialog();
    if (!box) { return; }
    var link = event.target.closest("a[data-lightbox]");
    if (link && !box.open) {
      if (event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey) { return; } // new tab: let it
      event.preventDefault();
      open(link);
      return;
    }
    if (!box.open) { return; }
    if (event.target.closest("#lightbox-close")) { close(); }
    else if (event.target.closest("#lightbox-prev")) { show(index - 1); }
    else if (event.target.closest("#lightbox-next")) { show(index + 1); }
    // The dialog element itself is the backdrop around the frame: a click there is outside the picture.
    else if (event.target === box || event.target.classList.contains("lightbox-frame")) { close(); }
  });

  document.addEventListener("keydown", function (event) {
    var box = dialog();
    if (!box || !box.open) { return; }
    if (event.key === "ArrowRight") { event.preventDefault(); show(index + 1); }
    else if (event.key === "ArrowLeft") { event.preventDefault(); show(index - 1); }
    // Esc closes a modal dialog by itself (its "cancel" event).
  });

  document.addEventListener("close", function (event) {
    if (event.target !== dialog()) { return; }
    dialog().querySelector("#lightbox-image").src = "data:,"; // stop holding the full-size picture
    if (opener && document.body.contains(opener)) { opener.focus(); }
    opener = null;
  }, true);
})();
