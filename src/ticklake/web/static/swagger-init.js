// Start Swagger UI on /docs from the copy shipped in the swagger-ui-bundle-v2 wheel
// (no CDN: the dashboard works offline). Kept out of the page so the CSP needs no inline script.
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
  });
});
