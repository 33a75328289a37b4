// Quiver console: draws the lineage graph of the page's #graph element with cytoscape and the
// dagre layered layout, from the JSON its data-src names ({nodes: [{id, label, kind, href}],
// edges: [{source, target, label}]}). Pan by dragging, zoom with the wheel or the buttons; a click
// on an entity opens its page. The table below the graph lists the same entities without script.
(function () {
  "use strict";
  var box = document.getElementById("graph");
  if (!box || typeof cytoscape === "undefined") return;
  var colours = {
    Artifact: "#0b5cad", Action: "#8250df", Context: "#1a7f37",
    TrialComponent: "#bc4c00", Experiment: "#9a6700", Trial: "#9a6700", start: "#cf222e"
  };
  function draw(data) {
    var elements = data.nodes.map(function (n) {
      return { data: { id: n.id, label: n.label, kind: n.kind, href: n.href, start: n.start ? 1 : 0 } };
    }).concat(data.edges.map(function (e, i) {
      return { data: { id: "e" + i, source: e.source, target: e.target, label: e.label || "" } };
    }));
    var cy = cytoscape({
      container: box,
      elements: elements,
      wheelSensitivity: 0.3,
      // A small graph is not blown up to fill the box; a large one can be zoomed out far.
      minZoom: 0.05,
      maxZoom: 1.2,
      style: [
        { selector: "node", style: {
          "label": "data(label)", "font-size": 11, "text-wrap": "wrap", "text-max-width": 160,
          "text-valign": "bottom", "text-margin-y": 4, "width": 18, "height": 18,
          "background-color": function (n) { return colours[n.data("kind")] || "#57606a"; }
        } },
        { selector: "node[start = 1]", style: { "border-width": 4, "border-color": colours.start } },
        { selector: "edge", style: {
          "width": 1.5, "line-color": "#8c959f", "target-arrow-color": "#8c959f",
          "target-arrow-shape": "triangle", "curve-style": "bezier",
          "label": "data(label)", "font-size": 9, "color": "#57606a", "text-rotation": "autorotate"
        } }
      ],
      layout: { name: "dagre", rankDir: "LR", nodeSep: 25, rankSep: 90, fit: true, padding: 20 }
    });
    cy.on("tap", "node", function (event) {
      var href = event.target.data("href");
      if (href) window.location.assign(href);
    });
    var zoom = function (factor) {
      cy.zoom({ level: cy.zoom() * factor, renderedPosition: { x: box.clientWidth / 2, y: box.clientHeight / 2 } });
    };
    var bind = function (id, action) {
      var button = document.getElementById(id);
      if (button) button.addEventListener("click", action);
    };
    bind("zoom-in", function () { zoom(1.25); });
    bind("zoom-out", function () { zoom(0.8); });
    bind("zoom-fit", function () { cy.fit(undefined, 20); });
    box.setAttribute("data-drawn", String(data.nodes.length));
    window.quiverLineage = cy;
  }
  fetch(box.getAttribute("data-src"), { credentials: "same-origin", headers: { "Accept": "application/json" } })
    .then(function (response) {
      if (!response.ok) throw new Error("the server answered " + response.status);
      return response.json();
    })
    .then(draw)
    .catch(function (error) {
      box.textContent = "The graph could not be drawn (" + error.message + "); the table below lists the same entities.";
      box.setAttribute("data-drawn", "failed");
    });
})();
