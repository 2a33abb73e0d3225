// Shared by the browser consumers: publishes the program's result (or its error) on `window`
// for the runner, and shows it on the page.
export async function report(pending, eg) {
  const out = document.getElementById('out');
  try {
    const result = await pending;
    const info = eg.backendInfo();
    window.__result = { ...result, crossOriginIsolated: globalThis.crossOriginIsolated === true, fallbackReason: info.fallbackReason ?? null };
    out.textContent = JSON.stringify(window.__result, null, 2);
  } catch (e) {
    window.__error = `${e && e.name}: ${e && e.message}`;
    out.textContent = window.__error;
  }
}
