// The built-in player: lists what this origin serves (/player/catalog.json) and plays the title
// chosen with the player chosen, all loaded from this origin (/player/vendor/). It shows what
// players of real products show (rendition, bitrate, buffer, live latency) and says errors in
// plain words. The token typed in stays in this page: never stored, never shown.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const video = $("video");
  const W = window.Words;

  // The players, their vendored files (in load order) and npm package (for the version).
  const ENGINES = {
    "hls.js": { files: ["hls.min.js"], pkg: "hls.js" },
    "dash.js": { files: ["dash.all.min.js", "dash.mss.min.js"], pkg: "dashjs" },
    Shaka: { files: ["shaka-player.compiled.js"], pkg: "shaka-player" },
    native: { files: [], pkg: null },
  };
  let vendor = { players: {} };
  let titles = [];
  let chosen = null; // the title shown
  let current = null; // the playback: { label, stats(), destroy() }
  let generation = 0; // a newer Play press makes an older playback's late events moot
  let withToken = false; // whether the playback sends a token (a 401 is then its refusal)
  const failures = []; // this origin's failed responses, newest last: { url, status, at }

  // ---- what went wrong, in words --------------------------------------------------------------

  function message(level, text, detail) {
    const last = $("messages").lastElementChild;
    if (last && last.className === level && last.firstChild.textContent === text) return; // a retry
    const p = document.createElement("p");
    p.className = level;
    p.textContent = text;
    if (detail) {
      const small = document.createElement("small");
      small.textContent = detail;
      p.appendChild(small);
    }
    $("messages").appendChild(p);
    while ($("messages").childElementCount > 6) $("messages").firstElementChild.remove();
  }
  const clearMessages = () => $("messages").replaceChildren();

  // The browser's record of every response (same origin: with its status): the failure a
  // player's error was about, whatever the player says of it.
  if (window.PerformanceObserver) {
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        if (e.responseStatus >= 400) failures.push({ url: e.name, status: e.responseStatus, at: Date.now() });
      }
      failures.splice(0, Math.max(0, failures.length - 20));
    }).observe({ type: "resource", buffered: false });
  }

  // A player stopped: say why. ``status``/``url`` when the player knew them, ``cause`` otherwise
  // (network, media, drm, unsupported, manifest, other), ``detail`` its own words.
  function failed(gen, { status, url, kind, cause, detail }) {
    if (gen !== generation) return;
    let text;
    if (status) text = W.http(status, url, kind, withToken);
    else {
      const recent = failures.filter((f) => Date.now() - f.at < 15000).pop();
      text = recent ? W.http(recent.status, recent.url, null, withToken) : W.cause(cause);
    }
    message("error", text, [detail, url && redact(url)].filter(Boolean).join(" · "));
  }

  const redact = (url) => String(url).replace(/([?&](token|MtsHlsUriToken)=)[^&]*/g, "$1…");
  const sameHost = (url) => {
    try {
      return new URL(url, location.href).origin === location.origin;
    } catch (e) {
      return false;
    }
  };

  // ---- the players ----------------------------------------------------------------------------

  const loading = {};
  function load(engine) {
    const spec = ENGINES[engine];
    if (!loading[engine]) {
      const version = (vendor.players[spec.pkg] || {}).version || "";
      loading[engine] = spec.files.reduce(
        (done, file) =>
          done.then(
            () =>
              new Promise((resolve, reject) => {
                const s = document.createElement("script");
                s.src = "/player/vendor/" + file + "?v=" + encodeURIComponent(version);
                s.onload = resolve;
                s.onerror = () => reject(new Error(file + " did not load"));
                document.head.appendChild(s);
              }),
          ),
        Promise.resolve(),
      );
      loading[engine].catch(() => delete loading[engine]);
    }
    return loading[engine];
  }

  const START = {
    "hls.js": async (url, headers, gen) => {
      await load("hls.js");
      if (!window.Hls || !Hls.isSupported()) throw { cause: "unsupported", detail: "hls.js: no Media Source Extensions" };
      const config = {};
      if (headers) {
        config.xhrSetup = (xhr, u) => {
          if (!sameHost(u)) return;
          if (!xhr.readyState) xhr.open("GET", u, true); // setRequestHeader needs an opened xhr
          for (const [k, v] of Object.entries(headers)) xhr.setRequestHeader(k, v);
        };
      }
      const hls = new Hls(config);
      hls.on(Hls.Events.ERROR, (_, d) => {
        const key = /^key/i.test(d.details || "");
        const keyUri = d.frag && d.frag.decryptdata && d.frag.decryptdata.uri;
        const url = (d.context && d.context.url) || d.url || (key && keyUri) || (d.frag && d.frag.url) || null;
        const status = (d.response && d.response.code) || (d.networkDetails && d.networkDetails.status) || null;
        const causes = { networkError: "network", mediaError: "media", keySystemError: "drm", muxError: "media" };
        const info = {
          status: status >= 400 ? status : null,
          url,
          kind: key ? "key" : null,
          cause: causes[d.type] || "other",
          detail: "hls.js: " + d.details,
        };
        if (d.fatal) failed(gen, info);
        else if (info.status && gen === generation) message("warning", W.http(info.status, url, info.kind, withToken) + " The player retries.", info.detail);
      });
      hls.on(Hls.Events.MANIFEST_PARSED, () => video.play().catch(() => {}));
      hls.loadSource(url);
      hls.attachMedia(video);
      return {
        label: "hls.js " + Hls.version,
        destroy: () => hls.destroy(),
        stats: () => {
          const l = hls.levels && hls.levels[hls.currentLevel];
          const date = hls.playingDate; // the playhead's EXT-X-PROGRAM-DATE-TIME
          return {
            width: l && l.width,
            height: l && l.height,
            bitrate: l && l.bitrate,
            estimate: hls.bandwidthEstimate,
            latency: date && isFinite(date.getTime()) ? (Date.now() - date.getTime()) / 1000 : null,
          };
        },
      };
    },

    "dash.js": async (url, headers, gen) => {
      await load("dash.js");
      const player = dashjs.MediaPlayer().create();
      player.updateSettings({
        debug: { logLevel: dashjs.Debug.LOG_LEVEL_NONE },
        // A live stream without UTCTiming (Smooth) syncs to this origin's clock, not to
        // dash.js's default (time.akamai.com): the page asks no other host for anything.
        streaming: {
          utcSynchronization: {
            defaultTimingSource: { scheme: "urn:mpeg:dash:utc:http-iso:2014", value: location.origin + "/time" },
          },
        },
      });
      if (headers) {
        player.addRequestInterceptor((req) => {
          if (sameHost(req.url)) req.headers = Object.assign({}, req.headers, headers);
          return Promise.resolve(req);
        });
        // dash.js sends license requests itself, outside its request interceptors.
        player.registerLicenseRequestFilter((req) => {
          if (sameHost(req.url)) Object.assign(req.headers, headers);
          return Promise.resolve();
        });
      }
      const E = dashjs.MediaPlayer.events;
      player.on(E.ERROR, (e) => {
        const err = e.error || {};
        const data = err.data || {};
        const url = data.url || (data.request && data.request.url) || null;
        const text = typeof err === "object" ? err.message : String(err);
        const cause = /key|licen[cs]e|drm|protection/i.test(text || "") ? "drm" : /manifest/i.test(text || "") ? "manifest" : "network";
        failed(gen, { url, cause, detail: "dash.js: " + (err.code !== undefined ? err.code + " " : "") + (text || "") });
      });
      player.on(E.PLAYBACK_ERROR, (e) => {
        const err = e.error || {};
        failed(gen, { cause: "media", detail: "dash.js: MediaError " + err.code + " " + (err.message || "") });
      });
      player.initialize(video, url, true);
      return {
        label: "dash.js " + player.getVersion(),
        destroy: () => player.destroy(),
        stats: () => {
          if (!player.isReady()) return {};
          const rep = player.getCurrentRepresentationForType("video");
          let estimate = null;
          try {
            estimate = player.getAverageThroughput("video") * 1000; // kbit/s
          } catch (e) {
            estimate = null;
          }
          return {
            width: rep && rep.width,
            height: rep && rep.height,
            bitrate: rep && rep.bandwidth,
            estimate,
            latency: player.isDynamic() ? player.getCurrentLiveLatency() : null,
          };
        },
      };
    },

    Shaka: async (url, headers, gen) => {
      await load("Shaka");
      shaka.polyfill.installAll();
      if (!shaka.Player.isBrowserSupported()) throw { cause: "unsupported", detail: "Shaka: browser not supported" };
      const player = new shaka.Player();
      await player.attach(video);
      if (headers) {
        player.getNetworkingEngine().registerRequestFilter((type, req) => {
          if (req.uris.some(sameHost)) Object.assign(req.headers, headers);
        });
      }
      const report = (e) => failed(gen, shakaError(e));
      player.addEventListener("error", (e) => report(e.detail));
      const playback = {
        label: "Shaka Player " + shaka.Player.version,
        destroy: () => player.destroy(),
        stats: () => {
          const s = player.getStats();
          const t = player.getVariantTracks().find((v) => v.active);
          return {
            width: t && t.width,
            height: t && t.height,
            bitrate: (t && t.videoBandwidth) || s.streamBandwidth,
            estimate: s.estimatedBandwidth,
            latency: player.isLive() && Number.isFinite(s.liveLatency) ? s.liveLatency : null,
          };
        },
      };
      try {
        await player.load(url);
      } catch (e) {
        if (e && e.code === 7000) return playback; // LOAD_INTERRUPTED: a newer Play press
        throw shakaError(e);
      }
      video.play().catch(() => {});
      return playback;
    },

    native: async (url, headers, gen) => {
      if (!video.canPlayType("application/vnd.apple.mpegurl")) throw { cause: "unsupported", detail: "this browser has no native HLS" };
      video.onerror = () => {
        const err = video.error || {};
        failed(gen, { cause: err.code === 2 ? "network" : err.code === 4 ? "unsupported" : "media", detail: "MediaError " + err.code + " " + (err.message || "") });
      };
      video.src = url;
      video.play().catch(() => {});
      return {
        label: "the browser's own HLS",
        destroy: () => {
          video.onerror = null;
          video.removeAttribute("src");
          video.load();
        },
        stats: () => {
          const start = video.getStartDate ? video.getStartDate().getTime() : NaN;
          return {
            width: video.videoWidth,
            height: video.videoHeight,
            latency: isFinite(start) ? (Date.now() - start) / 1000 - video.currentTime : null,
          };
        },
      };
    },
  };

  // A shaka.util.Error as {status, url, cause, detail} (codes: shaka.util.Error.Code).
  function shakaError(e) {
    if (!e || e.code === undefined) return { cause: "other", detail: String(e) };
    let inner = e;
    if (e.category === 6 && e.data && e.data[0] && e.data[0].code !== undefined) inner = e.data[0]; // a failed license request
    const detail = "Shaka: category " + e.category + ", code " + e.code;
    if (inner.code === 1001) return { status: inner.data[1], url: inner.data[0], detail }; // BAD_HTTP_STATUS
    if (inner.category === 1) return { url: inner.data && inner.data[0], cause: "network", detail };
    const causes = { 2: "media", 3: "media", 4: "manifest", 6: "drm" };
    return { cause: causes[e.category] || "other", detail };
  }

  // Which players can play a way to stream, the first the one a viewer gets by default.
  function enginesFor(way) {
    const safari = /^((?!chrome|android).)*safari/i.test(navigator.userAgent);
    const native = video.canPlayType("application/vnd.apple.mpegurl") !== "";
    const mse = !!(window.MediaSource || window.ManagedMediaSource);
    if (way.protocol === "hls") {
      if (way.scheme === "cenc" || way.scheme === "cbcs") return ["Shaka"]; // hls.js: AES-128 only
      const list = way.format === "HLS (TS)" ? ["hls.js"] : ["hls.js", "Shaka"]; // Shaka: no TS here
      if (native) list.splice(safari || !mse ? 0 : list.length, 0, "native");
      return list;
    }
    if (way.protocol === "dash") return ["dash.js", "Shaka"];
    // Smooth: dash.js with its MSS build. It reads only PlayReady and Widevine from a Smooth
    // manifest's ProtectionHeader, so no player here decrypts Smooth with ClearKey.
    return way.scheme === "clear" ? ["dash.js"] : [];
  }
  const NO_ENGINE =
    "No player on this page can play this in a browser: dash.js takes only PlayReady or Widevine keys from a Smooth Streaming manifest. A PlayReady player (or this title in DASH with the same encryption) plays it.";

  // ---- the page -------------------------------------------------------------------------------

  function badge(text, cls) {
    const b = document.createElement("span");
    b.className = "badge" + (cls ? " " + cls : "");
    b.textContent = text;
    return b;
  }

  const LISTED = 200; // titles listed at once; the filter finds the others
  const PROTOCOLS = { hls: "HLS", dash: "DASH", smooth: "Smooth" };

  function renderTitles() {
    const list = $("titles");
    const filter = $("filter").value.trim().toLowerCase();
    list.replaceChildren();
    const shown = filter ? titles.filter((t) => t.name.toLowerCase().includes(filter)) : titles;
    if (titles.length && !shown.length) {
      const li = document.createElement("li");
      li.className = "muted";
      li.textContent = "No title matches.";
      list.appendChild(li);
    }
    if (!titles.length) {
      const li = document.createElement("li");
      li.className = "muted";
      li.textContent = "Nothing to play: add assets or channels to the config.";
      list.appendChild(li);
    }
    for (const t of shown.slice(0, LISTED)) {
      const li = document.createElement("li");
      const b = document.createElement("button");
      b.type = "button";
      b.dataset.title = t.name;
      b.dataset.kind = t.kind;
      b.setAttribute("aria-pressed", String(chosen !== null && chosen.name === t.name && chosen.kind === t.kind));
      b.append(t.name);
      if (t.kind === "live") b.appendChild(badge(t.state === "live" ? "LIVE" : t.state, "live"));
      if (t.token) b.appendChild(badge("token"));
      if (t.locator) b.appendChild(badge("locator"));
      if (t.state === "not indexed") b.appendChild(badge("not indexed yet"));
      const protocols = document.createElement("span");
      protocols.className = "protocols";
      protocols.textContent = t.protocols.map((p) => PROTOCOLS[p]).join(" · ");
      b.appendChild(protocols);
      if (t.state === "refused") {
        b.appendChild(badge("refused", "refused"));
        const r = document.createElement("span");
        r.className = "reason";
        r.textContent = t.reason;
        b.appendChild(r);
        b.disabled = true;
      }
      b.addEventListener("click", () => choose(t));
      li.appendChild(b);
      list.appendChild(li);
    }
    if (shown.length > LISTED) {
      const li = document.createElement("li");
      li.className = "muted";
      li.textContent = "… and " + (shown.length - LISTED) + " more: type in Filter.";
      list.appendChild(li);
    }
  }

  function describe(t) {
    const parts = [];
    if (t.kind === "live") parts.push("Live channel (" + t.source + "), " + t.window + " s window, " + t.state);
    else if (t.duration) parts.push(t.duration.toFixed(1) + " s");
    if (t.video && t.video.length) parts.push(t.video.map((v) => v.height + "p " + W.bits(v.bitrate)).join(", "));
    if (t.protection !== "clear") parts.push("protected (" + t.protection + ")");
    if (t.token === "manifest") parts.push("needs a token for every manifest");
    if (t.token === "key") parts.push("needs a token for its keys");
    if (t.locator) parts.push("streams only through a streaming locator");
    return parts.join(" · ");
  }

  // A title's media and ways to play, asked for when it is chosen (the list stays small for a
  // catalog of thousands).
  let choosing = 0;
  async function choose(t) {
    const mine = ++choosing;
    $("way").replaceChildren(); // nothing of the title before can be picked meanwhile
    $("engine").replaceChildren();
    let full;
    try {
      full = await fetchJson("/player/titles/" + t.kind + "/" + encodeURIComponent(t.name) + ".json");
    } catch (e) {
      message("error", "The origin does not know " + t.name + " (any more): it may have been removed.", e.message);
      return;
    }
    if (mine !== choosing) return; // another title was chosen meanwhile
    chosen = full;
    $("title-h").textContent = full.name;
    $("about").textContent = describe(full);
    const way = $("way");
    way.replaceChildren();
    full.ways.forEach((w, i) => {
      const o = document.createElement("option");
      o.value = String(i);
      o.textContent = w.format + " · " + w.encryption;
      way.appendChild(o);
    });
    $("locator-row").hidden = !full.locator;
    renderEngines();
    renderTitles();
  }

  function renderEngines() {
    const w = chosen && chosen.ways[Number($("way").value)];
    const engine = $("engine");
    const before = engine.value;
    engine.replaceChildren();
    for (const name of w ? enginesFor(w) : []) {
      const o = document.createElement("option");
      o.value = name;
      o.textContent = name === "native" ? "native (the browser's HLS)" : name;
      engine.appendChild(o);
    }
    if (!engine.options.length) {
      const o = document.createElement("option");
      o.value = "";
      o.textContent = "none here";
      engine.appendChild(o);
    }
    if ([...engine.options].some((o) => o.value === before)) engine.value = before;
  }

  function manifestUrl(way, token, mode) {
    const locator = chosen.locator ? $("locator").value.trim() : "";
    let url = (locator ? "/" + encodeURIComponent(locator) : "") + way.path;
    if (token && mode === "query") url += "?token=" + encodeURIComponent(token);
    return new URL(url, location.href).href;
  }

  async function play(ev) {
    if (ev) ev.preventDefault();
    if (!chosen) return;
    const way = chosen.ways[Number($("way").value)];
    if (!way) return;
    const engine = $("engine").value;
    if (!START[engine]) {
      stop();
      clearMessages();
      message("error", NO_ENGINE);
      return;
    }
    const token = $("token").value.trim();
    let mode = $("token-mode").value;
    stop();
    const gen = ++generation;
    clearMessages();
    if (chosen.locator && !$("locator").value.trim()) {
      message("error", "This title streams only through a streaming locator: type its id in Streaming locator.");
      return;
    }
    if (token && mode === "header" && engine === "native") {
      mode = "query"; // the browser's own player cannot add a header
      message("info", "The browser's own HLS player cannot send headers: the token goes in the query instead.");
    }
    const url = manifestUrl(way, token, mode);
    $("url").textContent = redact(url);
    withToken = !!token;
    const headers = token && mode === "header" ? { Authorization: "Bearer " + token } : null;
    $("s-player").textContent = "loading " + engine + "…";
    try {
      const playback = await START[engine](url, headers, gen);
      if (gen !== generation) return playback.destroy();
      current = playback;
      $("s-player").textContent = playback.label;
    } catch (e) {
      const info = e instanceof Error ? { cause: "other", detail: e.message } : e;
      failed(gen, info);
      $("s-player").textContent = engine + " (stopped)";
    }
  }

  function stop() {
    generation += 1;
    if (current) {
      try {
        current.destroy();
      } catch (e) {
        /* a player that failed half-way */
      }
    }
    current = null;
    video.onerror = null;
    if (video.getAttribute("src")) {
      video.removeAttribute("src");
      video.load();
    }
  }

  function bufferAhead() {
    const b = video.buffered;
    for (let i = 0; i < b.length; i += 1) {
      if (b.start(i) <= video.currentTime + 0.1 && video.currentTime <= b.end(i)) return b.end(i) - video.currentTime;
    }
    return 0;
  }

  function showStats() {
    if (!current) return;
    let s = {};
    try {
      s = current.stats() || {};
    } catch (e) {
      s = {};
    }
    const w = s.width || video.videoWidth;
    const h = s.height || video.videoHeight;
    $("s-rendition").textContent = w && h ? w + "×" + h : "–";
    $("s-bitrate").textContent = W.bits(s.bitrate);
    $("s-estimate").textContent = W.bits(s.estimate);
    $("s-buffer").textContent = W.seconds(bufferAhead());
    const d = video.duration;
    $("s-position").textContent = W.seconds(video.currentTime) + (Number.isFinite(d) ? " of " + W.seconds(d) : "");
    $("s-latency").textContent = s.latency !== null && s.latency !== undefined && isFinite(s.latency) ? W.seconds(s.latency) : "–";
    const q = video.getVideoPlaybackQuality ? video.getVideoPlaybackQuality() : null;
    $("s-dropped").textContent = q ? q.droppedVideoFrames + " of " + q.totalVideoFrames : "–";
  }

  async function fetchJson(url) {
    const r = await fetch(url, { cache: "no-store" });
    if (!r.ok) throw new Error(url + ": HTTP " + r.status);
    return r.json();
  }

  async function refresh() {
    try {
      const c = await fetchJson("/player/catalog.json");
      titles = [...c.assets, ...c.channels];
      renderTitles();
    } catch (e) {
      message("error", "The catalog could not be read: is the origin still running?", e.message);
    }
  }

  async function start() {
    try {
      vendor = await fetchJson("/player/vendor/players.json");
      const names = Object.entries(vendor.players).map(([n, p]) => n + " " + p.version);
      const credits = $("credits");
      credits.append("Players served by this origin: " + names.join(", ") + " (");
      const a = document.createElement("a");
      a.href = "/player/vendor/players.json";
      a.textContent = "versions and licenses";
      credits.append(a, ").");
    } catch (e) {
      message("warning", "The players' versions could not be read.", e.message);
    }
    await refresh();
    $("way").addEventListener("change", renderEngines);
    $("filter").addEventListener("input", renderTitles);
    $("controls").addEventListener("submit", play);
    let announced = 0;
    video.addEventListener("playing", () => {
      if (!current || announced === generation) return;
      announced = generation;
      message("info", "Playing " + chosen.name + " · " + $("way").selectedOptions[0].textContent + " with " + current.label + ".");
    });
    setInterval(showStats, 500);
    setInterval(refresh, 15000);
    const first = titles.find((t) => t.state !== "refused");
    if (first) await choose(first);
  }

  window.originPlayer = { play, stop, get playback() { return current; } };
  start();
})();
