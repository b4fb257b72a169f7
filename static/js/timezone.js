// Tells the portal this browser's time zone (portal/timezones.py), so that
// times are shown where the reader is unless Settings > Account says otherwise.
(function () {
  var zone;
  try {
    zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  } catch (error) {
    return;
  }
  if (!zone || document.cookie.indexOf("tz=" + zone) !== -1) return;
  document.cookie =
    "tz=" + zone + "; path=/; max-age=31536000; SameSite=Lax" +
    (location.protocol === "https:" ? "; Secure" : "");
})();
