// What the page says to a person: numbers with units, and errors in plain words.
"use strict";
window.Words = (() => {
  const bits = (bps) => {
    if (!Number.isFinite(bps) || bps <= 0) return "–";
    if (bps >= 1e6) return (bps / 1e6).toFixed(2) + " Mbit/s";
    return Math.round(bps / 1e3) + " kbit/s";
  };
  const bytes = (n) => {
    if (!Number.isFinite(n)) return "–";
    const units = ["B", "kB", "MB", "GB", "TB"];
    let i = 0;
    while (n >= 1000 && i < units.length - 1) { n /= 1000; i += 1; }
    return (i ? n.toFixed(1) : String(Math.round(n))) + " " + units[i];
  };
  const seconds = (s) => (Number.isFinite(s) ? s.toFixed(1) + " s" : "–");
  const percent = (r) => (Number.isFinite(r) ? (100 * r).toFixed(1) + " %" : "–");

  // What a URL of this origin is, from its shape (the URL grammar: /key, /clearkey,
  // Fragments(...), manifest / Manifest(...)).
  const kindOf = (url) => {
    const path = String(url || "").split("?")[0];
    if (/\/clearkey/.test(path)) return "license";
    if (/\/key(\/|$)/.test(path)) return "key";
    if (/Fragments\(/.test(path)) return "segment";
    if (/[Mm]anifest/.test(path)) return "manifest";
    return "request";
  };
  const NAMES = { license: "ClearKey license", key: "content key", segment: "segment", manifest: "manifest", request: "request" };

  // An HTTP failure of this origin, said so that a viewer knows what to do about it.
  // ``kind``: what the player says it was loading, when it knows (else read from the URL);
  // ``withToken``: whether the viewer gave a token (a 401 is then the token's refusal).
  const http = (status, url, kind, withToken) => {
    kind = kind || kindOf(url);
    const what = NAMES[kind];
    if (status === 401 && withToken) {
      return "The origin refused the token for the " + what + ": it is not valid (signature, issuer, audience or expiry), or it is not for this title.";
    }
    if (status === 401) {
      if (kind === "key" || kind === "license")
        return "The key service wants a token for this title: paste one in Token and press Play.";
      return "This title needs a token even for its " + what + ": paste one in Token and press Play.";
    }
    if (status === 403) {
      if (kind === "key" || kind === "license")
        return "The key service refused: the token does not grant this title, or your address is not allowed.";
      return "The origin refused the " + what + ": this format or encryption is not in the title's delivery policy, or the token is not valid for it.";
    }
    if (status === 404) {
      if (kind === "manifest") return "Not found: the title is not served here (any more), or its streaming locator is unknown, not yet valid or expired.";
      if (kind === "segment") return "A segment was not found (for a live channel: not published yet).";
      return "Not found: the " + what + " is unknown to this origin.";
    }
    if (status === 410) return "The segment slid out of the live window: the player fell too far behind.";
    if (status === 416) return "The player asked for a byte range past the end of a " + what + ".";
    if (status >= 500) return "The origin failed to answer the " + what + " (HTTP " + status + "): its log says why.";
    if (status === 0) return "The origin cannot be reached: is it still running?";
    return "The " + what + " failed with HTTP " + status + ".";
  };

  // Errors without an HTTP status, by what went wrong.
  const CAUSES = {
    network: "The origin cannot be reached, or the connection broke: is it still running?",
    media: "The browser cannot decode this stream (its codec, or a segment it could not read).",
    drm: "The browser could not decrypt: the ClearKey license or key could not be obtained or used.",
    unsupported: "This browser cannot play this format with this player: pick another player or format.",
    manifest: "The player could not read the manifest.",
    other: "The player stopped on an error.",
  };
  const cause = (name) => CAUSES[name] || CAUSES.other;

  // Key requests by outcome (the origin_key_requests outcomes of /metrics).
  const OUTCOMES = {
    delivered: "delivered",
    missing_token: "refused: no token",
    invalid_token: "refused: token not valid",
    not_allowed: "refused: not allowed by the policy",
    address_not_allowed: "refused: address not allowed",
    unknown_key: "unknown key id",
    bad_request: "malformed request",
  };
  const outcome = (o) => OUTCOMES[o] || o;

  return { bits, bytes, seconds, percent, kindOf, http, cause, outcome };
})();
