// CommonJS consumer: `require('edgegrad')` either loads the package (runtimes that can require ES
// modules) or throws an Error whose message says how to import it. Prints which, as JSON.
try {
  const eg = require('edgegrad');
  console.log(JSON.stringify({ loaded: typeof eg.init === 'function' && typeof eg.tensor === 'function' }));
} catch (e) {
  console.log(JSON.stringify({ loaded: false, message: String(e && e.message) }));
}
