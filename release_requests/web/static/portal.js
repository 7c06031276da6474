// The customer portal's enhancements (the forms work without them): the sample drop zone, and sending the
// new-request form with XMLHttpRequest to show the upload's progress, then following the server's redirect.
// No inline script is allowed by the Content-Security-Policy: this file is loaded from /static.
(function () {
  "use strict";

  function sizeText(bytes) {
    if (bytes >= 1048576) return (bytes / 1048576).toFixed(1) + " MB";
    if (bytes >= 1024) return Math.round(bytes / 1024) + " KB";
    return bytes + " B";
  }

  // Several drops (or choices) add up; the list under the zone names every file chosen.
  function enhanceDropzone(zone) {
    var input = zone.querySelector("input[type=file]");
    var list = zone.querySelector("[data-file-list]");
    if (!input || !list) return;

    function showFiles() {
      list.textContent = "";
      Array.prototype.forEach.call(input.files, function (file) {
        var item = document.createElement("li");
        item.textContent = file.name + " (" + sizeText(file.size) + ")";
        list.appendChild(item);
      });
    }

    input.addEventListener("change", showFiles);
    ["dragenter", "dragover"].forEach(function (name) {
      zone.addEventListener(name, function (event) {
        event.preventDefault();
        zone.classList.add("over");
      });
    });
    zone.addEventListener("dragleave", function (event) {
      if (!zone.contains(event.relatedTarget)) zone.classList.remove("over");
    });
    zone.addEventListener("drop", function (event) {
      event.preventDefault();
      zone.classList.remove("over");
      if (!event.dataTransfer || !event.dataTransfer.files.length) return;
      var all = new DataTransfer();
      Array.prototype.forEach.call(input.files, function (file) { all.items.add(file); });
      Array.prototype.forEach.call(event.dataTransfer.files, function (file) { all.items.add(file); });
      input.files = all.files;
      showFiles();
    });
  }

  // The page the server answered with (a refused form keeps what was typed): its <main> replaces ours.
  function showPage(html) {
    var page = new DOMParser().parseFromString(html, "text/html");
    var main = page.querySelector("main");
    if (!main) {
      document.open();
      document.write(html);
      document.close();
      return;
    }
    document.title = page.title;
    document.querySelector("main").replaceWith(document.adoptNode(main));
    enhance(document);
    var summary = document.querySelector("[data-error-summary]");
    (summary || document.querySelector("main")).focus();
  }

  function enhanceUpload(form) {
    var box = form.querySelector("[data-upload]");
    var progress = form.querySelector("progress");
    var status = form.querySelector("[data-upload-status]");
    var button = form.querySelector("button[type=submit]");
    if (!box || !progress || !window.FormData || !window.XMLHttpRequest) return;

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var xhr = new XMLHttpRequest();
      xhr.open("POST", form.action);
      xhr.upload.addEventListener("progress", function (e) {
        if (!e.lengthComputable) return;
        progress.max = e.total;
        progress.value = e.loaded;
        var percent = Math.round((100 * e.loaded) / e.total);
        progress.textContent = percent + "%";
        status.textContent = (form.dataset.msgUploading || "{percent}%").replace("{percent}", percent);
      });
      xhr.upload.addEventListener("load", function () {
        progress.value = progress.max;
        status.textContent = form.dataset.msgProcessing || "";
      });
      xhr.addEventListener("load", function () {
        var landed = xhr.responseURL ? new URL(xhr.responseURL) : null;
        if (xhr.status < 400 && landed && landed.pathname !== new URL(form.action, location.href).pathname) {
          window.location.assign(xhr.responseURL); // the redirect the server answered with (the filed page)
          return;
        }
        showPage(xhr.responseText);
      });
      // The answer was lost, not necessarily the request: the server may have filed it before the connection
      // failed, so the message never says "nothing was filed". Sending again is safe: the form's submission_key
      // makes a repeat land on the request already filed instead of filing a second one.
      xhr.addEventListener("error", function () {
        status.textContent = form.dataset.msgFailed || "";
        button.disabled = false;
      });
      box.hidden = false;
      progress.value = 0;
      button.disabled = true;
      xhr.send(new FormData(form));
    });
  }

  function enhance(root) {
    root.querySelectorAll("[data-dropzone]").forEach(enhanceDropzone);
    root.querySelectorAll("form[data-upload-form]").forEach(enhanceUpload);
  }

  document.addEventListener("DOMContentLoaded", function () {
    enhance(document);
    var summary = document.querySelector("[data-error-summary]");
    if (summary) summary.focus();
  });
})();
