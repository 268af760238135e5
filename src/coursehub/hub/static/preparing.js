// The "preparing" page of a course an LMS launch is creating: ask the hub until the
// course is ready, then open its formgrader. A file of its own (not an inline script):
// the page is sent with a Content-Security-Policy that runs no inline script.
(function () {
  "use strict";
  var page = document.getElementById("coursehub-preparing");
  if (!page) {
    return;
  }
  var poll = page.getAttribute("data-poll-url");

  function sameOrigin(url) {
    try {
      return new URL(url, window.location.href).origin === window.location.origin;
    } catch (e) {
      return false;
    }
  }

  async function ask() {
    try {
      var r = await fetch(poll, { cache: "no-store", credentials: "same-origin" });
      if (r.ok) {
        var state = await r.json();
        if (state.ready && sameOrigin(state.url)) {
          window.location.href = state.url;
          return;
        }
      }
    } catch (e) {
      // a moment without the network: ask again
    }
    window.setTimeout(ask, 1500);
  }

  ask();
})();
