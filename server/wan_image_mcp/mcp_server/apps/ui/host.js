// Shared by the pages (pages.py inlines it after the SDK): follow the host's context — its theme, colour
// variables and fonts through the SDK's helpers (without a theme, the OS setting stays in charge), and the frame
// it gives (containerDimensions: the page scrolls inside a fixed or bounded height; `body.fixed` in each page).
globalThis.McpExtApps.followHost = (context) => {
  const { applyDocumentTheme, applyHostStyleVariables, applyHostFonts } = globalThis.McpExtApps;
  if (!context) return;
  if (context.theme) applyDocumentTheme(context.theme);
  if (context.styles?.variables) applyHostStyleVariables(context.styles.variables);
  if (context.styles?.css?.fonts) applyHostFonts(context.styles.css.fonts);
  const box = context.containerDimensions;
  if (!box) return;
  const root = document.documentElement.style;
  if ("width" in box) root.width = `${box.width}px`;
  if ("maxWidth" in box && box.maxWidth) root.maxWidth = `${box.maxWidth}px`;
  if ("height" in box) { root.height = `${box.height}px`; document.body.classList.add("fixed"); document.body.style.height = "100%"; }
  if ("maxHeight" in box && box.maxHeight) { document.body.classList.add("fixed"); document.body.style.maxHeight = `${box.maxHeight}px`; }
};
