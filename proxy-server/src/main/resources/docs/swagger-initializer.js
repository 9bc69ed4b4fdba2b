// Swagger UI for megallm-proxy: everything comes from this proxy (no CDN, works offline).
window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    plugins: [SwaggerUIBundle.plugins.DownloadUrl],
    layout: "StandaloneLayout",
    // No call to the public validator service, no URL box to load other documents.
    validatorUrl: null,
    queryConfigEnabled: false,
    displayRequestDuration: true,
    tryItOutEnabled: false
  });
};
