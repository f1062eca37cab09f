/* moelens report: sortable tables (Grid.js) and the expert browser's filters.
   Data comes from the JSON script blocks beside each table and is only ever put into the page as
   text (textContent, Grid.js cells, preact elements), never as markup. */
(function () {
  "use strict";

  function cellText(cell) {
    if (cell === null || cell === undefined) return "";
    if (typeof cell === "object") return String(cell.text);
    return String(cell);
  }

  function compare(a, b) {
    var x = (a !== null && typeof a === "object") ? a.text : a;
    var y = (b !== null && typeof b === "object") ? b.text : b;
    if (x === null || x === undefined || x === "") return (y === null || y === undefined || y === "") ? 0 : 1;
    if (y === null || y === undefined || y === "") return -1;
    if (typeof x === "number" && typeof y === "number") return x - y;
    return String(x).localeCompare(String(y), undefined, {numeric: true});
  }

  function formatter(cell) {
    if (cell !== null && typeof cell === "object") {
      return gridjs.h("a", {href: cell.href}, String(cell.text));
    }
    if (cell === null || cell === undefined) return "\u2013";
    if (typeof cell === "number" && !Number.isInteger(cell)) return cell.toFixed(3);
    return String(cell);
  }

  /* Grids are rendered one after another, each once the previous one is in the page. Long
     tables scroll under a fixed header instead of being paginated: in Grid.js 6.2, search and
     sort together with pagination intermittently fail ("Cannot read properties of undefined
     (reading 'length')", grid-js/gridjs#1458), a processor's cached input being read before
     it was computed. */
  function upgradeTables() {
    if (typeof gridjs === "undefined") return;
    var boxes = Array.prototype.slice.call(document.querySelectorAll("[data-table]"));
    function next(i) {
      if (i >= boxes.length) { document.body.setAttribute("data-tables-ready", "1"); return; }
      var box = boxes[i];
      var source = document.getElementById(box.getAttribute("data-table") + "-data");
      if (!source) { next(i + 1); return; }
      var spec = JSON.parse(source.textContent);
      var columns = spec.columns.map(function (name, j) {
        return {id: "c" + j, name: name, formatter: formatter, sort: {compare: compare}};
      });
      while (box.firstChild) box.removeChild(box.firstChild);
      var grid = new gridjs.Grid({
        columns: columns,
        data: spec.rows,
        sort: true,
        search: {selector: function (cell) { return cellText(cell); }},
        fixedHeader: true,
        height: spec.rows.length > spec.page_size ? "460px" : "auto"
      });
      grid.render(box);
      /* Grid.js 6.2 has no "ready" event: the next grid starts once this one's table is in
         the page (or after three seconds, so that one slow table never stops the rest). */
      var started = Date.now();
      (function wait() {
        var table = box.querySelector(".gridjs-table");
        if ((table && !box.querySelector(".gridjs-loading-bar")) || Date.now() - started > 3000) {
          if (table) box.classList.add("upgraded");
          next(i + 1);
        } else {
          setTimeout(wait, 15);
        }
      })();
    }
    next(0);
  }

  function expertBrowser() {
    var root = document.getElementById("expert-browser");
    if (!root) return;
    var cards = Array.prototype.slice.call(root.querySelectorAll(".expert-card"));
    var layer = document.getElementById("expert-layer");
    var model = document.getElementById("expert-model");
    var search = document.getElementById("expert-search");
    var count = document.getElementById("expert-count");

    function apply() {
      var l = layer ? layer.value : "";
      var m = model ? model.value : "";
      var q = search ? search.value.trim().toLowerCase() : "";
      var shown = 0;
      cards.forEach(function (card) {
        var ok = (!l || card.getAttribute("data-layer") === l) &&
                 (!m || card.getAttribute("data-model") === m) &&
                 (!q || card.getAttribute("data-search").indexOf(q) !== -1);
        card.hidden = !ok;
        if (ok) shown += 1;
      });
      if (count) count.textContent = shown + " of " + cards.length + " experts shown";
    }

    function reveal() {
      var id = decodeURIComponent(location.hash.slice(1));
      var card = id ? document.getElementById(id) : null;
      if (card && card.classList.contains("expert-card") && card.hidden) {
        if (layer) layer.value = "";
        if (model) model.value = "";
        if (search) search.value = "";
        apply();
        card.scrollIntoView();
      }
    }

    [layer, model].forEach(function (el) { if (el) el.addEventListener("change", apply); });
    if (search) search.addEventListener("input", apply);
    window.addEventListener("hashchange", reveal);
    apply();
    reveal();
  }

  document.addEventListener("DOMContentLoaded", function () {
    upgradeTables();
    expertBrowser();
  });
})();
