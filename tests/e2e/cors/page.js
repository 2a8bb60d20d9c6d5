// Driven by tests/e2e/cors.rs in headless Chromium. The same script runs on two origins:
// /allowed.html on the origin the proxy's CORS rule names, /blocked.html on one it does not;
// /bucket.html?phase=NAME makes one PUT and one GET and reports them as NAME (before and
// after the bucket's rules are set through the S3 API).
// Every outcome is posted back to the page server; the test reads nothing else.

const phase = new URLSearchParams(location.search).get("phase");
const role = phase || (location.pathname.startsWith("/allowed") ? "allowed" : "blocked");

// Posted as `step.field=value&...` (form encoding), so the test needs no JSON parser.
function post(result) {
  const pairs = [];
  for (const [step, fields] of Object.entries(result)) {
    if (typeof fields !== "object" || fields === null) {
      pairs.push(encodeURIComponent(step) + "=" + encodeURIComponent(String(fields)));
      continue;
    }
    for (const [field, value] of Object.entries(fields)) {
      if (value === null || value === undefined) continue;
      pairs.push(encodeURIComponent(step + "." + field) + "=" + encodeURIComponent(String(value)));
    }
  }
  return fetch("/result/" + role, { method: "POST", body: pairs.join("&") });
}

// One request; a browser CORS refusal surfaces as a TypeError ("Failed to fetch").
async function attempt(req) {
  try {
    // no-store: the bad-signature GET shares its URL with a good one, and a heuristically
    // fresh cached 200 must not stand in for the proxy's answer.
    const init = { method: req.method, headers: req.headers || {}, cache: "no-store" };
    if (req.body !== undefined) init.body = req.body;
    const r = await fetch(req.url, init);
    return {
      status: r.status,
      etag: r.headers.get("ETag"),
      requestId: r.headers.get("x-amz-request-id"),
      body: await r.text(),
    };
  } catch (e) {
    return { error: String(e) };
  }
}

async function run() {
  const cfg = await (await fetch("/config.json")).json();
  const out = {};
  if (phase) {
    out.put = await attempt(cfg.put);
    out.get = await attempt(cfg.get);
  } else if (role === "allowed") {
    out.presignedPut = await attempt(cfg.presignedPut);
    out.signedPut = await attempt(cfg.signedPut);
    out.presignedGet = await attempt(cfg.presignedGet);
    out.signedGet = await attempt(cfg.signedGet);
    out.badSignature = await attempt(cfg.badSignature);
    out.missingKey = await attempt(cfg.missingKey);
    // Only now open the other origin, so its outcome cannot be a race with these uploads.
    const frame = document.createElement("iframe");
    frame.src = cfg.blockedPage;
    document.body.appendChild(frame);
  } else {
    out.presignedGet = await attempt(cfg.presignedGet);
    out.signedPut = await attempt(cfg.blockedPut);
  }
  await post(out);
}

run().catch((e) => post({ error: String(e) }));
