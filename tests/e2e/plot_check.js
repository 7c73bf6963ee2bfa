// Injected by tests/e2e/test_plots_offline.py right after <body> of the page `dvc plots show` writes.
// Wraps vegaEmbed to record each plot's outcome, then writes a JSON verdict into <body data-plot-check>.
(function () {
  const outcomes = {};
  const marks = {};
  const pending = [];
  const errors = [];
  window.addEventListener("error", (e) => errors.push(String(e.message)));
  window.addEventListener("unhandledrejection", (e) => errors.push(String(e.reason)));
  if (typeof window.vegaEmbed !== "function") {
    errors.push("vegaEmbed is not defined: the vega scripts did not load");
  } else {
    const embed = window.vegaEmbed;
    window.vegaEmbed = function (el, spec, opts) {
      const id = String(el).replace(/^#/, "");
      const run = embed(el, spec, opts).then(
        (result) => {
          outcomes[id] = "embedded";
          marks[id] = countMarks({ items: [result.view.scenegraph().root] });
        },
        (err) => { outcomes[id] = "error: " + err; },
      );
      pending.push(run);
      return run;
    };
  }
  // Items of the plot's own marks (bars, points, lines, cells), not axes, legends or titles.
  function countMarks(group) {
    let count = 0;
    for (const mark of group.items || []) {
      if (mark.role === "mark" && mark.marktype !== "group") count += (mark.items || []).length;
      for (const item of mark.items || []) if (item.items) count += countMarks(item);
    }
    return count;
  }
  function distinctColours(canvas) {
    const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    const seen = new Set();
    for (let i = 0; i < data.length && seen.size < 16; i += 4) {
      seen.add((data[i] << 24) | (data[i + 1] << 16) | (data[i + 2] << 8) | data[i + 3]);
    }
    return seen.size;
  }
  window.addEventListener("load", () => {
    Promise.allSettled(pending).then(() => setTimeout(() => {
      const plots = {};
      for (const id of Object.keys(outcomes)) {
        const div = document.getElementById(id);
        const canvas = div && div.querySelector("canvas");
        const svg = div && div.querySelector("svg.marks");
        plots[id] = {
          outcome: outcomes[id],
          marks: marks[id] || 0,
          canvas: canvas ? [canvas.width, canvas.height, distinctColours(canvas)] : null,
          svg_children: svg ? svg.querySelectorAll("path, rect, text").length : 0,
          error_nodes: div ? div.querySelectorAll(".error, .vega-embed-error").length : 0,
        };
      }
      document.body.setAttribute("data-plot-check", JSON.stringify({ plots, errors }));
    }, 500));
  });
})();
