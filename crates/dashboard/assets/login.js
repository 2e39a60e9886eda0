"use strict";
document.addEventListener("DOMContentLoaded", function () {
  if (new URLSearchParams(location.search).has("failed")) {
    document.getElementById("login-error").hidden = false;
  }
});
