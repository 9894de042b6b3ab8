// Starts Swagger UI on /docs. A file, not an inline script, so that the page's
// Content-Security-Policy can refuse every inline script. The page tells it where the
// OpenAPI document is (data-openapi-url on the container). Deep links are off: they put a
// link inside each operation's button (axe-core: nested-interactive).
"use strict";
(function () {
  var container = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: container.getAttribute("data-openapi-url"),
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: false,
    showExtensions: true,
    showCommonExtensions: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
  });
})();
