// The browser's side of the interface's languages: `_('Recording…')` is the text in the page's
// language (the server puts the translations the scripts use into the page, see web/i18n.py),
// its `{placeholders}` filled from `values`. Texts are extracted from calls to `_` (babel.cfg).
export function _(text, values) {
  const table = window.gridlessText || {};
  const found = Object.prototype.hasOwnProperty.call(table, text) ? table[text] : text;
  if (!values) return found;
  return found.replace(/\{(\w+)\}/g, (whole, key) => (key in values ? String(values[key]) : whole));
}

/** The page's language, as a BCP 47 tag for `Intl` (dates and numbers). */
export function language() {
  return window.gridlessLanguage || document.documentElement.lang || 'en';
}
