"use strict";
document.documentElement.setAttribute("data-script", "ran");
// Sort a leaderboard table by the clicked column; cells carry their sort key in data-value.
document.querySelectorAll("table.board").forEach(function (table) {
  table.querySelectorAll("th[data-sort]").forEach(function (th) {
    th.addEventListener("click", function () {
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      var descending = th.getAttribute("data-dir") !== "desc";
      var column = Array.prototype.indexOf.call(th.parentNode.children, th);
      rows.sort(function (a, b) {
        var x = a.cells[column].getAttribute("data-value");
        var y = b.cells[column].getAttribute("data-value");
        var nx = parseFloat(x), ny = parseFloat(y);
        var cmp = (isNaN(nx) || isNaN(ny)) ? String(x).localeCompare(String(y)) : nx - ny;
        return descending ? -cmp : cmp;
      });
      rows.forEach(function (row) { body.appendChild(row); });
      th.setAttribute("data-dir", descending ? "desc" : "asc");
    });
  });
});
