// harness report: seek the recording by turn, highlight the turn that is playing, move the
// waterfall's playhead, and open what a link points at. No network, no framework.
(function () {
  "use strict";

  function turnsOf(section) {
    return Array.prototype.slice.call(section.querySelectorAll("[data-turn][data-t0][data-t1]"));
  }

  function follow(box, row) {
    // keep the playing turn in view inside the transcript's own scroll box
    if (!box) { return; }
    var top = row.offsetTop - box.offsetTop;
    if (top < box.scrollTop || top + row.offsetHeight > box.scrollTop + box.clientHeight) {
      box.scrollTop = Math.max(0, top - 8);
    }
  }

  function update(section, audio) {
    var t = audio.currentTime;
    var box = section.querySelector(".transcript-box");
    turnsOf(section).forEach(function (el) {
      var on = t >= parseFloat(el.dataset.t0) && t < parseFloat(el.dataset.t1);
      var was = el.classList.contains("current");
      el.classList.toggle("current", on);
      if (on) { el.setAttribute("aria-current", "true"); } else { el.removeAttribute("aria-current"); }
      if (on && !was && el.tagName === "LI") { follow(box, el); }
    });
    var wf = section.querySelector(".wf");
    var head = section.querySelector(".wf-playhead");
    if (wf && head) {
      var lo = parseFloat(wf.dataset.lo), hi = parseFloat(wf.dataset.hi);
      var p = hi > lo ? Math.min(1, Math.max(0, (t - lo) / (hi - lo))) : 0;
      head.style.setProperty("--p", String(p));
      head.hidden = false;
    }
  }

  function seek(section, audio, t) {
    var go = function () {
      audio.currentTime = t;
      update(section, audio);
    };
    if (audio.readyState >= 1) {
      go();
    } else {
      audio.addEventListener("loadedmetadata", go, { once: true });
      go();
    }
  }

  function quietToggle(section) {
    var box = section.querySelector("input.show-quiet");
    var wf = section.querySelector(".wf");
    if (!box || !wf) { return; }
    box.checked = false;
    wf.classList.add("hide-quiet");
    box.addEventListener("change", function () { wf.classList.toggle("hide-quiet", !box.checked); });
  }

  function setUp(section) {
    quietToggle(section);
    var audio = section.querySelector("audio.rec");
    if (!audio) { return; }
    ["timeupdate", "seeking", "seeked"].forEach(function (name) {
      audio.addEventListener(name, function () { update(section, audio); });
    });
    section.addEventListener("click", function (ev) {
      var button = ev.target.closest ? ev.target.closest("button.seek") : null;
      if (!button || !section.contains(button)) { return; }
      ev.preventDefault();
      seek(section, audio, parseFloat(button.dataset.t0));
    });
  }

  function reveal(id) {
    if (!id) { return; }
    var target = document.getElementById(id);
    if (!target) { return; }
    if (target.classList.contains("quiet")) {
      var section = target.closest("section.call");
      var box = section && section.querySelector("input.show-quiet");
      if (box && !box.checked) { box.click(); }
    }
    for (var el = target; el; el = el.parentElement) {
      if (el.tagName === "DETAILS") { el.open = true; }
    }
    target.scrollIntoView({ block: target.tagName === "SECTION" ? "start" : "center" });
    if (target.tagName === "DETAILS") {
      var summary = target.querySelector("summary");
      if (summary) { summary.focus({ preventScroll: true }); }
    }
  }

  function fromHash() {
    reveal(decodeURIComponent(window.location.hash.slice(1)));
  }

  Array.prototype.forEach.call(document.querySelectorAll("section.call"), setUp);
  window.addEventListener("hashchange", fromHash);
  if (window.location.hash) { fromHash(); }
})();
