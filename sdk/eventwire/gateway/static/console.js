// The console's only script: asks for confirmation, then POSTs with the bearer token.
(function () {
  "use strict";
  var field = document.getElementById("token");
  if (field) {
    field.value = sessionStorage.getItem("eventwire-token") || "";
    field.addEventListener("change", function () {
      sessionStorage.setItem("eventwire-token", field.value);
    });
  }
  var status = document.getElementById("status");
  function show(text, ok) {
    status.textContent = text;
    status.className = ok ? "ok" : "bad";
  }
  var done = sessionStorage.getItem("eventwire-done");
  if (done) {
    sessionStorage.removeItem("eventwire-done");
    show(done, true);
  }
  document.querySelectorAll("button[data-post]").forEach(function (button) {
    button.addEventListener("click", function () {
      if (!window.confirm(button.getAttribute("data-confirm"))) { return; }
      var token = field ? field.value : "";
      fetch(button.getAttribute("data-post"), {
        method: "POST",
        headers: token ? { "Authorization": "Bearer " + token } : {}
      }).then(function (response) {
        return response.json().then(function (body) {
          if (response.ok && body.purged !== undefined) {
            // The table no longer matches the broker: show the page again, then the result.
            sessionStorage.setItem("eventwire-done", "Purged " + body.purged + " letter(s).");
            window.location.reload();
          } else if (response.ok) {
            show("Replayed " + body.replayed + " letter(s).", true);
          } else {
            show("Refused (" + response.status + "): " + (body.detail || body.title), false);
          }
        });
      }).catch(function (error) { show("Request failed: " + error, false); });
    });
  });
})();
