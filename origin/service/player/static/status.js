// The status page: /player/status.json (the numbers of /metrics, every worker's) as tables, read
// every 2 seconds.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const W = window.Words;

  function table(headings, rows, numeric) {
    const t = document.createElement("table");
    const head = t.createTHead().insertRow();
    for (const h of headings) {
      const th = document.createElement("th");
      th.textContent = h;
      head.appendChild(th);
    }
    const body = t.createTBody();
    for (const row of rows) {
      const tr = body.insertRow();
      row.forEach((cell, i) => {
        const td = tr.insertCell();
        if (cell instanceof Node) td.appendChild(cell);
        else td.textContent = cell === null || cell === undefined ? "–" : String(cell);
        if (numeric && numeric.includes(i)) td.className = "num";
      });
    }
    return t;
  }

  function text(s, cls) {
    const span = document.createElement("span");
    span.textContent = s;
    if (cls) span.className = cls;
    return span;
  }

  function say(id, ...nodes) {
    $(id).replaceChildren(...nodes);
  }

  function render(s) {
    const a = s.assets;
    const assetRows = [
      ...a.loaded.map((n) => [n, text("loaded", "state-live"), ""]),
      ...a.not_indexed.map((n) => [n, text("waiting for its first request", "state-idle"), ""]),
      ...a.refused.map((r) => [r.name, text("refused", "state-refused"), r.reason]),
    ];
    const summary = text(
      a.loaded.length + " loaded, " + a.not_indexed.length + " waiting for their first request, " + a.refused.length + " refused.",
    );
    const catalog = s.catalog
      ? text(" Catalog version " + s.catalog.version + (s.catalog.problem ? ": " + s.catalog.problem : "."), s.catalog.problem ? "state-refused" : "")
      : "";
    say("assets", summary, catalog, assetRows.length ? table(["asset", "state", "why"], assetRows) : "");

    const now = s.time;
    const channelRows = [];
    for (const c of s.channels) {
      const window = c.window ? W.seconds(c.window[1] - c.window[0]) + " (" + c.segments + " segments)" : "empty";
      const kind = c.loop ? "loop" : "ingest";
      if (!c.streams.length) channelRows.push([c.name, kind, text(c.state, "state-" + c.state), window, "no stream connected", "", ""]);
      for (const st of c.streams) {
        const last = st.last_fragment ? W.seconds(now - st.last_fragment) + " ago" : "never";
        channelRows.push([c.name, kind, text(c.state, "state-" + c.state), window, st.stream + " (" + st.tracks.join("; ") + ")", last, W.seconds(st.lag)]);
      }
    }
    say(
      "channels",
      channelRows.length
        ? table(["channel", "source", "state", "window", "stream", "last fragment", "ingest lag"], channelRows)
        : text("No live channels.", "muted"),
    );

    say(
      "caches",
      table(
        ["cache", "held", "capacity", "hits", "misses", "hit ratio"],
        s.caches.map((c) => [c.name, W.bytes(c.bytes), W.bytes(c.capacity), c.hits, c.name === "answers" ? "(not counted)" : c.misses, W.percent(c.hit_ratio)]),
        [1, 2, 3, 4, 5],
      ),
    );

    const keys = Object.entries(s.keys);
    say(
      "keys",
      keys.length ? table(["outcome", "requests"], keys.map(([o, n]) => [W.outcome(o), n]), [1]) : text("No key requests yet.", "muted"),
    );

    const classes = ["2xx", "3xx", "4xx", "5xx"];
    const rows = Object.entries(s.requests).map(([kind, byStatus]) => {
      const by = { "2xx": 0, "3xx": 0, "4xx": 0, "5xx": 0 };
      for (const [status, n] of Object.entries(byStatus)) by[status[0] + "xx"] = (by[status[0] + "xx"] || 0) + n;
      return [kind, ...classes.map((c) => by[c]), W.bytes(s.sent_bytes[kind] || 0)];
    });
    say(
      "requests",
      text(s.connections + " client connection(s) open."),
      table(["kind", ...classes, "sent"], rows, [1, 2, 3, 4, 5]),
    );
    $("updated").textContent = "Updated " + new Date(s.time * 1000).toLocaleTimeString() + ".";
  }

  async function tick() {
    try {
      const r = await fetch("/player/status.json", { cache: "no-store" });
      if (!r.ok) throw new Error("HTTP " + r.status);
      render(await r.json());
    } catch (e) {
      $("updated").textContent = "The origin does not answer (" + e.message + "): is it still running?";
    }
  }

  tick();
  setInterval(tick, 2000);
})();
