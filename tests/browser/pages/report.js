// Shared by every player page: one report shape, whatever the player, read by harness.py.
//
// A page reads its options from its own query string (see `options`), builds its player, attaches
// it to the <video id="video"> with `Report.watchVideo`, and records what the player tells it with
// `Report.level`, `Report.levelSwitch`, `Report.key`, `Report.fragment` and `Report.error`. The
// harness polls `window.report` and stops on `report.fatal`, on `report.ended` or once
// `report.currentTime` reaches its target.
"use strict";

(function () {
  const query = new URLSearchParams(window.location.search);
  const int = (name) => (query.has(name) ? parseInt(query.get(name), 10) : null);

  const options = {
    src: query.get("src"),
    // Index (in the player's own level list) to start at; null lets the player choose.
    startLevel: int("startLevel"),
    // With startLevel: stay on that level (no adaptive switching).
    lockLevel: query.get("lockLevel") === "1",
    playbackRate: query.has("rate") ? parseFloat(query.get("rate")) : 1,
    // Raw player configuration (JSON), merged into the player's own config object.
    config: query.has("config") ? JSON.parse(query.get("config")) : {},
    // Request headers (JSON object of name -> value) the player adds to its requests, only to
    // URLs matching the regular expression `headersFor` when given (e.g. only the key service,
    // as real apps do so that manifests and segments stay simple, cacheable requests).
    headers: query.has("headers") ? JSON.parse(query.get("headers")) : {},
    headersFor: query.has("headersFor") ? new RegExp(query.get("headersFor")) : null,
    // Live: sample the playhead and the player's live edge (`Report.liveEdge`, set by the page)
    // every `sampleEvery` ms into report.samples, for the harness to judge stalls and latency.
    live: query.get("live") === "1",
  };
  const SAMPLE_EVERY_MS = 250;

  const headersLogged = new Set();
  const t0 = performance.now();
  const now = () => Math.round(performance.now() - t0) / 1000;

  const report = {
    player: null,
    version: null,
    options: options,
    playing: false,
    ended: false,
    fatal: false,
    currentTime: 0,
    duration: null,
    levels: [], // {index, bitrate, width, height, codecs, url}
    startLevel: null, // the level the first video/main fragment came from
    levelSwitches: [], // {t, level}: every level the player switched to, in order
    keys: [], // {t, url}: keys the player reports loaded
    fragments: [], // {t, type, level, sn, url}
    errors: [], // {t, fatal, type, details, message, url, code}
    log: [], // {t, event}: everything else worth reading when a test fails
    video: null, // filled by Report.snapshot()
    firstFrame: null, // {t, currentTime}: the first "playing" event
    played: 0, // media seconds played since the first frame (currentTime - firstFrame.currentTime)
    samples: [], // live only: {t, currentTime, paused, readyState, edge: {...from Report.liveEdge}}
    playedFragments: [], // {t, type, sn, url}: fragments the playhead entered (where reported)
    drm: null, // Shaka: {keySystem, drmInfos: [...]}, what its manifest parser read
  };
  window.report = report;

  function clip(value) {
    if (value === undefined || value === null) return null;
    const s = typeof value === "string" ? value : String(value);
    return s.length > 500 ? s.slice(0, 500) + "…" : s;
  }

  function sample(video) {
    let edge = null;
    try {
      edge = Report.liveEdge ? Report.liveEdge() : null;
    } catch (e) {
      edge = { error: String(e) };
    }
    report.samples.push({
      t: now(),
      currentTime: video.currentTime,
      paused: video.paused,
      readyState: video.readyState,
      edge: edge,
    });
  }

  const Report = {
    options: options,
    now: now,
    setPlayer(name, version) {
      report.player = name;
      report.version = version;
    },
    log(event) {
      report.log.push({ t: now(), event: clip(event) });
    },
    level(index, bitrate, width, height, codecs, url) {
      report.levels.push({
        index: index,
        bitrate: bitrate ?? null,
        width: width ?? null,
        height: height ?? null,
        codecs: clip(codecs),
        url: clip(url),
      });
    },
    levelSwitch(level) {
      report.levelSwitches.push({ t: now(), level: level });
    },
    key(url) {
      report.keys.push({ t: now(), url: clip(url) });
    },
    fragment(type, level, sn, url) {
      if (report.startLevel === null && type === "main") report.startLevel = level;
      report.fragments.push({ t: now(), type: type, level: level, sn: sn, url: clip(url) });
    },
    // The fragment the playhead has just entered (hls.js FRAG_CHANGED).
    played(type, sn, url) {
      report.playedFragments.push({ t: now(), type: type, sn: sn, url: clip(url) });
    },
    // Set by a page: () => ({edge, ...}), the player's live edge in media time (seconds) and
    // whatever else it exposes about it; sampled with the playhead when options.live.
    liveEdge: null,
    error(fatal, type, details, message, url, code) {
      report.errors.push({
        t: now(),
        fatal: !!fatal,
        type: clip(type),
        details: clip(details),
        message: clip(message),
        url: clip(url),
        code: code ?? null,
      });
      if (fatal) report.fatal = true;
    },
    watchVideo(video) {
      video.muted = true;
      video.autoplay = true;
      video.playsInline = true;
      const update = () => {
        report.currentTime = Math.max(report.currentTime, video.currentTime);
        if (Number.isFinite(video.duration)) report.duration = video.duration;
        if (report.firstFrame) report.played = video.currentTime - report.firstFrame.currentTime;
      };
      video.addEventListener("timeupdate", update);
      video.addEventListener("playing", () => {
        report.playing = true;
        if (!report.firstFrame) report.firstFrame = { t: now(), currentTime: video.currentTime };
        if (video.playbackRate !== options.playbackRate) video.playbackRate = options.playbackRate;
        Report.log("playing at " + video.currentTime);
      });
      video.addEventListener("ended", () => {
        update();
        report.ended = true;
        Report.log("ended at " + video.currentTime);
      });
      for (const name of ["waiting", "stalled", "seeking", "seeked", "loadedmetadata", "ratechange"]) {
        video.addEventListener(name, () =>
          Report.log(name + " at " + video.currentTime + (name === "ratechange" ? " to " + video.playbackRate : "")),
        );
      }
      video.addEventListener("error", () => {
        const e = video.error;
        Report.error(true, "video", "MediaError " + (e ? e.code : "?"), e ? e.message : "", null, e ? e.code : null);
      });
      window.setInterval(update, 100);
      if (options.live) window.setInterval(() => sample(video), SAMPLE_EVERY_MS);
    },
    // The headers (options.headers) the player is to add to a request for `url`: {} for none.
    // Each URL given headers is logged once, to show which requests the page's hook saw.
    requestHeaders(url) {
      const names = Object.keys(options.headers);
      if (!names.length || (options.headersFor && !options.headersFor.test(url))) return {};
      if (!headersLogged.has(url)) {
        headersLogged.add(url);
        Report.log("request headers " + names.join(",") + " for " + url);
      }
      return options.headers;
    },
    // Muted autoplay: no user gesture is needed for a muted video.
    play(video) {
      const p = video.play();
      if (p && p.catch) {
        p.catch((e) => Report.log("play() rejected: " + e.name + ": " + e.message));
      }
    },
    snapshot() {
      const video = document.getElementById("video");
      const q = video.getVideoPlaybackQuality ? video.getVideoPlaybackQuality() : null;
      const buffered = [];
      for (let i = 0; i < video.buffered.length; i++) {
        buffered.push([video.buffered.start(i), video.buffered.end(i)]);
      }
      report.currentTime = Math.max(report.currentTime, video.currentTime);
      report.video = {
        currentTime: video.currentTime,
        paused: video.paused,
        readyState: video.readyState,
        width: video.videoWidth,
        height: video.videoHeight,
        decodedFrames: q ? q.totalVideoFrames : null,
        droppedFrames: q ? q.droppedVideoFrames : null,
        buffered: buffered,
      };
      return report;
    },
  };
  window.Report = Report;

  window.addEventListener("error", (e) => Report.error(true, "page", "uncaught", e.message, e.filename, null));
  window.addEventListener("unhandledrejection", (e) =>
    Report.error(true, "page", "unhandledrejection", String(e.reason), null, null),
  );
})();
