// The console's only script (besides htmx): SLA countdowns that tick in the browser. No inline script is
// allowed by the page's Content-Security-Policy, so everything the pages need lives in /static.
(function () {
  "use strict";

  // "2 h 05 min", "12 min", "3 d 4 h", negative with a minus sign: the server's rendering.duration format
  var UNITS = { en: ["d", "h", "min"], ru: ["\u0434", "\u0447", "\u043c\u0438\u043d"] };

  function duration(seconds) {
    var unit = UNITS[document.body.dataset.language] || UNITS.en;
    var sign = seconds < 0 ? "\u2212" : "";
    var minutes = Math.floor(Math.abs(seconds) / 60);
    var days = Math.floor(minutes / 1440);
    var hours = Math.floor((minutes % 1440) / 60);
    var mins = minutes % 60;
    if (days) return sign + days + " " + unit[0] + " " + hours + " " + unit[1];
    if (hours) return sign + hours + " " + unit[1] + " " + (mins < 10 ? "0" : "") + mins + " " + unit[2];
    return sign + mins + " " + unit[2];
  }

  // Jira's colours: amber under an hour, red under 30 minutes, breached when negative.
  function tick() {
    var now = Date.now();
    document.querySelectorAll("[data-countdown]").forEach(function (el) {
      if (el.dataset.paused === "true" || !el.dataset.due) return;
      var left = Math.round((Date.parse(el.dataset.due) - now) / 1000);
      var value = el.querySelector(".countdown-value") || el;
      value.textContent = duration(left);
      el.classList.toggle("sla-breached", left < 0);
      el.classList.toggle("sla-red", left >= 0 && left < 1800);
      el.classList.toggle("sla-amber", left >= 1800 && left < 3600);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    tick();
    window.setInterval(tick, 1000);
  });
  document.addEventListener("htmx:afterSwap", tick);
})();
