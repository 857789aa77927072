// Guided campaign creation (templates/admin/campaigns/campaign/guided.html): one step at a time,
// a live creative preview, and a review of what will be saved.
(function () {
  "use strict";
  function ready(fn) { if (document.readyState !== "loading") fn(); else document.addEventListener("DOMContentLoaded", fn); }
  ready(function () {
    var form = document.getElementById("guided-form");
    if (!form) return;
    var steps = Array.prototype.slice.call(form.querySelectorAll("fieldset.ce-step"));
    var marks = Array.prototype.slice.call(document.querySelectorAll("#guided-steps li"));
    var back = document.getElementById("guided-back"), next = document.getElementById("guided-next");
    var submit = document.getElementById("guided-submit"), draft = document.getElementById("guided-draft");
    var current = parseInt(form.dataset.startStep || "1", 10);

    function value(name) {
      var el = form.elements[name];
      if (!el) return "";
      if (el.length !== undefined && el.tagName !== "SELECT") {
        return Array.prototype.filter.call(el, function (c) { return c.checked; })
          .map(function (c) { return c.parentNode.textContent.trim(); }).join(", ");
      }
      if (el.tagName === "SELECT") return el.options[el.selectedIndex] ? el.options[el.selectedIndex].text : "";
      return el.value.trim();
    }
    function preview() {
      var frame = document.getElementById("creative-preview");
      var size = (form.elements.size && form.elements.size.value || "300x250").split("x");
      frame.width = size[0]; frame.height = size[1];
      frame.srcdoc = '<body style="margin:0">' + (form.elements.creative.value || "") + "</body>";
    }
    function review() {
      var currency = value("currency") || "USD";
      var rows = [
        ["Campaign name", value("name")], ["Advertiser", value("advertiser")],
        ["Budget", value("budget") + " " + currency],
        ["Runs", (value("start") || "as soon as approved") + " → " + value("end") + " UTC"],
        ["Channels", value("channels")], ["Countries", value("countries") || "anywhere"],
        ["Devices", value("devices") || "any"], ["Size", value("size")],
        ["Landing page", value("landing_url")], ["Category", value("category")],
        ["Max bid (CPM)", value("max_bid_cpm") + " " + currency + " per 1,000 ads shown"]
      ];
      var list = document.getElementById("guided-review");
      list.textContent = "";
      rows.forEach(function (row) {
        var dt = document.createElement("dt"), dd = document.createElement("dd");
        dt.textContent = row[0]; dd.textContent = row[1] || "—";
        list.appendChild(dt); list.appendChild(dd);
      });
    }
    function show(n) {
      current = Math.max(1, Math.min(steps.length, n));
      steps.forEach(function (s) { s.hidden = parseInt(s.dataset.step, 10) !== current; });
      marks.forEach(function (m) { m.classList.toggle("ce-current", parseInt(m.dataset.step, 10) === current); });
      back.hidden = current === 1;
      next.hidden = current === steps.length;
      submit.hidden = draft.hidden = current !== steps.length;
      if (current === steps.length) review();
      var first = steps[current - 1].querySelector("input:not([type=hidden]), textarea, select");
      if (first && current !== steps.length) first.focus({preventScroll: true});
      window.scrollTo(0, 0);
    }
    back.addEventListener("click", function () { show(current - 1); });
    next.addEventListener("click", function () { show(current + 1); });
    form.elements.creative.addEventListener("input", preview);
    form.elements.size.addEventListener("change", preview);
    preview();
    show(current);
    document.body.dataset.guidedReady = "1";
  });
})();
