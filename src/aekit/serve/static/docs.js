// aekit serve: the API page (/docs). Swagger UI from this server (no CDN), started here rather than
// from an inline script, so the page runs under the same policy as the rest: no eval, no inline script.
"use strict";

// The token the page was given (/docs#token=T, as the printed URL gives it to the main page) goes
// on the calls "Try it out" makes; without one, the Authorize button asks for it.
const token = new URLSearchParams(location.hash.slice(1)).get("token");

window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
  deepLinking: false,
  validatorUrl: null, // no badge fetched from the validator's site: nothing leaves this server
  requestInterceptor: (req) => {
    if (token && !req.headers.Authorization) req.headers.Authorization = "Bearer " + token;
    return req;
  },
});
