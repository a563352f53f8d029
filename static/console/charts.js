/* Gongdan console: draws the dashboards' charts with ECharts from JSON embedded in the page.

   Each figure is rendered by the server as a table (always there: the fallback and the export) plus
     <div class="chart" data-chart="ID" hidden></div>
     <script type="application/json" id="ID">{...}</script>
   A JSON script is data, never executed, so the page's nonce-based CSP needs no 'unsafe-inline'/'unsafe-eval'.
   Without ECharts (static/vendor/ not built) this file does nothing and the tables stay the figures.

   Spec: {"kind": "line"|"bar"|"hbar"|"pie"|"heatmap", "unit": "%"|"分钟"|"", "stack": bool,
          "categories": [label, ...],                      line/bar/hbar: x (y for hbar); pie: slice names
          "series": [{"name": s, "values": [n, ...], "urls": [url|null, ...]}],
          "x": [...], "y": [...], "cells": [[xi, yi, value, url|null], ...]}   heatmap
   A point with a url navigates there on click: the tickets behind that segment. */
(function () {
  "use strict";
  var PALETTE = ["#1f6feb", "#07c160", "#fa9d3b", "#e54d42", "#8e5cd9", "#10aec2", "#8c8c8c", "#d4a017"];

  function fmt(unit) {
    return function (v) {
      if (v === null || v === undefined || v === "-") { return "-"; }
      return unit === "%" ? (+v).toFixed(1) + "%" : unit ? v + " " + unit : String(v);
    };
  }

  function point(value, url) {
    return url ? { value: value, url: url } : { value: value };
  }

  function axisOption(spec) {
    var horizontal = spec.kind === "hbar";
    var label = fmt(spec.unit);
    // every category named (ECharts would skip labels that do not fit); long names wrap instead
    var cat = { type: "category", data: spec.categories, axisTick: { alignWithLabel: true },
                axisLabel: { interval: spec.kind === "line" ? "auto" : 0, width: horizontal ? 110 : 80,
                             overflow: "truncate" } };
    var val = { type: "value", axisLabel: { formatter: spec.unit === "%" ? "{value}%" : "{value}" } };
    if (horizontal) { cat.inverse = true; }
    return {
      color: PALETTE,
      grid: { left: horizontal ? 120 : 48, right: 24, top: spec.series.length > 1 ? 36 : 16, bottom: 28,
              containLabel: !horizontal },
      legend: spec.series.length > 1 ? { top: 0 } : undefined,
      tooltip: { trigger: "axis", valueFormatter: label },
      xAxis: horizontal ? val : cat,
      yAxis: horizontal ? cat : val,
      series: spec.series.map(function (s) {
        return {
          name: s.name, type: spec.kind === "line" ? "line" : "bar", smooth: false, stack: spec.stack ? "all" : undefined,
          barMaxWidth: 28, cursor: "pointer", emphasis: { focus: "series" },
          data: s.values.map(function (v, i) { return point(v, s.urls ? s.urls[i] : null); })
        };
      })
    };
  }

  function pieOption(spec) {
    var s = spec.series[0];
    return {
      color: PALETTE,
      tooltip: { trigger: "item", formatter: "{b}: {c} ({d}%)" },
      legend: { orient: "vertical", left: 0, top: "middle" },
      series: [{
        name: s.name, type: "pie", radius: ["40%", "70%"], center: ["62%", "50%"], cursor: "pointer",
        label: { formatter: "{b}\n{d}%" },
        // empty slices only clutter the labels (the table below lists every category)
        data: s.values.map(function (v, i) {
          var d = point(v, s.urls ? s.urls[i] : null);
          d.name = spec.categories[i];
          return d;
        }).filter(function (d) { return d.value; })
      }]
    };
  }

  function heatmapOption(spec) {
    var max = 0;
    spec.cells.forEach(function (c) { if (c[2] > max) { max = c[2]; } });
    return {
      tooltip: { position: "top", formatter: function (p) {
        return spec.y[p.value[1]] + " " + spec.x[p.value[0]] + "：" + p.value[2];
      } },
      grid: { left: 56, right: 16, top: 8, bottom: 64 },
      xAxis: { type: "category", data: spec.x, splitArea: { show: true } },
      yAxis: { type: "category", data: spec.y, splitArea: { show: true }, inverse: true },  // 周一 on top
      visualMap: { min: 0, max: Math.max(max, 1), calculable: true, orient: "horizontal", left: "center",
                   bottom: 0, itemHeight: 160, inRange: { color: ["#f0f5ff", "#1f6feb"] } },
      series: [{
        name: spec.series && spec.series[0] ? spec.series[0].name : "", type: "heatmap", cursor: "pointer",
        label: { show: false },
        data: spec.cells.map(function (c) { return point([c[0], c[1], c[2]], c[3]); })
      }]
    };
  }

  function option(spec) {
    if (spec.kind === "pie") { return pieOption(spec); }
    if (spec.kind === "heatmap") { return heatmapOption(spec); }
    return axisOption(spec);
  }

  function draw(el) {
    var source = document.getElementById(el.getAttribute("data-chart"));
    if (!source) { return; }
    var spec;
    try { spec = JSON.parse(source.textContent); } catch (e) { return; }
    el.hidden = false;
    var chart = window.echarts.init(el, null, { renderer: "canvas" });
    chart.on("click", function (p) {
      var url = p.data && p.data.url;
      if (url) { window.location.href = url; }
    });
    // "finished" comes after the entry animation: from then on what is seen is where it will be clicked
    chart.on("finished", function () { el.setAttribute("data-drawn", "1"); });
    chart.setOption(option(spec));
    window.addEventListener("resize", function () { chart.resize(); });
  }

  function start() {
    if (!window.echarts) { return; }  // no ECharts: the tables are the figures
    document.documentElement.classList.add("has-charts");
    document.querySelectorAll(".chart[data-chart]").forEach(draw);
  }

  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); } else { start(); }
}());
